"""NECO: neural-collapse based OOD detection (Ben Ammar et al., 2024)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from .._array_api import namespace, weight_as
from .._base import BaseDetector
from .._numeric import Moments

__all__ = ["NECODetector"]

#: the authors' default principal dimension (test_all_ood.py: --neco_dim 100)
_AUTHORS_DIM = 100


def _default_dim(n_features: int) -> int:
    # the authors' 100 where it leaves a complement, else half the width
    return _AUTHORS_DIM if n_features > _AUTHORS_DIM else n_features // 2


class NECODetector(BaseDetector):
    """NECO: the share of the standardised feature's norm inside the top principal subspace.

    The features are standardised with the training mean and standard
    deviation, ``s(x) = (h(x) - mu) / sigma``; ``P`` holds the top ``dim``
    principal directions of the standardised training features, and

        ``S(x) = ||P^T s(x)||_2 / ||s(x)||_2``

    (Ben Ammar et al., 2024, Eq. 6), times the maximum logit when
    ``maxlogit=True``. Under neural collapse ID features live in the span of
    the class means (at most ``C - 1`` dimensions) and OOD features are
    nearly orthogonal to it.

    Parameters
    ----------
    dim : int or None, default=None
        Dimension of the principal subspace, ``0 <= dim < n_features``. None
        takes the authors' default 100 (``--neco_dim``) where the features are
        wider than 100, else half the width.
    maxlogit : bool, default=False
        Multiply by the maximum logit, as the authors' code does for vision
        transformers (ViT, DeiT, Swin) and not for ResNets; the head is then
        needed. False, the score needs no head.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,), float64
        The training mean ``mu``.
    scale_ : ndarray of shape (n_features,), float64
        The training standard deviation ``sigma`` (divided by n), 1 for
        constant units (scikit-learn's ``StandardScaler`` rule).
    components_ : ndarray of shape (dim_, n_features), float64
        The principal directions of the standardised training features, by
        decreasing variance.
    dim_ : int
        The dimension in use.
    weight_, bias_ : ndarray of shape (n_features, n_classes) and (n_classes,)
        The classifier head, only when one was given to ``fit`` (used by the
        score only with ``maxlogit=True``).
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    The authors' ``neco`` function fits scikit-learn's ``StandardScaler`` and a
    full ``PCA`` on the training features and scores
    ``||PCA(ss(h))[:dim]|| / ||ss(h)||`` (times the max logit for non-ResNet
    architectures): the same score, same sign. OpenOOD has no NECO. Here the
    principal directions come from ``numpy.linalg.eigh`` of the float64
    covariance of the standardised features instead of an SVD of the data,
    and the projection is taken about the standardised mean, exactly 0,
    where PCA subtracts its own ``mean_`` (0 to rounding). For DeiT and Swin
    the authors' code divides by the norm of the raw feature instead of the
    standardised one; that variant is not offered.

    The standardisation is folded into the projection, so a chunk costs one
    ``m x dim`` product (plus the logits' with ``maxlogit``). The statistics
    (a mean and a covariance) could be accumulated in one pass, but skdice's
    streaming fit streams a mean feature only; ``fit`` needs the rows.

    References
    ----------
    M. Ben Ammar, N. Belkhir, S. Popescu, A. Manzanera and G. Franchi. NECO:
    NEural Collapse based Out-of-distribution detection. ICLR 2024
    (arXiv:2310.06823).

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.neco import NECODetector
    >>> rng = np.random.default_rng(0)
    >>> H = rng.normal(size=(200, 1)) * [[1.0, 1.0, 0.0]] + rng.normal(0, 0.1, (200, 3))
    >>> det = NECODetector(dim=1).fit(H)  # the top direction: units 0 and 1 together
    >>> det.score_samples([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]]).round(2)
    array([0.98, 0.  ])
    """

    name = "neco"
    summary = "NECO: norm share of the standardised feature in the top principal subspace (Ben Ammar et al., 2024)"
    #: the search grid (skdice.tuning.default_grid): dimensions about the authors'
    #: default 100 (None) and the max-logit factor of their transformer setting;
    #: dimensions not below the width are left out
    search_grid = {"dim": (None, 10, 20, 50, 100, 200, 300, 500), "maxlogit": (False, True)}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "dim": [Interval(Integral, 0, None, closed="left"), None],
        "maxlogit": ["boolean"],
    }

    def __init__(self, dim=None, *, maxlogit=False, tpr=0.95):
        self.dim = dim
        self.maxlogit = maxlogit
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.requires_head = bool(self.maxlogit)
        tags.detector_tags.fits_from_blocks = True  # moments with the co-moment matrix: one pass
        tags.array_api_support = True  # the principal space on the host, the scores in X's namespace
        return tags

    def effective_params(self, n_features, n_classes=None, n_samples=None):
        """As :meth:`BaseDetector.effective_params`; ``dim`` must be below the feature width."""
        dim = _default_dim(n_features) if self.dim is None else int(self.dim)
        if dim >= n_features:
            raise ValueError(f"dim={dim} is not below the feature width {n_features}")
        return {**self.get_params(), "dim": dim}

    def fit_statistics(self, X, y, head, train_mean):
        n, m = X.shape
        dim = _default_dim(m) if self.dim is None else int(self.dim)
        if dim >= m:
            raise ValueError(
                f"dim={dim} must be smaller than the feature width {m}: the principal "
                "subspace would hold every feature and the score would be 1."
            )
        moments = Moments(m, cross=True)
        moments.update(X)
        var = moments.m2 / n
        eps = np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * moments.mean * eps) ** 2
        scale = np.where(constant, 1.0, np.sqrt(var))
        cov = moments.comoment / n / np.outer(scale, scale)
        eigvals, eigvecs = np.linalg.eigh(cov)  # ascending
        components = eigvecs[:, np.argsort(eigvals)[::-1][:dim]].T

        self.mean_ = moments.mean
        self.scale_ = scale
        self.components_ = np.ascontiguousarray(components)
        self.dim_ = dim
        # the standardisation folded into the projection: P^T s = (P / sigma)^T (h - mu)
        self._projection = np.ascontiguousarray(components.T / scale[:, None])
        self._inverse_scale = 1.0 / scale

    @property
    def block_width(self):
        return 2 * self.n_features_in_ + self.dim_ + (self.weight_.shape[1] if self.maxlogit else 0)

    def score_block(self, X):
        if not isinstance(X, np.ndarray):
            return self._score_in_namespace(X)
        Z = X - self.mean_.astype(X.dtype)
        inside = Z @ self._projection.astype(X.dtype)
        num = np.sqrt(np.einsum("ij,ij->i", inside, inside).astype(np.float64))
        Z *= self._inverse_scale.astype(X.dtype)
        den = np.sqrt(np.einsum("ij,ij->i", Z, Z).astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            # a row at the mean scores 0; a non-finite row stays NaN (reported by the caller)
            ratio = np.where(den == 0, 0.0, num / den)
        if self.maxlogit:
            ratio *= self.classifier_block(X).max(axis=1)
        return ratio

    def _score_in_namespace(self, X):
        """:meth:`score_block` for an array of another namespace (a torch tensor, say)."""
        xp = namespace(X)
        Z = X - xp.astype(self.mean_, X.dtype)
        inside = Z @ weight_as(self._projection, X.dtype)
        num = xp.sqrt(xp.astype(xp.sum(inside * inside, axis=1), xp.float64))
        Z = Z * xp.astype(self._inverse_scale, X.dtype)
        den = xp.sqrt(xp.astype(xp.sum(Z * Z, axis=1), xp.float64))
        ratio = xp.where(den == 0, 0.0, num / xp.where(den == 0, 1.0, den))
        if self.maxlogit:
            ratio = ratio * xp.astype(xp.max(self.classifier_block(X), axis=1), xp.float64)
        return ratio
