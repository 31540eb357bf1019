"""The one helper the tests use to write small feature stores.

``write_store(path, head, {"train": (X, y), "noise": X, ...})`` writes every
split through the store's own writer, chunk by chunk, and finalizes it (or
leaves it incomplete, for the tests of interrupted extractions). Logits are
the head's, labels -1 (unknown) unless given, paths ``"<split>/<row>"``.
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
):
    """Write a feature store with the given splits through ``skdice.store``.

    Parameters
    ----------
    path : path-like
        The store's folder.
    head : skdice.Head
    splits : dict of str to ndarray or (ndarray, labels)
        Features of each split, optionally with their labels (-1 = unknown).
    chunk_rows : int, default=32
    model : str, default="toy"
    incomplete : collection of str, default=()
        Splits left incomplete: their first chunk is written, no marker set.
    logits : bool, default=True
        Write the head's logits (False writes zeros, for large splits where
        the logits do not matter).

    Returns
    -------
    skdice.store.StoreWriter
    """
    from skdice.store import create_store

    writer = create_store(path, model=model, head=head)
    for name, value in splits.items():
        X, y = value if isinstance(value, tuple) else (value, None)
        X = np.asarray(X, dtype=np.float32)
        y = -np.ones(len(X), dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64)
        with writer.prepare_split(name, len(X), source="test", chunk_rows=chunk_rows) as split:
            for i in split.pending():
                a, b = split.chunk_bounds(i)
                Z = head.logits(X[a:b]) if logits else np.zeros((b - a, head.n_classes), np.float32)
                split.write_chunk(i, X[a:b], Z, y[a:b], [f"{name}/{j}" for j in range(a, b)])
                if name in incomplete:
                    break
            if name not in incomplete:
                split.finalize()
    return writer
