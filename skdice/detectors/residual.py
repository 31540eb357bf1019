"""Residual: ViM's residual norm alone (Wang et al., 2022)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from .._array_api import namespace, weight_as
from .._base import BaseDetector
from .vim import ViMDetector, residual_space

__all__ = ["ResidualDetector"]


class ResidualDetector(BaseDetector):
    """Residual: minus the norm of the feature's residual off the principal subspace.

    ``S(x) = -||R^T (h(x) - o)||_2`` with ``o = -(W^T)^+ b`` and ``R`` the
    orthonormal basis of the complement of the top ``dim`` eigenvectors of
    the uncentred covariance of ``h - o`` over the fitting features: ViM's
    virtual logit without the energy and without its scale ``alpha``
    (:class:`~skdice.detectors.vim.ViMDetector`, whose residual space it fits).

    Parameters
    ----------
    dim : int or None, default=None
        Dimension D of the principal subspace, ``0 <= D < n_features``; None
        picks ViM's rule (1000 for width >= 2048, 512 for widths above 512,
        half the width otherwise). OpenOOD's ``residual.yml`` sets 512.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    origin_ : ndarray of shape (n_features,), float64
        ``o = -(W^T)^+ b``.
    dim_ : int
        The D in use.
    residual_basis_ : ndarray of shape (n_features, n_features - dim_), float32
        Orthonormal basis ``R`` of the residual space.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    OpenOOD's ``ResidualPostprocessor`` scores ``-norm((h - u) @ NS)`` with
    ``u = -pinv(w) b``, ``NS`` from ``numpy.linalg.eig`` of
    ``EmpiricalCovariance(assume_centered=True)`` on ``h - u``: the same
    score and sign (the ViM authors' ``benchmark.py`` "Residual" too). It
    takes the subspace on its ID ``val`` split, the ViM authors on the
    training features; this detector on the rows it is fitted on. The
    covariance is accumulated in float64 and diagonalised with
    ``numpy.linalg.eigh`` (symmetric: the same subspace as ``eig`` up to the
    order of equal eigenvalues). Not streamed: the statistic is a covariance
    around a point fixed by the head, which the mean-streaming protocol
    does not carry. Scoring is one ``(n_features, n_features - dim)``
    product per row.

    References
    ----------
    H. Wang, Z. Li, L. Feng and W. Zhang. ViM: Out-of-distribution with
    virtual-logit matching. CVPR 2022 (the "Residual" baseline).
    """

    name = "residual"
    summary = "Residual: minus the norm of the feature off the principal subspace (Wang et al., 2022)"
    #: the search grid (skdice.tuning.default_grid): ViM's (its rule and the dimensions
    #: of its ablation of D; OpenOOD's residual.yml sets 512); values not below the
    #: width are left out
    search_grid = ViMDetector.search_grid

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "dim": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(self, dim=None, *, tpr=0.95):
        self.dim = dim
        self.tpr = tpr

    def effective_params(self, n_features, n_classes=None, n_samples=None):
        """As :meth:`BaseDetector.effective_params`; ``dim`` must be below the feature width."""
        params = ViMDetector(dim=self.dim).effective_params(n_features, n_classes, n_samples)
        return {**self.get_params(), "dim": params["dim"]}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.fits_from_blocks = True  # ViM's scatter: one pass
        tags.array_api_support = True  # the residual space on the host, the scores in X's namespace
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        self.origin_, self.dim_, self.residual_basis_ = residual_space(X, head, self.dim)

    @property
    def block_width(self):
        # the centred copy and its residual coordinates, at most two feature rows
        return self.n_features_in_

    def score_block(self, X):
        if not isinstance(X, np.ndarray):  # fitted arrays are on X's device already
            xp = namespace(X)
            R = (X - xp.astype(self.origin_, X.dtype)) @ weight_as(self.residual_basis_, X.dtype)
            R = xp.astype(R, xp.float64)
            return -xp.sqrt(xp.sum(R * R, axis=1))
        origin = self.origin_.astype(X.dtype)
        R = (X - origin) @ self.residual_basis_.astype(X.dtype, copy=False)
        return -np.sqrt(np.einsum("ij,ij->i", R, R, dtype=np.float64))
