"""Tolerances derived from the dtype, for comparing two computations of the same scores.

Two computations of one dot product of ``n`` terms in a float type with unit
roundoff ``u`` (half its machine epsilon), summed in any two orders (a BLAS
kernel's blocking, a batch's tile, a GEMV against a GEMM), each lie within
``gamma_n * sum |x_i y_i|`` of the exact value, ``gamma_n = n u / (1 - n u)``
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.5),
so they differ by at most ``2 gamma_n sum |x_i y_i|``. Every score in the
catalogue is 1-Lipschitz in the largest logit change (energy, MaxLogit,
log-probabilities) or a product of such a change and a factor the score's own
size bounds (ASH-S, SCALE rescale the logits), so the bound on a score is
``2 gamma_n`` times the larger of the largest ``sum_j |h_j w_jc|`` and the
score's own magnitude. docs/api.md ("Same row, same score") states it for users.
"""

from __future__ import annotations

import numpy as np


def reorder_bound(dtype, n_terms: int, magnitude: float) -> float:
    """Largest difference two summation orders of ``n_terms`` products of this size can make.

    Parameters
    ----------
    dtype : dtype
        The float type the products run in.
    n_terms : int
        Terms per dot product (the feature width).
    magnitude : float
        ``max sum |x_i y_i|`` over the dot products (or a larger score scale).
    """
    u = np.finfo(dtype).eps / 2
    nu = (n_terms + 2) * u  # two more roundings: the bias and the logsumexp
    return 2 * nu / (1 - nu) * float(magnitude)


def score_atol(dtype, H, W, scores=None) -> float:
    """:func:`reorder_bound` for scores of ``H`` through the head ``W`` computed in ``dtype``."""
    H = np.abs(np.asarray(H, dtype=np.float64))
    magnitude = float((H @ np.abs(np.asarray(W, dtype=np.float64))).max(initial=0.0))
    if scores is not None:
        magnitude = max(magnitude, float(np.abs(scores).max(initial=0.0)))
    return reorder_bound(dtype, H.shape[1], magnitude)
