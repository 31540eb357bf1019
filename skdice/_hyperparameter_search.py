"""HyperparameterSearch: tune any detector on ID vs OOD validation features.

Every candidate of the grid is fitted (without calibration: the chosen one is
calibrated on the validation scores), scores the validation rows once, and
the rule of :mod:`skdice._decision` chooses, or finds the validation
uninformative. :meth:`HyperparameterSearch._run_search` is the one hook a
search overrides to evaluate its candidates another way
(:class:`skdice._sparsity_search.SparsitySearch` scores DICE's masked heads
from one sort of ``V``), as scikit-learn's ``BaseSearchCV._run_search``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from time import perf_counter
from typing import ClassVar

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import ParameterGrid
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._base import BaseDetector, detector_tags
from ._bootstrap import DEFAULT_N_BOOTSTRAP
from ._decision import REAL, SYNTHETIC, CandidateResults, choose
from ._masked import masked_head_scores
from ._numeric import column_mean, located_errors, predicted_classes, row_blocks, scores_by_block
from ._search_grid import applicable_candidates, method_class, param_grid, same_value, spell_params
from ._streamed_fit import CheckedBlocks
from ._validation import check_rows, check_train_mean, is_block_source, resolve_head
from .exceptions import UninformativeValidationWarning

__all__ = ["DEFAULT_MAX_ACCURACY_DROP", "HyperparameterSearch", "SearchData", "TrainingInfo"]

#: Largest loss of ID accuracy (a fraction: 0.05 = 5 points) a masked head may
#: show against the dense head before the guard flags it.
DEFAULT_MAX_ACCURACY_DROP = 0.05


class TrainingInfo:
    """The training information of a search: features, their labels, a given or computed mean."""

    def __init__(self, X, y, train_mean, m, where):
        if X is not None:
            X = check_rows(X, "X", m, where)
            if is_block_source(X):
                # a block source (a store split) stays one, checked once for every candidate's
                # fit: detectors that fit from blocks read it in passes and share what the exact
                # percentiles found (a grid of clips costs one pass each); the others get it
                # loaded once (features)
                X = CheckedBlocks(X, memo=True)
        self.X = X
        self.given_mean = None if train_mean is None else check_train_mean(train_mean, m)
        self.y = None if y is None else np.asarray(y)
        self.m = m
        self.where = where
        self._mean = self.given_mean
        self._loaded = None

    @property
    def can_mean(self) -> bool:
        return self.X is not None or self.given_mean is not None

    @property
    def mean(self):
        if self._mean is None:
            self._mean = column_mean(self.X)
        return self._mean

    def one_row(self):
        if self.X is None:
            return np.zeros((1, self.m), dtype=np.float32)
        if is_block_source(self.X):
            blocks = self.X.iter_blocks()
            try:  # one block read; the reads ahead are cancelled
                return next(blocks)[1][:1].copy()
            finally:
                blocks.close()
        return self.X[:1]

    def features(self, name, streamed=False):
        """The training rows for a candidate: the block source itself if it fits ``streamed``."""
        if self.X is None:
            raise ValueError(
                f"{self.where}: method {name!r} is fitted on ID training features: pass X "
                "(a mean feature is not enough)."
            )
        if streamed or not is_block_source(self.X):
            return self.X
        if self._loaded is None:
            self._loaded = self.X.concatenate()
        return self._loaded


@dataclass
class SearchData:
    """What ``fit`` checked and hands to the evaluation hook :meth:`HyperparameterSearch._run_search`.

    Attributes
    ----------
    estimator : BaseDetector
        The base of every candidate (its ``tpr`` the search's).
    head : Head or None
    train : TrainingInfo
    X_id : array-like or block source
    noise : list of array-like or block source
        Every OOD validation set: the synthetic ones, then the real ones.
    known : ndarray of int or None
        The labelled rows of ``X_id`` (None: no label).
    y_known : ndarray or None
        Their labels.
    y_id : ndarray or None
        Every row's label (-1 unknown), when some row is labelled.
    kinds : list of str
        ``"synthetic"`` or ``"real"`` for each set of ``noise``.
    names : list of str
        The name of each set of ``noise``.
    """

    estimator: BaseDetector
    head: object
    train: TrainingInfo
    X_id: object
    noise: list
    known: object
    y_known: object
    y_id: object
    kinds: list
    names: list

    @property
    def m(self) -> int:
        return self.train.m


def _dense_classes(X, head, index):
    """The dense head's predicted class of the rows ``index`` of ``X`` (an array or a block source)."""
    if not is_block_source(X):
        # every row labelled (the usual case): no copy of the validation features
        X = X if index.size == X.shape[0] else X[index]
        index = None
    out = np.empty(int(X.shape[0]), dtype=np.int64)
    for start, block in row_blocks(X):
        out[start : start + block.shape[0]] = predicted_classes(block, head.weight, head.bias)
    return out if index is None else out[index]


def _scores_and_classes(det, X):
    """``det``'s scores of ``X`` and its classifier's classes (:meth:`~skdice.BaseDetector.predict_class`), reading ``X`` once."""
    n = int(X.shape[0])
    scores, classes = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.int64)
    blocks = X.iter_blocks() if is_block_source(X) else [(0, X)]
    for start, block in blocks:
        with located_errors(X, start, block):
            scores[start : start + block.shape[0]] = det.score_samples(block)
        classes[start : start + block.shape[0]] = det.predict_class(block)
    return scores, classes


