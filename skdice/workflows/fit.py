"""Fitting a detector from a feature store, the training split streamed block by block.

How ``offset_`` is calibrated by a streaming fit
------------------------------------------------
``offset_`` is the ``1 - tpr`` quantile of the fitting rows' scores under the
*final* mask, which depends on the mean of all rows; a single pass cannot
score rows it has already passed. :func:`fit_store` therefore draws a uniform
sample of ``calibration_rows`` rows (seeded, without replacement) while it
streams, and scores that sample once the mean is known
(``calibration="sample"``, one pass over the data); ``calibration="exact"``
makes a second pass and gives exactly the in-memory ``fit``'s ``offset_``.
When the split has no more rows than ``calibration_rows`` both are the same.
With the defaults (10,000 rows, ``tpr = 0.95``) the realised TPR of the
sampled offset has a standard error of about 0.2 percentage points.

How a workflow chooses to fit a detector
----------------------------------------
From the detector's declared :class:`~skdice.DetectorTags`, never by a trial
fit (:func:`fit_detector`): ``fits_from_mean`` detectors stream the training
split once for its mean, ``fits_from_blocks`` ones read it block by block in
the passes their statistics need (memory bounded whatever its size either
way); the others (KNN, NNGuide, Relation: banks of training rows) load it;
detectors with ``uses_features=False`` may be fitted on the ID split alone.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._base import BaseDetector, detector_tags
from .._head import Head
from .._numeric import RunningMean
from .._validation import FLOAT_DTYPES, check_head, check_sparsity, is_block_source, is_dask
from ..store import block_rows_for, iter_blocks
from .methods import MethodSpec, build_detector, parse_method
from .resolve import SplitFeatures, TrainingData, class_labels, explained_reads, open_feature_store

__all__ = ["calibrate_offset", "fit_detector", "fit_from_store", "fit_store"]


def _check_streamable(detector):
    if not isinstance(detector, BaseDetector):
        raise TypeError(f"expected a skdice detector, got {type(detector).__name__}.")
    tags = detector_tags(detector)
    if tags.fits_from_blocks and not tags.fits_from_mean:
        raise ValueError(
            f"{type(detector).__name__} is not fitted from a mean feature: fit it on the split "
            "read in passes, detector.fit(open_store(STORE).block_source(SPLIT), head=...), "
            "or with skdice.workflows.fit.fit_detector."
        )
    if not tags.fits_from_mean:
        raise ValueError(
            f"{type(detector).__name__} cannot be fitted out of core: its statistics are not "
            "a mean feature. Load the split into memory and call fit."
        )


def fit_store(
    detector,
    store,
    split: str,
    *,
    head=None,
    calibration: str = "sample",
    calibration_rows: int = 10_000,
    random_state=0,
    block_rows: int | None = None,
    progress=None,
):
    """Fit a detector from a feature-store split, reading it block by block.

    The mean feature is a running float64 sum over blocks of about 8 MiB,
    handed to :meth:`BaseDetector.fit_from_mean`, so memory does not grow
    with the number of rows; ``offset_`` is calibrated as the module
    docstring explains. The sample costs one scoring of ``calibration_rows``
    rows, whatever the split's size.

    Parameters
    ----------
    detector : BaseDetector
        A detector whose statistic is the mean feature (tag
        ``fits_from_mean``, such as :class:`skdice.DICEDetector`); refitted in place.
    store : str, path-like or FeatureStore
    split : str
        A complete split of in-distribution training features.
    head : Head, default=None
        The classifier head; the store's own head by default.
    calibration : {"sample", "exact", "none"}, default="sample"
        How ``offset_`` is calibrated: on a uniform sample of rows taken in the
        same pass, by a second pass over every row (equal to the in-memory
        ``fit``), or not at all (``offset_`` stays NaN).
    calibration_rows : int, default=10000
        Size of the sample for ``calibration="sample"``.
    random_state : int or None, default=0
        Seed of the sample.
    block_rows : int, default=None
        Rows per read block (a multiple of the store's row chunk by default).
    progress : callable, default=None
        Called as ``progress(rows_done, rows_total)`` after each block, where
        ``rows_total`` counts both passes with ``calibration="exact"``.

    Returns
    -------
    detector
        The fitted detector; ``n_samples_seen_`` is the split's row count.

    Examples
    --------
    >>> from skdice import DICEDetector
    >>> from skdice.streaming import fit_store
    >>> det = fit_store(DICEDetector(p=0.9), "features.zarr", "train")  # doctest: +SKIP
    """
    _check_streamable(detector)
    if calibration not in ("sample", "exact", "none"):
        raise ValueError(
            f"calibration must be 'sample', 'exact' or 'none', got {calibration!r}."
        )
    if int(calibration_rows) < 1:
        raise ValueError(f"calibration_rows must be >= 1, got {calibration_rows!r}.")
    fs = open_feature_store(store)
    array = fs.array(split, "features")
    n, m = array.shape
    if n == 0:
        raise ValueError(f"split {split!r} of {fs.path} has no rows to fit on.")
    head = fs.head if head is None else head
    if not isinstance(head, Head):
        raise TypeError(f"head must be a skdice.Head, got {type(head).__name__}.")
    detector._validate_params()
    head = check_head(head, m)  # a wrong head fails before the pass, not after it
    sample_idx = sample = None
    if calibration == "sample":
        if n > calibration_rows:
            rng = np.random.default_rng(random_state)
            sample_idx = np.sort(rng.choice(n, size=int(calibration_rows), replace=False))
        else:
            sample_idx = np.arange(n)
        dtype = array.dtype if array.dtype in FLOAT_DTYPES else np.dtype(np.float32)
        sample = np.empty((sample_idx.size, m), dtype=dtype)  # filled in place
    stream = RunningMean(m)
    rows_total = 2 * n if calibration == "exact" else n
    step = block_rows or block_rows_for(array)
    blocks = explained_reads(fs, split, iter_blocks(array, step))
    try:
        for start, block in blocks:
            if block.dtype not in FLOAT_DTYPES:
                block = block.astype(np.float32)
            stream.update(block)
            if not np.isfinite(stream.total).all():  # NaN and inf reach the sum
                _raise_non_finite_rows(block, start)
            if sample is not None:
                lo, hi = np.searchsorted(sample_idx, [start, start + block.shape[0]])
                if hi > lo:
                    np.take(block, sample_idx[lo:hi] - start, axis=0, out=sample[lo:hi])
            if progress is not None:
                progress(min(start + block.shape[0], n), rows_total)
    finally:
        blocks.close()  # a failed block cancels the reads not yet started
    detector.fit_from_mean(head, stream.mean, n_samples=n)
    if sample is not None:
        calibrate_offset(detector, sample)
    elif calibration == "exact":
        def second_pass():
            for start, block in explained_reads(fs, split, iter_blocks(array, step)):
                yield block
                if progress is not None:
                    progress(n + start + block.shape[0], rows_total)

        calibrate_offset(detector, second_pass())
    return detector


def _raise_non_finite_rows(block, start):
    rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
    if rows.size:
        raise ValueError(f"the features contain NaN or infinity (first at row {start + int(rows[0])}).")
    raise ValueError(
        f"the feature sum overflows float64 by row {start + block.shape[0]}: rescale the features."
    )


def calibrate_offset(detector, X) -> BaseDetector:
    """Set ``offset_`` from the scores of in-distribution rows, after a streaming fit.

    ``offset_`` becomes the ``1 - tpr`` quantile of the scores, exactly as
    :meth:`BaseDetector.fit` sets it on its fitting rows.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector (for example after :meth:`~BaseDetector.partial_fit`).
    X : array-like of shape (n_samples, n_features), dask array, or iterable of such blocks
        The fitting rows, or a sample of them. Only their scores (8 bytes a
        row) are kept.

    Returns
    -------
    detector
    """
    check_is_fitted(detector)
    if isinstance(X, np.ndarray) or is_dask(X) or hasattr(X, "__array__"):
        blocks = [X]
    else:
        blocks = X
    scores = []
    for block in blocks:
        s = detector.score_samples(block)
        scores.append(np.asarray(s.compute() if is_dask(s) else s, dtype=np.float64))
    scores = np.concatenate(scores) if scores else np.empty(0)
    if scores.size == 0:
        raise ValueError("calibrate_offset needs at least one in-distribution row.")
    detector.offset_ = float(np.quantile(scores, 1.0 - detector.tpr))
    return detector


def fit_detector(detector, train: TrainingData, *, id_X=None, calibrate=True, progress=None):
    """Fit one detector from whatever training information a run has, as its tags ask.

    - ``uses_features=False`` (scores from the head alone) and an ID split
      ``id_X`` given, with no training split or no ``offset_`` wanted: fitted
      on ``id_X`` (only ``offset_`` sees it).
    - ``fits_from_mean`` with a training split and no cached mean: the split
      is streamed (:func:`fit_store`; ``calibrate=False`` skips the second
      pass that calibrates ``offset_``). With a cached mean as well, the mean
      defines the statistics and the split, streamed, only calibrates
      ``offset_`` (not read at all when ``calibrate=False``): ``--train`` and
      ``--train-mean`` together give each method what it needs.
    - ``fits_from_blocks`` (moments, class sums, exact percentiles): the
      split is read block by block, in as many passes as the statistics
      need, never loaded (with class labels for ``requires_class_labels``).
    - Otherwise the split is loaded (with class labels for
      ``requires_class_labels``), the cached mean passed where accepted; or,
      with a mean only, :meth:`BaseDetector.fit` from ``train_mean``.

    Parameters
    ----------
    detector : BaseDetector
        Unfitted; fitted in place.
    train : TrainingData
        The run's training split and/or mean.
    id_X : array-like, dask array or block source, default=None
        The ID split, for detectors that learn nothing from features. With
        ``calibrate=False`` it is not read (the fit needs its width alone;
        ``offset_`` then means nothing: calibrate it from the split's scores);
        with ``calibrate=True`` it is read whole.
    calibrate : bool, default=True
        Whether ``offset_`` is wanted.
    progress : callable, default=None
        ``progress(rows_done, rows_total)`` while a split is streamed (for
        ``fits_from_blocks``, once per pass: each pass counts from 0 again).

    Returns
    -------
    detector

    Raises
    ------
    ValueError
        When the detector needs training features and none were given.
    """
    tags = detector_tags(detector)
    head = train.head
    if id_X is not None and not tags.uses_features and (train.split is None or not calibrate):
        return detector.fit(_first_rows(id_X) if not calibrate else _in_memory(id_X), head=head)
    if train.split is not None:
        if train.mean is None and tags.fits_from_mean:
            return fit_store(detector, train.fs, train.split, head=head,
                             calibration="exact" if calibrate else "none", progress=progress)
        if train.mean is not None and tags.fits_from_mean:
            # the given mean (the official one, say) defines the statistics; the split,
            # streamed, only calibrates offset_ when it is wanted
            detector.fit_from_mean(head, train.mean)
            if calibrate:
                blocks = SplitFeatures(train.fs, train.split).iter_blocks()
                calibrate_offset(detector, (block for _, block in blocks))
            return detector
        args = (class_labels(train.fs, train.split),) if tags.requires_class_labels else ()
        kwargs = {"train_mean": train.mean} if train.mean is not None and tags.accepts_train_mean else {}
        # statistics accumulated over passes read the split block by block; the rest load it
        if tags.fits_from_blocks:
            X = SplitFeatures(train.fs, train.split)
            X = X if progress is None else _ReportedPasses(X, progress)
        else:
            X = train.X
        return detector.fit(X, *args, head=head, **kwargs)
    if train.mean is not None and tags.accepts_train_mean:
        return detector.fit(head=head, train_mean=train.mean)
    need = "training features: pass train=SPLIT"
    if tags.accepts_train_mean:
        need += " or train_mean=PATH"
    raise ValueError(f"method {type(detector).name!r} is fitted on in-distribution {need}.")


class _ReportedPasses:
    """A block source that reports each block read: ``progress(rows_done, rows)``, pass after pass."""

    def __init__(self, source, progress):
        self.source, self.progress = source, progress
        self.shape, self.dtype, self.name = source.shape, source.dtype, source.name

    def iter_blocks(self):
        n = self.shape[0]
        for start, block in self.source.iter_blocks():
            yield start, block
            self.progress(start + block.shape[0], n)


def _first_rows(X):
    """Rows to fit a detector that learns nothing from features: it needs the width alone.

    A block source or dask array is not read (one row of zeros stands in);
    of an array, its first rows.
    """
    if is_block_source(X) or is_dask(X):
        return np.zeros((1, int(X.shape[1])), dtype=np.float32)
    return X[:1024]


def _in_memory(X):
    if is_block_source(X):
        return np.concatenate([block for _, block in X.iter_blocks()])
    return X.compute() if is_dask(X) else X


def fit_from_store(
    store,
    method: str | MethodSpec = "dice",
    *,
    train: str | None = None,
    p: float | None = None,
    train_mean=None,
    progress=None,
) -> BaseDetector:
    """Fit one detector on a store's training split (or a cached training mean).

    Parameters
    ----------
    store : str, path-like or FeatureStore
    method : str or MethodSpec, default="dice"
        Registry name, optionally with parameters (``"dice:p=0.7"``).
    train : str, default=None
        Split of in-distribution training features. Needed by every method
        except those that accept ``train_mean`` when it is given; without it
        ``offset_`` is not calibrated (``predict`` refuses to run).
    p : float, default=None
        Sparsity, for methods with a ``p`` parameter.
    train_mean : array-like, str or path-like, default=None
        Cached mean training feature (``.npy``), for methods that accept it.
    progress : callable, default=None
        ``progress(rows_done, rows_total)``, called after each block when the
        training split is streamed (:func:`fit_store`).

    Returns
    -------
    BaseDetector
        The fitted detector; save it with :func:`skdice.save_detector`.
    """
    spec = method if isinstance(method, MethodSpec) else parse_method(method)
    check_sparsity(p, allow_none=True)
    detector = build_detector(spec, p)
    accepts_mean = detector_tags(detector).accepts_train_mean
    if p is not None and "p" not in detector.get_params():
        raise ValueError(f"method {spec.name!r} has no sparsity parameter p; drop the p= argument.")
    if train is None and train_mean is None:
        raise ValueError(
            "give the training data to fit on: train=SPLIT"
            + (" or train_mean=PATH." if accepts_mean else ".")
        )
    if train_mean is not None and not accepts_mean:
        raise ValueError(
            f"method {spec.name!r} cannot be fitted from a training mean; use train=SPLIT."
        )
    fs = open_feature_store(store)
    return fit_detector(detector, TrainingData(fs, train, train_mean), progress=progress)
