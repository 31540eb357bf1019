"""GEN: generalized entropy of the softmax (Liu, Lochman and Zach, 2023)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._array_api import device_of, namespace
from ._common import _HeadDetector

__all__ = ["GENDetector"]


class GENDetector(_HeadDetector):
    """GEN: minus the generalized entropy of the top-M softmax probabilities.

    ``S(x) = -sum_{j in top M} p_j^gamma (1 - p_j)^gamma`` with ``p =
    softmax(f(x))`` over all C classes and the sum over the M largest
    probabilities (``min(M, C)`` of them).

    Parameters
    ----------
    gamma : float, default=0.1
        Exponent gamma > 0; the GEN paper's setting (the authors'
        ``benchmark.py`` and OpenOOD's default). OpenOOD sweeps 0.01 to 10.
    M : int, default=100
        Number of largest probabilities summed; the GEN paper's ImageNet
        setting (all classes when C < M, e.g. CIFAR-10).
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores.

    Notes
    -----
    The softmax is computed in float64 and ``1 - p_j`` as the sum of the other
    classes' weights, so confident rows (``p_max`` within 1e-8 of 1) keep
    their order. OpenOOD's ``GENPostprocessor`` returns the same score (same
    sign). pytorch-ood's ``GEN`` returns ``+G / M`` (a mean instead of a sum,
    the opposite sign) with the probabilities clamped to ``[1e-7, 1 - 1e-7]``
    and all classes by default: the same ranking wherever the clamp does not
    bind and M agrees.

    References
    ----------
    X. Liu, Y. Lochman and C. Zach. GEN: Pushing the limits of softmax-based
    out-of-distribution detection. CVPR 2023.
    """

    name = "gen"
    summary = "GEN: minus the generalized entropy of the top-M softmax (Liu et al., 2023)"
    #: the search grid (skdice.tuning.default_grid), 2-D: OpenOOD's sweep (gen.yml: gamma
    #: 0.01-10, M 10-1000) with the GEN paper's gamma = 0.05 added (its settings gamma =
    #: 0.1, M = 100); M above the class count equals M = C
    search_grid = {
        "gamma": (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0),
        "M": (10, 50, 100, 200, 500, 1000),
    }

    _parameter_constraints: dict = {
        **_HeadDetector._parameter_constraints,
        "gamma": [Interval(Real, 0, None, closed="neither")],
        "M": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, gamma=0.1, M=100, *, tpr=0.95):
        self.gamma = gamma
        self.M = M
        self.tpr = tpr

    def effective_params(self, n_features, n_classes=None, n_samples=None):
        """As :meth:`BaseDetector.effective_params`; ``M`` above the class count acts as the class count."""
        params = self.get_params()
        if n_classes is not None:
            params["M"] = min(int(self.M), n_classes)
        return params

    @property
    def block_width(self):
        # the score works on about eight float64 copies of a chunk's logits:
        # size the chunks for them, not for the float32 logits alone
        return 8 * self.weight_.shape[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags

    def _score_logits(self, Z):
        if not isinstance(Z, np.ndarray):
            return self._score_logits_any(Z)
        E = Z.astype(np.float64)
        top = E.argmax(axis=1)
        E -= E[np.arange(E.shape[0]), top][:, None]
        np.exp(E, out=E)  # the arg-max entry is exactly 1
        total = E.sum(axis=1)
        others = E.copy()
        # 1 - p_j = (total - e_j) / total; for the arg-max entry sum the others
        # directly instead of subtracting 1 from a number close to 1
        E[np.arange(E.shape[0]), top] = 0.0
        rest_of_top = E.sum(axis=1)
        complement = total[:, None] - others
        complement[np.arange(E.shape[0]), top] = rest_of_top
        P = others / total[:, None]
        Q = complement / total[:, None]
        C = P.shape[1]
        M = min(int(self.M), C)
        if M < C:
            idx = np.argpartition(P, C - M, axis=1)[:, C - M :]
            P = np.take_along_axis(P, idx, axis=1)
            Q = np.take_along_axis(Q, idx, axis=1)
        g = float(self.gamma)
        return -np.sum(P**g * np.maximum(Q, 0.0) ** g, axis=1)

    def _score_logits_any(self, Z):
        # _score_logits in another namespace: no in-place exponential, no
        # fancy-index assignment, argsort for the top M (the NumPy path, above,
        # keeps NumPy's in-place kernels and argpartition: 2.2x faster there)
        xp = namespace(Z)
        E = xp.astype(Z, xp.float64)
        n, C = E.shape
        top = xp.argmax(E, axis=1)
        is_top = xp.arange(C, device=device_of(E))[None, :] == top[:, None]
        E -= xp.max(E, axis=1, keepdims=True)
        E = xp.exp(E)  # the arg-max entry is exactly 1
        total = xp.sum(E, axis=1)
        zero = xp.asarray(0.0, dtype=xp.float64, device=device_of(E))
        rest_of_top = xp.sum(xp.where(is_top, zero, E), axis=1)
        complement = xp.where(is_top, rest_of_top[:, None], total[:, None] - E)
        P = E / total[:, None]
        Q = complement / total[:, None]
        M = min(int(self.M), C)
        if M < C:
            # any M largest: tied probabilities have equal terms. Not array_api_extra's
            # argpartition: its torch branch (0.11) builds its ranks on the default
            # device, which fails for CUDA tensors
            idx = xp.argsort(P, axis=1, descending=True)[:, :M]
            P = xp.take_along_axis(P, idx, axis=1)
            Q = xp.take_along_axis(Q, idx, axis=1)
        g = float(self.gamma)
        return -xp.sum(P**g * xp.clip(Q, min=0.0) ** g, axis=1)
