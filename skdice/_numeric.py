"""Small numerical kernels shared by the detectors."""

from __future__ import annotations

import weakref

import numpy as np
from sklearn import get_config

# Cap on the scratch memory one scoring chunk may use. Smaller chunks keep the
# logits of a chunk in cache for the logsumexp passes that follow the GEMM.
_MAX_CHUNK_MIB = 32


def chunk_rows(n_rows: int, row_bytes: int) -> int:
    """Rows per chunk so that one chunk's scratch stays within the memory budget.

    The budget is the smaller of scikit-learn's ``working_memory`` setting
    (``sklearn.config_context(working_memory=...)``, in MiB) and 32 MiB.

    Parameters
    ----------
    n_rows : int
        Total number of rows to process.
    row_bytes : int
        Scratch bytes needed per row.

    Returns
    -------
    int
        Chunk size in rows, at least 1 and at most ``max(n_rows, 1)``.
    """
    budget = min(float(get_config()["working_memory"]), _MAX_CHUNK_MIB) * 2**20
    rows = int(budget // max(row_bytes, 1))
    return max(1, min(rows, max(n_rows, 1)))


def logsumexp_rows(Z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``T * log(sum(exp(Z / T)))``, computed in place.

    Subtracts the row maximum, exponentiates in place and sums, so no
    temporary of the size of ``Z`` is allocated. ``Z`` is overwritten.

    Parameters
    ----------
    Z : ndarray of shape (n_rows, n_cols), float32 or float64
        Logits; destroyed on return.
    temperature : float, default=1.0
        Temperature T.

    Returns
    -------
    ndarray of shape (n_rows,), float64
    """
    if temperature != 1.0:
        Z /= temperature
    row_max = Z.max(axis=1, keepdims=True)
    Z -= row_max
    np.exp(Z, out=Z)
    total = Z.sum(axis=1, dtype=np.float64)
    return temperature * (np.log(total) + row_max[:, 0])


def softmax_rows(Z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``Z / T`` computed in place (``Z`` is overwritten).

    Parameters
    ----------
    Z : ndarray of shape (n_rows, n_cols)
    temperature : float, default=1.0

    Returns
    -------
    ndarray of shape (n_rows, n_cols)
        ``Z`` itself, now holding probabilities.
    """
    if temperature != 1.0:
        Z /= temperature
    Z -= Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


def column_mean(X: np.ndarray) -> np.ndarray:
    """Column means accumulated in float64, chunk by chunk.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_features,), float64
    """
    n, m = X.shape
    total = np.zeros(m, dtype=np.float64)
    step = chunk_rows(n, 8 * m)
    for start in range(0, n, step):
        total += X[start : start + step].sum(axis=0, dtype=np.float64)
    return total / n


# Scoring with a sparsified head. A unit (row of the weight) whose kept weights
# are all zero adds nothing to any logit, so it can leave the GEMM: the product
# then costs (active units / all units) of the dense one, plus one gather of the
# active columns. DICE at p = 0.9 typically zeroes whole rows for 20-45% of the
# units (those whose mean feature is small); see docs/performance.md.

#: Units are dropped from the GEMM only when at most this fraction of them is active:
#: above it the gather costs more than the rows it saves (benchmarks/bench_core.py).
DROP_UNITS_BELOW = 0.8

_PACKED: dict = {}

#: Rows per slice of the fused bias + logsumexp (about 0.5 MB of logits at C = 1000).
_LSE_ROWS = 128


def active_units(weight: np.ndarray, limit: float | None = None):
    """The rows of a (masked) weight worth keeping in the GEMM, and the packed weight.

    Parameters
    ----------
    weight : ndarray of shape (n_features, n_classes), float32
        A masked head weight; rows that are all zero contribute nothing.
    limit : float, default=None
        Drop rows only when the fraction of non-zero rows is at most this;
        :data:`DROP_UNITS_BELOW` by default. ``0`` never drops.

    Notes
    -----
    The result is cached for the lifetime of ``weight``: treat a fitted
    ``masked_weight_`` as read-only.

    Returns
    -------
    units : ndarray of shape (k,), int64, or None
        Indices of the kept rows; None when every row is kept.
    packed : ndarray of shape (k, n_classes), float32
        ``weight[units]`` (C-contiguous), or ``weight`` itself.
    """
    limit = DROP_UNITS_BELOW if limit is None else limit
    key = (id(weight), limit)
    hit = _PACKED.get(key)
    if hit is not None and hit[0]() is weight:
        return hit[1], weight if hit[1] is None else hit[2]
    keep = np.flatnonzero(weight.any(axis=1))
    units, packed = (None, weight) if keep.size > limit * weight.shape[0] else (
        keep, np.ascontiguousarray(weight[keep])
    )
    # Cached per weight array (not on the estimator, so fitted state stays the
    # documented attributes); the entry goes when the array does.
    ref = weakref.ref(weight, lambda _, key=key: _PACKED.pop(key, None))
    _PACKED[key] = (ref, units, None if units is None else packed)
    return units, packed


def masked_energy(X: np.ndarray, units, packed: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``logsumexp(X @ W + b)`` row by row, with only the active units of ``W`` in the GEMM.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features), float32
        One chunk of rows.
    units, packed
        From :func:`active_units`.
    bias : ndarray of shape (n_classes,), float32

    Returns
    -------
    ndarray of shape (n_rows,), float64
        NaN for a row holding NaN or infinity in a dropped unit, so that the
        caller's finiteness check reports it as it would for a kept unit.
    """
    if units is None:
        logits = X @ packed
    else:
        logits = np.take(X, units, axis=1) @ packed
    scores = np.empty(logits.shape[0], dtype=np.float64)
    # bias + logsumexp in slices that stay in L2 across their passes (measured:
    # 10.5% of the chunk's GEMM time instead of 12.3% for the whole chunk)
    for start in range(0, logits.shape[0], _LSE_ROWS):
        z = logits[start : start + _LSE_ROWS]
        z += bias
        scores[start : start + z.shape[0]] = logsumexp_rows(z)
    if units is not None:
        # NaN * 0 is NaN in the dense product; a dropped unit must not hide it
        check = X @ np.ones(X.shape[1], dtype=X.dtype)
        bad = ~np.isfinite(check)
        if bad.any():
            scores[bad] = np.nan
    return scores


def energy_scores(X, masked_weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``logsumexp(X @ masked_weight + bias)`` for every row, chunked, all-zero units dropped.

    The scoring loop of :class:`skdice.DICEDetector` as a function, for code
    that scores many masked heads without building a detector for each (the
    p search).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        float16, float32 or float64; products run in float32, chunk by chunk.
    masked_weight : ndarray of shape (n_features, n_classes), float32
    bias : ndarray of shape (n_classes,), float32

    Returns
    -------
    ndarray of shape (n_samples,), float64

    Raises
    ------
    ValueError
        When a row holds NaN or infinity, or its logits overflow float32.
    """
    from ._base import BaseDetector  # _base imports this module

    n, m = X.shape
    step = chunk_rows(n, 4 * (m + 2 * max(m, masked_weight.shape[1])))
    units, packed = active_units(masked_weight)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, step):
        with np.errstate(over="ignore", invalid="ignore"):
            block = np.asarray(X[start : start + step], dtype=np.float32)
            scores = masked_energy(block, units, packed, bias)
        if not np.isfinite(scores).all():
            BaseDetector._raise_non_finite(block, scores, start)
        out[start : start + step] = scores
    return out
