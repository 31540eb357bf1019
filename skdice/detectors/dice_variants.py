"""DICE's unit-selection variants (the paper's Table 5), scored by energy.

DICE keeps the top-k entries of the contribution matrix ``V = E[h] ⊙ W``
(``k = (1 - p) m C``). These variants keep k entries of the same ``V`` chosen
otherwise: the k smallest (bottom-k), k at random (random-k), or the k / 2
largest and k / 2 smallest (top+bottom-k). Top-k is :class:`skdice.DICEDetector`.
None of them exists in OpenOOD or pytorch-ood.
"""

from __future__ import annotations

from .._numeric import column_mean
from ..sparsify import bottom_k_mask, contribution_matrix, random_k_mask, top_bottom_k_mask
from ._common import _SparseHeadEnergy

__all__ = ["DICEBottomKDetector", "DICERandomKDetector", "DICETopBottomKDetector"]


class _ContributionMasked(_SparseHeadEnergy):
    """Computes ``mean_feature_`` and ``contribution_`` like DICE, then ``_select``s a mask of V."""

    #: the search grid (skdice.tuning.default_grid): DICE's p sweep (Section 4.1);
    #: Table 5 compares the variants with DICE at the same p
    search_grid = {"p": (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # the statistics are a function of the mean training feature alone
        tags.detector_tags.accepts_train_mean = True
        tags.detector_tags.fits_from_mean = True
        tags.array_api_support = True  # the mask on the host, the masked head in X's namespace
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        self.mean_feature_ = train_mean if train_mean is not None else column_mean(X)
        self.contribution_ = contribution_matrix(self.mean_feature_, head.weight)
        # the mean and V go with the mask, so that a degenerate fit names them
        self._fit_mask(
            self._select(self.contribution_), head,
            mean=self.mean_feature_, contribution=self.contribution_,
        )


_DOC_TAIL = """
    Attributes
    ----------
    mean_feature_ : ndarray of shape (n_features,), float64
        Mean in-distribution feature (or the ``train_mean`` given to fit).
    contribution_ : ndarray of shape (n_features, n_classes), float64
        The contribution matrix ``V = mean_feature_[:, None] * W``.
    mask_ : ndarray of shape (n_features, n_classes), bool
        True for the kept weights.
    weight_ : ndarray of shape (n_features, n_classes), float32
    masked_weight_ : ndarray of shape (n_features, n_classes), float32
        ``mask_ * weight_``, the weight the score uses.
    bias_ : ndarray of shape (n_classes,), float32
        The head's bias (never masked).
    n_samples_seen_ : int
        Rows summed so far by :meth:`partial_fit`; only after ``partial_fit``.
    n_features_in_ : int
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores (NaN when
        fitted from ``train_mean`` only).

    References
    ----------
    Y. Sun and Y. Li. DICE: Leveraging sparsification for out-of-distribution
    detection. ECCV 2022, Section 5 and Table 5.
    """

_PARAMS = """
    Parameters
    ----------
    p : float, default=0.9
        Sparsity in [0, 1): ``1 - k / (m C)``, as for DICE.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.
"""


class DICEBottomKDetector(_ContributionMasked):
    __doc__ = (
        """DICE's bottom-k variant: keep the k weights of *least* contribution.

    Keeps ``V < percentile(V, 100 (1 - p))`` (:func:`skdice.sparsify.bottom_k_mask`),
    the same number of weights DICE keeps at the same p. The paper finds it
    near-useless (Table 5, FPR95 above 90%).
"""
        + _PARAMS
        + _DOC_TAIL
    )

    name = "dice-bottom-k"
    summary = "DICE ablation: keep the k least-contributing weights (Sun & Li, 2022, Table 5)"

    def __init__(self, p=0.9, *, tpr=0.95):
        self.p = p
        self.tpr = tpr

    def _select(self, V):
        return bottom_k_mask(V, self.p)


class DICERandomKDetector(_ContributionMasked):
    __doc__ = (
        """DICE's random-k variant: keep k weights chosen uniformly at random.

    Exactly DICE's count of weights, chosen at random
    (:func:`skdice.sparsify.random_k_mask`); unlike
    ``WeightDropoutDetector`` the count is fixed rather than binomial. The
    paper's Table 5 random-k row equals its Table 2 weight-dropout row on
    CIFAR, as one would expect from two random masks of the same density.

    Parameters
    ----------
    p : float, default=0.9
        Sparsity in [0, 1): ``1 - k / (m C)``, as for DICE.
    random_state : int, RandomState instance or None, default=None
        Seed of the random choice; an int makes ``fit`` reproducible.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.
"""
        + _DOC_TAIL
    )

    name = "dice-random-k"
    summary = "DICE ablation: keep k weights at random (Sun & Li, 2022, Table 5)"

    _parameter_constraints: dict = {
        **_SparseHeadEnergy._parameter_constraints,
        "random_state": ["random_state"],
    }

    def __init__(self, p=0.9, *, random_state=None, tpr=0.95):
        self.p = p
        self.random_state = random_state
        self.tpr = tpr

    def _select(self, V):
        return random_k_mask(V.shape, self.p, self.random_state)


class DICETopBottomKDetector(_ContributionMasked):
    __doc__ = (
        """DICE's top+bottom-k variant: keep the k/2 largest and k/2 smallest contributions.

    Ranks the entries of V by how far their rank lies from the median rank and
    keeps the k most extreme (:func:`skdice.sparsify.top_bottom_k_mask`), k
    being DICE's count at the same p. The paper's Table 5 "(Top+Bottom)-k".
"""
        + _PARAMS
        + _DOC_TAIL
    )

    name = "dice-top-bottom-k"
    summary = (
        "DICE ablation: keep the k/2 largest and k/2 smallest contributions "
        "(Sun & Li, 2022, Table 5)"
    )

    def __init__(self, p=0.9, *, tpr=0.95):
        self.p = p
        self.tpr = tpr

    def _select(self, V):
        return top_bottom_k_mask(V, self.p)
