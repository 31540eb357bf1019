"""``fit`` on a block source: a detector's statistics accumulated over passes of blocks.

A store's training split can be larger than memory (an ImageNet-1K one is
10.5 GB in float32). Detectors whose statistics are sums, moments, class
sums or exact percentiles of the fitting rows declare the tag
``fits_from_blocks``; their ``fit`` then accepts a block source (an object
with ``shape`` and ``iter_blocks()``, such as a store split's
:class:`~skdice.workflows.resolve.SplitFeatures`) and their
``fit_statistics`` reads it pass by pass through the helpers that accept
both an array and a block source (:func:`skdice._numeric.feature_blocks`,
``column_mean``, ``Moments.update``, ``predicted_classes``,
:func:`skdice._selection.entry_percentile`). Memory is then the blocks in
flight and the statistics, whatever the number of rows; the result equals
the in-memory fit on the same rows up to the float64 rounding of sums cut
at other row boundaries (percentiles are equal exactly).
"""

from __future__ import annotations

import numpy as np

from ._numeric import scores_by_block
from ._tags import detector_tags
from ._validation import FLOAT_DTYPES, check_head, check_train_mean, missing_head_error

__all__ = ["CheckedBlocks", "fit_block_source"]


class CheckedBlocks:
    """A block source whose blocks are checked as they are read: float, finite, of its width.

    Integer blocks are read as float32, as ``fit`` reads an integer array. A
    block with NaN or infinity fails with the row's number in the whole
    source, before any statistic sees it.

    Parameters
    ----------
    source : block source
        ``shape`` ``(n_rows, n_features)`` and ``iter_blocks()`` yielding
        ``(start, block)`` pairs in order.
    memo : bool, default=False
        Keep what the exact percentiles learn of the rows
        (``selection_memo``) for the next fit that reads them: a search
        fits every candidate on the same source, whose rows must not change
        meanwhile (a store split's never do).

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
        float32 or float64: the blocks' dtype as the statistics see it.
    name : str
        The source's ``name`` (a store split's ``"split 'NAME' of PATH"``), or ``"X"``.
    """

    def __init__(self, source, memo: bool = False):
        self.source = source
        self.selection_memo = {} if memo else None
        self.shape = tuple(int(v) for v in source.shape)
        dtype = np.dtype(getattr(source, "dtype", np.float32))
        self.dtype = dtype if dtype in FLOAT_DTYPES else np.dtype(np.float32)
        self.name = getattr(source, "name", "X")

    def iter_blocks(self):
        """Yield the source's ``(start, block)`` pairs, each block checked.

        Yields
        ------
        start : int
        block : ndarray of shape (rows, n_features), float32 or float64
        """
        for start, block in self.source.iter_blocks():
            block = np.asarray(block)
            if block.dtype != self.dtype:
                block = block.astype(self.dtype)
            if block.ndim != 2 or block.shape[1] != self.shape[1]:
                raise ValueError(
                    f"{self.name}: the block at row {start} has shape {block.shape}, not "
                    f"(rows, {self.shape[1]})."
                )
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                row = start + int(np.flatnonzero(~finite)[0])
                raise ValueError(f"{self.name} contains NaN or infinity (first at row {row}).")
            yield start, block

    def concatenate(self) -> np.ndarray:
        """Every row in memory, in order (for a detector that keeps its fitting rows).

        Returns
        -------
        ndarray of shape (n_rows, n_features)
        """
        out = np.empty(self.shape, dtype=self.dtype)
        for start, block in self.iter_blocks():
            out[start : start + block.shape[0]] = block
        return out


def fit_block_source(detector, X, y, head, train_mean, calibrate):
    """Fit ``detector`` on the rows of the block source ``X``, as ``fit`` does on an array.

    Parameters
    ----------
    detector : BaseDetector
        Parameters validated, its stream state reset.
    X : block source
    y : array-like of shape (n_samples,) or None
        Class labels, for detectors with ``requires_class_labels`` (held in
        memory: 8 bytes a row); an ID mask is refused.
    head : Head, tuple (W, b) or None
    train_mean : array-like of shape (n_features,) or None
    calibrate : bool
        Calibrate ``offset_`` on the rows' scores (one more pass).

    Returns
    -------
    detector
    """
    tags = detector_tags(detector)
    cls = type(detector).__name__
    if not tags.streamed_fit:
        raise ValueError(
            f"{cls} cannot be fitted block by block: its statistics hold the training rows "
            "themselves. Load the rows into memory and call fit with an array."
        )
    source = X if isinstance(X, CheckedBlocks) else CheckedBlocks(X)
    n, m = source.shape
    if n == 0:
        raise ValueError(f"{source.name} has no rows to fit on.")
    if tags.requires_class_labels:
        if y is None:
            raise ValueError(f"{cls}.fit needs class labels y.")
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"y must be 1-D with one entry per row of X ({n}), got shape {y.shape}.")
    elif y is not None:
        raise ValueError(
            f"{cls}.fit on a block source takes no ID mask y: every row is fitted on. "
            "Give a source of in-distribution rows only."
        )
    if train_mean is not None:
        if not tags.accepts_train_mean:
            raise ValueError(f"{cls} does not accept train_mean.")
        train_mean = check_train_mean(train_mean, m)
    if head is not None:
        head = check_head(head, m)
    elif tags.requires_head:
        raise missing_head_error(cls)
    detector.__dict__.pop("feature_names_in_", None)
    detector.n_features_in_ = m
    if head is not None:
        detector.weight_, detector.bias_ = head.weight, head.bias
    # a mean-based detector's column_mean reads the source as it reads an array
    detector.fit_statistics(source, y, head, train_mean)
    if calibrate:
        scores = scores_by_block(source, detector.calibration_scores)
        detector.offset_ = float(np.quantile(scores, 1.0 - detector.tpr))
    else:
        detector.offset_ = np.nan
    return detector
