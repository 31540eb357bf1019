"""The feature store: one Zarr group per model, its schema, readers and writer.

Everything downstream of extraction (fit, tune, evaluate) reads penultimate
features through :func:`open_store`; the extraction stage writes them through
:func:`create_store` and :class:`SplitWriter`, so the schema lives in this one
package. The full layout is documented in ``docs/store.md``.

Layout (all arrays are Zarr format 3)::

    <store>/                      root attrs: skdice_store (schema version), skdice_version,
                                  model, weights_sha256, preprocessing, feature_layer,
                                  n_features, n_classes
    <store>/head/weight           (m, C) float32, the paper's orientation
    <store>/head/bias             (C,) float32
    <store>/<split>/              attrs: source, count, chunk_rows, n_chunks, complete, ...
    <store>/<split>/features      (N, m) float32, chunks (chunk_rows, m)
    <store>/<split>/logits        (N, C) float32, chunks (chunk_rows, C)
    <store>/<split>/labels        (N,) int64, -1 = unknown
    <store>/<split>/paths         (N,) variable-length UTF-8 strings
    <store>/<split>/written       (n_chunks,) uint8, one flag per row chunk
    <store>/<split>/digests       (n_chunks, 6, 16) uint8, each chunk's digests (bookkeeping)
    <store>/<split>/manifest      the split's manifest (a group's attributes: digests, counts, head)
    <store>/<split>/scores/<name> (N,) float64, scores written back
    <store>/manifest              the store's manifest (model name, head fingerprint)

Integrity: Zarr returns the fill value for chunks that were never written, so
an interrupted extraction would read back as rows of zeros. A split counts as
complete only once every row chunk is flagged in ``written`` and the split's
``complete`` attribute (the completion marker) has been set, last. Every reader
refuses an incomplete split with :class:`~skdice.exceptions.IncompleteSplitError`.
Every array carries a crc32c checksum on each chunk and every chunk on disk;
readers check an array's schema and chunk files before using it and verify
each checksum as they decode (``_integrity``). The manifests (``_manifest``)
bind each chunk's content to its place, the counts and the head: readers
check a sample of each chunk's rows as they read it, and :func:`verify_store`
checks a whole store.

The package has one module per job: ``_schema`` (names, version, chunking),
``_integrity`` (the checks before and during a read), ``_reader``
(:func:`open_store`, :class:`FeatureStore`), ``_blocks`` (block reads with
read-ahead), ``_split`` (:class:`SplitFeatures`, a split as a block source:
``FeatureStore.block_source``), ``_lock`` (lock files), ``_writer``
(:func:`create_store`, :class:`StoreWriter`, :class:`SplitWriter`), ``_scores``
(scores written back), ``_verify`` (:func:`verify_store`) and ``_import``
(:func:`import_arrays`, features from any framework, ``skdice import``). Import from
``skdice.store``; the modules are private, and the names they share with each
other are public inside the package (``_schema.HEAD``,
``_integrity.check_stored_array``, ...), as zarr-python's ``zarr.core`` does.

zarr is imported inside the functions, so ``import skdice`` stays light.
"""

from ._blocks import block_rows_for, iter_blocks, lazy_rows
from ._import import import_arrays, load_array
from ._lock import scores_lock
from ._reader import FeatureStore, open_store
from ._schema import SCHEMA_VERSION, default_chunk_rows
from ._scores import ScoresWriter, open_scores_writer, read_scores
from ._split import SplitFeatures, damaged_store_error, explained_reads
from ._verify import StoreReport, verify_store
from ._writer import SplitWriter, StoreWriter, create_store

__all__ = [
    "SCHEMA_VERSION",
    "FeatureStore",
    "ScoresWriter",
    "SplitFeatures",
    "SplitWriter",
    "StoreReport",
    "StoreWriter",
    "block_rows_for",
    "create_store",
    "damaged_store_error",
    "default_chunk_rows",
    "explained_reads",
    "import_arrays",
    "iter_blocks",
    "lazy_rows",
    "load_array",
    "open_scores_writer",
    "open_store",
    "read_scores",
    "scores_lock",
    "verify_store",
]
