"""The hyperparameter searches (:mod:`skdice.tuning`) on the splits of a feature store."""

from __future__ import annotations

import json
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid

from .._base import BaseDetector, available_detectors, detector_tags
from .._search import (
    DEFAULT_GRID,
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_N_BOOTSTRAP,
    HyperparameterSearch,
    SparsitySearch,
    default_grid,
)
from ..exceptions import UnlabelledValidationWarning
from ._report import dropped_note, dropped_records
from .methods import build_detector
from .resolve import (
    SplitFeatures,
    TrainingData,
    check_validation_splits,
    class_labels,
    open_feature_store,
    stream_mean,
)

__all__ = ["SearchReport", "make_search", "run_search", "tune_store"]


def make_search(
    method="dice",
    grid=None,
    *,
    metric="fpr95",
    tpr=0.95,
    guard=True,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
    n_bootstrap=DEFAULT_N_BOOTSTRAP,
    random_state=0,
):
    """The search for a method: :class:`SparsitySearch` for DICE's p, else :class:`HyperparameterSearch`.

    Parameters
    ----------
    method : str or BaseDetector, default="dice"
        A registry name, or a detector whose parameters are the base of every
        candidate.
    grid : dict, sequence or None, default=None
        ``{parameter: values}``, a sequence for a one-parameter grid, or None
        for the method's declared grid.
    metric, tpr, guard, max_accuracy_drop, n_bootstrap, random_state
        As in :class:`HyperparameterSearch`.

    Returns
    -------
    SparsitySearch or HyperparameterSearch
        Unfitted.
    """
    options = dict(metric=metric, tpr=tpr, guard=guard, max_accuracy_drop=max_accuracy_drop,
                   n_bootstrap=n_bootstrap, random_state=random_state)
    if method == "dice" and (grid is None or not isinstance(grid, dict) or set(grid) == {"p"}):
        values = DEFAULT_GRID if grid is None else grid["p"] if isinstance(grid, dict) else grid
        return SparsitySearch(grid=values, **options)
    return HyperparameterSearch(method, grid, **options)


def _candidates(search):
    """Unfitted detectors of every candidate, to read what their fit needs from their tags."""
    if isinstance(search, SparsitySearch):
        return [], "dice"
    method = search.method
    base = clone(method) if isinstance(method, BaseDetector) else None
    if base is None:
        registry = available_detectors()
        if method not in registry:
            raise ValueError(
                f"unknown method {method!r}; choose from: {', '.join(registry)} "
                "(`skdice methods` lists them)."
            )
        base = registry[method]()
    grid = search.grid if search.grid is not None else default_grid(base)
    if not isinstance(grid, dict):
        grid = {next(iter(default_grid(base)), "p"): grid}
    name = type(base).name or type(base).__name__
    try:
        return [clone(base).set_params(**c) for c in ParameterGrid(grid)], name
    except (TypeError, ValueError):  # a malformed grid: the search says what is wrong
        return [base], name


