"""Small numerical kernels shared by the detectors."""

from __future__ import annotations

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
