"""SparsitySearch: choose DICE's sparsity ``p`` on ID vs noise validation features.

Arrays in, a fitted search out (the core layer). The store-driven search is
:func:`skdice.workflows.tune.tune_store`; users import both from
:mod:`skdice.tuning`.
"""

from __future__ import annotations

from numbers import Real
from time import perf_counter

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._dice import DICEDetector
from ._numeric import column_mean, energy_scores
from ._validation import check_features, check_grid, check_train_mean, resolve_head
from .metrics import aupr_in, aupr_out, auroc, fpr_at_tpr
from .sparsify import contribution_matrix, dice_thresholds

__all__ = ["DEFAULT_GRID", "SparsitySearch", "masked_heads", "training_mean"]

#: The paper's candidate sparsities (Section 4.1).
DEFAULT_GRID = (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)

_METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")


def training_mean(X, train_mean, n_features: int, where: str) -> np.ndarray:
    """The mean ID training feature (float64) from the features ``X`` or a given ``train_mean``.

    Exactly one of the two must be given. Used by the search and by
    :mod:`skdice.theory`; a mean given as a ``.npy`` path is the workflows'
    business (:func:`skdice.workflows.resolve.resolve_train_mean`).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or None
    train_mean : array-like of shape (n_features,) or None
    n_features : int
    where : str
        The calling function, for the messages.

    Returns
    -------
    ndarray of shape (n_features,), float64
    """
    if X is not None and train_mean is not None:
        raise ValueError(f"{where}: pass the training features or train_mean, not both.")
    if X is not None:
        return column_mean(check_features(X, "X", n_features, where))
    if train_mean is None:
        raise ValueError(
            f"{where} needs the ID training statistic: the training features X or "
            "train_mean=(mean feature of shape (n_features,))."
        )
    return check_train_mean(train_mean, n_features)


def masked_heads(mean_feature, head, ps):
    """Yield ``(threshold, mask, masked_weight)`` for each p, sorting ``V`` once.

    The masks are exactly :func:`skdice.sparsify.dice_mask`'s (``V > threshold``,
    everything for ``p == 0``), built afresh for every p.

    Parameters
    ----------
    mean_feature : ndarray of shape (n_features,)
    head : Head
    ps : sequence of float in [0, 1)

    Yields
    ------
    threshold : float
    mask : ndarray of shape (n_features, n_classes), bool
    masked_weight : ndarray of shape (n_features, n_classes), float32
    """
    V = contribution_matrix(mean_feature, head.weight)
    thresholds = dice_thresholds(V, ps)
    for threshold in thresholds:
        mask = V > threshold  # -inf for p == 0 keeps every (finite) entry
        yield float(threshold), mask, np.where(mask, head.weight, np.float32(0))


