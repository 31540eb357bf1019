"""The p search (:class:`skdice.tuning.SparsitySearch`) on the splits of a feature store."""

from __future__ import annotations

import numpy as np

from .._search import DEFAULT_GRID, SparsitySearch
from ..store import iter_blocks
from .resolve import open_feature_store, read_features, resolve_train_mean

__all__ = ["tune_store"]


def tune_store(
    store,
    *,
    id_split,
    noise_split,
    train=None,
    train_mean=None,
    grid=DEFAULT_GRID,
    metric="fpr95",
    tpr=0.95,
):
    """Run :class:`SparsitySearch` on the splits of a feature store.

    Parameters
    ----------
    store : str, path-like or skdice.store.FeatureStore
        A store written by ``skdice extract``; its head is the model's head.
    id_split : str
        Split of ID validation features.
    noise_split : str
        Split of Gaussian-noise (OOD validation) features.
    train : str, default=None
        Split of ID training features; its mean is streamed chunk by chunk
        (the split is never loaded whole). Give this or ``train_mean``.
    train_mean : array-like of shape (n_features,), str or path-like, default=None
        The mean training feature, or a ``.npy`` file holding it
        (:func:`skdice.workflows.resolve.load_train_mean`).
    grid : sequence of float, default=(0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
    metric : {"fpr95", "auroc"}, default="fpr95"
    tpr : float, default=0.95

    Returns
    -------
    SparsitySearch
        Fitted.

    Raises
    ------
    skdice.exceptions.StoreError
        When the store or a split is missing or incomplete.
    """
    fs = open_feature_store(store)
    head = fs.head
    if (train is None) == (train_mean is None):
        raise ValueError("tune_store needs exactly one of train (a split) or train_mean.")
    if train is not None:
        total, n = np.zeros(head.n_features), 0
        # 8 MiB blocks with reads ahead: twice the speed of one store chunk per read
        for _, block in iter_blocks(fs.array(train, "features")):
            total += block.sum(axis=0, dtype=np.float64)
            n += block.shape[0]
        if n == 0:
            raise ValueError(f"split {train!r} of {fs.path} is empty: no training mean.")
        mean = total / n
    else:
        mean = resolve_train_mean(train_mean, head.n_features)
    X_id = read_features(fs, id_split)
    X_noise = read_features(fs, noise_split)
    search = SparsitySearch(grid=grid, metric=metric, tpr=tpr)
    return search.fit(head=head, train_mean=mean, X_id=X_id, X_noise=X_noise)
