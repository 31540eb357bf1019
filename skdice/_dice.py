"""DICEDetector: directed sparsification of the classifier head (Sun & Li, 2022)."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._array_api import array_space, device_of, weight_as
from ._base import BaseDetector
from ._dispatch import check_namespace, validate_rows
from ._masked import MaskedHeadMixin
from ._numeric import column_mean, logit_blocks, row_chunks
from ._validation import FLOAT_DTYPES, validate_data
from .sparsify import contribution_matrix, dice_mask

__all__ = ["DICEDetector"]


class DICEDetector(MaskedHeadMixin, BaseDetector):
    """DICE: score inputs by the energy of a sparsified classifier head.

    DICE ranks the weights of the final linear layer by their average
    contribution on in-distribution data, ``V = E_x[W ⊙ h(x)] =
    mean_feature[:, None] * W``, keeps the entries of ``V`` above its ``p``-th
    quantile, and scores an input by the negative energy of the masked logits,
    ``S(x) = logsumexp((M ⊙ W)^T h(x) + b)``. It is post hoc: the original head
    still classifies.

    Parameters
    ----------
    p : float, default=0.9
        Sparsity in [0, 1): the fraction of weights dropped. ``p = 0`` is the
        dense head, i.e. the energy score.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    mean_feature_ : ndarray of shape (n_features,), float64
        Mean in-distribution feature (float64 accumulation), or the
        ``train_mean`` given to fit.
    contribution_ : ndarray of shape (n_features, n_classes), float64
        The contribution matrix V.
    threshold_ : float
        ``numpy.percentile(V, 100 p)``; ``-inf`` when ``p == 0``.
    mask_ : ndarray of shape (n_features, n_classes), bool
        True for the kept weights (``V > threshold_``).
    weight_ : ndarray of shape (n_features, n_classes), float32
        The original head weight W.
    masked_weight_ : ndarray of shape (n_features, n_classes), float32
        ``mask_ * weight_``, the weight DICE scores with.
    bias_ : ndarray of shape (n_classes,), float32
        The head's bias (never masked).
    n_features_in_ : int
        Number of features seen during fit.
    n_samples_seen_ : int
        Rows summed so far by :meth:`partial_fit`; only after ``partial_fit``.
    offset_ : float
        Offset used to define the decision function from the raw scores:
        ``decision_function = score_samples - offset_``. It is the
        ``1 - tpr`` quantile of the fitting samples' scores, so that ``predict``
        keeps the fraction ``tpr`` of them as in-distribution (the paper's
        threshold at 95% TPR). NaN when fitted from ``train_mean`` alone.

    See Also
    --------
    skdice.detectors.EnergyDetector : the dense baseline (``p = 0``).
    skdice.tuning.SparsitySearch : choose ``p`` on Gaussian-noise validation data.

    Notes
    -----
    Section 3 of the paper: Eq. (2) is ``contribution_``, Eq. (3) the masked
    logits (:meth:`logits`), Eq. (4) the thresholding behind :meth:`predict`
    (``S >= offset_`` is ID) and Eq. (5) the score. The threshold rule,
    ``V > percentile`` with linear interpolation, matches the official code,
    OpenOOD and pytorch-ood, so scores agree with theirs to float precision
    (OpenOOD and the
    official code return the same sign; pytorch-ood returns the negation).
    Ties at the threshold are all dropped, so the kept fraction can fall below
    ``1 - p`` (see :func:`skdice.sparsify.dice_mask`). A fit that keeps no
    weight, or only zero weights, scores every input alike; it warns with
    :class:`~skdice.exceptions.DegenerateFitWarning`, naming the cause.

    References
    ----------
    Y. Sun and Y. Li, "DICE: Leveraging Sparsification for Out-of-Distribution
    Detection", ECCV 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice import DICEDetector
    >>> rng = np.random.default_rng(0)
    >>> H = rng.random((100, 8))
    >>> W, b = rng.normal(size=(8, 3)), np.zeros(3)
    >>> det = DICEDetector(p=0.5).fit(H, W, b)
    >>> int(det.mask_.sum())
    12
    >>> det.predict(H[:3])
    array([1, 1, 1])
    """

    name = "dice"
    summary = "DICE: energy of the head sparsified by ID contribution (Sun & Li, 2022)"
    #: the search grid (skdice.tuning.default_grid): the paper's p sweep, Section 4.1
    search_grid = {"p": (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "p": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(self, p=0.9, *, tpr=0.95):
        self.p = p
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # the statistics are a function of the mean training feature alone
        tags.detector_tags.accepts_train_mean = True
        tags.detector_tags.fits_from_mean = True
        # the score is the energy of the masked head (MaskedHeadMixin.score_block)
        tags.detector_tags.masked_head = True
        tags.detector_tags.changes_classifier = True  # the masked head classifies
        tags.array_api_support = True  # fitted and scored in X's namespace (docs/api.md)
        return tags

    def fit_statistics(self, X, y, head, train_mean):
        self.mean_feature_ = train_mean if train_mean is not None else column_mean(X)
        self.contribution_ = contribution_matrix(self.mean_feature_, head.weight)
        mask, self.threshold_ = dice_mask(self.contribution_, self.p)
        self._fit_mask(
            mask, head, mean=self.mean_feature_, contribution=self.contribution_,
            threshold=self.threshold_,
        )

    def logits(self, X, *, masked=True):
        """Logits of the masked (DICE) or original head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        masked : bool, default=True
            True for ``X @ masked_weight_ + bias_``, False for the original head.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float32
            In ``X``'s namespace under Array API dispatch.
        """
        check_is_fitted(self)
        check_namespace(self, X, "logits")
        weight = self.masked_weight_ if masked else self.weight_
        space = array_space(X, self)
        if space is not None:
            return _logits_in_namespace(validate_rows(self, X, space, reset=False), weight, self.bias_)
        X = validate_data(self, X, reset=False, dtype=FLOAT_DTYPES)
        out = np.empty((X.shape[0], weight.shape[1]), dtype=np.float32)
        for rows, logits in logit_blocks(X, weight, self.bias_):
            out[rows] = logits
        return out

    def predict_class(self, X, *, masked=True):
        """Class predictions of the masked or original head.

        DICE does not change how the model classifies: use ``masked=False``
        for the deployed classifier, ``masked=True`` to see what the
        sparsified head alone would predict.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        masked : bool, default=True

        Returns
        -------
        ndarray of shape (n_samples,), int64
            Argmax of the logits.
        """
        logits = self.logits(X, masked=masked)
        if isinstance(logits, np.ndarray):
            return logits.argmax(axis=1)
        xp = array_space(logits)[0]
        return xp.astype(xp.argmax(logits, axis=1), xp.int64)


def _logits_in_namespace(X, weight, bias):
    """:meth:`DICEDetector.logits` chunk by chunk on ``X``'s device, float32 out."""
    xp = array_space(X)[0]
    dtype = xp.float64 if X.dtype == xp.float64 else xp.float32
    n, m = X.shape
    out = xp.empty((n, weight.shape[1]), dtype=xp.float32, device=device_of(X))
    weight = weight_as(weight, dtype)
    for rows in row_chunks(n, 4 * (m + weight.shape[1])):
        Z = xp.astype(X[rows, ...], dtype, copy=False) @ weight
        Z += bias
        out[rows, ...] = xp.astype(Z, xp.float32, copy=False)
    return out
