"""Mahalanobis distance to class-conditional Gaussians (Lee et al., 2018)."""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.linalg import pinvh
from scipy.sparse import csr_matrix
from sklearn.utils._param_validation import Interval

from .._array_api import namespace
from .._base import BaseDetector
from .._numeric import feature_blocks

__all__ = ["MahalanobisDetector"]


class MahalanobisDetector(BaseDetector):
    """Negative minimum squared Mahalanobis distance to the class means.

    Fits one Gaussian per class on the penultimate features, with class means
    ``mu_c`` and one covariance ``Sigma`` shared by all classes (Lee et al.,
    2018, Eq. 1), and scores

        ``S(x) = -min_c (h(x) - mu_c)^T Sigma^{-1} (h(x) - mu_c)``,

    i.e. minus the *squared* distance, as in Lee et al.'s confidence score
    ``M(x) = max_c -(f(x) - mu_c)^T Sigma^{-1} (f(x) - mu_c)``.

    Parameters
    ----------
    reg : float, default=0.0
        Optional ridge added to the covariance before it is inverted, relative
        to its mean eigenvalue: ``Sigma + reg * trace(Sigma) / m * I`` (``reg *
        I`` when the trace is zero). The default ``0`` is the official
        estimator: the pseudo-inverse ``Sigma^+`` (``scipy.linalg.pinvh``, the
        ``precision_`` of scikit-learn's ``EmpiricalCovariance``), as in the
        code of Lee et al. (``sample_estimator``), the ViM authors'
        ``benchmark.py`` and OpenOOD's ``MDSPostprocessor``. Penultimate
        features of ReLU networks have dead or nearly collinear units, so
        ``Sigma`` is often singular; the pseudo-inverse ignores its null
        directions, a ridge instead damps its smallest ones (a different score
        where ``Sigma`` is ill-conditioned).
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels seen in ``y``.
    means_ : ndarray of shape (n_classes, n_features), float64
        Class means ``mu_c``.
    covariance_ : ndarray of shape (n_features, n_features), float64
        The shared (maximum-likelihood, divided by n) within-class covariance,
        before the ridge.
    precision_ : ndarray of shape (n_features, n_features), float64
        ``(Sigma + ridge * I)^+`` from ``scipy.linalg.pinvh`` (eigenvalues
        below ``n_features * eps`` times the largest count as zero); with
        ``reg = 0`` it equals ``EmpiricalCovariance().fit(centred).precision_``.
    weight_, bias_ : ndarray of shape (n_features, n_classes) and (n_classes,)
        The classifier head, only when one was given to ``fit``. The score
        does not use it; it is kept so that scoring a feature store can check
        that the store belongs to the same model.
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    The precision and the distances run in float64 (not float32 like the
    heads' products): the covariance of real penultimate features can have a
    condition number of ``1e9`` or more (5e9 on the DICE paper's CIFAR-10
    DenseNet), and float32 would lose most digits. Features are centred on
    the global training mean first to keep the expansion ``z^T P z - 2 z^T P
    m_c + m_c^T P m_c`` free of cancellation. (Lee et al.'s and the ViM
    authors' code cast the precision to float32 on the GPU; the score is
    otherwise theirs.)

    This is the single-layer detector without input perturbation and without
    the logistic-regression ensemble over layers that the DICE paper's
    baseline trained on 500 ID samples and FGSM examples (Appendix B; its
    chosen ε was 0 for both CIFAR datasets). OpenOOD's ``MDSPostprocessor``
    computes the same score (``reg = 0``), as does the ViM authors'
    ``benchmark.py``; Lee et al.'s ``get_Mahalanobis_score`` scores half of it
    (``-0.5 d^2``: the same ranks). pytorch-ood's ``Mahalanobis``
    (``eps = 0``) returns the distance itself, i.e. the opposite sign.

    References
    ----------
    K. Lee, K. Lee, H. Lee and J. Shin. A simple unified framework for
    detecting out-of-distribution samples and adversarial attacks. NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.mahalanobis import MahalanobisDetector
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 100)
    >>> H = rng.normal(size=(200, 2)) + 5 * y[:, None]
    >>> det = MahalanobisDetector().fit(H, y)
    >>> bool(det.score_samples([[0, 0]])[0] > det.score_samples([[20, -20]])[0])
    True
    """

    name = "mahalanobis"
    summary = "Class-conditional Gaussians, shared covariance (Lee et al., 2018)"
    #: nothing to tune (skdice.tuning.default_grid): reg is an optional ridge (0, the
    #: official pseudo-inverse, by default), and the paper's tuned input-perturbation
    #: size needs gradients stored features lack
    search_grid = {}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "reg": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, reg=0.0, *, tpr=0.95):
        self.reg = reg
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # class labels, unlike the other detectors
        tags.detector_tags.requires_head = False
        tags.detector_tags.requires_class_labels = True
        tags.detector_tags.fits_from_blocks = True  # class sums, then the pooled scatter: two passes
        tags.array_api_support = True  # the covariance on the host, the scores in X's namespace
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        y = np.asarray(y)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("class labels y contain NaN or infinity.")
        classes, codes = np.unique(y, return_inverse=True)
        n, m = X.shape
        n_classes = classes.shape[0]
        counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
        sums = np.zeros((n_classes, m), dtype=np.float64)
        for chunk, block in feature_blocks(X, 8 * m):
            block = np.asarray(block, dtype=np.float64)
            rows = codes[chunk]
            # class sums as a sparse one-hot product (np.add.at is far slower)
            onehot = csr_matrix(
                (np.ones(rows.size), (rows, np.arange(rows.size))),
                shape=(n_classes, rows.size),
            )
            sums += onehot @ block
        means = sums / counts[:, None]
        center = (counts @ means) / n

        cov = np.zeros((m, m), dtype=np.float64)
        for chunk, block in feature_blocks(X, 8 * m):
            # a copy: X may be the caller's float64 array
            block = np.array(block, dtype=np.float64)
            block -= means[codes[chunk]]
            cov += block.T @ block
        cov /= n

        regularised = cov
        if self.reg > 0:
            trace = float(np.trace(cov))
            regularised = cov + self.reg * (trace / m if trace > 0 else 1.0) * np.eye(m)
        # the pseudo-inverse, as scikit-learn's EmpiricalCovariance.precision_; C
        # order everywhere so that a saved and reloaded detector takes the same
        # BLAS path and gives bit-identical scores
        precision = np.ascontiguousarray(pinvh(regularised, check_finite=False))

        self.classes_ = classes
        self.means_ = means
        self.covariance_ = cov
        self.precision_ = precision
        self._center = center
        centred_means = means - center
        self._precision_means = np.ascontiguousarray(precision @ centred_means.T)
        self._means_sqnorm = np.einsum("ij,ji->i", centred_means, self._precision_means)

    @property
    def block_width(self):
        return 2 * self.n_features_in_ + self.classes_.shape[0]

    def score_block(self, X):
        if not isinstance(X, np.ndarray):
            return self._score_block_any(X)
        Z = X.astype(np.float64) - self._center
        ZP = Z @ self.precision_
        sq = np.einsum("ij,ij->i", ZP, Z)
        d2 = sq[:, None] - 2.0 * (Z @ self._precision_means) + self._means_sqnorm
        return -np.maximum(d2.min(axis=1), 0.0)

    def _score_block_any(self, X):
        # score_block in another namespace (float64, as on the NumPy path)
        xp = namespace(X)
        Z = xp.astype(X, xp.float64) - self._center
        sq = xp.sum((Z @ self.precision_) * Z, axis=1)
        d2 = sq[:, None] - 2.0 * (Z @ self._precision_means) + self._means_sqnorm
        return -xp.clip(xp.min(d2, axis=1), min=0.0)
