"""The fit step shared by the detectors that score with a masked head.

DICE (and DICE+MSP), DICE+ReAct, DICE's unit-selection variants and the
sparsification ablations all end ``fit_statistics`` in
:meth:`MaskedHeadMixin._fit_mask`, which every way of fitting them reaches:
``fit(X, ...)``, ``fit(train_mean=...)`` and
:meth:`~skdice.BaseDetector.fit_from_mean` (so ``partial_fit``, the Dask fit
and the store workflows too). It sets ``mask_`` and ``masked_weight_`` and,
when the masked head keeps no non-zero weight, warns with a
:class:`~skdice.exceptions.DegenerateFitWarning` naming the cause: the
masked logits are then the bias for every input, and so is the score.

It is also the one scoring kernel of a masked head,
:func:`masked_head_scores`: the score of a row is a reduction (energy or
maximum softmax) of ``masked_head_transform(x) @ masked_weight_ + bias_``,
and the same logits give the masked head's class argmax, which the search's
accuracy guard reads. A detector declares that it scores this way with the
tag ``DetectorTags.masked_head``; ``score_block`` is the kernel on one chunk.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._array_api import active_units as active_units_any
from ._array_api import array_space, device_of, namespace, to_numpy, weight_as
from ._numeric import (
    DROP_UNITS_BELOW,
    active_units,
    located_errors,
    logsumexp_rows,
    max_softmax_rows,
    row_blocks,
    score_in_chunks,
)
from ._validation import FLOAT_DTYPES, validate_data
from .exceptions import DegenerateFitWarning

__all__ = ["MASKED_REDUCTIONS", "MaskedHeadMixin", "degenerate_cause", "masked_head_scores"]

#: How the masked logits become a score: ``(reduction of a logit block, whether
#: all-zero units leave the product)``. DICE+MSP's product runs over the whole
#: masked weight, as it always has, so its scores are unchanged bit for bit.
MASKED_REDUCTIONS = {
    "energy": (logsumexp_rows, True),
    "max-softmax": (max_softmax_rows, False),
}

# Rows of logits per slice of the fused bias + argmax + reduction (about 0.5 MB
# of float32 logits at C = 1000: the slice stays in L2 across its passes).
_SLICE_ROWS = 128

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

_SAME_SCORE = "the masked logits equal the bias for every input, so every input gets the same score"


def _warn(message: str) -> None:
    """Warn at the first frame outside skdice: the user's fit, whichever path led here."""
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DegenerateFitWarning, stacklevel=level)


def _fmt(value) -> str:
    return f"{float(value):.6g}"


def degenerate_cause(mask, weight, p, *, mean=None, contribution=None, threshold=None):
    """Why a masked head keeps no non-zero weight, with what to do about it.

    Called only once the masked weight is known to be all zero. The checks
    are O(n_features * n_classes), run once per fit.

    Parameters
    ----------
    mask : ndarray of shape (n_features, n_classes), bool
    weight : ndarray of shape (n_features, n_classes)
        The head's weight.
    p : float
        The detector's sparsity.
    mean : ndarray of shape (n_features,), default=None
        The mean training feature, when the mask ranks the contribution.
    contribution : ndarray of shape (n_features, n_classes), default=None
        ``V = mean[:, None] * weight``, when the mask ranks it.
    threshold : float, default=None
        DICE's threshold ``numpy.percentile(V, 100 p)`` (the mask is
        ``V > threshold``).

    Returns
    -------
    lead : str
        What was kept.
    cause : str
    advice : str
    """
    n_total, n_kept = mask.size, int(np.count_nonzero(mask))
    lead = (
        f"kept no weight of the head (p={float(p)!r})"
        if n_kept == 0
        else f"kept {n_kept} of the {n_total} weights of the head (p={float(p)!r}), "
        "none of them non-zero"
    )
    if not np.any(weight):
        return lead, (
            "the head's weight W is all zero, so even the dense head scores every input alike"
        ), "Check the head: an untrained or wrong final layer"
    if n_kept:
        cause = "the head's weight is zero wherever the mask keeps it"
        return lead, cause, "Check the head, or lower p"
    if n_total == 1:
        return lead, (
            "the head has a single weight (one feature, one class), and the mask dropped it"
        ), "Check the widths of the features and the head"
    if contribution is not None:
        if mean is not None and not np.any(mean):
            return lead, (
                "the training mean feature is all zero, so every contribution V = mean * W "
                "ties at 0 and no weight ranks above the threshold"
            ), (
                "Check the training features: all-zero rows come from a dead or wrong "
                "layer, or from an ID mask y that left out the wrong rows"
            )
        low, high = float(np.min(contribution)), float(np.max(contribution))
        if low == high:
            tie = (
                "is 0 (the mean feature is zero on every unit whose weights are not)"
                if high == 0
                else f"equals {_fmt(high)}"
            )
            return lead, (
                f"every contribution V = mean * W {tie}, so all of them tie at the threshold "
                "and none ranks above it"
            ), "Check the training features and the head"
        if threshold is not None:
            n_top = int(np.count_nonzero(contribution == high))
            return lead, (
                f"the threshold numpy.percentile(V, {100 * float(p):g}) = {_fmt(threshold)} "
                f"reaches the largest contribution, which {n_top} of the {n_total} weights "
                "share, so no weight ranks strictly above it"
            ), "Lower p"
    return lead, (
        f"the mask rule keeps none of the {n_total} weights at this p (weights tied at its "
        "cut are dropped together, and a random mask can drop every weight of a small head)"
    ), "Lower p"