class HyperparameterSearch(BaseEstimator):
    """Tune any detector on ID vs OOD validation features, and say when the validation cannot choose.

    For every candidate of the grid (scikit-learn's ``ParameterGrid`` order)
    the detector is fitted on the training information, then the ID
    validation rows and every OOD validation set are scored once; FPR at
    ``tpr``, AUROC, AUPR-In and AUPR-Out follow (with several OOD sets, the
    mean of each metric over the sets). The best candidate by ``metric``
    wins, unless the rule below finds the validation uninformative.

    **The rule** (docs/tuning.md, "The rule"). The search starts from the
    method's defaults (the parameters of ``method`` as given: a registered
    name's defaults, which its paper uses, DICE's p = 0.9; or, when the grid
    lacks them or the guard flags them, the eligible candidate nearest them)
    and moves to another candidate only when (a) the OOD validation sets
    include at least one real set (``X_ood``) and one synthetic set
    (``X_noise``), and (b) that candidate beats the defaults beyond sampling
    noise on *every* set: the lower end of the ``confidence`` interval of
    its improvement, from ``n_bootstrap`` paired resamples of the ID rows and
    each set (the same resamples for every candidate; no new scoring), is
    above 0. Among the candidates that pass, the best by ``metric`` (the
    mean over the sets) wins, and the search is **informative**. Otherwise
    the defaults stay; the search is informative still when they are the
    best candidate by the mean, and otherwise warns with
    :class:`~skdice.exceptions.UninformativeValidationWarning`; the reason
    names the set that decided (``decided_by_``). On the paper's CIFAR-10
    DenseNet every rule that let synthetic outliers choose alone picked
    settings that real OOD punishes (docs/tuning.md, the evidence), hence (a).

    **The guard.** When ``y_id`` (class labels of the ID validation rows,
    -1 = unknown) is given and the detector changes the classifier (the tag
    ``changes_classifier``: ReAct's clip, ASH's and SCALE's shaping, DICE,
    its variants and ablations, DICE+MSP, DICE+ReAct), each candidate's own
    classifier (:meth:`~skdice.BaseDetector.predict_class`; a masked head's
    classes come from the same logits as its score) classifies the labelled
    rows; a candidate whose accuracy falls more than ``max_accuracy_drop``
    below the dense head's is *flagged* and not eligible (``guard=False``
    keeps it eligible and only reports it).

    **Candidates that fit the data.** Before any fit, a candidate that
    cannot apply to the data (a ViM ``dim`` not below the feature width, a
    KNN ``n_neighbors`` above the training rows) and all but one of the
    candidates that act alike (GEN's ``M`` at or above the class count) are
    dropped and listed in ``dropped_params_``
    (:meth:`~skdice.BaseDetector.effective_params`).

    Parameters
    ----------
    method : str or BaseDetector, default="dice"
        A registered detector name, or a detector whose parameters are the
        base of every candidate (cloned).
    grid : dict of str to sequence, sequence or None, default=None
        ``{parameter: values}`` searched as their product; a plain sequence
        for a detector whose declared grid has one parameter; None for the
        declared grid (:func:`default_grid`). Values are checked against the
        parameter's range; values the data cannot take are dropped (above).
    metric : {"fpr95", "auroc"}, default="fpr95"
        Selection criterion: FPR at ``tpr`` (ID positive, lower is better) or
        AUROC (higher is better).
    tpr : float, default=0.95
        TPR of the FPR metric, and ``tpr`` of ``best_estimator_``.
    guard : bool, default=True
        Leave flagged candidates out of the choice.
    max_accuracy_drop : float, default=0.05
        Largest loss of ID accuracy (a fraction: 0.05 is 5 points) against
        the dense head before a candidate is flagged.
    n_bootstrap : int, default=200
        Bootstrap resamples of the validation rows.
    confidence : float, default=0.95
        Level of every interval.
    fallback : bool, default=True
        Return the fallback when the validation is uninformative; False keeps
        the best candidate by the mean metric (the warning is given either way).
    random_state : int, RandomState instance or None, default=0
        Seed of the resamples, and of every candidate of a random detector
        whose own ``random_state`` is None (a RandomState instance gives
        them one integer drawn from it): the same inputs, the same choice.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        scikit-learn's dict of arrays, one entry per candidate in grid order,
        with every key of GridSearchCV's single-metric ``cv_results_``
        (``mean_fit_time``, ``std_fit_time``, ``mean_score_time``,
        ``std_score_time``, ``params``, ``param_<name>``,
        ``split0_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``; the test score is ``-FPR`` or AUROC, greater is
        better) and besides: ``fpr95``, ``auroc``, ``aupr_in``, ``aupr_out``
        (fractions), ``fpr95_ci_low``/``_high`` and ``auroc_ci_low``/``_high``
        (the intervals), ``gap`` (how much worse than ``leader_index_`` by
        ``metric``: FPR minus the leader's, or the leader's AUROC minus this
        one's), ``gap_ci_low``/``_high``, ``worse`` (gap interval above 0),
        ``separated`` (AUROC interval above 0.5), ``id_accuracy`` (the
        candidate's classifier's; NaN without labels or for a detector that
        keeps the classifier), ``flagged`` (by the guard),
        ``beats_defaults`` (beyond sampling noise on every set) and
        ``n_kept`` (weights the masked head keeps; -1 without a mask).
    best_index_ : int
        The chosen candidate (the fallback when uninformative).
    best_params_ : dict
    best_score_ : float
        ``mean_test_score`` of the chosen candidate.
    best_estimator_ : BaseDetector
        The chosen candidate, fitted; its ``offset_`` is the ``1 - tpr``
        quantile of its ID validation scores.
    informative_ : bool
        Whether the evidence decided (the rule above): a move, or defaults
        that are the best candidate by the mean; False warns.
    informative_reason_ : str
        Why, in one sentence.
    decided_by_ : str or None
        The validation set that decided: after a move, the set where the
        chosen candidate's margin over the defaults is narrowest; otherwise
        the set where the best rival fails to beat the defaults; None when
        the sets given cannot move the choice (no real or no synthetic set).
    validation_sets_ : list of dict
        ``{"name": ..., "kind": "synthetic" | "real"}`` of every OOD
        validation set, in the order of the metrics (``X_noise``'s, then
        ``X_ood``'s; a dict's keys name them, else ``noise[i]``/``ood[i]``).
    leader_index_ : int
        The best eligible candidate by the point metric (tie rule), to which
        the gaps are taken.
    fallback_index_ : int
        The defaults' candidate (the rule's anchor), returned when uninformative.
    at_defaults_ : bool
        Whether ``best_params_`` are the method's defaults (False for a move,
        and for the candidate nearest the defaults when the guard flags them
        or the grid lacks them).
    dense_accuracy_ : float or None
        ID accuracy of the dense head on the labelled rows; None when the
        guard did not run (no labels, or a detector that keeps the classifier).
    n_labelled_ : int
        Labelled ID validation rows the accuracies are over.
    dropped_params_ : list of (dict, str)
        Candidates dropped before the search, with the reason (and declared
        candidates whose fit failed); ``skipped_params_`` is the same list.
    bootstrap_time_ : float
        Seconds spent resampling.
    n_features_in_ : int

    See Also
    --------
    SparsitySearch : the same search for DICE's ``p`` alone.
    skdice.metrics.fpr95_scorer : the GridSearchCV route.

    Notes
    -----
    Cost: every candidate is fitted (detectors fitted from the training mean
    share one mean; the calibration of ``offset_`` on the training rows is
    skipped, since ``best_estimator_`` is calibrated on the validation rows)
    and scores the validation rows once; the guard adds one dense pass over
    the labelled ID rows, so a search over G candidates makes at most G + 1
    scoring passes. The bootstrap works on the scores alone.

    The rule applies no correction for the number of candidates; requiring
    the improvement on every set (an intersection-union test) keeps a move
    at most as likely by chance as on one set.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.tuning import HyperparameterSearch
    >>> rng = np.random.default_rng(0)
    >>> W, b = rng.normal(size=(16, 4)), np.zeros(4)
    >>> X_train, X_id = rng.random((200, 16)) + 1, rng.random((80, 16)) + 1
    >>> X_noise = rng.random((80, 16))
    >>> X_ood = rng.random((80, 16)) * 0.5
    >>> search = HyperparameterSearch("react", grid={"percentile": [50, 90]})
    >>> search = search.fit(X_train, W, b, X_id=X_id, X_noise=X_noise, X_ood=X_ood)
    >>> sorted(search.best_params_), search.validation_sets_[1]
    (['percentile'], {'name': 'ood', 'kind': 'real'})
    """

    _parameter_constraints: dict = {
        "method": [str, BaseDetector],
        "grid": [dict, "array-like", None],
        "metric": [StrOptions({"fpr95", "auroc"})],
        "tpr": [Interval(Real, 0, 1, closed="neither")],
        "guard": ["boolean"],
        "max_accuracy_drop": [Interval(Real, 0, 1, closed="both")],
        "n_bootstrap": [Interval(Integral, 10, None, closed="left")],
        "confidence": [Interval(Real, 0, 1, closed="neither")],
        "fallback": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        method="dice",
        grid=None,
        *,
        metric="fpr95",
        tpr=0.95,
        guard=True,
        max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
        n_bootstrap=DEFAULT_N_BOOTSTRAP,
        confidence=0.95,
        fallback=True,
        random_state=0,
    ):
        self.method = method
        self.grid = grid
        self.metric = metric
        self.tpr = tpr
        self.guard = guard
        self.max_accuracy_drop = max_accuracy_drop
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.fallback = fallback
        self.random_state = random_state

    # ------------------------------------------------------------ set-up

    #: the parameter whose smallest value wins a tie (None: the first in grid order, as GridSearchCV)
    _tie_parameter: ClassVar[str | None] = None

    # ------------------------------------------------------------ set-up
    def _base_estimator(self):
        method = self.method
        estimator = clone(method) if isinstance(method, BaseDetector) else method_class(method)()
        params = estimator.get_params()
        if "tpr" in params:
            estimator.set_params(tpr=self.tpr)
        if "random_state" in params and params["random_state"] is None and self.random_state is not None:
            # a random detector (a random mask) is seeded by the search: the same inputs, the same choice
            seed = self.random_state
            if not isinstance(seed, Integral):
                seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
            estimator.set_params(random_state=seed)
        return estimator

    def _where(self) -> str:
        return f"{type(self).__name__}.fit"

    def _tie_order(self, candidates):
        if self._tie_parameter is None:
            return np.arange(len(candidates))
        return rankdata([c[self._tie_parameter] for c in candidates], method="ordinal")

    def fit(self, X=None, W=None, b=None, *, y=None, head=None, train_mean=None, X_id, X_noise=None,
            X_ood=None, y_id=None):
        """Fit every candidate, score the validation rows once each, and choose.

        The head is given as for :meth:`skdice.DICEDetector.fit`
        (``fit(X_train, W, b, ...)``, ``head=Head(W, b)``, or ``W=..., b=...,
        train_mean=...``).

        Parameters
        ----------
        X : array-like of shape (n_train, n_features), default=None
            ID training features. Detectors fitted from the mean feature
            only need ``train_mean`` instead.
        W : array-like of shape (n_features, n_classes) or Head, default=None
        b : array-like of shape (n_classes,), default=None
        y : array-like of shape (n_train,), default=None
            Class labels of the training rows (class-conditional detectors).
        head : Head, default=None
        train_mean : array-like of shape (n_features,), default=None
            The mean training feature, for detectors that accept one.
        X_id : array-like of shape (n_id, n_features) or block source
            ID validation features, held out from training and from testing.
            A block source (an object with ``shape`` and ``iter_blocks()``
            yielding ``(start, block)``, such as
            :class:`skdice.workflows.resolve.SplitFeatures`) is read block by
            block, once per candidate, and never held whole.
        X_noise : array-like of shape (n_ood, n_features) or block source, or a sequence or dict of them, default=None
            Synthetic OOD validation set(s): Gaussian noise, generated
            pixels, corrupted ID images. They can confirm a move from the
            defaults, never make one (the rule). A dict names them.
        X_ood : array-like of shape (n_ood, n_features) or block source, or a sequence or dict of them, default=None
            Real OOD validation set(s): images of another data set, held out
            from testing. A move from the defaults needs one of them and one
            synthetic set to agree. With several sets of either kind, every
            metric of ``cv_results_`` is their mean.
        y_id : array-like of shape (n_id,), default=None
            Class labels of the ID validation rows (-1 = unknown), for the guard.

        Returns
        -------
        self
        """
        self._validate_params()
        estimator = self._base_estimator()
        where = self._where()
        if W is None and b is None and head is None and not detector_tags(estimator).requires_head:
            head_ = None
        else:
            head_ = resolve_head(W, b, head, where)
        m = head_.n_features if head_ is not None else np.shape(X_id)[1]
        X_id = check_rows(X_id, "X_id", m, where)
        if X_noise is None and X_ood is None:
            raise ValueError(f"{where}: give OOD validation features: X_noise (synthetic) and/or X_ood (real).")
        synthetic = self._noise_sets(X_noise, m, where, "X_noise", "noise")
        real = self._noise_sets(X_ood, m, where, "X_ood", "ood")
        noise = [X for _, X in synthetic] + [X for _, X in real]
        names = [name for name, _ in synthetic] + [name for name, _ in real]
        if len(set(names)) < len(names):
            raise ValueError(f"{where}: the OOD validation sets' names repeat: {names}.")
        kinds = [SYNTHETIC] * len(synthetic) + [REAL] * len(real)
        self.validation_sets_ = [{"name": name, "kind": kind} for name, kind in zip(names, kinds)]
        known, y_known = self._labels(y_id, X_id.shape[0])
        train = TrainingInfo(X, y, train_mean, m, where)
        data = SearchData(estimator, head_, train, X_id, noise, known, y_known,
                          None if known is None else np.asarray(y_id), kinds, names)
        candidates, results, columns = self._run_search(data)
        self._finish(data, candidates, results, columns)
        return self

    @staticmethod
    def _noise_sets(X_noise, m, where, argument, prefix):
        """``[(name, features), ...]`` of one argument's OOD sets (a dict names them)."""
        if X_noise is None:
            return []
        if isinstance(X_noise, dict):
            named = [(str(k), v) for k, v in X_noise.items()]
        elif isinstance(X_noise, (list, tuple)) and X_noise and (
            is_block_source(X_noise[0]) or np.ndim(X_noise[0]) == 2
        ):
            named = [(f"{prefix}[{i}]", v) for i, v in enumerate(X_noise)]
        else:
            named = [(prefix, X_noise)]
        if not named:
            raise ValueError(f"{where}: {argument} holds no OOD validation set.")
        return [(name, check_rows(Xn, argument, m, where)) for name, Xn in named]

    def _labels(self, y_id, n_id):
        if y_id is None:
            return None, None
        y_id = np.asarray(y_id)
        if y_id.ndim != 1 or y_id.shape[0] != n_id:
            raise ValueError(
                f"y_id must hold one class label per row of X_id ({n_id}), got shape {y_id.shape}."
            )
        if y_id.dtype.kind not in "iu":
            raise ValueError(f"y_id must hold integer class labels (-1 = unknown), got dtype {y_id.dtype}.")
        known = np.flatnonzero(y_id >= 0)
        if known.size == 0:
            return None, None
        return known, y_id[known]


    # ------------------------------------------------------- the hook
    def _run_search(self, data):
        """Evaluate every candidate: the one hook a search overrides (as ``BaseSearchCV._run_search``).

        Fits each candidate of the grid (``param_grid``) and scores the
        validation rows with it; sets ``dropped_params_``,
        ``dense_accuracy_`` and ``n_labelled_``.

        Parameters
        ----------
        data : SearchData

        Returns
        -------
        candidates : list of dict
            The candidates evaluated, in grid order.
        results : CandidateResults
            Their scores, metrics, times and guard figures.
        columns : dict
            Columns of ``cv_results_`` of the search's own (replacing or
            following the common ones).
        """
        grid, is_declared = param_grid(self.grid, data.estimator)
        results = CandidateResults(len(data.noise))
        train_rows = None if data.train.X is None else int(data.train.X.shape[0])
        candidates, self.dropped_params_ = applicable_candidates(
            data.estimator, list(ParameterGrid(grid)), n_features=data.m,
            n_classes=None if data.head is None else data.head.n_classes, n_samples=train_rows,
        )
        self.skipped_params_ = self.dropped_params_  # the former name of the same list
        self.dense_accuracy_ = None
        guard_rows = data.known if data.known is not None and data.head is not None else None
        evaluated = []
        for params in candidates:
            start = perf_counter()
            try:
                det = self._fit_candidate(data.estimator, params, data.train, data.head)
            except ValueError as exc:
                if is_declared:
                    self.dropped_params_.append((params, str(exc)))
                    continue
                raise ValueError(f"candidate {spell_params(params)}: {exc}") from None
            fitted = perf_counter()
            s_id, s_noise, predicted, n_kept = self._score(det, data.X_id, data.noise, guard_rows)
            if predicted is not None and self.dense_accuracy_ is None:
                dense = _dense_classes(data.X_id, data.head, guard_rows)
                self.dense_accuracy_ = float(np.mean(dense == data.y_known))
            accuracy = np.nan if predicted is None else float(np.mean(predicted == data.y_known))
            results.add(s_id, s_noise, self.tpr, fitted - start, accuracy, n_kept)
            results.score_time[-1] = perf_counter() - fitted
            evaluated.append(params)
        if not evaluated:
            raise ValueError(
                "no candidate of the grid fits these data: "
                + "; ".join(f"{spell_params(p)}: {msg}" for p, msg in self.dropped_params_)
            )
        self.n_labelled_ = 0 if self.dense_accuracy_ is None else int(guard_rows.size)
        return evaluated, results, {}

    def _fit_candidate(self, estimator, params, train, head):
        det = clone(estimator).set_params(**params)
        tags = detector_tags(det)
        if tags.fits_from_mean and head is not None and train.can_mean:
            return det.fit_from_mean(head, train.mean)
        if not tags.uses_features and head is not None and not tags.requires_class_labels:
            # the scores are a function of the head alone: any one row fits it
            return det.fit(train.one_row(), head=head)
        X = train.features(type(det).name or type(det).__name__, tags.streamed_fit)
        kwargs = {"head": head} if head is not None else {}
        if train.given_mean is not None and tags.accepts_train_mean:
            kwargs["train_mean"] = train.given_mean
        if tags.requires_class_labels:
            if train.y is None:
                raise ValueError(f"{type(det).__name__} needs the class labels y of the training rows.")
            kwargs["y"] = train.y
        # no scoring of every training row for offset_: the search calibrates the
        # chosen candidate on the ID validation scores instead
        return det.fit(X, calibrate=False, **kwargs)

    @staticmethod
    def _score(det, X_id, noise, guard_rows):
        tags = detector_tags(det)
        masked = tags.masked_head
        if masked and guard_rows is not None:
            # the guard's classes from the very logits of the scores (one pass)
            s_id, classes = masked_head_scores(det, X_id, classes=True)
            predicted = classes[guard_rows]
        elif tags.changes_classifier and guard_rows is not None:
            # its own classifier (predict_class) on each block as it is read: one read of X_id
            s_id, classes = _scores_and_classes(det, X_id)
            predicted = classes[guard_rows]
        else:
            s_id, predicted = scores_by_block(X_id, det.score_samples), None
        s_noise = [scores_by_block(Xn, det.score_samples) for Xn in noise]
        return s_id, s_noise, predicted, int(det.mask_.sum()) if masked else -1

    # ------------------------------------------------------- the choice
    def _finish(self, data, candidates, results, columns):
        G = len(candidates)
        params = data.estimator.get_params()
        defaults = {key: params[key] for key in candidates[0]}
        choice = choose(
            results, candidates, defaults, self._tie_order(candidates), metric=self.metric,
            tpr=self.tpr, guard=self.guard, max_accuracy_drop=self.max_accuracy_drop,
            dense_accuracy=self.dense_accuracy_, n_bootstrap=self.n_bootstrap,
            confidence=self.confidence, fallback=self.fallback, random_state=self.random_state,
            kinds=data.kinds, names=data.names,
        )
        self.bootstrap_time_ = choice.bootstrap_time
        self.cv_results_ = {
            "mean_fit_time": np.asarray(results.fit_time),
            "std_fit_time": np.zeros(G),
            "mean_score_time": np.asarray(results.score_time),
            "std_score_time": np.zeros(G),
            "params": [dict(c) for c in candidates],
            **_param_columns(candidates),
            **choice.columns,
        }
        self.cv_results_.update(columns)
        chosen = choice.chosen
        self.best_index_ = chosen
        self.best_params_ = dict(candidates[chosen])
        self.best_score_ = float(choice.test_score[chosen])
        self.informative_ = choice.informative
        self.informative_reason_ = choice.reason
        self.leader_index_ = choice.leader
        self.fallback_index_ = choice.fallback
        defaults = self._base_estimator().get_params()
        self.at_defaults_ = all(same_value(v, defaults.get(k)) for k, v in self.best_params_.items())
        self.decided_by_ = None if choice.decided_by is None else data.names[choice.decided_by]
        self.n_features_in_ = data.m
        best = self._fit_candidate(data.estimator, candidates[chosen], data.train, data.head)
        best.offset_ = float(np.quantile(results.id_scores[chosen], 1.0 - self.tpr))
        self.best_estimator_ = best
        if not choice.informative:
            warnings.warn(self._warning_text(), UninformativeValidationWarning, stacklevel=3)

    def _warning_text(self) -> str:
        returned = spell_params(self.best_params_)
        if not self.fallback:
            what = f"returning the best candidate {returned} anyway (fallback=False)"
        elif self.at_defaults_:
            what = f"returning the fallback {returned} (the method's default)"
        else:
            what = f"returning the fallback {returned} (the candidate nearest the method's default)"
        return f"validation cannot choose: {self.informative_reason_}; {what}."

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


def _param_columns(candidates):
    columns = {}
    for name in candidates[0]:
        values = np.empty(len(candidates), dtype=object)
        values[:] = [c[name] for c in candidates]
        columns[f"param_{name}"] = np.ma.MaskedArray(values, mask=np.zeros(len(candidates), dtype=bool))
    return columns
