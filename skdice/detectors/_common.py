"""Private building blocks shared by the detectors of the catalogue.

``_HeadDetector`` scores inputs from the logits of the classifier head;
``_SparseHeadEnergy`` scores them by the energy of a masked head, the shape
shared by DICE's unit-selection variants and the sparsification ablations.
Neither is registered (they have no ``name``).
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._array_api import namespace, top_k_mask, weight_as
from .._base import BaseDetector
from .._masked import MaskedHeadMixin


class _HeadDetector(BaseDetector):
    """A detector whose score is a function of the head's logits ``X @ W + b``.

    Subclasses implement ``_score_logits(Z)``; ``Z`` is a scratch array of
    one chunk's logits (float64 for float64 input, float32 otherwise) that
    they may overwrite.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.uses_features = False  # scores are a function of the logits
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        """Logit-based baselines learn nothing beyond the head."""

    @property
    def block_width(self):
        return self.weight_.shape[1]

    def _logits(self, X, weight=None):
        weight = self.weight_ if weight is None else weight
        if not isinstance(X, np.ndarray):
            # another namespace does not promote float64 @ float32 as NumPy does
            weight = weight_as(weight, X.dtype)
        Z = X @ weight
        Z += self.bias_
        return Z

    def score_block(self, X):
        return self._score_logits(self._logits(X))

    def _score_logits(self, Z):  # pragma: no cover
        raise NotImplementedError


class _SparseHeadEnergy(MaskedHeadMixin, BaseDetector):
    """Energy of a head whose weights are masked by a rule fixed at fit time.

    Subclasses implement ``_build_mask(X, head, train_mean)`` returning a
    boolean ``(n_features, n_classes)`` mask (True = kept), or, when the mask
    ranks statistics worth naming in a degenerate-fit warning, their own
    ``fit_statistics`` ending in ``_fit_mask``. The score is
    ``logsumexp((mask * W)^T h + b)``, exactly DICE's score with another mask,
    so all of them are compared under the same scoring function and the same
    sparsity ``p`` (the paper's Tables 2, 5 and 10). The bias is never masked
    and kept weights are not rescaled, as in DICE.
    """

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "p": [Interval(Real, 0, 1, closed="left")],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # the energy of the masked head (MaskedHeadMixin.score_block); units whose kept
        # weights are all zero leave the product (unit pruning and dropout at p = 0.9: 90%)
        tags.detector_tags.masked_head = True
        tags.detector_tags.changes_classifier = True  # the masked head classifies
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        self._fit_mask(self._build_mask(X, head, train_mean), head)

    def _build_mask(self, X, head, train_mean):  # pragma: no cover
        raise NotImplementedError


def _top_k_count(n_features: int, percentile: float) -> int:
    """Units ASH and SCALE keep per row: ``n - round(n * percentile / 100)``.

    The rounding is the one of the ASH authors' code (``int(np.round(...))``,
    round half to even). At least one unit is kept, so that the binarised and
    rescaled variants stay defined on very narrow features.
    """
    k = n_features - int(np.round(n_features * percentile / 100.0))
    return max(k, 1)


def _top_k_mask(X: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest entries of each row (ties: any of them).

    In ``X``'s namespace (:func:`skdice._array_api.top_k_mask` for arrays
    other than NumPy's).
    """
    if not isinstance(X, np.ndarray):
        return top_k_mask(X, k)
    n, m = X.shape
    mask = np.zeros((n, m), dtype=bool)
    if k >= m:
        mask[:] = True
        return mask
    idx = np.argpartition(X, m - k, axis=1)[:, m - k :]
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


def _flag_non_finite_rows(X, scores):
    # the minimum maps +inf to the clip: mark rows with a non-finite entry NaN so
    # that the caller reports the first of them by its row
    if isinstance(X, np.ndarray):
        scores[~np.isfinite(X).all(axis=1)] = np.nan
    else:
        xp = namespace(X)
        scores[~xp.all(xp.isfinite(X), axis=1)] = xp.nan
    return scores
