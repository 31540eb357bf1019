"""SHE: simplified Hopfield energy with stored class patterns (Zhang et al., 2023)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.utils._param_validation import StrOptions

from .._array_api import namespace
from .._base import BaseDetector
from .._numeric import feature_blocks, predicted_classes

__all__ = ["SHEDetector"]

# torch.cosine_similarity's floor on each norm
_COSINE_EPS = 1e-8


def _integer_labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind == "O":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if y.dtype.kind in "iub":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.isfinite(y).all() and np.array_equal(y, np.round(y)):
        return y.astype(np.int64)
    raise ValueError(
        "Unknown label type: SHEDetector needs class labels y that index the head's columns "
        f"(integers 0 to n_classes - 1); got {y.dtype} labels such as {y.ravel()[:3].tolist()}."
    )


def _class_sums(X, pred, keep, n_classes):
    """float64 sums and counts of the rows of ``X`` where ``keep`` holds, by their class in ``pred``.

    ``X`` is an array or a block source (one pass over its blocks).
    """
    sums = np.zeros((n_classes, X.shape[1]), dtype=np.float64)
    for rows, block in feature_blocks(X, 8 * X.shape[1]):
        picked = np.flatnonzero(keep[rows])
        if picked.size:
            # a sparse one-hot product (np.add.at is far slower)
            onehot = csr_matrix(
                (np.ones(picked.size), (pred[rows][picked], np.arange(picked.size))),
                shape=(n_classes, picked.size),
            )
            sums += onehot @ np.asarray(block[picked], dtype=np.float64)
    return sums, np.bincount(pred[keep], minlength=n_classes).astype(np.int64)


class SHEDetector(BaseDetector):
    """SHE: similarity of the feature with the stored pattern of its predicted class.

    The stored pattern of class ``c`` is the mean feature of the training rows
    labelled ``c`` that the head also classifies as ``c``; with ``c(x)`` the
    predicted class,

        ``S(x) = h(x)^T p_c(x)``       (``metric="inner_product"``),

    the simplified Hopfield energy of the paper (Zhang et al., 2023, Eq. 8)
    with one stored pattern per class, negated so that higher is more ID.
    ``"euclidean"`` scores ``-||h - p_c||_2`` and ``"cosine"`` the cosine of
    the two, the paper's ablation of the metric.

    Parameters
    ----------
    metric : {"inner_product", "euclidean", "cosine"}, default="inner_product"
        The similarity; the paper's choice and the default of the authors'
        code and of OpenOOD's ``she.yml`` is the inner product.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    patterns_ : ndarray of shape (n_classes, n_features), float64
        The stored patterns. A class without a correctly classified fitting
        row gets the mean of the fitting rows predicted as it (zero if none).
    class_counts_ : ndarray of shape (n_classes,), int64
        Correctly classified fitting rows of each class.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    The authors' code (``zjs975584714/SHE_ood_detection``:
    ``generate_stored_pattern.py`` and ``simple_compute_score_HE``) and
    OpenOOD's ``SHEPostprocessor`` store the mean penultimate feature of the
    correctly classified training images of each class and score
    ``sum(h * pattern[pred])``; the authors return its negative and negate
    again before their metrics: the same score, same sign as here. Labels are
    the head's class indices (``y`` here, the dataset's targets there). A
    class without a correctly classified fitting row has no pattern there
    (OpenOOD's mean over no rows is NaN, the authors' code fails); here its
    pattern is the mean of the fitting rows the head assigns to it, whatever
    their label (zero if there are none), with a warning. The cosine floors each norm at ``1e-8`` as
    ``torch.cosine_similarity`` does.

    The patterns are class means, which could be accumulated in one pass,
    but skdice's streaming fit streams a mean feature only; ``fit`` needs
    the rows. Scoring costs the logits' product and a gather of the
    predicted classes' patterns.

    References
    ----------
    J. Zhang, Q. Fu, X. Chen, L. Du, Z. Li, G. Wang, X. Liu, S. Han and
    D. Zhang. Out-of-distribution detection based on in-distribution data
    patterns memorization with modern Hopfield energy. ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.she import SHEDetector
    >>> H = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    >>> det = SHEDetector().fit(H, [0, 0, 1], W=np.eye(2))
    >>> det.patterns_
    array([[3., 0.],
           [0., 3.]])
    >>> det.score_samples([[1.0, 0.5]])
    array([3.])
    """

    name = "she"
    summary = "SHE: inner product with the stored pattern of the predicted class (Zhang et al., 2023)"
    #: the search grid (skdice.tuning.default_grid): the paper's ablation of the metric
    search_grid = {"metric": ("inner_product", "euclidean", "cosine")}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "metric": [StrOptions({"inner_product", "euclidean", "cosine"})],
    }

    def __init__(self, metric="inner_product", *, tpr=0.95):
        self.metric = metric
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.detector_tags.requires_class_labels = True
        tags.detector_tags.fits_from_blocks = True  # predictions, then class sums: two passes
        tags.array_api_support = True  # the patterns on the host, the scores in X's namespace
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        labels = _integer_labels(y)
        n_classes = self.weight_.shape[1]
        pred = predicted_classes(X, self.weight_, self.bias_)
        sums, counts = _class_sums(X, pred, labels == pred, n_classes)
        missing = counts == 0
        if missing.any():
            # no correctly classified row: the rows the head assigns to the class instead
            fallback, assigned = _class_sums(X, pred, missing[pred], n_classes)
            sums[missing], counts[missing] = fallback[missing], assigned[missing]
            warnings.warn(
                f"{type(self).__name__}: no fitting row of class(es) "
                f"{np.flatnonzero(missing)[:10].tolist()} is classified correctly: their "
                "stored patterns are the mean of the rows predicted as them (zero if none).",
                UserWarning,
                stacklevel=3,
            )
        self.patterns_ = sums / np.maximum(counts, 1)[:, None]
        self.class_counts_ = np.where(missing, 0, counts)

    @property
    def block_width(self):
        return self.weight_.shape[1] + 2 * self.n_features_in_

    def score_block(self, X):
        if not isinstance(X, np.ndarray):
            return self._score_in_namespace(X)
        pred = self.classifier_block(X).argmax(axis=1)
        P = self.patterns_[pred].astype(X.dtype, copy=False)
        if self.metric == "euclidean":
            P -= X
            return -np.sqrt(np.einsum("ij,ij->i", P, P).astype(np.float64))
        inner = np.einsum("ij,ij->i", X, P).astype(np.float64)
        if self.metric == "inner_product":
            return inner
        x_norm = np.sqrt(np.einsum("ij,ij->i", X, X).astype(np.float64))
        p_norm = np.sqrt(np.einsum("ij,ij->i", P, P).astype(np.float64))
        return inner / (np.maximum(x_norm, _COSINE_EPS) * np.maximum(p_norm, _COSINE_EPS))

    def _score_in_namespace(self, X):
        """:meth:`score_block` for an array of another namespace (a torch tensor, say)."""
        xp = namespace(X)
        pred = xp.argmax(self.classifier_block(X), axis=1)
        P = xp.take(xp.astype(self.patterns_, X.dtype), pred, axis=0)

        def norm(A):
            return xp.sqrt(xp.astype(xp.sum(A * A, axis=1), xp.float64))

        if self.metric == "euclidean":
            return -norm(P - X)
        inner = xp.astype(xp.sum(X * P, axis=1), xp.float64)
        if self.metric == "inner_product":
            return inner
        return inner / (xp.clip(norm(X), min=_COSINE_EPS) * xp.clip(norm(P), min=_COSINE_EPS))
