"""The training statistics the search and the theory both start from.

:func:`training_mean` gives the mean ID training feature from the features
or a given mean; :func:`masked_heads` builds DICE's masked head for every
sparsity of a grid from one sort of the contribution matrix. Both sit below
:mod:`skdice.theory` and the searches (:mod:`skdice._search`), which take
them from here.
"""

from __future__ import annotations

import numpy as np

from ._numeric import column_mean
from ._streamed_fit import CheckedBlocks
from ._validation import check_rows, check_train_mean, is_block_source
from .sparsify import contribution_matrix, dice_thresholds

__all__ = ["masked_heads", "training_mean"]


def training_mean(X, train_mean, n_features: int, where: str) -> np.ndarray:
    """The mean ID training feature (float64) from the features ``X`` or a given ``train_mean``.

    Exactly one of the two must be given. Used by the search and by
    :mod:`skdice.theory`; a mean given as a ``.npy`` path is the workflows'
    business (:func:`skdice.workflows.resolve.resolve_train_mean`).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), block source or None
    train_mean : array-like of shape (n_features,) or None
    n_features : int
    where : str
        The calling function, for the messages.

    Returns
    -------
    ndarray of shape (n_features,), float64
    """
    if X is not None and train_mean is not None:
        raise ValueError(f"{where}: pass the training features or train_mean, not both.")
    if X is not None:
        X = check_rows(X, "X", n_features, where)
        return column_mean(CheckedBlocks(X) if is_block_source(X) else X)
    if train_mean is None:
        raise ValueError(
            f"{where} needs the ID training statistic: the training features X or "
            "train_mean=(mean feature of shape (n_features,))."
        )
    return check_train_mean(train_mean, n_features)


def masked_heads(mean_feature, head, ps):
    """Yield ``(threshold, mask, masked_weight)`` for each p, sorting ``V`` once.

    The masks are exactly :func:`skdice.sparsify.dice_mask`'s (``V > threshold``,
    everything for ``p == 0``), built afresh for every p.

    Parameters
    ----------
    mean_feature : ndarray of shape (n_features,)
    head : Head
    ps : sequence of float in [0, 1)

    Yields
    ------
    threshold : float
    mask : ndarray of shape (n_features, n_classes), bool
    masked_weight : ndarray of shape (n_features, n_classes), float32
    """
    V = contribution_matrix(mean_feature, head.weight)
    thresholds = dice_thresholds(V, ps)
    for threshold in thresholds:
        mask = V > threshold  # -inf for p == 0 keeps every (finite) entry
        yield float(threshold), mask, np.where(mask, head.weight, np.float32(0))
