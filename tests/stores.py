"""The helpers the tests use to write small feature stores, and to watch workflows read them.

``write_store(path, head, {"train": (X, y), "noise": X, ...})`` writes every
split through the store's own writer, chunk by chunk, and finalizes it (or
leaves it incomplete, for the tests of interrupted extractions). Logits are
the head's, labels -1 (unknown) unless given, paths ``"<split>/<row>"``.

``small_blocks`` and ``never_loaded`` make a workflow read its splits in small blocks
and forbid loading one whole (the streaming tests).

Only the tests whose subject is the writer itself (tests/test_store.py,
tests/test_store_lock.py, tests/extract/test_run.py and the half-written
splits of tests/test_streaming.py) call ``prepare_split`` and ``write_chunk``
by hand.
"""

from __future__ import annotations

import numpy as np


def write_store(
    path,
    head,
    splits: dict,
    *,
    chunk_rows: int = 32,
    model: str = "toy",
    incomplete=(),
    logits: bool = True,
    source: str = "test",
    weights_sha256: str | None = None,
    feature_layer: str | None = None,
):
    """Write a feature store with the given splits through ``skdice.store``.

    The store is created, or reopened when ``path`` already holds one of the
    same model and head, so a second call adds splits to it.

    Parameters
    ----------
    path : path-like
        The store's folder.
    head : skdice.Head
    splits : dict of str to array-like or (array-like, labels)
        Features of each split, optionally with their labels (-1 = unknown).
        The features are read one chunk at a time (``X[a:b]``), so any array
        with ``len`` and row slices will do: a Dask array writes a split
        larger than memory without ever holding it whole.
    chunk_rows : int, default=32
        Rows per chunk of every split (a split shorter than this is one chunk).
    model : str, default="toy"
    incomplete : collection of str, default=()
        Splits left incomplete: their first chunk is written, no marker set.
    logits : bool, default=True
        Write the head's logits (False writes zeros, for large splits where
        the logits do not matter, or features the head refuses, such as NaN).
    source : str, default="test"
        The source recorded for every split (``skdice info`` shows it).
    weights_sha256, feature_layer : str, default=None
        Recorded in the store's attributes, as ``create_store`` takes them.

    Returns
    -------
    skdice.store.StoreWriter
    """
    from skdice.store import create_store

    writer = create_store(
        path, model=model, head=head, weights_sha256=weights_sha256, feature_layer=feature_layer
    )
    for name, value in splits.items():
        X, y = value if isinstance(value, tuple) else (value, None)
        y = -np.ones(len(X), dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64)
        with writer.prepare_split(name, len(X), source=source, chunk_rows=chunk_rows) as split:
            for i in split.pending():
                a, b = split.chunk_bounds(i)
                rows = np.asarray(X[a:b], dtype=np.float32)
                Z = head.logits(rows) if logits else np.zeros((b - a, head.n_classes), np.float32)
                split.write_chunk(i, rows, Z, y[a:b], [f"{name}/{j}" for j in range(a, b)])
                if name in incomplete:
                    break
            if name not in incomplete:
                split.finalize()
    return writer


def small_blocks(monkeypatch, reads, rows: int = 32):
    """Make every split the workflows read (``SplitFeatures``) come in blocks of ``rows``
    rows, and append the array of each pass (``"split/features"``) to ``reads``."""
    import skdice.store._split as split_module

    real = split_module.iter_blocks

    def blocks(array, block_rows=None, **kwargs):
        reads.append(array.path)
        return real(array, rows, **kwargs)

    monkeypatch.setattr(split_module, "iter_blocks", blocks)


def never_loaded(monkeypatch):
    """Make loading a split whole (``FeatureStore.features``) fail the test."""
    import skdice.store

    def refuse(self, split, **kwargs):
        raise AssertionError(f"split {split!r} was loaded whole")

    monkeypatch.setattr(skdice.store.FeatureStore, "features", refuse)