def run_search(search, fs, train: TrainingData, *, id_split: str, noise_splits, ood_val_splits=()):
    """Fit a search on a store's ID validation split against its OOD validation splits.

    What the training split gives each candidate follows its tags:
    detectors fitted from the mean feature get the mean (the training split
    streamed block by block, or the cached mean), the others the training
    split (with class labels where they need them), read in passes by the
    candidates that fit from blocks (tag ``fits_from_blocks``) and loaded
    once by the search for the others; detectors
    whose scores come from the head alone need no training data. The ID
    split's class labels (rows ``-1`` unknown) feed the guard; a split
    without any gives one :class:`~skdice.exceptions.UnlabelledValidationWarning`.

    The validation splits are never loaded: they are handed to the search as
    :class:`~skdice.workflows.resolve.SplitFeatures`, read block by block
    (once in all by DICE's :class:`SparsitySearch`, once per candidate by
    :class:`HyperparameterSearch`); what stays in memory is 8 bytes a row
    per candidate (the scores) and the placements of the bootstrap. Training
    features are read whole only for detectors that keep them (KNN,
    NNGuide, Relation).

    Parameters
    ----------
    search : SparsitySearch or HyperparameterSearch
        Unfitted (see :func:`make_search`).
    fs : skdice.store.FeatureStore
    train : TrainingData
        The run's training split and/or mean.
    id_split : str
    noise_splits : sequence of str
        Synthetic OOD validation splits (noise, generated pixels, corrupted
        ID images): they confirm a move from the defaults, never make one.
    ood_val_splits : sequence of str, default=()
        Real OOD validation splits (images of another data set, held out
        from testing): a move needs one of them and one synthetic split.

    Returns
    -------
    search
        Fitted.
    """
    head = fs.head
    candidates, name = _candidates(search)
    # block sources: the searches read the splits block by block, never whole
    X_id = SplitFeatures(fs, id_split)
    X_noise = {split: SplitFeatures(fs, split) for split in noise_splits} or None
    X_ood = {split: SplitFeatures(fs, split) for split in ood_val_splits} or None
    labels = fs.labels(id_split)
    y_id = labels if (labels >= 0).any() else None
    kwargs = {}
    if isinstance(search, SparsitySearch) or all(detector_tags(c).fits_from_mean for c in candidates):
        if train.mean is not None:
            kwargs["train_mean"] = train.mean
        elif train.split is not None:
            kwargs["train_mean"] = stream_mean(fs, train.split)
        else:
            raise ValueError(
                f"method {name!r} is fitted on the mean training feature: pass train=SPLIT "
                "or train_mean=FILE.npy."
            )
    elif any(detector_tags(c).uses_features for c in candidates):
        if train.split is None:
            raise ValueError(
                f"method {name!r} is fitted on in-distribution training features: pass train=SPLIT."
            )
        # the search reads the split in passes for candidates that fit from blocks and
        # loads it once for the others (TrainingInfo.features)
        kwargs["X"] = SplitFeatures(fs, train.split)
        if any(detector_tags(c).requires_class_labels for c in candidates):
            kwargs["y"] = class_labels(fs, train.split)
        if train.mean is not None and all(detector_tags(c).accepts_train_mean for c in candidates):
            kwargs["train_mean"] = train.mean
    search.fit(head=head, X_id=X_id, X_noise=X_noise, X_ood=X_ood, y_id=y_id, **kwargs)
    if y_id is None and detector_tags(search.best_estimator_).changes_classifier and search.guard:
        warnings.warn(
            f"split {id_split!r} has no class labels (every row is -1): the ID-accuracy guard "
            "is skipped.",
            UnlabelledValidationWarning,
            stacklevel=2,
        )
    return search


