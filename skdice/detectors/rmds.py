"""RMDS: relative Mahalanobis distance (Ren et al., 2021)."""

from __future__ import annotations

import numpy as np
from scipy.linalg import pinvh

from .._array_api import namespace
from .._base import BaseDetector
from .._numeric import Moments
from .mahalanobis import MahalanobisDetector

__all__ = ["RMDSDetector"]


class RMDSDetector(BaseDetector):
    """Relative Mahalanobis distance: the class-conditional distance minus a background one.

    Fits the class Gaussians of :class:`~skdice.detectors.mahalanobis.MahalanobisDetector`
    (class means ``mu_c``, one shared covariance ``Sigma``) and a background
    Gaussian over all training features regardless of class (mean ``mu_0``,
    covariance ``Sigma_0``), and scores

        ``S(x) = -min_c [ d_c(x)^2 - d_0(x)^2 ]``,

    with ``d_c^2 = (h - mu_c)^T Sigma^+ (h - mu_c)`` and
    ``d_0^2 = (h - mu_0)^T Sigma_0^+ (h - mu_0)`` (Ren et al., 2021, Eq. 3:
    ``RMD_k = MD_k - MD_0``, confidence ``-min_k RMD_k``). The background term
    does not depend on the class, so ``S = mahalanobis(x) + d_0(x)^2``.

    Parameters
    ----------
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels seen in ``y``.
    means_ : ndarray of shape (n_classes, n_features), float64
        Class means ``mu_c``.
    precision_ : ndarray of shape (n_features, n_features), float64
        ``Sigma^+``, the pseudo-inverse of the shared within-class covariance
        (divided by n), as :class:`MahalanobisDetector` with ``reg=0``.
    background_mean_ : ndarray of shape (n_features,), float64
        ``mu_0``, the mean of all fitting rows.
    background_precision_ : ndarray of shape (n_features, n_features), float64
        ``Sigma_0^+``, the pseudo-inverse of the covariance of all fitting
        rows (divided by n).
    weight_, bias_ : ndarray of shape (n_features, n_classes) and (n_classes,)
        The classifier head, only when one was given to ``fit`` (unused by the
        score; kept so that scoring a store can check it is the same model).
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    OpenOOD's ``RMDSPostprocessor`` (the reference; the paper has no code of
    its own) fits both covariances with scikit-learn's
    ``EmpiricalCovariance().precision_`` (a pseudo-inverse) on the training
    split and returns ``max_c (-d_c^2 + d_0^2)``: the same score, same sign.
    It casts the precisions to float32 on the GPU; skdice computes in float64
    as :class:`MahalanobisDetector` does, because penultimate covariances
    are ill-conditioned (condition number 5e9 on the DICE paper's DenseNet).

    The score expands into one quadratic form,
    ``z^T (Sigma_0^+ - Sigma^+) z + max_c (2 z^T Sigma^+ m_c - m_c^T Sigma^+ m_c)``
    with ``z = h - mu_0`` and ``m_c = mu_c - mu_0``, so a chunk costs one
    ``m x m`` and one ``m x C`` product, about as much as Mahalanobis alone.

    Both statistics are class sums and scatters: ``fit`` also takes a block
    source (a store split read in passes, tag ``fits_from_blocks``), so the
    store workflows never load the training split.

    There is nothing to tune: the search grid is empty.

    References
    ----------
    J. Ren, S. Fort, J. Liu, A. G. Roy, S. Padhy and B. Lakshminarayanan. A
    simple fix to Mahalanobis distance for improving near-OOD detection.
    ICML 2021 Workshop on Uncertainty and Robustness in Deep Learning
    (arXiv:2106.09022).

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.rmds import RMDSDetector
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 100)
    >>> H = rng.normal(size=(200, 2)) + 5 * y[:, None]
    >>> det = RMDSDetector().fit(H, y)
    >>> bool(det.score_samples([[0, 0]])[0] > det.score_samples([[20, -20]])[0])
    True
    """

    name = "rmds"
    summary = "Relative Mahalanobis: class distance minus a background Gaussian's (Ren et al., 2021)"
    #: nothing to tune (skdice.tuning.default_grid): the method has no hyperparameter
    search_grid = {}

    _parameter_constraints: dict = {**BaseDetector._parameter_constraints}

    def __init__(self, *, tpr=0.95):
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.detector_tags.requires_head = False
        tags.detector_tags.requires_class_labels = True
        tags.detector_tags.fits_from_blocks = True  # Mahalanobis's two passes and one of moments
        tags.array_api_support = True  # the covariances on the host, the scores in X's namespace
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        classes = MahalanobisDetector(reg=0.0).fit(X, y, calibrate=False)
        background = Moments(X.shape[1], cross=True)
        background.update(X)
        self.classes_ = classes.classes_
        self.means_ = classes.means_
        self.precision_ = classes.precision_
        self.background_mean_ = background.mean
        self.background_precision_ = np.ascontiguousarray(
            pinvh(background.covariance(ddof=0), check_finite=False)
        )
        centred = self.means_ - self.background_mean_
        # C order everywhere: a reloaded detector takes the same BLAS path
        self._quadratic = np.ascontiguousarray(self.background_precision_ - self.precision_)
        self._linear = np.ascontiguousarray(2.0 * (self.precision_ @ centred.T))
        self._constant = np.einsum("ij,ji->i", centred, self._linear) / 2.0

    @property
    def block_width(self):
        return 2 * self.n_features_in_ + self.classes_.shape[0]

    def score_block(self, X):
        if not isinstance(X, np.ndarray):  # float64, as on the NumPy path
            xp = namespace(X)
            Z = xp.astype(X, xp.float64) - self.background_mean_
            quadratic = xp.sum((Z @ self._quadratic) * Z, axis=1)
            return quadratic + xp.max(Z @ self._linear - self._constant, axis=1)
        Z = X.astype(np.float64) - self.background_mean_
        quadratic = np.einsum("ij,ij->i", Z @ self._quadratic, Z)
        per_class = Z @ self._linear
        per_class -= self._constant
        return quadratic + per_class.max(axis=1)
