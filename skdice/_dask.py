"""Detectors on Dask arrays: ``fit`` reduces the mean with Dask, ``score_samples`` is lazy.

Core, not a workflow: arrays in, arrays out. dask is imported inside the
functions (the ``dask`` extra); ``BaseDetector`` calls these when it is given a
dask array, through the detector's public protocol only
(:meth:`~skdice.BaseDetector.fit_from_mean`, ``score_samples``).
"""

from __future__ import annotations

import uuid

import numpy as np

from ._numeric import RunningMean
from ._validation import check_head, check_id_mask, check_train_mean, missing_head_error
from .exceptions import require

__all__ = ["fit_dask", "score_dask"]


def _score_chunk(chunk, detector):
    return np.asarray(detector.score_samples(np.asarray(chunk)), dtype=np.float64)


def score_dask(detector, X):
    """Lazy scores of a dask array: one task per row chunk, the detector shipped once.

    The array is rechunked to a single chunk across the features (a score
    needs whole rows); each row chunk is scored by the detector's own chunked
    NumPy path, so every task's memory is bounded by its chunk.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.
    X : dask.array.Array of shape (n_samples, n_features)

    Returns
    -------
    dask.array.Array of shape (n_samples,), float64
        Chunked like ``X``'s rows.
    """
    dask = require("dask", "dask")
    da = require("dask.array", "dask")
    if X.ndim != 2 or X.shape[1] != detector.n_features_in_:
        raise ValueError(
            f"X has shape {X.shape}, but {type(detector).__name__} is expecting "
            f"{detector.n_features_in_} features as input."
        )
    if X.dtype.kind not in "fiu":
        raise ValueError(f"X must be numeric, got dtype {X.dtype}.")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    # one graph key holds the detector: distributed sends it to each worker once,
    # not inside every task
    shipped = dask.delayed(detector, name=f"skdice-detector-{uuid.uuid4().hex}")
    return da.map_blocks(
        _score_chunk, X, shipped, drop_axis=1, dtype=np.float64, meta=np.empty(0, np.float64)
    )


def fit_dask(detector, X, y, head, train_mean):
    """``fit`` on a dask array: the mean is reduced by Dask, then ``offset_`` from lazy scores.

    Parameters
    ----------
    detector : BaseDetector
        A detector with the ``fits_from_mean`` tag; refitted in place.
    X : dask.array.Array of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or None
        ID mask (rows with ``y == 0`` are left out), checked as in ``fit``.
    head : Head or tuple (W, b)
    train_mean : array-like of shape (n_features,) or None
        Used instead of the mean of ``X`` when given (``X`` then only calibrates).

    Returns
    -------
    detector
    """
    require("dask.array", "dask")
    import dask

    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array, got a dask array of shape {X.shape}.")
    if X.dtype.kind not in "fiu":
        raise ValueError(f"X must be numeric, got dtype {X.dtype}.")
    n, m = X.shape
    if n == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape=(0, {m})) while a minimum of 1 is required."
        )
    if head is None:
        raise missing_head_error(type(detector).__name__)
    head = check_head(head, m)
    if y is not None:
        # the same checks as the NumPy path: strings and NaN are refused, not read as ID
        X = X[check_id_mask(y, n, type(detector).__name__)]
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    if train_mean is None:
        import dask.array as da

        total, finite = dask.compute(X.sum(axis=0, dtype=np.float64), da.isfinite(X).all())
        if not finite:
            raise ValueError("Input X contains NaN or infinity.")
        stream = RunningMean(m)
        stream.add_sum(np.asarray(total, dtype=np.float64), X.shape[0])
        mean = stream.mean
    else:
        mean = check_train_mean(train_mean, m)
    detector.fit_from_mean(head, mean, n_samples=int(X.shape[0]))
    scores = np.asarray(score_dask(detector, X).compute(), dtype=np.float64)
    detector.offset_ = float(np.quantile(scores, 1.0 - detector.tpr))
    return detector