def tune_store(
    store,
    *,
    id_split,
    noise_split=(),
    ood_val_split=(),
    train=None,
    train_mean=None,
    grid=None,
    metric="fpr95",
    tpr=0.95,
    method="dice",
    guard=True,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
    n_bootstrap=DEFAULT_N_BOOTSTRAP,
    random_state=0,
):
    """Run the search for a method (DICE's p by default) on the splits of a feature store.

    Parameters
    ----------
    store : str, path-like or skdice.store.FeatureStore
        A store written by ``skdice extract``; its head is the model's head.
    id_split : str
        Split of ID validation features; its class labels feed the guard.
    noise_split : str or sequence of str, default=()
        Split(s) of synthetic OOD validation features (Gaussian noise, the
        generators and corruptions of ``skdice extract --data``).
    ood_val_split : str or sequence of str, default=()
        Split(s) of real OOD validation features (another data set's
        images, held out from testing). The defaults stay unless a real and
        a synthetic split agree (docs/tuning.md, "The rule"); with several
        splits, every metric is their mean.
    train : str, default=None
        Split of ID training features. Mean-based detectors stream it chunk
        by chunk, those with ``fits_from_blocks`` read it in passes (it is
        never loaded whole); the banks (KNN, NNGuide, Relation) read it.
    train_mean : array-like of shape (n_features,), str or path-like, default=None
        The mean training feature, or a ``.npy`` file holding it
        (:func:`skdice.workflows.resolve.load_train_mean`).
    grid : dict, sequence or None, default=None
        ``{parameter: values}``; a sequence of values for a method with one
        searched parameter (DICE: the sparsities); None for the method's
        declared grid (DICE: the paper's).
    metric : {"fpr95", "auroc"}, default="fpr95"
    tpr : float, default=0.95
    method : str, default="dice"
        A registered detector name.
    guard, max_accuracy_drop, n_bootstrap, random_state
        As in :class:`skdice.tuning.HyperparameterSearch`.

    Returns
    -------
    SparsitySearch or HyperparameterSearch
        Fitted; ``informative_`` says whether the validation could choose.

    Raises
    ------
    skdice.exceptions.StoreError
        When the store or a split is missing or incomplete.
    ValueError
        For no OOD validation split, a split given twice or both as ID
        validation and as OOD, a bad grid, or training data the method cannot
        be fitted from.
    """
    fs = open_feature_store(store)
    noise = [noise_split] if isinstance(noise_split, str) else list(noise_split)
    ood = [ood_val_split] if isinstance(ood_val_split, str) else list(ood_val_split)
    check_validation_splits(id_split, [*noise, *ood])
    if train is not None and train_mean is not None and method == "dice":
        raise ValueError("give exactly one of train=SPLIT or train_mean=FILE.npy.")
    if isinstance(method, str) and "random_state" in _base(method).get_params():
        # a random detector gets the seed of evaluate's (methods.RANDOM_STATE), whatever the
        # bootstrap's: tune and evaluate --tune-id draw the same masks and choose alike
        method = build_detector(method)
    search = make_search(method, grid, metric=metric, tpr=tpr, guard=guard,
                         max_accuracy_drop=max_accuracy_drop, n_bootstrap=n_bootstrap,
                         random_state=random_state)
    if train is None and train_mean is None:
        if isinstance(search, SparsitySearch) or method == "dice":
            raise ValueError("give exactly one of train=SPLIT or train_mean=FILE.npy.")
        if detector_tags(_base(method)).uses_features:
            name = method if isinstance(method, str) else type(method).name
            raise ValueError(f"method={name} needs train=SPLIT (or train_mean=FILE.npy).")
    return run_search(search, fs, TrainingData(fs, train, train_mean), id_split=id_split,
                      noise_splits=noise, ood_val_splits=ood)


def _base(method):
    if isinstance(method, BaseDetector):
        return method
    registry = available_detectors()
    if method not in registry:
        raise ValueError(
            f"unknown method {method!r}; choose from: {', '.join(registry)} "
            "(`skdice methods` lists them)."
        )
    return registry[method]()


# ---------------------------------------------------------------- the report
_COLUMNS = ("fpr95", "auroc", "aupr_in", "aupr_out")


def _value(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:g}"
    return str(v)


def _spell(params: dict) -> str:
    return ", ".join(f"{k} = {_value(v)}" for k, v in params.items())


def _verdict(res, i, leader) -> str:
    if res["flagged"][i]:
        return "flagged"
    if i == leader:
        return "best"
    return "worse" if res["worse"][i] else "tied"


def _moves(res, i, defaults) -> str:
    if i == defaults:
        return "defaults"
    return "yes" if res["beats_defaults"][i] else "no"


def _noise_words(noise) -> str:
    noise = [noise] if isinstance(noise, str) else list(noise)
    if len(noise) == 1:
        return f"OOD validation split {noise[0]!r}"
    return "the mean over OOD validation splits " + ", ".join(map(repr, noise))


def _percent(x) -> str:
    return f"{100 * x:.2f}"


def _interval(res, key, i):
    return [100 * float(res[f"{key}_ci_low"][i]), 100 * float(res[f"{key}_ci_high"][i])]