class MaskedHeadMixin:
    """The masked head of a detector: ``mask_``, ``masked_weight_`` and the degenerate-fit warnings.

    ``fit_statistics`` builds the mask (and the statistics it ranks) and ends
    in :meth:`_fit_mask`. ``calibration_scores`` also warns when the fitting
    rows differ but all get one score, naming which of two causes holds: the
    kept weights read only units constant over the rows, or the scores
    saturate in floating point. Mix it in to the left of the base class; the
    detector has a sparsity ``p``.

    It scores through the masked head (:func:`masked_head_scores`); a
    detector customises the features the head reads
    (:meth:`masked_head_transform`) and the reduction of the logits
    (``masked_head_reduction``, a key of :data:`MASKED_REDUCTIONS`), not
    ``score_block``, and declares the tag ``masked_head`` in its
    ``__sklearn_tags__``.
    """

    #: how the masked logits become the score: "energy" or "max-softmax"
    masked_head_reduction = "energy"

    def masked_head_transform(self, X):
        """The features the masked head reads: ``X`` itself (DICE+ReAct clips them).

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), float32 or float64

        Returns
        -------
        ndarray of shape (n_rows, n_features)
            ``X`` itself, or a new array of its dtype.
        """
        return X

    def score_block(self, X):
        return _block_scores(self, X)

    def predict_class(self, X):
        """The masked head's class of each row: the argmax of the very logits the score reduces.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        if array_space(X, self) is not None:  # scored in X's namespace
            return super().predict_class(X)
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=FLOAT_DTYPES, ensure_all_finite=False)
        return masked_head_scores(self, X, classes=True)[1]

    def classifier_block(self, X):
        """``masked_head_transform(X) @ masked_weight_ + bias_``: the masked head's logits.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), float32 or float64

        Returns
        -------
        ndarray of shape (n_rows, n_classes)
        """
        weight = self.masked_weight_
        if not isinstance(X, np.ndarray):
            weight = weight_as(weight, X.dtype)
        Z = self.masked_head_transform(X) @ weight
        Z += self.bias_
        return Z

    @property
    def block_width(self):
        return self.masked_weight_.shape[1]

    def _fit_mask(self, mask, head, *, mean=None, contribution=None, threshold=None):
        """Set ``mask_`` and the read-only ``masked_weight_``; warn if no non-zero weight is kept.

        Parameters
        ----------
        mask : array-like of shape (n_features, n_classes), bool
            True for the kept weights.
        head : Head
        mean, contribution, threshold
            What the mask ranks, for the warning's cause (see
            :func:`degenerate_cause`); None for masks that do not rank the
            contribution.
        """
        self.mask_ = np.asarray(mask, dtype=bool)
        self.masked_weight_ = np.where(self.mask_, head.weight, np.float32(0))
        # (moved to the input's namespace afterwards by a fit on another namespace's array)
        # read-only: scoring caches the active rows of this very array
        self.masked_weight_.setflags(write=False)
        if not self.masked_weight_.any():
            lead, cause, advice = degenerate_cause(
                self.mask_, head.weight, self.p,
                mean=mean, contribution=contribution, threshold=threshold,
            )
            _warn(f"{type(self).__name__} {lead}: {cause}; {_SAME_SCORE}. {advice}.")

    def calibration_scores(self, X):
        """The fitting rows' scores; warns when they are all equal though the rows differ.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        scores = super().calibration_scores(X)
        # a head with no non-zero weight left was reported by _fit_mask already
        if scores.shape[0] < 2 or bool(scores.min() != scores.max()) or not bool(self.masked_weight_.any()):
            return scores
        out, scores, X = scores, to_numpy(scores), to_numpy(X)  # rare: read on the host
        # only reached when every fitting row got one score (rare): O(n m) once
        spread = np.ptp(X, axis=0)
        if not spread.any():
            return scores  # identical rows: one score is no fault of the fit
        kept = to_numpy(self.masked_weight_).any(axis=1)
        if not spread[kept].any():
            cause = (
                f"the {int(kept.sum())} units its non-zero weights read are constant over "
                "these rows (zero in every row, say: dead units), so the rows differ only "
                "where the mask dropped the weights"
            )
            advice = "Check the training features (dead or constant units), or lower p"
        else:
            cause = (
                "the units its kept weights read do vary, so the scores saturate in "
                "floating point (logits tens apart, where the largest alone sets the "
                "score) or the features are clipped to one value"
            )
            advice = "Check the scale of the features and of the head, or lower p"
        _warn(
            f"{type(self).__name__} gives all {scores.size} fitting rows the same score "
            f"({_fmt(scores[0])}, p={float(self.p)!r}) although the rows differ: {cause}; "
            f"its scores cannot rank inputs like them and offset_ separates nothing. {advice}."
        )
        return out


