"""Relation: OOD scores from a neural relation graph (Kim et al., 2023)."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._numeric import compute_dtype, row_chunks

__all__ = ["RelationDetector"]

# the authors' normaliser: x / sqrt(||x||^2 + 1e-10)
_NORM_EPS = 1e-10


def _unit_rows(X) -> np.ndarray:
    return X / np.sqrt(np.einsum("ij,ij->i", X, X) + X.dtype.type(_NORM_EPS))[:, None]


def _softmax_rows(Z) -> np.ndarray:
    """Row-wise softmax of ``Z`` in its own dtype, computed in place."""
    Z -= Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


class RelationDetector(BaseDetector):
    """Relation: the summed strong edges from an input to the training features in a relation graph.

    With ``z = h / ||h||`` and ``p = softmax(f(h))``, the edge between an
    input and a training feature ``i`` is

        ``r_i(x) = max(z(x)^T z_i, 0) * p(x)^T p_i``

    (the authors' ``cos_p`` kernel), and

        ``S(x) = sum_{i : r_i(x) > t} r_i(x)^pow``,

    the total weight of the input's edges above the threshold ``t`` (Kim et
    al., 2023, Eq. 6 with the OOD score of Section 5). ID inputs are strongly
    related to many training features; OOD inputs to few.

    Parameters
    ----------
    pow : float, default=1
        The kernel's exponent (the paper's temperature). 1 is the authors'
        OOD setting (``detect_ood.py`` warns that other values are not optimal
        for OOD detection); OpenOOD sweeps 1, 2, 4, 6, 8.
    threshold : float, default=0.03
        Edges at or below ``t`` are cut; the authors' ``thres = 0.03``.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    bank_features_ : ndarray of shape (n_train, n_features), float32
        The L2-normalised fitting features.
    bank_probs_ : ndarray of shape (n_train, n_classes), float32
        Their softmax probabilities.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores, each fitting
        row scored without its edge to itself (leave-one-out).

    Notes
    -----
    The authors' ``get_relation`` (``snu-mllab/Neural-Relation-Graph``,
    ``relation.py``; OpenOOD's ``RelationPostprocessor`` borrows it) computes
    ``sum(sign(r) |r|^pow)`` over the edges with ``|r| > 0.03``; the edges are
    never negative, so it is the sum here. OpenOOD returns that sum as is
    (same sign as here); the authors' ``detect_ood.py`` scores
    ``1 / (sum + 1e-6)`` as an outlier score: the same ranks, opposite sign.

    Every score needs the edges to the whole bank: one ``n x n_train``
    product of the features and one of the probabilities per chunk, i.e.
    ``n_train (m + C) / (m C)`` times the head's product. The authors
    subsample ImageNet's training set (``--hop``); fit on a sample likewise.
    A bank of training features does not stream: ``fit`` needs the rows.

    References
    ----------
    J.-H. Kim, S. Yun and H. O. Song. Neural relation graph: a unified
    framework for identifying label noise and outlier data. NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.relation import RelationDetector
    >>> H = np.array([[3.0, 0.0], [2.5, 0.2], [0.0, 3.0]])
    >>> det = RelationDetector().fit(H, np.eye(2), np.zeros(2))
    >>> bool(det.score_samples([[3.0, 0.1]])[0] > det.score_samples([[1.0, 1.0]])[0])
    True
    """

    name = "relation"
    summary = "Relation: total strong relation-graph edges to the training features (Kim et al., 2023)"
    #: the search grid (skdice.tuning.default_grid): OpenOOD's sweep of pow (relation.yml)
    search_grid = {"pow": (1, 2, 4, 6, 8)}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "pow": [Interval(Real, 0, None, closed="neither")],
        "threshold": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, pow=1, *, threshold=0.03, tpr=0.95):
        self.pow = pow
        self.threshold = threshold
        self.tpr = tpr

    def fit_statistics(self, X, y, head, train_mean):
        n, m = X.shape
        C = self.weight_.shape[1]
        features = np.empty((n, m), dtype=np.float32)
        probs = np.empty((n, C), dtype=np.float32)
        for rows in row_chunks(n, 8 * (m + C)):
            block = np.asarray(X[rows], dtype=np.float64)
            features[rows] = _unit_rows(block)
            probs[rows] = _softmax_rows(self.classifier_block(block))
        self.bank_features_ = features
        self.bank_probs_ = probs

    @property
    def block_width(self):
        return 2 * self.bank_features_.shape[0] + self.weight_.shape[1] + self.n_features_in_

    def _edges_sum(self, X, leave_out=None):
        P = _softmax_rows(self.classifier_block(X))
        R = _unit_rows(X) @ self.bank_features_.T.astype(X.dtype, copy=False)
        np.maximum(R, 0, out=R)
        R *= P @ self.bank_probs_.T.astype(X.dtype, copy=False)
        if leave_out is not None:
            R[np.arange(R.shape[0]), leave_out] = 0
        R[~(R > self.threshold)] = 0
        if self.pow != 1:
            R **= R.dtype.type(self.pow)
        return R.sum(axis=1, dtype=np.float64)

    def score_block(self, X):
        scores = self._edges_sum(X)
        # the threshold would turn a non-finite row's edges into 0: NaN, reported by the caller
        scores[~np.isfinite(X).all(axis=1)] = np.nan
        return scores

    def calibration_scores(self, X):
        n = self.bank_features_.shape[0]
        if X.shape[0] != n:
            return self._score_all(X)
        scores = np.empty(n, dtype=np.float64)
        dtype = compute_dtype(X)
        for rows in row_chunks(n, dtype.itemsize * self.block_width):
            # each fitting row is in the bank: drop its edge to itself, like a new ID input
            scores[rows] = self._edges_sum(np.asarray(X[rows], dtype=dtype), np.arange(n)[rows])
        return scores
