"""Choose DICE's sparsity ``p`` on Gaussian-noise validation data (Section 4.1).

The paper picks ``p`` from {0.1, 0.3, 0.5, 0.7, 0.9, 0.99} with a validation
set of Gaussian-noise images as the only OOD data, because real OOD data is not
available when a model is deployed. :class:`SparsitySearch` does that search in
one pass per candidate; the same search also runs through scikit-learn's
``GridSearchCV`` (see docs/tuning.md and the Notes of the class).
"""

from __future__ import annotations

from numbers import Real
from time import perf_counter

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import _FLOAT_DTYPES, BaseDetector
from ._dice import DICEDetector
from ._head import Head
from ._numeric import column_mean, energy_scores
from .sparsify import contribution_matrix, dice_thresholds

__all__ = ["DEFAULT_GRID", "SparsitySearch", "tune_store"]

#: The paper's candidate sparsities (Section 4.1).
DEFAULT_GRID = (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)

_METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")


# ---------------------------------------------------------------- helpers
# Shared with skdice.theory: one sorted V, one masked head per p, one chunked
# scoring pass per head.


def _resolve_head(W, b, head, where):
    """The head from ``W, b`` or ``head=``; a Head passed as ``W`` is accepted."""
    if isinstance(W, Head):
        if head is not None or b is not None:
            raise TypeError(f"{where}: pass either head=Head(W, b) or W and b, not both.")
        return W
    if head is not None:
        if W is not None or b is not None:
            raise TypeError(f"{where}: pass either head=Head(W, b) or W and b, not both.")
        if not isinstance(head, Head):
            raise TypeError(f"{where}: head must be a skdice.Head, got {type(head).__name__}.")
        return head
    if W is None:
        raise ValueError(
            f"{where} needs the classifier head: pass W (n_features, n_classes) and b, "
            "or head=Head(W, b)."
        )
    return Head(W, b)


def _check_features(X, name, n_features, where):
    """Validate a 2-D float feature matrix of the head's width (float32 stays float32)."""
    X = check_array(X, dtype=_FLOAT_DTYPES, ensure_min_samples=1, input_name=name)
    if X.shape[1] != n_features:
        raise ValueError(
            f"{where}: {name} has {X.shape[1]} features but the head W has "
            f"{n_features} rows (n_features); W must be (n_features, n_classes)."
        )
    return X


def _training_mean(X, train_mean, n_features, where):
    """The mean ID training feature (float64) from ``X`` or a given ``train_mean``."""
    if X is not None and train_mean is not None:
        raise ValueError(f"{where}: pass the training features or train_mean, not both.")
    if X is not None:
        return column_mean(_check_features(X, "X", n_features, where))
    if train_mean is None:
        raise ValueError(
            f"{where} needs the ID training statistic: the training features X or "
            "train_mean=(mean feature of shape (n_features,))."
        )
    return BaseDetector._check_train_mean(train_mean, n_features)


