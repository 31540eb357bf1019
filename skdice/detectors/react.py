"""ReAct (rectified activations) and DICE + ReAct."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._array_api import device_of, namespace
from .._base import BaseDetector
from .._masked import MaskedHeadMixin
from .._numeric import column_mean, logsumexp_rows
from .._selection import entry_percentile
from ..sparsify import contribution_matrix, dice_mask
from ._common import _flag_non_finite_rows, _HeadDetector

__all__ = ["DICEReActDetector", "ReActDetector"]

_CLIP_CONSTRAINTS = {
    "percentile": [Interval(Real, 0, 100, closed="both")],
    "threshold": [Real, None],
}


def _clip(X, threshold):
    if isinstance(X, np.ndarray):
        return np.minimum(X, X.dtype.type(threshold))
    xp = namespace(X)
    return xp.minimum(X, xp.asarray(threshold, dtype=X.dtype, device=device_of(X)))


def _clip_threshold(detector, X):
    """The absolute ``threshold`` if given, else the percentile of all fitting activations."""
    if detector.threshold is not None:
        return float(detector.threshold)
    if X is None:
        raise ValueError(
            f"{type(detector).__name__} fitted from train_mean alone needs an absolute "
            "clip: pass threshold=... (the percentile needs the training features X)."
        )
    # over every activation of every fitting row (the flattened matrix), as the
    # ReAct authors' compute_threshold.py does on about 2,000 ID *validation*
    # images: to follow it, fit on an ID validation split or pass threshold=
    return float(entry_percentile(X, detector.percentile))


class ReActDetector(_HeadDetector):
    """ReAct: energy of the head after clipping the features from above.

    ``S(x) = logsumexp(W^T min(h(x), c) + b)``, where the clip ``c`` is the
    ``percentile``-th percentile of all activations of the fitting features
    (every entry of ``X``), or an absolute ``threshold``.

    Parameters
    ----------
    percentile : float, default=90
        Percentile (0–100) of the fitting activations used as the clip; the
        ReAct paper's default (OpenOOD sweeps 85, 90, 95, 99).
    threshold : float or None, default=None
        Absolute clip, overriding ``percentile`` (e.g. 1.0 for the BiT-S /
        ResNet-50 ImageNet models of the ReAct and DICE papers).
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    threshold_ : float
        The clip ``c`` in use.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    **Which data the clip comes from.** The ReAct authors'
    ``compute_threshold.py`` takes the 90th percentile of the flattened
    penultimate activations of about 2,000 shuffled images of the ID
    *validation* split (the ImageNet validation set; the CIFAR test set), and
    OpenOOD's ``ReactPostprocessor`` takes it on its ID ``val`` split. This
    detector takes it on the features it is fitted on. To follow the official
    recipe, fit it on an ID validation split (``skdice fit --train VALSPLIT``,
    or ``fit(H_val, W, b)``), or compute the clip there and pass it as
    ``threshold=``; fitted on training features it is the same rule on other
    rows (the ViM and GEN authors' ``benchmark.py`` do that, at the 99th
    percentile). The percentile is taken over a copy of all ``n * m`` fitting
    activations (``numpy.percentile``); for a very large set fit on a
    subsample or pass ``threshold``. OpenOOD computes the same score;
    pytorch-ood's ``ReAct`` returns the negative energy, the opposite sign.

    References
    ----------
    Y. Sun, C. Guo and Y. Li. ReAct: Out-of-distribution detection with
    rectified activations. NeurIPS 2021.
    """

    name = "react"
    summary = "ReAct: energy after clipping features at a training percentile (Sun et al., 2021)"
    #: the search grid (skdice.tuning.default_grid): clip percentiles around the
    #: ReAct paper's 90 (OpenOOD's sweep 85, 90, 95, 99, plus 80 from the paper's
    #: rectification-threshold ablation)
    search_grid = {"percentile": (80, 85, 90, 95, 99)}

    _parameter_constraints: dict = {**_HeadDetector._parameter_constraints, **_CLIP_CONSTRAINTS}

    def __init__(self, percentile=90, *, threshold=None, tpr=0.95):
        self.percentile = percentile
        self.threshold = threshold
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # the percentile clip is learnt from the training activations
        tags.detector_tags.uses_features = self.threshold is None
        tags.detector_tags.fits_from_blocks = True  # an exact percentile over passes
        tags.detector_tags.changes_classifier = True  # the head reads clipped features
        tags.array_api_support = True  # the percentile is taken on the host (docs/api.md)
        return tags

    def classifier_block(self, X):
        """The logits the score reads: the head on the clipped features ``min(X, threshold_)``."""
        return self._logits(_clip(X, self.threshold_))

    def fit_statistics(self, X, y, head, train_mean):
        self.threshold_ = _clip_threshold(self, X)

    def score_block(self, X):
        scores = logsumexp_rows(self._logits(_clip(X, self.threshold_)))
        return _flag_non_finite_rows(X, scores)


class DICEReActDetector(MaskedHeadMixin, BaseDetector):
    """DICE + ReAct: clip the features, then score with DICE's masked head.

    ``S(x) = logsumexp((M ⊙ W)^T min(h(x), c) + b)``. The DICE mask ``M`` is
    built from the **unclipped** training mean, ``V = E[h] ⊙ W`` (as in the
    DICE authors' code, whose cached mean comes from the plain features); the
    clip ``c`` is ReAct's.

    Parameters
    ----------
    p : float, default=0.15
        DICE sparsity in [0, 1). The DICE authors' ImageNet (ResNet-50)
        setting for DICE + ReAct is p = 0.1 or 0.15 with a clip of 1.0 or 1.5.
    percentile : float, default=90
        Percentile (0–100) of the fitting activations used as the clip (see
        :class:`ReActDetector` for the official recipe: ID validation data).
    threshold : float or None, default=None
        Absolute clip, overriding ``percentile`` (the official setting above).
        Needed when fitting from ``train_mean`` alone.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    threshold_ : float
        The clip ``c`` in use.
    mean_feature_ : ndarray of shape (n_features,), float64
        Unclipped mean training feature (or ``train_mean``).
    contribution_ : ndarray of shape (n_features, n_classes), float64
    mask_ : ndarray of shape (n_features, n_classes), bool
    weight_ : ndarray of shape (n_features, n_classes), float32
    masked_weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_samples_seen_ : int
        Rows summed so far by :meth:`partial_fit`; only after ``partial_fit`` (which needs ``threshold``).
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores (NaN when
        fitted from ``train_mean`` only).

    Notes
    -----
    OpenOOD and pytorch-ood have no DICE + ReAct combination.

    References
    ----------
    Y. Sun and Y. Li. DICE: Leveraging sparsification for out-of-distribution
    detection. ECCV 2022 (official code, ``--p 15 --clip_threshold 1.5``).
    Y. Sun, C. Guo and Y. Li. ReAct. NeurIPS 2021.
    """

    name = "dice-react"
    summary = "DICE + ReAct: clipped features through DICE's masked head (Sun & Li, 2022)"
    #: the search grid (skdice.tuning.default_grid), 2-D: DICE's p sweep with the
    #: authors' DICE+ReAct p = 0.15 added (0.99 left out), by ReAct's clip percentiles
    search_grid = {"p": (0.1, 0.15, 0.3, 0.5, 0.7, 0.9), "percentile": (85, 90, 95, 99)}
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.accepts_train_mean = True
        # with an absolute clip threshold the mean fixes everything; a percentile
        # clip needs the training features themselves
        tags.detector_tags.fits_from_mean = self.threshold is not None
        tags.detector_tags.fits_from_blocks = True  # the percentile and the mean over passes
        # the score is the energy of the masked head on the clipped features
        tags.detector_tags.masked_head = True
        tags.detector_tags.changes_classifier = True  # the masked head on clipped features
        tags.array_api_support = True
        return tags

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "p": [Interval(Real, 0, 1, closed="left")],
        **_CLIP_CONSTRAINTS,
    }

    def __init__(self, p=0.15, *, percentile=90, threshold=None, tpr=0.95):
        self.p = p
        self.percentile = percentile
        self.threshold = threshold
        self.tpr = tpr

    def fit_statistics(self, X, y, head, train_mean):
        self.threshold_ = _clip_threshold(self, X)
        self.mean_feature_ = train_mean if train_mean is not None else column_mean(X)
        self.contribution_ = contribution_matrix(self.mean_feature_, head.weight)
        mask, threshold = dice_mask(self.contribution_, self.p)
        self._fit_mask(
            mask, head, mean=self.mean_feature_, contribution=self.contribution_,
            threshold=threshold,
        )

    def masked_head_transform(self, X):
        """ReAct's clip, ``min(X, threshold_)``: the features the masked head reads.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), float32 or float64

        Returns
        -------
        ndarray of shape (n_rows, n_features)
        """
        return _clip(X, self.threshold_)
