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
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from .exceptions import DegenerateFitWarning

__all__ = ["MaskedHeadMixin", "degenerate_cause"]

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
    """

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
        if scores.size < 2 or scores.min() != scores.max() or not self.masked_weight_.any():
            return scores
        # only reached when every fitting row got one score (rare): O(n m) once
        spread = np.ptp(X, axis=0)
        if not spread.any():
            return scores  # identical rows: one score is no fault of the fit
        kept = self.masked_weight_.any(axis=1)
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
        return scores
