"""NCI: neural-collapse inspired OOD detection (Liu and Qin, 2025)."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._array_api import namespace
from .._base import BaseDetector
from .._numeric import column_mean

__all__ = ["NCIDetector"]


class NCIDetector(BaseDetector):
    """NCI: alignment of the centred feature with the predicted class's weight, plus an L1 norm.

    With ``mu`` the mean training feature, ``c(x) = argmax_c f_c(x)`` the
    predicted class and ``w_c`` its weight vector (column ``c`` of ``W``),

        ``S(x) = w_c(x)^T (h(x) - mu) / ||h(x) - mu||_2 + alpha ||h(x)||_1``.

    The first term is the neural-collapse alignment of the centred feature
    with its class's head weight (large for ID inputs); the second keeps
    OOD inputs near the origin from scoring high.

    Parameters
    ----------
    alpha : float, default=1e-4
        Weight of the L1 norm; the default of the authors' code (OpenOOD's
        ``nci.yml``: ``alpha = 0.0001``, swept over 1e-4 to 0.1).
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    mean_feature_ : ndarray of shape (n_features,), float64
        ``mu``, the mean training feature.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
        Number of features seen during fit.
    n_samples_seen_ : int
        Rows summed so far by :meth:`partial_fit`; only after ``partial_fit``.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    The authors' code is OpenOOD's ``NCIPostprocessor`` (their repository
    ``litianliu/NCI-OOD`` points there): ``sum(w[pred] * (h - mu)) /
    ||h - mu|| + alpha * ||h||_1`` with ``w`` the unnormalised ``fc.weight``,
    ``pred`` the argmax of the logits (bias included) and ``mu`` the mean of
    the training features: the same score, same sign (pytorch-ood's ``NCI``
    returns its negative). A row exactly at the mean, where the official
    code divides 0 by 0, gets an alignment of 0 here.

    The statistic is the mean training feature alone, so NCI fits from a mean
    (``fit(W=..., b=..., train_mean=mu)``, ``partial_fit``, a Dask array and
    a feature store's streamed mean all work). Scoring costs the logits'
    product and one gather of the predicted classes' weights.

    References
    ----------
    L. Liu and Y. Qin. Detecting out-of-distribution through the lens of
    neural collapse. CVPR 2025 (arXiv:2311.01479).

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.nci import NCIDetector
    >>> H = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> det = NCIDetector(alpha=0.0).fit(H, np.eye(2), np.zeros(2))
    >>> det.score_samples([[3.0, 1.0]]).round(4)  # (2, 0) . (1, 0) / ||(2, 0)||
    array([1.])
    """

    name = "nci"
    summary = "NCI: alignment of the centred feature with its class weight, plus an L1 norm (Liu & Qin, 2025)"
    #: the search grid (skdice.tuning.default_grid): the authors' sweep of alpha (OpenOOD's
    #: nci.yml alpha_list), with 0 (the alignment alone) added
    search_grid = {"alpha": (0.0, 1e-4, 1e-3, 1e-2, 1e-1)}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, alpha=1e-4, *, tpr=0.95):
        self.alpha = alpha
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.accepts_train_mean = True
        tags.detector_tags.fits_from_mean = True
        tags.array_api_support = True  # the mean on the device, the scores in X's namespace
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        self.mean_feature_ = train_mean if train_mean is not None else column_mean(X)
        # class weights as rows, C order: the gather of score_block reads whole rows
        self._class_weights = np.ascontiguousarray(self.weight_.T)

    @property
    def block_width(self):
        return self.weight_.shape[1] + 2 * self.n_features_in_

    def score_block(self, X):
        if not isinstance(X, np.ndarray):
            return self._score_in_namespace(X)
        pred = self.classifier_block(X).argmax(axis=1)
        Z = X - self.mean_feature_.astype(X.dtype)
        # the predicted class's weight row by row: a gather, not a second product
        aligned = np.einsum("ij,ij->i", self._class_weights[pred].astype(X.dtype, copy=False), Z).astype(np.float64)
        norm = np.sqrt(np.einsum("ij,ij->i", Z, Z).astype(np.float64))
        alignment = np.divide(aligned, norm, out=np.zeros_like(aligned), where=norm > 0)
        return alignment + self.alpha * np.abs(X).sum(axis=1).astype(np.float64)

    def _score_in_namespace(self, X):
        """:meth:`score_block` for an array of another namespace (a torch tensor, say)."""
        xp = namespace(X)
        pred = xp.argmax(self.classifier_block(X), axis=1)
        Z = X - xp.astype(self.mean_feature_, X.dtype)
        rows = xp.take(xp.astype(self._class_weights, X.dtype), pred, axis=0)
        aligned = xp.astype(xp.sum(rows * Z, axis=1), xp.float64)
        norm = xp.sqrt(xp.astype(xp.sum(Z * Z, axis=1), xp.float64))
        positive = norm > 0
        alignment = xp.where(positive, aligned / xp.where(positive, norm, 1.0), 0.0)
        return alignment + self.alpha * xp.astype(xp.sum(xp.abs(X), axis=1), xp.float64)
