"""KL matching: KL divergence to the class-mean softmax (Hendrycks et al., 2022)."""

from __future__ import annotations

import warnings

import numpy as np

from .._base import BaseDetector
from .._numeric import feature_blocks

__all__ = ["KLMatchingDetector"]


def _log_softmax(Z):
    """Row-wise log-softmax of ``Z`` in its own dtype, computed in place."""
    Z -= Z.max(axis=1, keepdims=True)
    Z -= np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return Z


class KLMatchingDetector(BaseDetector):
    """KL matching: minus the smallest KL divergence from the softmax to a class template.

    With ``p(x) = softmax(f(x))`` and one template ``d_c`` per class, the
    mean softmax of the fitting rows the head *predicts* as class ``c``,

        ``S(x) = -min_c KL(p(x) || d_c) = H(p(x)) + max_c sum_j p_j(x) log d_cj``,

    where ``H`` is the entropy. A class the head predicts for no fitting row
    gets the one-hot template ``e_c`` (as in OpenOOD), at infinite divergence
    from every softmax that is not exactly one-hot, i.e. left out in practice.

    Parameters
    ----------
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    templates_ : ndarray of shape (n_classes, n_classes), float64
        Row ``c`` is the template ``d_c``.
    class_counts_ : ndarray of shape (n_classes,), int64
        Fitting rows predicted as each class (0: a one-hot template).
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    OpenOOD's ``KLMatchingPostprocessor`` builds the templates from its ID
    ``val`` split and scores ``-pairwise_distances_argmin_min(softmax,
    templates, metric=scipy.stats.entropy)[1]``: the same score, same sign.
    skdice takes the templates from the rows ``fit`` is given; pass the ID
    validation features to match OpenOOD (Hendrycks et al. also use held-out
    data). The paper needs no labels: the templates follow the predictions.

    The divergences to all templates come from one product of the chunk's
    probabilities with ``log d`` (``n x C`` by ``C x C``) in the input's
    precision; entries ``d_cj = 0`` (one-hot templates, or underflow) are
    handled exactly (a support count for one-hot templates, a product with
    the zero pattern for others): the divergence is infinite where ``p_j > 0``, and
    ``0 log 0 = 0``. The templates are class means of the softmax, which a
    streaming fit could accumulate, but skdice's streaming fit streams a
    mean feature only; ``fit`` needs the rows.

    There is nothing to tune: the search grid is empty.

    References
    ----------
    D. Hendrycks, S. Basart, M. Mazeika, A. Zou, J. Kwon, M. Mostajabi,
    J. Steinhardt and D. Song. Scaling out-of-distribution detection for
    real-world settings. ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.klm import KLMatchingDetector
    >>> H = np.array([[4.0, 0.0], [0.0, 4.0], [3.0, 0.5], [0.5, 3.0]])
    >>> det = KLMatchingDetector().fit(H, np.eye(2), np.zeros(2))
    >>> det.templates_.shape
    (2, 2)
    >>> bool(det.score_samples([[3.5, 0.2]])[0] > det.score_samples([[1.0, 1.0]])[0])
    True
    """

    name = "klm"
    summary = "KL matching: minus the KL divergence to the nearest class-mean softmax (Hendrycks et al., 2022)"
    #: nothing to tune (skdice.tuning.default_grid): the method has no hyperparameter
    search_grid = {}

    _parameter_constraints: dict = {**BaseDetector._parameter_constraints}

    def __init__(self, *, tpr=0.95):
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.fits_from_blocks = True  # class sums of softmax rows, one pass
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        n_classes = self.weight_.shape[1]
        sums = np.zeros((n_classes, n_classes), dtype=np.float64)
        counts = np.zeros(n_classes, dtype=np.int64)
        # the templates are accumulations: float64 logits whatever the input
        weight, bias = self.weight_.astype(np.float64), self.bias_.astype(np.float64)
        for _, block in feature_blocks(X, 8 * (X.shape[1] + 2 * n_classes)):
            P = np.exp(_log_softmax(np.asarray(block, dtype=np.float64) @ weight + bias))
            pred = P.argmax(axis=1)
            np.add.at(sums, pred, P)
            counts += np.bincount(pred, minlength=n_classes)
        empty = counts == 0
        templates = sums / np.maximum(counts, 1)[:, None]
        templates[empty] = np.eye(n_classes)[empty]
        if empty.any():
            warnings.warn(
                f"{type(self).__name__}: the head predicts no fitting row as class(es) "
                f"{np.flatnonzero(empty)[:10].tolist()}: their templates are one-hot (as in OpenOOD).",
                UserWarning,
                stacklevel=3,
            )
        self.templates_ = templates
        self.class_counts_ = counts
        zero = templates <= 0
        with np.errstate(divide="ignore"):
            self._log_templates = np.ascontiguousarray(np.where(zero, 0.0, np.log(templates)).T)
        # templates with zero entries: the one-hot ones (a support count decides) and any
        # other (underflow; a product with their zero pattern decides)
        self._one_hot_classes = np.flatnonzero(empty)
        self._zero_classes = np.flatnonzero(zero.any(axis=1) & ~empty)
        self._zero_entries = np.ascontiguousarray(zero[self._zero_classes].T, dtype=np.float64)

    @property
    def block_width(self):
        return 4 * self.weight_.shape[1]

    def score_block(self, X):
        # one exponential: P = exp(L - max) / s and log P = L - max - log s
        L = self.classifier_block(X)
        L -= L.max(axis=1, keepdims=True)
        P = np.exp(L)
        total = P.sum(axis=1, keepdims=True)
        P /= total
        L -= np.log(total)
        entropy = -np.einsum("ij,ij->i", P, L).astype(np.float64)
        cross = P @ self._log_templates.astype(X.dtype, copy=False)
        # probability mass where a template is zero: an infinite divergence
        positive = P > 0
        if self._one_hot_classes.size:
            E = self._one_hot_classes
            elsewhere = positive.sum(axis=1)[:, None] - positive[:, E] > 0
            cross[:, E] = np.where(elsewhere, -np.inf, cross[:, E])
        if self._zero_classes.size:
            G = self._zero_classes
            blocked = positive @ self._zero_entries.astype(X.dtype, copy=False) > 0
            cross[:, G] = np.where(blocked, -np.inf, cross[:, G])
        return entropy + cross.max(axis=1).astype(np.float64)
