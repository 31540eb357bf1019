"""Mask builders for the classifier head: DICE's contribution top-k and the ablations.

Every builder returns a boolean mask of the weight's shape ``(n_features,
n_classes)``; True means the weight is kept. DICE and the sparsification
ablations of the paper (Tables 2, 5 and 10) share them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["contribution_matrix", "dice_mask", "dice_thresholds"]


def contribution_matrix(mean_feature, weight) -> np.ndarray:
    """DICE's contribution matrix ``V = E[h] ⊙ W`` in float64.

    Since ``W`` is fixed, ``E_x[W ⊙ h(x)] = mean_feature[:, None] * W``.

    Parameters
    ----------
    mean_feature : ndarray of shape (n_features,)
        Mean penultimate feature over in-distribution training data.
    weight : ndarray of shape (n_features, n_classes)
        Head weight in the paper's orientation.

    Returns
    -------
    ndarray of shape (n_features, n_classes), float64
    """
    mean_feature = np.asarray(mean_feature, dtype=np.float64)
    return mean_feature[:, None] * np.asarray(weight, dtype=np.float64)


def _check_p(p):
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must be in [0, 1), got {p!r}.")


def dice_mask(contribution, p: float) -> tuple[np.ndarray, float]:
    """Keep the entries of ``V`` above its ``100 p``-th percentile.

    Exactly the rule of the paper's official code, OpenOOD and pytorch-ood:
    ``threshold = numpy.percentile(V, 100 p)`` over all entries (linear
    interpolation) and keep ``V > threshold`` (strict).

    Parameters
    ----------
    contribution : ndarray of shape (n_features, n_classes)
        The contribution matrix V.
    p : float in [0, 1)
        Sparsity: the fraction of weights to drop.

    Returns
    -------
    mask : ndarray of shape (n_features, n_classes), bool
    threshold : float
        The percentile; ``-inf`` for ``p == 0``.

    Notes
    -----
    ``p == 0`` keeps every weight (the dense head): the strict rule alone would
    drop the minimum. With ties at the threshold the strict rule drops all
    tied entries, so fewer than ``(1 - p) m C`` weights are kept; for example
    dead units (mean exactly 0) give a block of zeros in V, and when the
    threshold falls inside that block every zero entry is dropped. Without ties
    exactly ``m C - ceil-like(p (m C - 1)) - 1`` entries survive, i.e. the
    count of entries strictly above the interpolated percentile.
    """
    _check_p(p)
    V = np.asarray(contribution)
    if p == 0:
        return np.ones(V.shape, dtype=bool), -np.inf
    threshold = float(np.percentile(V, 100.0 * p))
    return V > threshold, threshold


def dice_thresholds(contribution, ps) -> np.ndarray:
    """Percentile thresholds of ``V`` for several sparsities, sorting ``V`` once.

    Equal to ``[dice_mask(V, p)[1] for p in ps]``: ``numpy.percentile`` over
    an already sorted array returns the same interpolated values.

    Parameters
    ----------
    contribution : ndarray of shape (n_features, n_classes)
    ps : sequence of float in [0, 1)

    Returns
    -------
    ndarray of shape (len(ps),)
        ``-inf`` where ``p == 0``.
    """
    ps = np.asarray(ps, dtype=np.float64)
    for p in ps:
        _check_p(float(p))
    flat = np.sort(np.asarray(contribution, dtype=np.float64), axis=None)
    out = np.percentile(flat, 100.0 * ps)
    out = np.atleast_1d(np.asarray(out, dtype=np.float64))
    out[ps == 0] = -np.inf
    return out
