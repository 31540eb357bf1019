"""GradNorm: the norm of the head's gradient, in closed form (Huang, Geng and Li, 2021)."""

from __future__ import annotations

import numpy as np

from .._array_api import namespace
from ._common import _HeadDetector

__all__ = ["GradNormDetector"]


class GradNormDetector(_HeadDetector):
    """GradNorm: L1 norm of the gradient of the KL to the uniform distribution w.r.t. the head's weight.

    GradNorm back-propagates ``L = sum_k -log softmax_k(f(x))`` (the cross
    entropy against an all-ones target, i.e. the KL divergence to the
    uniform distribution up to constants) to the last layer and scores the
    L1 norm of the weight's gradient. For a linear head ``f = W^T h + b``
    the gradient is the outer product ``dL/dW[j, k] = h_j (C p_k - 1)``,
    so the score is, in closed form,

        ``S(x) = ||h(x)||_1 * sum_k |C p_k(x) - 1|``,

    with ``p = softmax(f(x))`` and ``C`` the number of classes: one product
    with the head and two row reductions, no gradient through the network.

    Parameters
    ----------
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
    The authors' code (``deeplearning-wisc/gradnorm_ood``,
    ``iterate_data_gradnorm``) and OpenOOD's ``GradNormPostprocessor`` run
    autograd one sample at a time: temperature 1, ``targets = ones(C)``,
    ``loss = mean(sum(-targets * logsoftmax(fc(h))))``, score
    ``sum(abs(fc.weight.grad))`` (the bias's gradient left out). That is the
    formula above, same sign (higher = more in-distribution), checked
    against torch autograd in the tests. The feature ``h`` is the input of
    the head (the pooled feature), as in both. The softmax runs in the
    features' precision (float32 for float32 features) with its sums in
    float64. Nothing is learnt from the fitting rows but ``offset_``.

    References
    ----------
    R. Huang, A. Geng and Y. Li. On the importance of gradients for detecting
    distributional shifts in the wild. NeurIPS 2021.
    """

    name = "gradnorm"
    summary = "GradNorm: L1 norm of the head's gradient of the KL to uniform, closed form (Huang et al., 2021)"
    #: nothing to tune (skdice.tuning.default_grid): the authors' code and OpenOOD's
    #: gradnorm.yml have no hyperparameter (temperature 1)
    search_grid = {}

    def __init__(self, *, tpr=0.95):
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True  # the closed form in the input's namespace
        return tags

    def score_block(self, X):
        if not isinstance(X, np.ndarray):
            return self._score_in_namespace(X)
        E = self._logits(X)
        E -= E.max(axis=1, keepdims=True)
        np.exp(E, out=E)
        total = E.sum(axis=1, dtype=np.float64).astype(E.dtype)[:, None]
        # |C p_k - 1| = |C e_k - total| / total, with e_k = exp(z_k - max z)
        E *= E.dtype.type(E.shape[1])
        E -= total
        np.abs(E, out=E)
        spread = E.sum(axis=1, dtype=np.float64) / total[:, 0]
        return np.abs(X).sum(axis=1, dtype=np.float64) * spread

    def _score_in_namespace(self, X):
        """:meth:`score_block` for an array of another namespace (a torch tensor, say)."""
        xp = namespace(X)
        E = self._logits(X)
        E = xp.exp(E - xp.max(E, axis=1, keepdims=True))
        total = xp.astype(xp.sum(E, axis=1, dtype=xp.float64), E.dtype)[:, None]
        spread = xp.sum(xp.abs(E * E.shape[1] - total), axis=1, dtype=xp.float64)
        spread = spread / xp.astype(total[:, 0], xp.float64)
        return xp.sum(xp.abs(X), axis=1, dtype=xp.float64) * spread
