"""DICE with the maximum softmax probability as the score (the paper's Table 9)."""

from __future__ import annotations

from .._dice import DICEDetector

__all__ = ["DICEMSPDetector"]


class DICEMSPDetector(DICEDetector):
    """DICE's sparsified head scored by MSP instead of energy.

    The mask is DICE's (the entries of ``V = E[h] ⊙ W`` above its ``100 p``-th
    percentile); the score is ``max_c softmax((M ⊙ W)^T h(x) + b)_c``. The
    paper's Appendix F (Table 9) reports that it improves MSP but stays behind
    DICE with energy.

    Parameters
    ----------
    p : float, default=0.9
        Sparsity in [0, 1): the fraction of weights dropped. ``p = 0`` gives MSP.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    mean_feature_, contribution_, threshold_, mask_, weight_, masked_weight_, bias_
        As in :class:`skdice.DICEDetector`.
    n_features_in_ : int
        Number of features seen during fit.
    n_samples_seen_ : int
        Rows summed so far by :meth:`partial_fit`; only after ``partial_fit``.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores (NaN when
        fitted from ``train_mean`` only).

    Notes
    -----
    Neither OpenOOD nor pytorch-ood has this combination.

    References
    ----------
    Y. Sun and Y. Li. DICE: Leveraging sparsification for out-of-distribution
    detection. ECCV 2022, Appendix F.
    """

    name = "dice-msp"
    summary = "DICE's masked head scored by the maximum softmax (Sun & Li, 2022, Table 9)"
    #: the search grid (skdice.tuning.default_grid): DICE's p sweep (Section 4.1)
    search_grid = {"p": (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)}
    #: the masked logits are reduced by the maximum softmax instead of the energy
    masked_head_reduction = "max-softmax"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.masked_head = True  # DICE's masked head, another reduction
        return tags
