"""The store's layout: names, reserved words, schema version, chunking, name checks."""

from __future__ import annotations

from ..exceptions import StoreError, require

SCHEMA_VERSION = 1

#: Root attribute whose presence (holding the schema version) marks a skdice store.
MARKER_ATTR = "skdice_store"
HEAD = "head"
SPLIT_ARRAYS = ("features", "logits", "labels", "paths")
MANIFEST = "manifest"  # the store-level manifest (docs/store.md, "The manifest")
RESERVED = {HEAD, MANIFEST}
SCORES = "scores"  # the group of a split that holds scores written back
RERUN = "re-run the same `skdice extract` command (it resumes from the last written chunk)"
CREATE_WAIT_S = 60.0  # how long a writer waits for another process creating the same store
#: Attribute recording that a split's (or, on the root, the head's) arrays carry a
#: crc32c checksum on every chunk; arrays written before checksums lack it.
CHECKSUM_ATTR = "checksum"
CHECKSUM = "crc32c"


def import_zarr():
    """zarr (or the one-line error naming the extra to install), with bounded zstd decoding selected.

    Every store function gets zarr here, so every array the store opens decodes
    through :class:`skdice.store._codecs.BoundedZstdCodec`.
    """
    zarr = require("zarr", "store")
    from ._codecs import use_bounded_zstd

    use_bounded_zstd()
    return zarr


#: Names that would collide with Zarr's own files in a group's folder.
_ZARR_FILES = {"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"}
_MAX_NAME = 200  # bytes in UTF-8: file systems refuse names above 255, and locks add a suffix


def _name_problem(name) -> str | None:
    """Why ``name`` cannot be a folder name inside a store (None when it can).

    Checked before any path is built from the name, so that ``../x``, an
    absolute path, ``zarr.json`` or a NUL byte never reaches the file system.
    """
    if not isinstance(name, str) or not name:
        return "use a non-empty name"
    if any(ch in name for ch in "/\\") or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "no slashes, no control characters"
    if name.startswith(".") or name.strip() != name:
        return "no slashes, no leading dot, no surrounding spaces"
    if name in _ZARR_FILES:
        return f"{name!r} is one of Zarr's own file names"
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME:
        return f"at most {_MAX_NAME} bytes"
    return None


def validate_split_name(split: str) -> str:
    if isinstance(split, str) and split in RESERVED:
        raise StoreError(f"invalid split name {split!r}: use a non-empty name other than 'head' and 'manifest'.")
    problem = _name_problem(split)
    if problem is not None:
        raise StoreError(f"invalid split name {split!r}: {problem}.")
    return split


def validate_score_name(method: str) -> str:
    problem = _name_problem(method)
    if problem is None and method.startswith("__"):
        problem = "no leading dot or double underscore"
    if problem is not None:
        raise StoreError(f"invalid score name {method!r}: {problem}.")
    return method


def default_chunk_rows(n_features: int, n_classes: int, batch_size: int = 1) -> int:
    """Rows per store chunk: about 1 MiB of features and logits, a multiple of the batch.

    Smaller chunks lose less work to an interruption; larger ones compress and
    read better. Being a multiple of ``batch_size`` keeps the batches of a
    resumed run identical to those of an uninterrupted one.

    Parameters
    ----------
    n_features : int
        Feature width m.
    n_classes : int
        Number of classes C.
    batch_size : int, default=1
        Extraction batch size.

    Returns
    -------
    int
        At least ``batch_size`` and at most ``max(1024, batch_size)``.
    """
    batch_size = max(int(batch_size), 1)
    row_bytes = 4 * (int(n_features) + int(n_classes))
    rows = min(2**20 // max(row_bytes, 1), 1024)
    return max(batch_size, rows // batch_size * batch_size)


def split_schema(count: int, chunk_rows: int, n_chunks: int, n_features: int, n_classes: int) -> dict:
    """The documented data type, shape and chunks of each array of a split (docs/store.md)."""
    rows = min(chunk_rows, max(count, 1))
    return {
        "features": {"shape": (count, n_features), "data_type": "float32", "chunks": (rows, n_features)},
        "logits": {"shape": (count, n_classes), "data_type": "float32", "chunks": (rows, n_classes)},
        "labels": {"shape": (count,), "data_type": "int64", "chunks": (rows,)},
        "paths": {"shape": (count,), "data_type": "string", "chunks": (rows,)},
        "written": {"shape": (n_chunks,), "data_type": "uint8", "chunks": (1,)},
    }


def score_schema(count: int, chunk_rows: int | None) -> dict:
    """The documented data type, shape and chunks of a score array (chunks unknown for old ones)."""
    chunks = None if chunk_rows is None else (max(1, min(chunk_rows, max(count, 1))),)
    return {"shape": (count,), "data_type": "float64", "chunks": chunks}


def is_count(value, minimum: int = 0) -> bool:
    """A JSON integer (not a bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
