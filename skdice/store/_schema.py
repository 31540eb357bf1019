"""The store's layout: names, reserved words, schema version, chunking, name checks."""

from __future__ import annotations

from ..exceptions import StoreError, require

SCHEMA_VERSION = 1

#: Root attribute whose presence (holding the schema version) marks a skdice store.
_MARKER_ATTR = "skdice_store"
_HEAD = "head"
_SPLIT_ARRAYS = ("features", "logits", "labels", "paths")
_DENSE = ("features", "logits")  # every chunk is on disk once a split is complete
_RESERVED = {_HEAD}
_SCORES = "scores"  # the group of a split that holds scores written back
_RERUN = "re-run the same `skdice extract` command (it resumes from the last written chunk)"
_CREATE_WAIT_S = 60.0  # how long a writer waits for another process creating the same store


def _zarr():
    return require("zarr", "store")


def _validate_split_name(split: str) -> str:
    if not isinstance(split, str) or not split or split in _RESERVED:
        raise StoreError(f"invalid split name {split!r}: use a non-empty name other than 'head'.")
    if "/" in split or "\\" in split or split.startswith(".") or split.strip() != split:
        raise StoreError(
            f"invalid split name {split!r}: no slashes, no leading dot, no surrounding spaces."
        )
    return split


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