class SparsitySearch(BaseEstimator):
    """Pick DICE's sparsity ``p`` by OOD detection on ID vs Gaussian-noise validation data.

    For every ``p`` of ``grid`` the search scores the in-distribution
    validation features and the noise features with DICE at that ``p`` and
    computes FPR at ``tpr``, AUROC, AUPR-In and AUPR-Out; the candidate with
    the best ``metric`` wins (Section 4.1 of the paper).

    Efficient by construction: the mean training feature is computed once, the
    contribution matrix ``V`` is sorted once and every threshold read from it
    (:func:`skdice.sparsify.dice_thresholds`), and each candidate costs one
    chunked scoring pass over the validation rows with a mask built afresh for
    that ``p``. ``best_estimator_`` is then fitted from the same mean feature
    (no pass over any rows) and calibrated on the ID validation scores
    already computed.

    Parameters
    ----------
    grid : sequence of float, default=(0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
        Candidate sparsities in [0, 1), distinct. ``cv_results_`` keeps this
        order.
    metric : {"fpr95", "auroc"}, default="fpr95"
        Selection criterion. ``"fpr95"``: FPR at ``tpr`` with ID as the positive
        class (lower is better); ``"auroc"`` (higher is better).
    tpr : float, default=0.95
        TPR for the FPR metric, and the ``tpr`` of ``best_estimator_`` (the
        fraction of ID validation rows its ``predict`` keeps).

    Attributes
    ----------
    cv_results_ : dict of ndarray
        scikit-learn's dict-of-arrays format, one entry per candidate in grid
        order, with every key GridSearchCV's single-metric ``cv_results_``
        has (so ``pandas.DataFrame(search.cv_results_)`` works as for
        GridSearchCV): ``mean_fit_time`` (building that ``p``'s mask; the
        first candidate's includes sorting ``V`` once) and ``mean_score_time``
        (scoring both validation sets and computing the metrics), with
        ``std_fit_time`` and ``std_score_time`` (zeros: one split),
        ``params`` (list of ``{"p": p}``), ``param_p`` (masked array,
        like GridSearchCV's), ``split0_test_score`` and ``mean_test_score``
        (greater is better: ``-FPR`` for ``metric="fpr95"``, as scikit-learn's
        ``neg_*`` scores and :data:`skdice.metrics.fpr95_scorer`; AUROC for
        ``"auroc"``), ``std_test_score`` (zeros: one validation split),
        ``rank_test_score`` (1 = best, tied candidates share the smallest
        rank), ``fpr95``, ``auroc``, ``aupr_in``, ``aupr_out`` (fractions,
        every metric for every candidate), ``threshold`` (the percentile of
        ``V``) and ``n_kept`` (weights kept).
    best_index_ : int
        Index of the chosen candidate in ``cv_results_``.
    best_params_ : dict
        ``{"p": best_p}``.
    best_score_ : float
        ``mean_test_score`` of the chosen candidate (``-FPR`` or AUROC).
    best_estimator_ : DICEDetector
        DICE at the chosen ``p``, fitted from the same mean feature and head.
        Its ``offset_`` is calibrated on the ID validation rows: the
        ``1 - tpr`` quantile of their scores, so ``predict`` keeps the
        fraction ``tpr`` of held-out ID data (DICEDetector.fit would calibrate
        on the training rows, which the search may never see when it is given
        ``train_mean``).
    mean_feature_ : ndarray of shape (n_features,), float64
        The mean ID training feature used for every candidate.
    n_features_in_ : int
        Width of the features.

    See Also
    --------
    skdice.DICEDetector : the detector being tuned.
    skdice.metrics.fpr95_scorer : the scorer for the GridSearchCV route.

    Notes
    -----
    **Ties** are broken toward the smaller ``p``: among the candidates with the
    best score, the smallest ``p`` wins, whatever the grid order (less
    sparsity is the less aggressive change to the model). ``GridSearchCV``
    instead takes the first best candidate in the grid's order, so the two
    routes agree on ties whenever the grid is in ascending order, as the
    default is.

    **The GridSearchCV route** gives the same choice, with more passes over
    the data::

        X = np.vstack([X_train, X_id, X_noise])
        y = np.r_[np.ones(len(X_train) + len(X_id)), np.zeros(len(X_noise))]
        fold = np.r_[-np.ones(len(X_train)), np.zeros(len(X_id) + len(X_noise))]
        GridSearchCV(DICEDetector(), {"p": list(grid)}, scoring=fpr95_scorer,
                     cv=PredefinedSplit(fold)).fit(X, y, head=Head(W, b))

    (``head=`` rather than ``W=``: GridSearchCV slices any fit parameter with
    as many rows as ``X``.)

    References
    ----------
    Y. Sun and Y. Li, "DICE: Leveraging Sparsification for Out-of-Distribution
    Detection", ECCV 2022, Section 4.1 and Table 4.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.tuning import SparsitySearch
    >>> rng = np.random.default_rng(0)
    >>> W, b = rng.normal(size=(16, 4)), np.zeros(4)
    >>> X_train = rng.random((200, 16)); X_id = rng.random((50, 16))
    >>> X_noise = rng.normal(size=(50, 16))
    >>> search = SparsitySearch().fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    >>> sorted(search.best_params_)
    ['p']
    >>> search.cv_results_["rank_test_score"].shape
    (6,)
    """

    _parameter_constraints: dict = {
        "grid": ["array-like"],
        "metric": [StrOptions({"fpr95", "auroc"})],
        "tpr": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, grid=DEFAULT_GRID, *, metric="fpr95", tpr=0.95):
        self.grid = grid
        self.metric = metric
        self.tpr = tpr

    def fit(self, X=None, W=None, b=None, *, head=None, train_mean=None, X_id, X_noise):
        """Score every candidate ``p`` and keep the best.

        The spellings follow :meth:`skdice.DICEDetector.fit`::

            search.fit(X_train, W, b, X_id=..., X_noise=...)
            search.fit(X_train, head=Head(W, b), X_id=..., X_noise=...)
            search.fit(W=W, b=b, train_mean=mu, X_id=..., X_noise=...)

        Parameters
        ----------
        X : array-like of shape (n_train, n_features), default=None
            In-distribution training features; only their mean is used
            (``mean_feature_``). Give this or ``train_mean``.
        W : array-like of shape (n_features, n_classes) or Head, default=None
            Head weight in the paper's orientation (PyTorch's ``fc.weight.T``).
        b : array-like of shape (n_classes,), default=None
            Head bias; zeros when omitted.
        head : Head, default=None
            The head as one object, instead of ``W`` and ``b``.
        train_mean : array-like of shape (n_features,), default=None
            A precomputed mean training feature, instead of ``X``.
        X_id : array-like of shape (n_id, n_features)
            In-distribution validation features (held out from training).
        X_noise : array-like of shape (n_noise, n_features)
            Features of the OOD validation set, Gaussian-noise images in the
            paper.

        Returns
        -------
        self : SparsitySearch
        """
        self._validate_params()
        where = "SparsitySearch.fit"
        grid = check_grid(self.grid, "SparsitySearch grid")
        head = resolve_head(W, b, head, where)
        m = head.n_features
        mean = training_mean(X, train_mean, m, where)
        X_id = check_features(X_id, "X_id", m, where)
        X_noise = check_features(X_noise, "X_noise", m, where)

        k = grid.size
        results = {name: np.empty(k) for name in _METRICS}
        thresholds = np.empty(k)
        n_kept = np.empty(k, dtype=np.int64)
        fit_time, score_time = np.empty(k), np.empty(k)
        id_scores = []
        heads = masked_heads(mean, head, grid)
        for i in range(k):
            start = perf_counter()
            threshold, mask, masked_weight = next(heads)
            built = perf_counter()
            s_id = energy_scores(X_id, masked_weight, head.bias)
            s_noise = energy_scores(X_noise, masked_weight, head.bias)
            results["fpr95"][i] = fpr_at_tpr(s_id, s_noise, tpr=self.tpr)
            results["auroc"][i] = auroc(s_id, s_noise)
            results["aupr_in"][i] = aupr_in(s_id, s_noise)
            results["aupr_out"][i] = aupr_out(s_id, s_noise)
            fit_time[i], score_time[i] = built - start, perf_counter() - built
            thresholds[i] = threshold
            n_kept[i] = int(mask.sum())
            id_scores.append(s_id)

        test_score = -results["fpr95"] if self.metric == "fpr95" else results["auroc"].copy()
        rank = rankdata(-test_score, method="min").astype(np.int32)
        best = np.flatnonzero(test_score == test_score.max())
        best_index = int(best[np.argmin(grid[best])])

        self.cv_results_ = {
            "mean_fit_time": fit_time,
            "std_fit_time": np.zeros(k),
            "mean_score_time": score_time,
            "std_score_time": np.zeros(k),
            "params": [{"p": float(p)} for p in grid],
            "param_p": np.ma.MaskedArray(grid.copy(), mask=np.zeros(k, dtype=bool)),
            "split0_test_score": test_score,
            "mean_test_score": test_score.copy(),
            "std_test_score": np.zeros(k),
            "rank_test_score": rank,
            **results,
            "threshold": thresholds,
            "n_kept": n_kept,
        }
        self.best_index_ = best_index
        self.best_params_ = {"p": float(grid[best_index])}
        self.best_score_ = float(test_score[best_index])
        self.mean_feature_ = mean
        self.n_features_in_ = m
        estimator = DICEDetector(p=float(grid[best_index]), tpr=self.tpr)
        estimator.fit(head=head, train_mean=mean)
        estimator.offset_ = float(np.quantile(id_scores[best_index], 1.0 - self.tpr))
        self.best_estimator_ = estimator
        return self

    def score_samples(self, X):
        """Scores of ``best_estimator_``: higher means more in-distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.best_estimator_.score_samples(X)
