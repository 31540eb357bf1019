"""Mask builders for the classifier head: DICE's contribution top-k and the ablations.

Every builder returns a boolean mask of the weight's shape ``(n_features,
n_classes)``; True means the weight is kept. DICE and the sparsification
ablations of the paper (Tables 2, 5 and 10) share them.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_sparsity

__all__ = [
    "contribution_matrix",
    "dice_mask",
    "dice_thresholds",
    "weight_dropout_mask",
    "unit_dropout_mask",
    "weight_pruning_mask",
    "unit_pruning_mask",
    "bottom_k_mask",
    "random_k_mask",
    "top_bottom_k_mask",
]


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
    exactly ``N - 1 - floor(p (N - 1))`` of the ``N = m C`` entries survive
    (for ``0 < p < 1``): the percentile sits at the virtual index ``p (N - 1)``
    of the sorted entries, and only the entries above its integer part lie
    strictly above it. That is ``(1 - p) N`` up to less than one entry.
    """
    check_sparsity(p)
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
        check_sparsity(float(p))
    flat = np.sort(np.asarray(contribution, dtype=np.float64), axis=None)
    out = np.percentile(flat, 100.0 * ps)
    out = np.atleast_1d(np.asarray(out, dtype=np.float64))
    out[ps == 0] = -np.inf
    return out


# ---------------------------------------------------------------------------
# Masks of the sparsification ablations (Tables 2, 5 and 10 of the paper).
#
# The deterministic and the "exactly k" rules reuse DICE's own rule, applied to
# another ranking of the same entries: keep what lies strictly above the
# ``100 p``-th percentile of the ranking. Without ties they therefore keep
# exactly as many weights (or units) as DICE does at the same p.


def _rng(random_state):
    from sklearn.utils import check_random_state

    return check_random_state(random_state)


def weight_dropout_mask(shape, p: float, random_state=None) -> np.ndarray:
    """Weight dropout (DropConnect): drop each weight independently with probability p.

    Parameters
    ----------
    shape : tuple of int
        ``(n_features, n_classes)``, the head weight's shape.
    p : float in [0, 1)
        Drop probability; the expected fraction of weights dropped.
    random_state : int, RandomState instance or None, default=None
        Seed of the Bernoulli draws, for reproducible masks.

    Returns
    -------
    ndarray of shape ``shape``, bool
        True for the kept weights.

    Notes
    -----
    Wan et al. (2013), as the paper's Table 2 "Weight-Dropout". The number of
    kept weights is Binomial(m C, 1 - p), not fixed; :func:`random_k_mask`
    draws exactly DICE's count instead.
    """
    check_sparsity(p)
    return _rng(random_state).random_sample(shape) >= p


def unit_dropout_mask(shape, p: float, random_state=None) -> np.ndarray:
    """Unit dropout: drop each penultimate unit (a row of W) with probability p.

    Parameters
    ----------
    shape : tuple of int
        ``(n_features, n_classes)``.
    p : float in [0, 1)
        Drop probability of a unit.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    ndarray of shape ``shape``, bool
        Whole rows are True (unit kept) or False (unit dropped).

    Notes
    -----
    Srivastava et al. (2014), as the paper's "Unit-Dropout": a unit is one
    coordinate of the penultimate feature ``h(x)``; dropping it removes its
    row of ``W``, i.e. all its outgoing weights.
    """
    check_sparsity(p)
    n_units, n_classes = shape
    keep = _rng(random_state).random_sample(n_units) >= p
    return np.repeat(keep[:, None], n_classes, axis=1)


def weight_pruning_mask(weight, p: float) -> np.ndarray:
    """Magnitude pruning: keep the weights with the largest ``|W|``.

    Han et al. (2015), the paper's "Weight-Pruning": ``|W| >
    percentile(|W|, 100 p)``. Large negative weights are kept, which is the
    difference from DICE the paper points at (Section 5).

    Parameters
    ----------
    weight : ndarray of shape (n_features, n_classes)
    p : float in [0, 1)

    Returns
    -------
    ndarray of shape (n_features, n_classes), bool
    """
    return dice_mask(np.abs(np.asarray(weight, dtype=np.float64)), p)[0]


def unit_pruning_mask(weight, p: float) -> np.ndarray:
    """Unit pruning: drop the units whose weight vector has the smallest L2 norm.

    Li et al. (2017), the paper's "Unit-Pruning": a unit ``i``'s weight vector
    is row ``W[i, :]`` (its connections to the C outputs). Units with
    ``||W[i, :]||_2 > percentile(norms, 100 p)`` are kept, whole rows at once.

    Parameters
    ----------
    weight : ndarray of shape (n_features, n_classes)
    p : float in [0, 1)
        Fraction of units dropped.

    Returns
    -------
    ndarray of shape (n_features, n_classes), bool
    """
    W = np.asarray(weight, dtype=np.float64)
    keep = dice_mask(np.linalg.norm(W, axis=1), p)[0]
    return np.repeat(keep[:, None], W.shape[1], axis=1)


def bottom_k_mask(contribution, p: float) -> np.ndarray:
    """DICE's bottom-k variant: keep the k entries of V with the *smallest* contribution.

    ``-V > percentile(-V, 100 p)``, the mirror image of :func:`dice_mask`; k is
    DICE's count at the same p (the paper's Table 5, "Bottom-k").

    Parameters
    ----------
    contribution : ndarray of shape (n_features, n_classes)
    p : float in [0, 1)

    Returns
    -------
    ndarray of shape (n_features, n_classes), bool
    """
    return dice_mask(-np.asarray(contribution, dtype=np.float64), p)[0]


def random_k_mask(shape, p: float, random_state=None) -> np.ndarray:
    """DICE's random-k variant: keep k entries chosen uniformly at random.

    The entries are ranked by i.i.d. uniform draws and DICE's percentile rule
    is applied to that ranking, so exactly as many entries are kept as DICE
    keeps at the same p without ties (the paper's Table 5, "Random-k").

    Parameters
    ----------
    shape : tuple of int
        ``(n_features, n_classes)``.
    p : float in [0, 1)
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    ndarray of shape ``shape``, bool
    """
    check_sparsity(p)
    return dice_mask(_rng(random_state).random_sample(shape), p)[0]


def top_bottom_k_mask(contribution, p: float) -> np.ndarray:
    """DICE's top+bottom-k variant: keep the k most extreme entries of V, half at each end.

    Entries are ranked by ``|rank(V) - (n + 1) / 2|`` (average ranks for
    ties) and DICE's percentile rule is applied to that extremity, so about
    k / 2 of the largest and k / 2 of the smallest contributions are kept,
    k being DICE's count at the same p (the paper's Table 5,
    "(Top+Bottom)-k"). The largest and the smallest entry of equal extremity
    are kept or dropped together, so the count can be one below DICE's.

    Parameters
    ----------
    contribution : ndarray of shape (n_features, n_classes)
    p : float in [0, 1)

    Returns
    -------
    ndarray of shape (n_features, n_classes), bool
    """
    from scipy.stats import rankdata

    V = np.asarray(contribution, dtype=np.float64)
    ranks = rankdata(V, method="average").reshape(V.shape)
    extremity = np.abs(ranks - (V.size + 1) / 2.0)
    return dice_mask(extremity, p)[0]