def _check_grid(grid, where="grid"):
    """A 1-D float64 array of distinct sparsities in [0, 1)."""
    try:
        values = np.asarray(grid, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a sequence of numbers in [0, 1), got {grid!r}.") from None
    if values.size == 0:
        raise ValueError(f"{where} is empty: give at least one sparsity p in [0, 1).")
    bad = values[~((values >= 0) & (values < 1))]
    if bad.size:
        raise ValueError(f"{where}: every p must be in [0, 1), got {float(bad[0])!r}.")
    if np.unique(values).size != values.size:
        raise ValueError(f"{where} has repeated values: {values.tolist()}.")
    return values


def _masked_heads(mean_feature, head, ps):
    """Yield ``(threshold, mask, masked_weight)`` for each p, sorting ``V`` once.

    The masks are exactly :func:`skdice.sparsify.dice_mask`'s (``V > threshold``,
    everything for ``p == 0``), built afresh for every p.
    """
    V = contribution_matrix(mean_feature, head.weight)
    thresholds = dice_thresholds(V, ps)
    for threshold in thresholds:
        mask = V > threshold  # -inf for p == 0 keeps every (finite) entry
        yield float(threshold), mask, np.where(mask, head.weight, np.float32(0))


def _energy_scores(X, masked_weight, bias):
    """``logsumexp(X @ masked_weight + bias)`` row by row: DICEDetector's own scoring loop.

    One name for the search to call (and for tests to count calls of);
    :func:`skdice._numeric.energy_scores` does the work, dropping all-zero
    units from the GEMM exactly as the detector does.
    """
    return energy_scores(X, masked_weight, bias)


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
        grid = _check_grid(self.grid, "SparsitySearch grid")
        head = _resolve_head(W, b, head, where)
        m = head.n_features
        mean = _training_mean(X, train_mean, m, where)
        X_id = _check_features(X_id, "X_id", m, where)
        X_noise = _check_features(X_noise, "X_noise", m, where)

        from .metrics import aupr_in, aupr_out, auroc, fpr_at_tpr

        k = grid.size
        results = {name: np.empty(k) for name in _METRICS}
        thresholds = np.empty(k)
        n_kept = np.empty(k, dtype=np.int64)
        fit_time, score_time = np.empty(k), np.empty(k)
        id_scores = []
        heads = _masked_heads(mean, head, grid)
        for i in range(k):
            start = perf_counter()
            threshold, mask, masked_weight = next(heads)
            built = perf_counter()
            s_id = _energy_scores(X_id, masked_weight, head.bias)
            s_noise = _energy_scores(X_noise, masked_weight, head.bias)
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


def tune_store(
    store,
    *,
    id_split,
    noise_split,
    train=None,
    train_mean=None,
    grid=DEFAULT_GRID,
    metric="fpr95",
    tpr=0.95,
):
    """Run :class:`SparsitySearch` on the splits of a feature store.

    Parameters
    ----------
    store : str, path-like or skdice.store.FeatureStore
        A store written by ``skdice extract``; its head is the model's head.
    id_split : str
        Split of ID validation features.
    noise_split : str
        Split of Gaussian-noise (OOD validation) features.
    train : str, default=None
        Split of ID training features; its mean is streamed chunk by chunk
        (the split is never loaded whole). Give this or ``train_mean``.
    train_mean : array-like of shape (n_features,), str or path-like, default=None
        The mean training feature, or a ``.npy`` file holding it
        (:func:`skdice.evaluation.load_train_mean`).
    grid : sequence of float, default=(0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
    metric : {"fpr95", "auroc"}, default="fpr95"
    tpr : float, default=0.95

    Returns
    -------
    SparsitySearch
        Fitted.

    Raises
    ------
    skdice.exceptions.StoreError
        When the store or a split is missing or incomplete.
    """
    from .store import FeatureStore, open_store

    fs = store if isinstance(store, FeatureStore) else open_store(store)
    head = fs.head
    if (train is None) == (train_mean is None):
        raise ValueError("tune_store needs exactly one of train (a split) or train_mean.")
    if train is not None:
        from .streaming import iter_blocks

        total, n = np.zeros(head.n_features), 0
        # 8 MiB blocks with reads ahead: twice the speed of one store chunk per read
        for _, block in iter_blocks(fs.array(train, "features")):
            total += block.sum(axis=0, dtype=np.float64)
            n += block.shape[0]
        if n == 0:
            raise ValueError(f"split {train!r} of {fs.path} is empty: no training mean.")
        mean = total / n
    elif isinstance(train_mean, (str, bytes)) or hasattr(train_mean, "__fspath__"):
        from .evaluation import load_train_mean

        mean = load_train_mean(train_mean, head.n_features)
    else:
        mean = train_mean
    X_id = fs.features(id_split)
    X_noise = fs.features(noise_split)
    search = SparsitySearch(grid=grid, metric=metric, tpr=tpr)
    return search.fit(head=head, train_mean=mean, X_id=X_id, X_noise=X_noise)