def _block_scores(det, X, classes=None):
    """The kernel on one chunk ``X`` (in the products' dtype): scores, and classes into ``classes``."""
    if not isinstance(X, np.ndarray):
        return _block_scores_any(det, X)
    reduce, drop_units = MASKED_REDUCTIONS[det.masked_head_reduction]
    source = det.masked_head_transform(X)
    weight = det.masked_weight_
    units, packed = active_units(weight, dtype=X.dtype) if drop_units else (None, weight)
    logits = (source if units is None else np.take(source, units, axis=1)) @ packed
    scores = np.empty(logits.shape[0], dtype=np.float64)
    for start in range(0, logits.shape[0], _SLICE_ROWS):
        z = logits[start : start + _SLICE_ROWS]
        z += det.bias_
        if classes is not None:
            classes[start : start + z.shape[0]] = z.argmax(axis=1)
        scores[start : start + z.shape[0]] = reduce(z)
    # a NaN or infinity must not hide: a transform (a clip maps +inf to the clip)
    # is checked row by row, a unit dropped from the product by a product with ones
    if source is not X:
        scores[~np.isfinite(X).all(axis=1)] = np.nan
    elif units is not None:
        scores[~np.isfinite(X @ np.ones(X.shape[1], dtype=X.dtype))] = np.nan
    return scores


def _block_scores_any(det, X):
    """:func:`_block_scores` for a chunk of another namespace: one logits block, reduced in slices."""
    xp = namespace(X)
    reduce, drop_units = MASKED_REDUCTIONS[det.masked_head_reduction]
    source = det.masked_head_transform(X)
    weight = det.masked_weight_
    if drop_units:
        units, packed = active_units_any(weight, DROP_UNITS_BELOW, X.dtype)
    else:
        units, packed = None, weight_as(weight, X.dtype)
    logits = (source if units is None else xp.take(source, units, axis=1)) @ packed
    logits += det.bias_
    scores = reduce(logits)
    # as in _block_scores: a NaN or infinity hidden by a transform or a dropped unit shows
    if source is not X:
        scores[~xp.all(xp.isfinite(X), axis=1)] = xp.nan
    elif units is not None:
        ones = xp.ones(X.shape[1], dtype=X.dtype, device=device_of(X))
        scores[~xp.isfinite(X @ ones)] = xp.nan
    return scores


def masked_head_scores(det, X, *, classes=False):
    """Scores of a masked-head detector, and its masked head's class argmax, from the same logits.

    The one kernel of the detectors with the tag ``masked_head``: their
    ``score_samples`` runs it chunk by chunk, and the search's accuracy guard
    takes the classes from the very logits of the scores (one pass, no
    second product).

    Parameters
    ----------
    det : BaseDetector
        A fitted detector whose ``detector_tags(det).masked_head`` is True.
    X : array-like of shape (n_samples, n_features) or block source
        Validated rows (a block source is read once, block by block); the
        products run in :func:`skdice._numeric.compute_dtype` of ``X``.
    classes : bool, default=False
        Also return the argmax of the masked logits.

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64
        Equal to ``det.score_samples(X)``.
    predicted : ndarray of shape (n_samples,), int64
        Only with ``classes=True``.

    Raises
    ------
    ValueError
        When a row holds NaN or infinity, or its logits overflow.
    """
    n = int(X.shape[0])
    scores = np.empty(n, dtype=np.float64)
    predicted = np.empty(n, dtype=np.int64) if classes else None
    width = det.masked_weight_.shape[1]
    for start, block in row_blocks(X):
        stop = start + block.shape[0]
        out = None if predicted is None else predicted[start:stop]
        done = 0

        def score(chunk):
            # score_in_chunks hands the chunks over in order: ``done`` is the chunk's first row
            nonlocal done
            part = None if out is None else out[done : done + chunk.shape[0]]
            done += chunk.shape[0]
            return _block_scores(det, chunk, part)

        with located_errors(X, start, block):
            scores[start:stop] = score_in_chunks(block, score, width)
    return (scores, predicted) if classes else scores
