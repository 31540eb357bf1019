"""Hyperparameter searches on ID vs OOD validation features, and when they cannot choose.

:class:`HyperparameterSearch` tunes any registered detector over the grid its
class declares (``search_grid``, from its own paper's sweep) or over a given
one; :class:`SparsitySearch` is its specialisation to DICE's sparsity ``p``
(Section 4.1 of the paper), with its own names and tie rule. Both score every
candidate once on the validation rows, then decide from those scores alone
whether the validation set can choose at all:

- a paired bootstrap over the validation rows (ID and OOD rows resampled
  independently, the same resamples for every candidate) gives each
  candidate's FPR and AUROC an interval and each candidate's difference to
  the best one an interval;
- the choice is *informative* when the OOD set is separated from ID at some
  candidate (AUROC interval above 0.5) and at least one candidate is worse
  than the best beyond sampling noise (its difference interval above 0);
- with class labels for the ID rows, candidates whose masked head loses more
  than ``max_accuracy_drop`` of ID accuracy against the dense head are flagged
  and not chosen (the guard);
- when uninformative the search returns the detector's default parameters
  (DICE: the paper's p = 0.9) and warns with
  :class:`~skdice.exceptions.UninformativeValidationWarning`.

Arrays in, a fitted search out (the core layer). The store-driven search is
:func:`skdice.workflows.tune.tune_store`; users import everything from
:mod:`skdice.tuning`.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from time import perf_counter

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import ParameterGrid
from sklearn.utils._param_validation import InvalidParameterError, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseDetector, available_detectors, detector_tags
from ._bootstrap import (
    DEFAULT_N_BOOTSTRAP,
    Placement,
    bootstrap_placements,
    paired_bootstrap,
    rank_of_tpr,
)
from ._dice import DICEDetector
from ._numeric import (
    active_units,
    column_mean,
    compute_dtype,
    energy_scores,
    located_errors,
    logsumexp_rows,
    max_softmax_rows,
    predicted_classes,
    row_blocks,
    row_chunks,
    scores_by_block,
)
from ._validation import (
    check_features,
    check_grid,
    check_rows,
    check_train_mean,
    is_block_source,
    raise_non_finite,
    resolve_head,
)
from .detectors._common import _SparseHeadEnergy
from .detectors.dice_msp import DICEMSPDetector
from .detectors.react import DICEReActDetector
from .exceptions import UninformativeValidationWarning
from .sparsify import contribution_matrix, dice_thresholds

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_MAX_ACCURACY_DROP",
    "DEFAULT_N_BOOTSTRAP",
    "HyperparameterSearch",
    "SparsitySearch",
    "default_grid",
    "masked_heads",
    "paired_bootstrap",
    "training_mean",
]

#: The paper's candidate sparsities (Section 4.1).
DEFAULT_GRID = (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)

#: Largest loss of ID accuracy (a fraction: 0.05 = 5 points) a masked head may
#: show against the dense head before the guard flags it.
DEFAULT_MAX_ACCURACY_DROP = 0.05

_METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")

# Rows of logits per slice of the fused argmax + reduction (the scoring kernel's slice).
_SLICE_ROWS = 128


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


def _detector_class(method):
    if isinstance(method, str):
        registry = available_detectors()
        if method not in registry:
            raise ValueError(
                f"unknown method {method!r}; choose from: {', '.join(registry)} "
                "(`skdice methods` lists them)."
            )
        return registry[method]
    if isinstance(method, type) and issubclass(method, BaseDetector):
        return method
    if isinstance(method, BaseDetector):
        return type(method)
    raise TypeError(
        f"method must be a registered detector name or a skdice detector, got {type(method).__name__}."
    )


def default_grid(method) -> dict:
    """The search grid a detector declares: ``{parameter: (values, ...)}``.

    Every registered detector declares, as the class attribute
    ``search_grid``, the values of its hyperparameters that its own paper
    swept (docs/tuning.md lists them with their sources); an empty dict means
    nothing to tune. This function is the one reader of that declaration: the
    searches, ``skdice tune --method`` and ``skdice evaluate --tune-id`` all
    call it.

    Parameters
    ----------
    method : str, detector class or detector instance
        A registry name (``"react"``) or a detector.

    Returns
    -------
    dict of str to tuple
        A copy; values in the declared order. ``{}`` for a detector that
        declares nothing (or no grid at all).

    Examples
    --------
    >>> default_grid("dice")
    {'p': (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)}
    """
    cls = _detector_class(method)
    declared = getattr(cls, "search_grid", None) or {}
    return {name: tuple(values) for name, values in declared.items()}


# ------------------------------------------------------------------ scoring
def _masked_logit_kernel(det):
    """How ``det`` scores from its masked head's logits, or None when it does not.

    Returns ``(transform, reduce, packed)`` for the detectors whose score is a
    function of ``transform(X) @ masked_weight_ + bias_`` (DICE and its
    variants, the ablations, DICE+MSP, DICE+ReAct), so that the class argmax
    of the guard comes from the very logits of the score; ``"generic"`` for
    another detector with a ``masked_weight_``; None for a detector that does
    not mask its head. The identity test on ``score_block`` makes sure the
    kernel is the detector's own and not an override.
    """
    if not hasattr(det, "masked_weight_"):
        return None
    block = type(det).score_block
    if block is DICEDetector.score_block or block is _SparseHeadEnergy.score_block:
        return None, logsumexp_rows, True
    if block is DICEMSPDetector.score_block:
        return None, max_softmax_rows, False
    if block is DICEReActDetector.score_block:
        clip = det.threshold_
        return (lambda X: np.minimum(X, X.dtype.type(clip))), logsumexp_rows, True
    return "generic"


def _scores_and_classes(X, det, kernel):
    """Scores of ``det`` and the argmax of its masked head's logits, in one pass over ``X``.

    The logits of each chunk are computed once and give both the score and
    the predicted class (for the known kernels); equal to ``score_samples``
    up to float32 rounding. ``X`` may be a block source, read once.
    """
    n = int(X.shape[0])
    scores = np.empty(n, dtype=np.float64)
    classes = np.empty(n, dtype=np.int64)
    for start, block in row_blocks(X):
        with located_errors(X, start, block):
            rows = slice(start, start + block.shape[0])
            scores[rows], classes[rows] = _block_scores_and_classes(block, det, kernel)
    return scores, classes


def _block_scores_and_classes(X, det, kernel):
    weight, bias = det.masked_weight_, det.bias_
    n, m = X.shape
    C = weight.shape[1]
    dtype = compute_dtype(X)
    scores = np.empty(n, dtype=np.float64)
    classes = np.empty(n, dtype=np.int64)
    if kernel == "generic":
        transform = reduce = None
        units, packed = None, weight
    else:
        transform, reduce, pack = kernel
        units, packed = active_units(weight, dtype=dtype) if pack else (None, weight)
    for rows in row_chunks(n, dtype.itemsize * (m + 2 * max(m, C))):
        with np.errstate(over="ignore", invalid="ignore"):
            block = np.asarray(X[rows], dtype=dtype)
            if kernel == "generic":
                s = det.score_block(block)
                logits = block @ weight
                logits += bias
                classes[rows] = logits.argmax(axis=1)
            else:
                source = block if transform is None else transform(block)
                logits = (source if units is None else np.take(source, units, axis=1)) @ packed
                s = np.empty(logits.shape[0], dtype=np.float64)
                for start in range(0, logits.shape[0], _SLICE_ROWS):
                    z = logits[start : start + _SLICE_ROWS]
                    z += bias
                    classes[rows.start + start : rows.start + start + z.shape[0]] = z.argmax(axis=1)
                    s[start : start + z.shape[0]] = reduce(z)
                # a NaN or inf in a dropped unit, or clipped to a finite value, must not
                # hide: a clip is checked row by row, dropped units by a product with ones
                if transform is not None:
                    s[~np.isfinite(block).all(axis=1)] = np.nan
                elif units is not None:
                    s[~np.isfinite(block @ np.ones(m, dtype=block.dtype))] = np.nan
        if not np.isfinite(s).all():
            raise_non_finite(block, s, rows.start)
        scores[rows] = s
    return scores, classes


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


# ----------------------------------------------------------------- the rule
def _decide(*, metric, point, replicates, auroc_replicates, eligible, tie_order, fallback, confidence):
    """Apply the informativeness rule; returns the chosen index and the record of why."""
    alpha = 1.0 - confidence
    q = [alpha / 2, 1 - alpha / 2]
    G = point.size
    # "better" is lower FPR or higher AUROC: work with the metric as a loss
    loss = point if metric == "fpr95" else -point
    loss_rep = replicates if metric == "fpr95" else -replicates
    pool = np.flatnonzero(eligible) if eligible.any() else np.arange(G)
    best = loss[pool].min()
    tied = pool[loss[pool] == best]
    leader = int(tied[np.argmin(tie_order[tied])])
    gap_rep = loss_rep - loss_rep[leader]
    gap_lo, gap_hi = np.quantile(gap_rep, q, axis=1)
    auc_lo = np.quantile(auroc_replicates, alpha / 2, axis=1)
    separated = auc_lo > 0.5
    worse = (gap_lo > 0) & eligible
    worse[leader] = False
    label = "FPR" if metric == "fpr95" else "AUROC"
    level = f"{100 * confidence:g}%"
    if not eligible.any():
        reason = "every candidate breaks the classifier: the ID-accuracy guard flags all of them"
        informative = False
    elif not separated[eligible].any():
        reason = (
            f"the OOD validation set is not separated from ID at any candidate: no AUROC {level} "
            f"interval lies above 50% (the highest lower end is {100 * auc_lo[eligible].max():.1f}%)"
        )
        informative = False
    elif not worse.any():
        others = int(eligible.sum()) - 1
        reason = (
            "only one candidate passes the ID-accuracy guard"
            if others == 0
            else f"every candidate is within sampling noise of the best: the {level} paired-bootstrap "
            f"interval of each {label} difference includes 0"
        )
        informative = False
    else:
        reason = (
            f"the best candidate beats {int(worse.sum())} of {int(eligible.sum()) - 1} others beyond "
            f"sampling noise: {level} paired-bootstrap intervals of the {label} differences above 0"
        )
        informative = True
    chosen = leader if informative else fallback
    return chosen, leader, informative, reason, gap_rep, gap_lo, gap_hi, separated, worse


def _fallback_index(candidates, defaults, tie_order, eligible):
    """The eligible candidate equal to the default parameters, else the nearest eligible one.

    Nearest: the smallest sum over the parameters of ``|value - default|``
    divided by the parameter's span in the grid (a non-numeric value counts
    1 unless it equals the default); ties by the tie rule. When no candidate
    is eligible, all of them are considered.
    """
    pool = np.flatnonzero(eligible) if eligible.any() else np.arange(len(candidates))
    distance = np.zeros(len(candidates))
    for name in candidates[0]:
        values = [c[name] for c in candidates]
        default = defaults.get(name)
        if _is_number(default) and all(_is_number(v) for v in values):
            span = float(max(values) - min(values)) or 1.0
            distance += np.abs(np.asarray(values, dtype=np.float64) - float(default)) / span
        else:
            distance += np.array([0.0 if _same(v, default) else 1.0 for v in values])
    nearest = pool[distance[pool] == distance[pool].min()]
    return int(nearest[np.argmin(tie_order[nearest])])


def _is_number(value) -> bool:
    return isinstance(value, (Real, np.number)) and not isinstance(value, bool)


def _same(a, b) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return a is b or a == b


# ---------------------------------------------------------------- estimators
class HyperparameterSearch(BaseEstimator):
    """Tune any detector on ID vs OOD validation features, and say when the validation cannot choose.

    For every candidate of the grid (scikit-learn's ``ParameterGrid`` order)
    the detector is fitted on the training information, then the ID
    validation rows and every OOD validation set are scored once; FPR at
    ``tpr``, AUROC, AUPR-In and AUPR-Out follow (with several OOD sets, the
    mean of each metric over the sets). The best candidate by ``metric``
    wins, unless the rule below finds the validation uninformative.

    **The rule** (docs/tuning.md). The ID rows and each OOD set are
    resampled ``n_bootstrap`` times (independently, with replacement, the
    same resamples for every candidate: a paired bootstrap of the scores, no
    new scoring). From the resamples every candidate gets a percentile
    interval at ``confidence`` for its FPR and AUROC and for its *gap*, how
    much worse than the best candidate it is. The validation is
    **informative** when (a) the OOD set is separated from ID at some eligible
    candidate, i.e. the lower end of its AUROC interval is above 0.5, and
    (b) some eligible candidate is worse than the best beyond sampling
    noise, i.e. the lower end of its gap interval is above 0. Otherwise the
    search returns the **fallback**: the parameters of ``method`` as given
    (a registered name: the detector's defaults, which its paper uses; DICE's
    p = 0.9), or, when the grid lacks them or the guard flags them, the
    nearest candidate the guard leaves; and it warns with
    :class:`~skdice.exceptions.UninformativeValidationWarning`.

    **The guard.** When ``y_id`` (class labels of the ID validation rows,
    -1 = unknown) is given and the detector masks its head (DICE, its
    variants and ablations, DICE+MSP, DICE+ReAct), each candidate's masked
    head classifies the labelled rows, from the same logits its score comes
    from; a candidate whose accuracy falls more than ``max_accuracy_drop``
    below the dense head's is *flagged* and not eligible (``guard=False``
    keeps it eligible and only reports it).

    Parameters
    ----------
    method : str or BaseDetector, default="dice"
        A registered detector name, or a detector whose parameters are the
        base of every candidate (cloned).
    grid : dict of str to sequence, sequence or None, default=None
        ``{parameter: values}`` searched as their product; a plain sequence
        for a detector whose declared grid has one parameter; None for the
        declared grid (:func:`default_grid`). Declared values the data cannot
        take (a KNN ``k`` above the training rows, a ViM ``dim`` not below
        the feature width) are left out and listed in ``skipped_params_``;
        given values are checked against the parameter's range.
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
        the best candidate by the tie rule (the warning is given either way).
    random_state : int, RandomState instance or None, default=0
        Seed of the resamples.

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
        ``separated`` (AUROC interval above 0.5), ``id_accuracy`` (the masked
        head's; NaN without labels or mask), ``flagged`` (by the guard) and
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
        Whether the validation could choose (the rule above).
    informative_reason_ : str
        Why, in one sentence.
    leader_index_ : int
        The best eligible candidate by the point metric (tie rule), to which
        the gaps are taken; ``best_index_`` when informative.
    fallback_index_ : int
        The candidate returned when uninformative.
    dense_accuracy_ : float or None
        ID accuracy of the dense head on the labelled rows; None when the
        guard did not run (no labels, or a detector without a mask).
    n_labelled_ : int
        Labelled ID validation rows the accuracies are over.
    skipped_params_ : list of (dict, str)
        Declared candidates the data could not take, with the reason.
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

    The rule applies no correction for the number of candidates: with many
    candidates one of the differences is more likely to look real by chance,
    which errs toward "informative".

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.tuning import HyperparameterSearch
    >>> rng = np.random.default_rng(0)
    >>> W, b = rng.normal(size=(16, 4)), np.zeros(4)
    >>> X_train, X_id = rng.random((200, 16)) + 1, rng.random((80, 16)) + 1
    >>> X_noise = rng.random((80, 16))
    >>> search = HyperparameterSearch("react", grid={"percentile": [50, 90]})
    >>> search = search.fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    >>> sorted(search.best_params_)
    ['percentile']
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
    def _base_estimator(self):
        method = self.method
        if isinstance(method, BaseDetector):
            return clone(method)
        return _detector_class(method)()

    def _where(self) -> str:
        return f"{type(self).__name__}.fit"

    def _param_grid(self, estimator):
        """``(grid dict, declared?)`` with every value checked against its parameter."""
        name = type(estimator).name or type(estimator).__name__
        declared = default_grid(type(estimator))
        if self.grid is None:
            if not declared:
                raise ValueError(
                    f"method {name!r} declares no hyperparameter to search; give grid={{...}}."
                )
            grid, is_declared = declared, True
        elif isinstance(self.grid, dict):
            grid, is_declared = dict(self.grid), False
        else:
            if len(declared) != 1:
                raise ValueError(
                    f"grid for {name!r} must be a dict {{parameter: values}}"
                    + (f" (its parameters: {', '.join(declared)})." if declared else ".")
                )
            grid, is_declared = {next(iter(declared)): self.grid}, False
        if not grid:
            raise ValueError("grid is empty: give at least one parameter and its values.")
        valid = estimator.get_params()
        for key, values in grid.items():
            if key not in valid:
                raise ValueError(
                    f"method {name!r} has no parameter {key!r}; its parameters are: "
                    f"{', '.join(valid)}."
                )
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise ValueError(f"grid values of {key!r} must be a sequence, got {values!r}.")
            values = list(values)
            if not values:
                raise ValueError(f"grid values of {key!r} are empty.")
            if any(_same(a, b) for i, a in enumerate(values) for b in values[:i]):
                raise ValueError(f"grid values of {key!r} are repeated: {values}.")
            for value in values:
                try:
                    clone(estimator).set_params(**{key: value})._validate_params()
                except InvalidParameterError as exc:
                    raise ValueError(f"grid value {value!r} of {key!r} is out of range: {exc}") from None
            grid[key] = values
        return grid, is_declared

    def _candidates(self, grid):
        return list(ParameterGrid(grid))

    def _tie_order(self, candidates):
        # the first best candidate in grid order, as GridSearchCV
        return np.arange(len(candidates))

    def _default_params(self, estimator, candidates):
        params = estimator.get_params()
        return {key: params[key] for key in candidates[0]}

    # ------------------------------------------------------------- fitting
    def fit(self, X=None, W=None, b=None, *, y=None, head=None, train_mean=None, X_id, X_noise, y_id=None):
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
        X_noise : array-like of shape (n_ood, n_features) or block source, or a sequence or dict of them
            The OOD validation set(s); with several, every metric is their mean.
        y_id : array-like of shape (n_id,), default=None
            Class labels of the ID validation rows (-1 = unknown), for the guard.

        Returns
        -------
        self
        """
        self._validate_params()
        estimator = self._base_estimator()
        if "tpr" in estimator.get_params():
            estimator.set_params(tpr=self.tpr)
        grid, is_declared = self._param_grid(estimator)
        candidates = self._candidates(grid)
        where = self._where()
        if W is None and b is None and head is None and not detector_tags(estimator).requires_head:
            head_ = None
        else:
            head_ = resolve_head(W, b, head, where)
        m = head_.n_features if head_ is not None else np.shape(X_id)[1]
        X_id = check_rows(X_id, "X_id", m, where)
        noise = self._noise_sets(X_noise, m, where)
        known, y_known = self._labels(y_id, X_id.shape[0])
        train = _TrainingInfo(X, y, train_mean, m, where)

        defaults = self._default_params(estimator, candidates)
        evaluated, results = self._evaluate(estimator, candidates, train, head_, X_id, noise, known,
                                            y_known, is_declared)
        candidates = [c for c in candidates if any(c is e for e in evaluated)]
        self._finish(estimator, candidates, defaults, results, train, head_, X_id, m)
        return self

    def _noise_sets(self, X_noise, m, where):
        if isinstance(X_noise, dict):
            sets = list(X_noise.values())
        elif isinstance(X_noise, (list, tuple)) and X_noise and (
            is_block_source(X_noise[0]) or np.ndim(X_noise[0]) == 2
        ):
            sets = list(X_noise)
        else:
            sets = [X_noise]
        if not sets:
            raise ValueError(f"{where}: X_noise holds no OOD validation set.")
        return [check_rows(Xn, "X_noise", m, where) for Xn in sets]

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

    def _fit_candidate(self, estimator, params, train, head):
        det = clone(estimator).set_params(**params)
        tags = detector_tags(det)
        if tags.fits_from_mean and head is not None and train.can_mean:
            return det.fit_from_mean(head, train.mean)
        if not tags.uses_features and head is not None and not tags.requires_class_labels:
            # the scores are a function of the head alone: any one row fits it
            return det.fit(train.one_row(), head=head)
        X = train.features(type(det).name or type(det).__name__)
        kwargs = {"head": head} if head is not None else {}
        if train.given_mean is not None and tags.accepts_train_mean:
            kwargs["train_mean"] = train.given_mean
        if tags.requires_class_labels:
            if train.y is None:
                raise ValueError(f"{type(det).__name__} needs the class labels y of the training rows.")
            kwargs["y"] = train.y
        # BaseDetector.fit would score every training row for offset_; the search
        # calibrates the chosen candidate on the ID validation scores instead
        det.calibration_scores = _no_calibration
        try:
            det.fit(X, **kwargs)
        finally:
            del det.calibration_scores
        return det

    def _score(self, det, X_id, noise, guard_rows):
        kernel = _masked_logit_kernel(det) if guard_rows is not None else None
        if kernel is not None:
            s_id, classes = _scores_and_classes(X_id, det, kernel)
            predicted = classes[guard_rows]
        else:
            s_id, predicted = scores_by_block(X_id, det.score_samples), None
        s_noise = [scores_by_block(Xn, det.score_samples) for Xn in noise]
        return s_id, s_noise, predicted, int(det.mask_.sum()) if hasattr(det, "mask_") else -1

    def _evaluate(self, estimator, candidates, train, head, X_id, noise, known, y_known, is_declared):
        results = _Results(len(noise))
        self.skipped_params_ = []
        self.dense_accuracy_ = None
        guard_rows = known if known is not None and head is not None else None
        evaluated = []
        for params in candidates:
            start = perf_counter()
            try:
                det = self._fit_candidate(estimator, params, train, head)
            except ValueError as exc:
                if is_declared:
                    self.skipped_params_.append((params, str(exc)))
                    continue
                raise ValueError(f"candidate {_spell(params)}: {exc}") from None
            fitted = perf_counter()
            s_id, s_noise, predicted, n_kept = self._score(det, X_id, noise, guard_rows)
            if predicted is not None and self.dense_accuracy_ is None:
                self.dense_accuracy_ = float(np.mean(_dense_classes(X_id, head, guard_rows) == y_known))
            accuracy = np.nan if predicted is None else float(np.mean(predicted == y_known))
            results.add(s_id, s_noise, self.tpr, fitted - start, accuracy, n_kept)
            results.score_time[-1] = perf_counter() - fitted
            evaluated.append(params)
        if not evaluated:
            raise ValueError(
                "no candidate of the declared grid fits these data: "
                + "; ".join(f"{_spell(p)}: {msg}" for p, msg in self.skipped_params_)
            )
        self.n_labelled_ = 0 if self.dense_accuracy_ is None else int(guard_rows.size)
        return evaluated, results

    def _finish(self, estimator, candidates, defaults, results, train, head, X_id, m):
        G = len(candidates)
        metrics = {k: np.asarray(v, dtype=np.float64) for k, v in results.metrics.items()}
        test_score = -metrics["fpr95"] if self.metric == "fpr95" else metrics["auroc"].copy()
        rank = rankdata(-test_score, method="min").astype(np.int32)
        accuracy = np.asarray(results.accuracy)
        if self.dense_accuracy_ is not None:
            flagged = self.dense_accuracy_ - accuracy > self.max_accuracy_drop + 1e-12
        else:
            flagged = np.zeros(G, dtype=bool)
        eligible = ~flagged if self.guard else np.ones(G, dtype=bool)

        start = perf_counter()
        fpr_rep, auc_rep = bootstrap_placements(results.places, self.tpr, self.n_bootstrap, self.random_state)
        tie_order = self._tie_order(candidates)
        fallback = _fallback_index(candidates, defaults, tie_order, eligible)
        replicates = fpr_rep if self.metric == "fpr95" else auc_rep
        chosen, leader, informative, reason, _, gap_lo, gap_hi, separated, worse = _decide(
            metric=self.metric, point=metrics[self.metric], replicates=replicates,
            auroc_replicates=auc_rep, eligible=eligible, tie_order=tie_order,
            fallback=fallback, confidence=self.confidence,
        )
        self.bootstrap_time_ = perf_counter() - start
        if not informative and not self.fallback:
            chosen = leader
        alpha = 1 - self.confidence
        q = [alpha / 2, 1 - alpha / 2]
        fpr_lo, fpr_hi = np.quantile(fpr_rep, q, axis=1)
        auc_lo, auc_hi = np.quantile(auc_rep, q, axis=1)
        point = metrics[self.metric]
        gap = point - point[leader] if self.metric == "fpr95" else point[leader] - point

        self.cv_results_ = {
            "mean_fit_time": np.asarray(results.fit_time),
            "std_fit_time": np.zeros(G),
            "mean_score_time": np.asarray(results.score_time),
            "std_score_time": np.zeros(G),
            "params": [dict(c) for c in candidates],
            **self._param_columns(candidates),
            "split0_test_score": test_score,
            "mean_test_score": test_score.copy(),
            "std_test_score": np.zeros(G),
            "rank_test_score": rank,
            **metrics,
            "fpr95_ci_low": fpr_lo,
            "fpr95_ci_high": fpr_hi,
            "auroc_ci_low": auc_lo,
            "auroc_ci_high": auc_hi,
            "gap": gap,
            "gap_ci_low": gap_lo,
            "gap_ci_high": gap_hi,
            "worse": worse,
            "separated": separated,
            "id_accuracy": accuracy,
            "flagged": flagged,
            "n_kept": np.asarray(results.n_kept, dtype=np.int64),
        }
        self.best_index_ = int(chosen)
        self.best_params_ = dict(candidates[chosen])
        self.best_score_ = float(test_score[chosen])
        self.informative_ = bool(informative)
        self.informative_reason_ = reason
        self.leader_index_ = int(leader)
        self.fallback_index_ = int(fallback)
        self.n_features_in_ = m
        best = self._fit_candidate(estimator, candidates[chosen], train, head)
        best.offset_ = float(np.quantile(results.id_scores[chosen], 1.0 - self.tpr))
        self.best_estimator_ = best
        if not informative:
            warnings.warn(self._warning_text(), UninformativeValidationWarning, stacklevel=3)

    def _param_columns(self, candidates):
        columns = {}
        for name in candidates[0]:
            values = np.empty(len(candidates), dtype=object)
            values[:] = [c[name] for c in candidates]
            columns[f"param_{name}"] = np.ma.MaskedArray(values, mask=np.zeros(len(candidates), dtype=bool))
        return columns

    def _warning_text(self) -> str:
        returned = _spell(self.best_params_)
        if not self.fallback:
            what = f"returning the best candidate {returned} anyway (fallback=False)"
        elif self._fallback_is_default():
            what = f"returning the fallback {returned} (the method's default)"
        else:
            what = f"returning the fallback {returned} (the candidate nearest the method's default)"
        return f"validation cannot choose: {self.informative_reason_}; {what}."

    def _fallback_is_default(self) -> bool:
        estimator = self._base_estimator()
        if "tpr" in estimator.get_params():
            estimator.set_params(tpr=self.tpr)
        defaults = estimator.get_params()
        return all(_same(v, defaults.get(k)) for k, v in self.best_params_.items())

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


def _no_calibration(X):
    return np.zeros(1)


def _spell(params: dict) -> str:
    return ", ".join(f"{k}={v:g}" if _is_number(v) else f"{k}={v!r}" for k, v in params.items())


class _TrainingInfo:
    """The training information of a search: features, their labels, a given or computed mean."""

    def __init__(self, X, y, train_mean, m, where):
        if X is not None and train_mean is not None:
            self.X = check_features(X, "X", m, where)
            self.given_mean = check_train_mean(train_mean, m)
        elif X is not None:
            self.X, self.given_mean = check_features(X, "X", m, where), None
        elif train_mean is not None:
            self.X, self.given_mean = None, check_train_mean(train_mean, m)
        else:
            self.X = self.given_mean = None
        self.y = None if y is None else np.asarray(y)
        self.m = m
        self.where = where
        self._mean = self.given_mean

    @property
    def can_mean(self) -> bool:
        return self.X is not None or self.given_mean is not None

    @property
    def mean(self):
        if self._mean is None:
            self._mean = column_mean(self.X)
        return self._mean

    def one_row(self):
        return np.zeros((1, self.m), dtype=np.float32) if self.X is None else self.X[:1]

    def features(self, name):
        if self.X is None:
            raise ValueError(
                f"{self.where}: method {name!r} is fitted on ID training features: pass X "
                "(a mean feature is not enough)."
            )
        return self.X


class _Results:
    """What the search keeps of each candidate: placements, scores, metrics, times, guard figures."""

    def __init__(self, n_sets):
        self.n_sets = n_sets
        self.id_scores, self.places = [], []
        self.metrics = {k: [] for k in _METRICS}
        self.fit_time, self.score_time, self.accuracy, self.n_kept = [], [], [], []

    def add(self, s_id, s_noise, tpr, fit_time, accuracy, n_kept):
        places = [Placement(s_id, s) for s in s_noise]
        k = rank_of_tpr(s_id.size, tpr)
        # every metric from the sorted orders the bootstrap reuses (equal to
        # skdice.metrics, which a test checks), not four more sorts per set
        point = np.array([(*place.metrics(k), *place.average_precisions()) for place in places])
        for key, column in zip(_METRICS, point.mean(axis=0)):
            self.metrics[key].append(column)
        self.id_scores.append(s_id)
        self.places.append(places)
        self.fit_time.append(fit_time)
        self.score_time.append(0.0)
        self.accuracy.append(accuracy)
        self.n_kept.append(n_kept)


class SparsitySearch(HyperparameterSearch):
    """Pick DICE's sparsity ``p`` on ID vs Gaussian-noise validation data, and say when it cannot.

    For every ``p`` of ``grid`` the search scores the in-distribution
    validation features and the noise features with DICE at that ``p`` and
    computes FPR at ``tpr``, AUROC, AUPR-In and AUPR-Out; the candidate with
    the best ``metric`` wins (Section 4.1 of the paper), unless the
    validation is uninformative (the rule of :class:`HyperparameterSearch`:
    no candidate separates noise from ID, or none is worse than the best
    beyond sampling noise), in which case the search returns the paper's
    p = 0.9 (or the grid's p nearest to it) and warns with
    :class:`~skdice.exceptions.UninformativeValidationWarning`.

    Efficient by construction: the mean training feature is computed once, the
    contribution matrix ``V`` is sorted once and every threshold read from it
    (:func:`skdice.sparsify.dice_thresholds`), and each candidate costs one
    chunked scoring pass over the validation rows with a mask built afresh for
    that ``p`` (with ``y_id``, the guard's class argmax comes from the same
    logits). ``best_estimator_`` is then fitted from the same mean feature
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
    guard : bool, default=True
        With ``y_id``, leave out of the choice every ``p`` whose masked head
        loses more than ``max_accuracy_drop`` of ID accuracy.
    max_accuracy_drop : float, default=0.05
        The guard's tolerance, a fraction (0.05 = 5 points).
    n_bootstrap : int, default=200
        Bootstrap resamples behind the intervals.
    confidence : float, default=0.95
        Level of the intervals.
    fallback : bool, default=True
        When uninformative, return the fallback p (False: the tie rule's p).
    random_state : int, RandomState instance or None, default=0
        Seed of the resamples.

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
        ``V``) and ``n_kept`` (weights kept); and the keys of the rule and the
        guard, as in :class:`HyperparameterSearch` (``fpr95_ci_low``,
        ``fpr95_ci_high``, ``auroc_ci_low``, ``auroc_ci_high``, ``gap``,
        ``gap_ci_low``, ``gap_ci_high``, ``worse``, ``separated``,
        ``id_accuracy``, ``flagged``).
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
    informative_, informative_reason_, leader_index_, fallback_index_
        As in :class:`HyperparameterSearch`.
    dense_accuracy_ : float or None
        ID accuracy of the dense head on the labelled rows (None without ``y_id``).
    n_labelled_ : int
    bootstrap_time_ : float
    mean_feature_ : ndarray of shape (n_features,), float64
        The mean ID training feature used for every candidate.
    n_features_in_ : int
        Width of the features.

    See Also
    --------
    skdice.DICEDetector : the detector being tuned.
    HyperparameterSearch : the same search for any detector.
    skdice.metrics.fpr95_scorer : the scorer for the GridSearchCV route.

    Notes
    -----
    **Ties** are broken toward the smaller ``p``: among the candidates with the
    best score, the smallest ``p`` wins, whatever the grid order (less
    sparsity is the less aggressive change to the model). ``GridSearchCV``
    instead takes the first best candidate in the grid's order, so the two
    routes agree on ties whenever the grid is in ascending order, as the
    default is. When *every* candidate ties (or differs from the best only
    within sampling noise) the validation is uninformative and the fallback
    p = 0.9 is returned instead (``fallback=False`` keeps the tie rule).

    **The GridSearchCV route** gives the same choice when the validation is
    informative, with more passes over the data::

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
    >>> search = SparsitySearch(fallback=False).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    >>> sorted(search.best_params_)
    ['p']
    >>> search.cv_results_["rank_test_score"].shape
    (6,)
    """

    method = "dice"

    _parameter_constraints: dict = {
        **{k: v for k, v in HyperparameterSearch._parameter_constraints.items() if k != "method"},
        "grid": ["array-like"],
    }

    def __init__(
        self,
        grid=DEFAULT_GRID,
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
        self.grid = grid
        self.metric = metric
        self.tpr = tpr
        self.guard = guard
        self.max_accuracy_drop = max_accuracy_drop
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.fallback = fallback
        self.random_state = random_state

    def _base_estimator(self):
        return DICEDetector()

    def _param_grid(self, estimator):
        return {"p": check_grid(self.grid, "SparsitySearch grid").tolist()}, False

    def _tie_order(self, candidates):
        # the smallest p among tied candidates, whatever the grid order
        return rankdata([c["p"] for c in candidates], method="ordinal")

    def fit(self, X=None, W=None, b=None, *, head=None, train_mean=None, X_id, X_noise, y_id=None):
        """Score every candidate ``p`` and keep the best, or the fallback when validation cannot choose.

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
        X_id : array-like of shape (n_id, n_features) or block source
            In-distribution validation features (held out from training). A
            block source (an object with ``shape`` and ``iter_blocks()``
            yielding ``(start, block)``, such as
            :class:`skdice.workflows.resolve.SplitFeatures`) is read once, block
            by block: every candidate scores a block before the next is read.
        X_noise : array-like of shape (n_noise, n_features) or block source, or a sequence or dict of them
            Features of the OOD validation set(s), Gaussian-noise images in the
            paper; with several sets every metric is their mean.
        y_id : array-like of shape (n_id,), default=None
            Class labels of the ID validation rows (-1 = unknown): the guard.

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
        X_id = check_rows(X_id, "X_id", m, where)
        noise = self._noise_sets(X_noise, m, where)
        known, y_known = self._labels(y_id, X_id.shape[0])
        self.mean_feature_ = mean
        self.skipped_params_ = []

        self.n_labelled_ = 0 if known is None else int(known.size)
        G = grid.size
        build_time, thresholds = np.empty(G), np.empty(G, dtype=np.float64)
        n_kept, probes = np.empty(G, dtype=np.int64), []
        heads = masked_heads(mean, head, grid)
        for i in range(G):
            start = perf_counter()
            thresholds[i], mask, masked_weight = next(heads)
            n_kept[i] = int(mask.sum())
            probe = DICEDetector()
            probe.masked_weight_, probe.bias_ = masked_weight, head.bias
            probes.append(probe)
            build_time[i] = perf_counter() - start
        # every block of a split is scored by every candidate before the next block is
        # read: one read of each split whatever the grid (a store split comes from disk)
        score_time = np.zeros(G)
        labels = None if known is None else np.asarray(y_id)
        s_id, correct = self._score_candidates(X_id, probes, head, score_time, labels)
        s_noise = [self._score_candidates(Xn, probes, head, score_time)[0] for Xn in noise]
        self.dense_accuracy_ = None if known is None else float(correct[G] / known.size)
        results = _Results(len(noise))
        for i in range(G):
            accuracy = np.nan if known is None else float(correct[i] / known.size)
            results.add(s_id[i], [s[i] for s in s_noise], self.tpr, build_time[i], accuracy,
                        int(n_kept[i]))
            results.score_time[-1] = score_time[i]
            for s in s_noise:  # only the placements are kept: 20 bytes a row, not 8 per set
                s[i] = None
        del s_id, s_noise
        candidates = [{"p": float(p)} for p in grid]
        train = _TrainingInfo(None, None, mean, m, where)
        self._finish(DICEDetector(tpr=self.tpr), candidates, {"p": DICEDetector().p}, results,
                     train, head, X_id, m)
        self.cv_results_["threshold"] = thresholds
        return self

    @staticmethod
    def _score_candidates(X, probes, head, score_time, labels=None):
        """Every candidate's scores of ``X``, reading ``X`` once, block by block.

        With ``labels`` (one per row, ``-1`` unknown), also how many labelled
        rows each masked head and, last, the dense head classify right (the
        guard), from the same blocks; only the counts are kept.
        """
        G, n = len(probes), int(X.shape[0])
        scores = [np.empty(n, dtype=np.float64) for _ in range(G)]
        correct = np.zeros(G + 1, dtype=np.int64)
        kernel = (None, logsumexp_rows, True)
        for start, block in row_blocks(X):
            rows = slice(start, start + block.shape[0])
            known = None if labels is None else np.flatnonzero(labels[rows] >= 0)
            if known is not None and known.size:
                truth = labels[rows][known]
                dense = predicted_classes(block[known], head.weight, head.bias)
                correct[G] += np.count_nonzero(dense == truth)
            for i, probe in enumerate(probes):
                began = perf_counter()
                with located_errors(X, start, block):
                    if labels is not None:
                        scores[i][rows], classes = _block_scores_and_classes(block, probe, kernel)
                        correct[i] += np.count_nonzero(classes[known] == truth) if known.size else 0
                    else:
                        scores[i][rows] = energy_scores(block, probe.masked_weight_, head.bias)
                score_time[i] += perf_counter() - began
        return scores, correct

    def _param_columns(self, candidates):
        grid = np.array([c["p"] for c in candidates], dtype=np.float64)
        return {"param_p": np.ma.MaskedArray(grid, mask=np.zeros(grid.size, dtype=bool))}

    def _fallback_is_default(self) -> bool:
        return self.best_params_["p"] == DICEDetector().p
