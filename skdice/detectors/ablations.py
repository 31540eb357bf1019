"""The paper's sparsification ablations (Tables 2 and 10), all scored by energy.

Each detector masks the head with another classic sparsification rule at the
same sparsity ``p`` as DICE and scores ``logsumexp((M ⊙ W)^T h(x) + b)``, so
that only the choice of weights differs. Neither OpenOOD nor pytorch-ood
implements these ablations.
"""

from __future__ import annotations

from ..sparsify import (
    unit_dropout_mask,
    unit_pruning_mask,
    weight_dropout_mask,
    weight_pruning_mask,
)
from ._common import _SparseHeadEnergy

__all__ = [
    "UnitDropoutDetector",
    "UnitPruningDetector",
    "WeightDropoutDetector",
    "WeightPruningDetector",
]

_ATTRIBUTES = """
    Attributes
    ----------
    mask_ : ndarray of shape (n_features, n_classes), bool
        True for the kept weights.
    weight_ : ndarray of shape (n_features, n_classes), float32
        The original head weight W.
    masked_weight_ : ndarray of shape (n_features, n_classes), float32
        ``mask_ * weight_``, the weight the score uses.
    bias_ : ndarray of shape (n_classes,), float32
        The head's bias (never masked).
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        ``decision_function = score_samples - offset_``; the ``1 - tpr``
        quantile of the fitting samples' scores.
"""

_PARAMS_RANDOM = """
    Parameters
    ----------
    p : float, default=0.9
        Sparsity in [0, 1), the paper's Table 2 setting.
    random_state : int, RandomState instance or None, default=None
        Seed of the random mask; an int makes ``fit`` reproducible.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.
"""

_PARAMS = """
    Parameters
    ----------
    p : float, default=0.9
        Sparsity in [0, 1), the paper's Table 2 setting.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.
"""


#: the search grid of every ablation (skdice.tuning.default_grid): DICE's p sweep
#: (Section 4.1); Tables 2 and 10 compare them with DICE at the same p
_P_GRID = {"p": (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)}

class _Ablation(_SparseHeadEnergy):
    """The ablations' mask is built on the host; they score in any namespace (tag ``array_api_support``)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.detector_tags.fits_from_blocks = True  # the mask reads the head only
        return tags


_RANDOM_CONSTRAINTS = {
    **_SparseHeadEnergy._parameter_constraints,
    "random_state": ["random_state"],
}


class WeightDropoutDetector(_Ablation):
    __doc__ = (
        """Energy of the head after random weight dropout (DropConnect).

    Each weight of ``W`` is dropped independently with probability ``p``
    (:func:`skdice.sparsify.weight_dropout_mask`); the mask is drawn once at
    fit time. The paper's Table 2 "Weight-Dropout" row (Wan et al., 2013).
    Kept weights are not rescaled by ``1 / (1 - p)``, exactly like DICE's.
"""
        + _PARAMS_RANDOM
        + _ATTRIBUTES
        + """
    References
    ----------
    L. Wan, M. Zeiler, S. Zhang, Y. LeCun and R. Fergus. Regularization of
    neural networks using DropConnect. ICML 2013.
    """
    )

    name = "weight-dropout"
    search_grid = _P_GRID
    _parameter_constraints: dict = _RANDOM_CONSTRAINTS
    summary = "Energy after random weight dropout (Sun & Li, 2022, Table 2)"

    def __init__(self, p=0.9, *, random_state=None, tpr=0.95):
        self.p = p
        self.random_state = random_state
        self.tpr = tpr

    def _build_mask(self, X, head, train_mean):
        return weight_dropout_mask(head.weight.shape, self.p, self.random_state)


class UnitDropoutDetector(_Ablation):
    __doc__ = (
        """Energy of the head after random unit dropout.

    Each penultimate unit (a coordinate of ``h(x)``, i.e. a row of ``W``) is
    dropped with probability ``p`` together with all its outgoing weights
    (:func:`skdice.sparsify.unit_dropout_mask`); the mask is drawn once at fit
    time. The paper's Table 2 "Unit-Dropout" row (Srivastava et al., 2014).
"""
        + _PARAMS_RANDOM
        + _ATTRIBUTES
        + """
    References
    ----------
    N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever and R. Salakhutdinov.
    Dropout: a simple way to prevent neural networks from overfitting. JMLR 2014.
    """
    )

    name = "unit-dropout"
    search_grid = _P_GRID
    _parameter_constraints: dict = _RANDOM_CONSTRAINTS
    summary = "Energy after random unit dropout (Sun & Li, 2022, Table 2)"

    def __init__(self, p=0.9, *, random_state=None, tpr=0.95):
        self.p = p
        self.random_state = random_state
        self.tpr = tpr

    def _build_mask(self, X, head, train_mean):
        return unit_dropout_mask(head.weight.shape, self.p, self.random_state)


class WeightPruningDetector(_Ablation):
    __doc__ = (
        """Energy of the head after magnitude pruning of its weights.

    Keeps the weights with ``|W|`` strictly above the ``100 p``-th percentile
    of ``|W|`` (:func:`skdice.sparsify.weight_pruning_mask`): DICE's rule on
    ``|W|`` instead of ``E[h] ⊙ W``. The paper's Table 2 "Weight-Pruning" row
    (Han et al., 2015).
"""
        + _PARAMS
        + _ATTRIBUTES
        + """
    References
    ----------
    S. Han, J. Pool, J. Tran and W. Dally. Learning both weights and
    connections for efficient neural networks. NeurIPS 2015.
    """
    )

    name = "weight-pruning"
    search_grid = _P_GRID
    summary = "Energy after pruning the smallest |W| (Sun & Li, 2022, Table 2)"

    def __init__(self, p=0.9, *, tpr=0.95):
        self.p = p
        self.tpr = tpr

    def _build_mask(self, X, head, train_mean):
        return weight_pruning_mask(head.weight, self.p)


class UnitPruningDetector(_Ablation):
    __doc__ = (
        """Energy of the head after pruning the units with the smallest weight norm.

    Keeps the units whose weight vector ``W[i, :]`` has an L2 norm strictly
    above the ``100 p``-th percentile of the m norms, whole rows at once
    (:func:`skdice.sparsify.unit_pruning_mask`). The paper's Table 2
    "Unit-Pruning" row (Li et al., 2017).
"""
        + _PARAMS
        + _ATTRIBUTES
        + """
    Notes
    -----
    The paper's CIFAR-10 row for unit pruning equals its energy row to the
    last digit, which a mask dropping 90% of the units would not give in
    general; this detector follows the paper's text, not that number.

    References
    ----------
    H. Li, A. Kadav, I. Durdanovic, H. Samet and H. P. Graf. Pruning filters
    for efficient ConvNets. ICLR 2017.
    """
    )

    name = "unit-pruning"
    search_grid = _P_GRID
    summary = "Energy after pruning units with the smallest weight norm (Sun & Li, 2022, Table 2)"

    def __init__(self, p=0.9, *, tpr=0.95):
        self.p = p
        self.tpr = tpr

    def _build_mask(self, X, head, train_mean):
        return unit_pruning_mask(head.weight, self.p)