def _json_value(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def _plain_table(columns, rows, *, justify, bold_rows=()):
    """Columns aligned with spaces, dashes under the header (what ``skdice tune`` prints without rich)."""
    cells = [tuple(columns), *(tuple(r) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for j, row in enumerate(cells):
        parts = [c.ljust(w) if side == "left" else c.rjust(w) for c, w, side in zip(row, widths, justify)]
        lines.append(" ".join(parts).rstrip())
        if j == 0:
            lines.append(" ".join("-" * w for w in widths))
    return "\n".join(lines)


def _decided_by(search):
    """``{"set": name, "kind": kind}`` of the set that decided, or None."""
    name = getattr(search, "decided_by_", None)
    if name is None:
        return None
    kind = next((s["kind"] for s in search.validation_sets_ if s["name"] == name), None)
    return {"set": name, "kind": kind}


class SearchReport:
    """What a fitted search found, as the table and the JSON ``skdice tune`` prints.

    Parameters
    ----------
    search : SparsitySearch or HyperparameterSearch
        Fitted (:func:`tune_store`).
    noise : str or sequence of str
        The noise split name(s), for the closing lines of the table.
    id_split : str, default="the ID split"
        The ID validation split, for the closing lines of the table.
    context : dict, default=None
        Keys written first in the JSON as they are (the CLI records the
        store and the splits).

    Examples
    --------
    >>> search = tune_store("features.zarr", id_split="val", noise_split="noise",  # doctest: +SKIP
    ...                     train="train")
    >>> print(SearchReport(search, noise="noise", id_split="val").to_table())  # doctest: +SKIP
    """

    def __init__(self, search, *, noise, id_split="the ID split", context=None):
        self.search = search
        self.noise = noise
        self.id_split = id_split
        self.context = dict(context or {})

    def to_table(self, render=None) -> str:
        """The table of every candidate with its intervals, the guard, the verdict and the choice.

        Parameters
        ----------
        render : callable, default=None
            ``render(columns, rows, justify=..., bold_rows=...) -> str`` draws
            the candidates' table (the CLI passes its rich renderer, which
            draws the chosen row in bold on a terminal); None aligns the
            columns with spaces.

        Returns
        -------
        str
            The candidates' table, then the lines that say what the metrics
            are, the guard, whether validation could choose, and the choice.
        """
        search, noise, id_split = self.search, self.noise, self.id_split
        render = render or _plain_table
        res = search.cv_results_
        names = list(res["params"][0])
        masked = detector_tags(search.best_estimator_).masked_head
        guarded = search.dense_accuracy_ is not None
        n_weights = search.best_estimator_.mask_.size if masked else None
        level = f"{100 * search.confidence:g}%"
        header = [*names, "FPR95", "CI", "AUROC", "CI", "AUPR-In", "AUPR-Out"]
        header += ["kept"] if masked else []
        header += ["acc"] if guarded else []
        header += ["verdict", "moves", "rank"]
        rows = []
        for i, params in enumerate(res["params"]):
            cells = [_value(params[k]) for k in names]
            if i == search.best_index_:
                cells[0] += "*"
            cells += [
                _percent(res["fpr95"][i]),
                f"{_percent(res['fpr95_ci_low'][i])}-{_percent(res['fpr95_ci_high'][i])}",
                _percent(res["auroc"][i]),
                f"{_percent(res['auroc_ci_low'][i])}-{_percent(res['auroc_ci_high'][i])}",
                _percent(res["aupr_in"][i]),
                _percent(res["aupr_out"][i]),
            ]
            if masked:
                cells.append(f"{100 * res['n_kept'][i] / n_weights:.1f}%")
            if guarded:
                cells.append(_percent(res["id_accuracy"][i]))
            cells += [_verdict(res, i, search.leader_index_), _moves(res, i, search.fallback_index_),
                      str(int(res["rank_test_score"][i]))]
            rows.append(tuple(cells))
        justify = ["left"] * len(names) + ["right"] * (len(header) - len(names))
        lines = [render(tuple(header), rows, justify=justify, bold_rows=[search.best_index_])]
        tail = (
            f"metrics in % on ID validation {id_split!r} vs {_noise_words(noise)}; FPR at "
            f"{100 * search.tpr:g}% TPR, ID positive; CI: {level} interval, paired bootstrap of "
            f"{search.n_bootstrap} resamples"
        )
        tail += "; kept = weights kept" if masked else ""
        if guarded:
            tail += ("; acc = ID accuracy of the masked head" if masked else
                     "; acc = ID accuracy of the detector's classifier (predict_class)")
        verdicts = ("verdict: best, tied (within sampling noise of it), worse (beyond it)"
                    + (", flagged (by the guard)" if guarded else "")
                    + "; moves: yes when the candidate beats the defaults (the row marked defaults) "
                    "beyond sampling noise on every set.")
        lines += ["", tail + ".", verdicts]
        if guarded:
            drop = 100 * search.max_accuracy_drop
            lines.append(
                f"ID accuracy of the dense head: {_percent(search.dense_accuracy_)}% "
                f"({search.n_labelled_} labelled rows); the guard flags candidates more than "
                f"{drop:g} points below it"
                + (" and does not choose them." if search.guard else " (guard=False: reported only).")
            )
        dropped = dropped_records(search)
        if dropped:
            lines.append(dropped_note(dropped))
        sets = getattr(search, "validation_sets_", [])
        if sets:
            lines.append("validation sets: " + ", ".join(f"{s['name']!r} ({s['kind']})" for s in sets)
                         + "; the defaults stay unless a real and a synthetic set agree (docs/tuning.md)")
        verdict = "yes" if search.informative_ else "no"
        lines.append(f"informative: {verdict} ({search.informative_reason_})")
        label = "FPR95" if search.metric == "fpr95" else "AUROC"
        value = f"{label} {_percent(res[search.metric][search.best_index_])}%"
        if search.informative_ and search.best_index_ == search.fallback_index_:
            lines.append(f"chosen: {_spell(search.best_params_)} ({value}; the defaults: validation agrees "
                         "with them)")
        elif search.informative_:
            rule = "ties go to the smaller p" if type(search).__name__ == "SparsitySearch" else (
                "ties go to the first in grid order")
            lines.append(f"chosen: {_spell(search.best_params_)} ({value}; {rule})")
        elif search.best_index_ == search.fallback_index_:
            lines.append(f"chosen: {_spell(search.best_params_)} ({value}; the defaults: validation cannot "
                         "move them)")
        else:
            lines.append(f"chosen: {_spell(search.best_params_)} ({value}; the best by the mean although "
                         "validation cannot move the defaults: fallback=False)")
        return "\n".join(lines)

    def to_json(self) -> str:
        """JSON with every candidate's metrics and intervals (in %), the verdict and the choice.

        Returns
        -------
        str
            Indented by 2; the context keys come first.
        """
        search = self.search
        res = search.cv_results_
        results = []
        for i, params in enumerate(res["params"]):
            row = {k: _json_value(v) for k, v in params.items()}
            row["params"] = dict(row)
            row.update({k: 100 * float(res[k][i]) for k in _COLUMNS})
            row["fpr95_ci"] = _interval(res, "fpr95", i)
            row["auroc_ci"] = _interval(res, "auroc", i)
            row["gap"] = 100 * float(res["gap"][i])
            row["gap_ci"] = _interval(res, "gap", i)
            row["worse"] = bool(res["worse"][i])
            row["beats_defaults"] = bool(res["beats_defaults"][i]) if "beats_defaults" in res else None
            row["separated"] = bool(res["separated"][i])
            row["n_kept"] = int(res["n_kept"][i]) if res["n_kept"][i] >= 0 else None
            if "threshold" in res:
                # -inf (p = 0, the dense head) is not JSON: null
                row["threshold"] = float(res["threshold"][i]) if np.isfinite(res["threshold"][i]) else None
            accuracy = res["id_accuracy"][i]
            row["id_accuracy"] = None if np.isnan(accuracy) else 100 * float(accuracy)
            row["flagged"] = bool(res["flagged"][i])
            row["rank"] = int(res["rank_test_score"][i])
            row["chosen"] = i == search.best_index_
            results.append(row)
        best = {k: _json_value(v) for k, v in search.best_params_.items()}
        method = search.method
        out = {
            **self.context,
            "method": method if isinstance(method, str) else type(method).name,
            "metric": search.metric,
            "tpr": search.tpr,
            "units": "percent",
            "informative": search.informative_,
            "informative_reason": search.informative_reason_,
            "decided_by": _decided_by(search),
            "validation_sets": list(getattr(search, "validation_sets_", [])),
            "best_p": best.get("p"),
            "best_params": best,
            "fallback_params": {k: _json_value(v) for k, v in res["params"][search.fallback_index_].items()},
            "confidence": search.confidence,
            "n_bootstrap": search.n_bootstrap,
            "guard": {
                "applied": search.dense_accuracy_ is not None,
                "enforced": bool(search.guard),
                "max_accuracy_drop": 100 * search.max_accuracy_drop,
                "dense_accuracy": None if search.dense_accuracy_ is None else 100 * search.dense_accuracy_,
                "n_labelled": search.n_labelled_,
            },
            "dropped": dropped_records(search),
            "results": results,
        }
        return json.dumps(out, indent=2)
