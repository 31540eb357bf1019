"""The paper's logit baselines: MSP, MaxLogit, Energy and ODIN (Appendix B).

Each scores an input from the logits ``f(x) = W^T h(x) + b`` of the dense
head; higher means more in-distribution.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._array_api import namespace
from .._numeric import logsumexp_rows, max_softmax_rows
from ._common import _HeadDetector


class _Baseline(_HeadDetector):
    """The four logit baselines: scored in any namespace (tag ``array_api_support``)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags

__all__ = ["EnergyDetector", "MaxLogitDetector", "MSPDetector", "ODINDetector"]


class MSPDetector(_Baseline):
    """Maximum softmax probability (Hendrycks & Gimpel, 2017).

    ``S(x) = max_c softmax(f(x))_c`` with ``f(x) = W^T h(x) + b``.

    Parameters
    ----------
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    weight_ : ndarray of shape (n_features, n_classes), float32
        The head weight W.
    bias_ : ndarray of shape (n_classes,), float32
        The head bias b.
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        ``decision_function = score_samples - offset_``; the ``1 - tpr``
        quantile of the fitting samples' scores.

    Notes
    -----
    OpenOOD's ``MSPPostprocessor`` returns the same score; pytorch-ood's
    ``MaxSoftmax`` returns its negative (an outlier score).

    References
    ----------
    D. Hendrycks and K. Gimpel. A baseline for detecting misclassified and
    out-of-distribution examples in neural networks. ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.baselines import MSPDetector
    >>> H = np.eye(3, dtype=np.float32)
    >>> det = MSPDetector().fit(H, np.eye(3) * np.log(2.0))
    >>> det.score_samples(H).round(3)
    array([0.5, 0.5, 0.5])
    """

    name = "msp"
    #: nothing to tune (skdice.tuning.default_grid)
    search_grid = {}
    summary = "Maximum softmax probability (Hendrycks & Gimpel, 2017)"

    def __init__(self, *, tpr=0.95):
        self.tpr = tpr

    def _score_logits(self, Z):
        return max_softmax_rows(Z)


class MaxLogitDetector(_Baseline):
    """Maximum logit (Hendrycks et al., 2022).

    ``S(x) = max_c f_c(x)`` with ``f(x) = W^T h(x) + b``.

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
    OpenOOD's ``MaxLogitPostprocessor`` (``mls``) returns the same score;
    pytorch-ood's ``MaxLogit`` returns its negative.

    References
    ----------
    D. Hendrycks, S. Basart, M. Mazeika, A. Zou, J. Kwon, M. Mostajabi,
    J. Steinhardt and D. Song. Scaling out-of-distribution detection for
    real-world settings. ICML 2022.
    """

    name = "maxlogit"
    #: nothing to tune (skdice.tuning.default_grid)
    search_grid = {}
    summary = "Maximum logit (Hendrycks et al., 2022)"

    def __init__(self, *, tpr=0.95):
        self.tpr = tpr

    def _score_logits(self, Z):
        if isinstance(Z, np.ndarray):
            return Z.max(axis=1).astype(np.float64)
        xp = namespace(Z)
        return xp.astype(xp.max(Z, axis=1), xp.float64)


class EnergyDetector(_Baseline):
    """Negative free energy of the logits (Liu et al., 2020).

    ``S(x) = -E(x; f) = T log sum_c exp(f_c(x) / T)`` (the paper's Eq. 5 on
    the dense head). DICE with ``p = 0`` gives the same scores.

    Parameters
    ----------
    temperature : float, default=1.0
        Temperature T > 0. The paper and Liu et al. use T = 1.
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
    OpenOOD's ``EBOPostprocessor`` returns the same score (``T *
    logsumexp(logits / T)``); pytorch-ood's ``EnergyBased`` returns its
    negative, the energy itself.

    References
    ----------
    W. Liu, X. Wang, J. Owens and Y. Li. Energy-based out-of-distribution
    detection. NeurIPS 2020.
    """

    name = "energy"
    #: nothing to tune (skdice.tuning.default_grid): the energy score is used at
    #: T = 1, "does not require hyperparameter tuning" (the DICE paper, Appendix B)
    search_grid = {}
    summary = "Negative energy, T logsumexp(logits / T) (Liu et al., 2020)"

    _parameter_constraints: dict = {
        **_HeadDetector._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, temperature=1.0, *, tpr=0.95):
        self.temperature = temperature
        self.tpr = tpr

    def _score_logits(self, Z):
        return logsumexp_rows(Z, float(self.temperature))


class ODINDetector(_Baseline):
    """ODIN's temperature-scaled softmax, without input perturbation (ε = 0).

    ``S(x) = max_c softmax(f(x) / T)_c`` with ``T = 1000``.

    ODIN (Liang et al., 2018) also perturbs the input image along the gradient
    of the softmax score with magnitude ε. That needs gradients through the
    whole network, which stored penultimate features cannot provide, so this
    detector is the **ε = 0 variant**: temperature scaling alone. For
    reference, the official settings of ε: the ODIN paper's DenseNet-BC on
    CIFAR-10 uses T = 1000, ε = 0.0014 (also OpenOOD's ``odin.yml`` default,
    which sweeps ε in {0.0014, 0.0028} and T in {1, 10, 100, 1000}); the DICE
    paper used ε = 0 for ImageNet (Appendix B: "the input perturbation does
    not further improve the OOD detection performance") and ε = 0.004 for its
    CIFAR rows. None of them can be applied to stored features.

    Parameters
    ----------
    temperature : float, default=1000.0
        Temperature T > 0 (the paper's setting for all datasets).
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
    At T = 1000 the scores all lie just above ``1 / C``; they are computed as
    ``exp((max f - T logsumexp(f / T)) / T)`` in float64 so that their order
    is not lost to rounding. OpenOOD's ``ODINPostprocessor`` with ``noise =
    0`` and pytorch-ood's ``ODIN`` with ``eps = 0`` compute the same score
    (pytorch-ood with the opposite sign).

    References
    ----------
    S. Liang, Y. Li and R. Srikant. Enhancing the reliability of
    out-of-distribution image detection in neural networks. ICLR 2018.
    """

    name = "odin"
    #: the search grid (skdice.tuning.default_grid): the temperatures the ODIN paper
    #: tuned over (its choice, and the DICE paper's, T = 1000; OpenOOD sweeps 1, 10,
    #: 100, 1000, all in this grid)
    search_grid = {"temperature": (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)}
    summary = "ODIN temperature scaling, T = 1000, no input perturbation (Liang et al., 2018)"

    _parameter_constraints: dict = {
        **_HeadDetector._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, temperature=1000.0, *, tpr=0.95):
        self.temperature = temperature
        self.tpr = tpr

    def _score_logits(self, Z):
        return max_softmax_rows(Z, float(self.temperature))
