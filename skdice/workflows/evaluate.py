"""Evaluate detectors on the splits of a feature store, as in the paper's tables.

:func:`evaluate_store` fits each method on the training split (or a cached
training mean), scores the ID split and every OOD split, and returns the
per-set and average FPR95 / AUROC / AUPR-In / AUPR-Out together with the ID
accuracy of the original head and of each masked (DICE) head.

Nothing here knows about torch: the store holds the features and the head.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .._base import detector_tags
from .._numeric import located_errors, predicted_classes
from .._validation import check_sparsity
from ..exceptions import SkdiceError, require
from ..metrics import Report, ood_report
from .._search import default_grid
from ._report import EvaluationReport, dropped_note, dropped_records
from .fit import fit_detector
from .methods import DEFAULT_METHODS, MethodSpec, build_detector, expand_methods, parse_method
from .resolve import (
    SplitFeatures,
    TrainingData,
    check_split_lists,
    check_validation_splits,
    damaged_store_error,
    open_feature_store,
    read_features,
    resolve_train_mean,
)

__all__ = ["Evaluation", "EvaluationReport", "evaluate_store"]


def _dask_scores(detector, X, fs, split):
    scores = detector.score_samples(X)
    try:
        scores = scores.compute()
    except SkdiceError:
        raise
    except (RuntimeError, OSError) as exc:  # lazy reads fail here
        raise damaged_store_error(fs, split, exc) from exc
    return np.asarray(scores, dtype=np.float64)


def _dask_classes(X, classify):
    da = require("dask.array", "dask")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return np.asarray(da.map_blocks(classify, X, drop_axis=1, dtype=np.int64).compute())


def _score_split(detectors, rows, heads=None, labels=None):
    """Every detector's scores of a split, read once block by block.

    With ``heads`` (``[classify, ...]``: a block's rows to their classes) and
    ``labels`` (``-1`` unknown), also how many labelled rows each head
    classifies right, from the same blocks. Memory: one block, plus 8 bytes a
    row per detector.
    """
    n = len(rows)
    scores = [np.empty(n, dtype=np.float64) for _ in detectors]
    correct = np.zeros(len(heads or ()), dtype=np.int64)
    for start, block in rows.iter_blocks():
        stop = start + block.shape[0]
        with located_errors(rows, start, block):
            for out, det in zip(scores, detectors):
                out[start:stop] = det.score_samples(block)
        if heads:
            known = labels[start:stop] >= 0
            if known.any():
                part = block if known.all() else block[known]
                truth = labels[start:stop][known]
                for i, classify in enumerate(heads):
                    correct[i] += np.count_nonzero(classify(part) == truth)
    return scores, correct


@dataclass
class Evaluation:
    """What :func:`evaluate_store` returns.

    Attributes
    ----------
    report : skdice.metrics.Report
        One row per (method, OOD split) plus each method's ``"average"`` row;
        metrics in percent. ``report.extra["id_accuracy"]`` holds
        :attr:`id_accuracy`, so ``report.to_json()`` is the full result.
    id_accuracy : dict or None
        ``{"split", "n_labelled", "original", "masked": [{"method", "p",
        "accuracy"}, ...], "changed": [...]}``, accuracies in percent,
        computed on the ID rows whose label is known (``>= 0``); None when no
        ID row is labelled. ``masked`` lists the masked heads, ``changed``
        the other detectors that change the classifier (ReAct, ASH, SCALE):
        each one's :meth:`~skdice.BaseDetector.predict_class`, the number the
        search's guard reads (DICE+ReAct's masked head on clipped features).
    detectors : dict of str to BaseDetector
        The fitted detectors, by method label (the report's method column;
        ``"dice@p=0.5"`` when one method appears at several sparsities).
        They are fitted for scoring: their ``offset_`` may be uncalibrated
        (NaN) or calibrated on the ID split; use :func:`skdice.workflows.fit.fit_from_store` for a
        detector to deploy.
    scores : dict of str to dict of str to ndarray
        ``scores[method][split]``: the scores of the ID split and each OOD split.
    positive : str
        The FPR95 convention of the report (``"id"`` or ``"ood"``).
    tuning : dict or None
        When the methods were tuned first (``tune_id``): ``{"id", "noise", "ood",
        "methods": [{"method", "params", "informative", "reason", "decided_by", "moved", "at_defaults"}, ...]}``,
        one entry per method with a grid; also ``report.extra["tuning"]``.
    searches : dict of str to search
        The fitted searches, by method label.
    """

    report: object
    id_accuracy: dict | None
    detectors: dict
    scores: dict
    positive: str = "id"
    tuning: dict | None = None
    searches: dict | None = None

    def to_dict(self) -> dict:
        """``{"results": [...], "id_accuracy": {...} or None}``, the JSON of ``skdice evaluate``.

        Returns
        -------
        dict
        """
        return self.report.to_dict()

    def accuracy_lines(self) -> list[str]:
        """Human-readable ID accuracy lines for the text formats.

        Returns
        -------
        list of str
        """
        acc = self.id_accuracy
        if acc is None:
            return ["ID accuracy: n/a (the ID split has no labels)"]
        lines = [
            f"ID accuracy on {acc['split']!r} ({acc['n_labelled']} labelled rows): "
            f"original head {acc['original']:.2f}%"
        ]
        for item in acc["masked"]:
            p = "" if item["p"] is None else f" (p={item['p']:g})"
            lines.append(f"  masked head of {item['method']}{p}: {item['accuracy']:.2f}%")
        for item in acc.get("changed", ()):
            lines.append(f"  classifier of {item['method']} (as it scores): {item['accuracy']:.2f}%")
        return lines

    def tuning_lines(self) -> list[str]:
        """Human-readable lines of the values each method was tuned to (empty without tuning).

        Returns
        -------
        list of str
        """
        if not self.tuning:
            return []
        outliers = ", ".join(map(repr, [*self.tuning["noise"], *self.tuning.get("ood", [])]))
        lines = [f"tuned on {self.tuning['id']!r} vs {outliers} before the evaluation:"]
        for item in self.tuning["methods"]:
            values = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                               for k, v in item["params"].items())
            if item.get("moved", item["informative"]):
                how = "chosen"
            elif not item.get("at_defaults", True):
                how = "the candidate nearest the defaults, which the guard flags or the grid lacks"
            elif item["informative"]:
                how = "the defaults: validation agrees with them"
            else:
                how = "defaults kept: validation cannot move them"
            if item.get("decided_by"):
                how += f"; decided by {item['decided_by']!r}"
            lines.append(f"  {item['method'].partition(':')[0]}: {values} ({how})")
            if item.get("dropped"):
                lines.append(f"    {dropped_note(item['dropped'])}")
        return lines


def _labels(spec: MethodSpec, detector, used: set, tuned=None) -> tuple[str, str]:
    """The method column of the report, and a unique key for the result dicts.

    Parameters given in the spec or chosen by tuning (``tuned``) other than
    ``p`` (which has its own column) are written into the label.
    """
    label = spec.name
    extra = {k: v for k, v in {**spec.params, **(tuned or {})}.items() if k != "p"}
    if extra:
        label += ":" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in extra.items())
    key, n = label, 2
    p = detector.get_params().get("p")
    if key in used and p is not None:  # the same method at several sparsities
        key = f"{label}@p={p:g}"
    while key in used:
        key, n = f"{label}#{n}", n + 1
    used.add(key)
    return label, key


def evaluate_store(
    store,
    id_split: str,
    ood_splits: Sequence[str],
    methods: Sequence[str | MethodSpec] = DEFAULT_METHODS,
    *,
    p: float | None = None,
    train: str | None = None,
    train_mean=None,
    positive: str = "id",
    tpr: float = 0.95,
    dask: bool = False,
    progress=None,
    tune_id: str | None = None,
    tune_noise: Sequence[str] = (),
    tune_ood: Sequence[str] = (),
    tune_metric: str = "fpr95",
    guard: bool = True,
    n_bootstrap: int | None = None,
    random_state=0,
) -> Evaluation:
    """Fit methods on a store's training data and evaluate them ID vs each OOD split.

    Parameters
    ----------
    store : str, path-like or FeatureStore
        A feature store written by ``skdice extract``.
    id_split : str
        The in-distribution test split.
    ood_splits : sequence of str
        One or more OOD splits.
    methods : sequence of str or MethodSpec, default=("dice", "energy")
        Registry names, optionally with parameters (``"knn:k=10"``); see
        :func:`parse_method`. ``"all"`` stands for every registered method.
    p : float, default=None
        Sparsity for every method that has a ``p`` parameter and does not set
        it in its spec; None keeps each method's default (DICE: 0.9).
    train : str, default=None
        Split of in-distribution training features to fit on.
    train_mean : array-like, str or path-like, default=None
        A cached mean training feature (array or ``.npy`` file), for methods
        that accept one (DICE). With ``train`` as well, the mean defines DICE's
        mask and the training split calibrates ``offset_``.
    positive : {"id", "ood"}, default="id"
        FPR95 convention (see docs/metrics.md).
    tpr : float, default=0.95
        True positive rate of the FPR column.
    dask : bool, default=False
        Read the splits as dask arrays and score them block by block (the
        active dask scheduler does the work).
    progress : callable, default=None
        Called with a short message before each fit and each scoring pass
        (the CLI prints them on stderr).
    tune_id : str, default=None
        An ID validation split: every method whose class declares a search
        grid (:func:`skdice.tuning.default_grid`) is first tuned on it
        against ``tune_noise`` and ``tune_ood`` (:func:`~skdice.workflows.tune.run_search`)
        over the parameters its spec (and ``p``) leave free, and evaluated at
        the chosen values. No validation split may be a test split.
    tune_noise, tune_ood : sequence of str, default=()
        The synthetic and the real OOD validation splits of the tuning.
    tune_metric : {"fpr95", "auroc"}, default="fpr95"
        Selection criterion of the tuning.
    guard : bool, default=True
        The tuning's ID-accuracy guard (see :class:`skdice.tuning.HyperparameterSearch`).
    n_bootstrap : int, default=None
        Bootstrap resamples of the tuning (None: the search's default).
    random_state : int, default=0
        Seed of the tuning's resamples.

    Returns
    -------
    Evaluation

    Raises
    ------
    StoreError
        For a missing, corrupt or incomplete store or split.
    ValueError
        For an unknown method, a bad ``p``, or a method that needs training
        features when only ``train_mean`` (or nothing) is given.

    Notes
    -----
    No split is loaded whole. Every method is fitted first (mean-based ones stream the training
    split, those with ``fits_from_blocks`` read it in passes, those that keep training rows,
    KNN, NNGuide and Relation, read it), then each test split is
    read once, block by block (:class:`~skdice.workflows.resolve.SplitFeatures`): every method
    scores a block before the next is read, and over the ID split the same blocks give the ID
    accuracy of every head. Memory is a few blocks plus the scores returned, 8 bytes a row per
    method and split (measured in docs/performance.md).

    Examples
    --------
    >>> result = evaluate_store("features.zarr", "cifar10-test",  # doctest: +SKIP
    ...                         ["svhn", "places365"], train="cifar10-train")
    >>> print(result.report.to_table())  # doctest: +SKIP
    """
    ood_splits, tune_noise, tune_ood = _check_splits(positive, p, id_split, ood_splits, tune_id, tune_noise, tune_ood)
    specs, detectors = _build_detectors(methods, p)
    say = progress or (lambda message: None)
    fs = open_feature_store(store)
    head = fs.head
    mean = resolve_train_mean(train_mean, head.n_features)
    say(f"checking splits of {fs.path}")
    # Open everything first, so that a missing or incomplete split fails before any fit.
    splits = _open_test_splits(fs, id_split, ood_splits, dask)
    labels = fs.labels(id_split)
    train_data = TrainingData(fs, train, mean, dask)
    tune = None if tune_id is None else dict(tune_id=tune_id, tune_noise=tune_noise, tune_ood=tune_ood,
                                             metric=tune_metric, tpr=tpr, guard=guard,
                                             n_bootstrap=n_bootstrap, random_state=random_state)
    fitted = _fit_methods(specs, detectors, p, fs, train_data, splits[id_split], say, tune)
    scores, correct = _score_splits(fitted, fs, splits, labels, head, dask, say)
    _calibrate_featureless(fitted, scores, id_split)
    id_accuracy = _id_accuracy(id_split, labels, fitted.masked(), correct)
    tuning = None if tune_id is None else {"id": tune_id, "noise": list(tune_noise), "ood": list(tune_ood),
                                           "methods": fitted.tuning}
    report = _report(fitted, scores, id_split, ood_splits, tpr=tpr, positive=positive,
                     id_accuracy=id_accuracy, tuning=tuning)
    return Evaluation(report, id_accuracy, fitted.detectors, scores, positive, tuning, fitted.searches)


def _check_splits(positive, p, id_split, ood_splits, tune_id, tune_noise, tune_ood):
    """The OOD and tuning split lists, checked against each other (with ``positive`` and ``p``)."""
    if positive not in ("id", "ood"):
        raise ValueError(f"positive must be 'id' or 'ood', got {positive!r}.")
    check_sparsity(p, allow_none=True)
    ood_splits = check_split_lists(id_split, ood_splits)
    tune_noise, tune_ood = list(tune_noise), list(tune_ood)
    if (tune_id is None) != (not tune_noise and not tune_ood):
        raise ValueError("tune_id= goes with tune_noise= and/or tune_ood=: give both, or neither.")
    if tune_id is not None:
        check_validation_splits(tune_id, [*tune_noise, *tune_ood], [id_split, *ood_splits])
    return ood_splits, tune_noise, tune_ood


def _build_detectors(methods, p):
    """The method specs and their unfitted detectors; ``p`` must reach at least one of them."""
    if not methods:
        raise ValueError("give at least one method.")
    specs = [m if isinstance(m, MethodSpec) else parse_method(m) for m in expand_methods(methods)]
    detectors = [build_detector(spec, p) for spec in specs]
    if p is not None and not any("p" in d.get_params() for d in detectors):
        raise ValueError(
            f"p={p:g} was given but none of the methods ({', '.join(s.name for s in specs)}) "
            "has a sparsity parameter p."
        )
    return specs, detectors


@dataclass
class _Fitted:
    """The fitted methods of one evaluation by unique key, in the order they were given."""

    labels: dict = field(default_factory=dict)  # key -> the report's method column
    detectors: dict = field(default_factory=dict)  # key -> fitted detector
    tuning: list = field(default_factory=list)  # what each tuned method was tuned to
    searches: dict = field(default_factory=dict)  # key -> fitted search

    def masked(self) -> list:
        """``[(label, p, detector), ...]`` of the detectors that change the classifier, masked heads first."""
        tags = {key: detector_tags(det) for key, det in self.detectors.items()}
        order = [key for key in self.detectors if tags[key].masked_head]
        order += [key for key in self.detectors if tags[key].changes_classifier and not tags[key].masked_head]
        return [(self.labels[key], self.detectors[key].get_params().get("p"), self.detectors[key])
                for key in order]


def _fit_methods(specs, detectors, p, fs, train_data, id_X, say, tune) -> _Fitted:
    """Tune (when ``tune`` holds the tuning's options) and fit every method, uncalibrated."""
    fitted, used = _Fitted(), set()
    for spec, detector in zip(specs, detectors):
        tuned = search = None
        if tune is not None:
            search = _tune(spec, detector, p, fs, train_data, say=say, **tune)
            if search is not None:
                tuned = dict(search.best_params_)
                detector.set_params(**tuned)
        label, key = _labels(spec, detector, used, tuned)
        if tuned is not None:
            fitted.searches[key] = search
            fitted.tuning.append({"method": label, "params": tuned, "informative": search.informative_,
                                  "reason": search.informative_reason_, "decided_by": search.decided_by_,
                                  "moved": search.best_index_ != search.fallback_index_,
                                  "at_defaults": search.at_defaults_,
                                  "dropped": dropped_records(search)})
        say(f"fitting {key}")
        fit_detector(detector, train_data, id_X=id_X, calibrate=False)
        fitted.labels[key], fitted.detectors[key] = label, detector
    return fitted


def _score_splits(fitted, fs, splits, labels, head, dask, say):
    """``scores[key][split]`` of every method, and the right counts of every head on the ID split.

    The heads are the store's ``head``, then each masked head in the order of
    :meth:`_Fitted.masked`.

    One pass over each split scores it by every method (and, over the ID split,
    the first of ``splits``, classifies its labelled rows by every head): each
    split is read once (with ``dask``, the heads read the ID split again:
    :func:`_dask_correct`). The counts are None when no ID row is labelled.
    """
    id_split = next(iter(splits))
    known, correct = labels >= 0, None
    # the dense head, then each changed classifier as its detector scores with it (predict_class:
    # the number the search's guard reads)
    heads = [partial(predicted_classes, weight=head.weight, bias=head.bias)]
    heads += [det.predict_class for _, _, det in fitted.masked()]
    detectors = list(fitted.detectors.values())
    names = ", ".join(fitted.detectors)
    scores = {key: {} for key in fitted.detectors}
    for split, X in splits.items():
        say(f"scoring {names} on {split}")
        if dask:
            split_scores = [_dask_scores(det, X, fs, split) for det in detectors]
        else:
            on_id = split == id_split and known.any()
            split_scores, counted = _score_split(detectors, X, heads if on_id else None, labels)
            correct = counted if on_id else correct
        for key, s_split in zip(fitted.detectors, split_scores):
            scores[key][split] = s_split
    if dask and known.any():
        correct = _dask_correct(splits[id_split], labels, heads)
    return scores, correct


def _open_test_splits(fs, id_split, ood_splits, dask) -> dict:
    """``{split: features}``, the ID split first: dask arrays, or block sources read when scored."""
    if dask:
        return {name: read_features(fs, name, dask) for name in [id_split, *ood_splits]}
    # read block by block when scored: memory does not grow with the splits
    return {name: SplitFeatures(fs, name) for name in [id_split, *ood_splits]}


def _calibrate_featureless(fitted, scores, id_split) -> None:
    """Set ``offset_`` of the detectors that learn nothing from features from every ID row's scores.

    They were fitted on the ID split: the quantile of all its scores is what
    fit on the whole split gives.
    """
    for key, detector in fitted.detectors.items():
        if not detector_tags(detector).uses_features:
            detector.offset_ = float(np.quantile(scores[key][id_split], 1.0 - detector.tpr))


def _report(fitted, scores, id_split, ood_splits, *, tpr, positive, id_accuracy, tuning) -> Report:
    """One row per (method, OOD split) and each method's average, methods in the order given.

    ``extra`` holds ``id_accuracy``, and ``tuning`` when the methods were tuned.
    """
    report = Report.concat([
        ood_report(scores[key][id_split], {name: scores[key][name] for name in ood_splits},
                   method=fitted.labels[key], p=detector.get_params().get("p"), tpr=tpr,
                   positive=positive)
        for key, detector in fitted.detectors.items()
    ])
    report.extra["id_accuracy"] = id_accuracy
    if tuning is not None:
        report.extra["tuning"] = tuning
    return report


def _dask_correct(id_X, labels, heads) -> list:
    """How many labelled rows of the (dask) ID split each head classifies right."""
    known = labels >= 0
    X_known = id_X[np.flatnonzero(known)] if not known.all() else id_X
    truth = labels[known]
    return [np.count_nonzero(_dask_classes(X_known, classify) == truth) for classify in heads]


def _id_accuracy(id_split, labels, masked, correct) -> dict | None:
    """The ``id_accuracy`` record from each head's right count (the original head first)."""
    known = labels >= 0
    if not known.any():
        return None
    n_known = int(known.sum())
    rates = [float(100 * (c / n_known)) for c in correct]
    records = [({"method": label, "p": det_p, "accuracy": rate}, detector_tags(det).masked_head)
               for (label, det_p, det), rate in zip(masked, rates[1:])]
    return {
        "split": id_split,
        "n_labelled": n_known,
        "original": rates[0],
        "masked": [record for record, is_masked in records if is_masked],
        "changed": [record for record, is_masked in records if not is_masked],
    }


def _tune(spec, detector, p, fs, train_data, tune_id, tune_noise, tune_ood, say, **options):
    """Tune one method's free parameters on the validation splits; None when it has none.

    The warnings of the search are given again with the method's name, so
    that each says which method it is about.
    """
    from .tune import make_search, run_search

    fixed = set(spec.params) | ({"p"} if p is not None else set())
    grid = {k: v for k, v in default_grid(spec.name).items() if k not in fixed}
    if not grid:
        return None
    n_bootstrap = options.pop("n_bootstrap")
    if n_bootstrap is not None:
        options["n_bootstrap"] = n_bootstrap
    plain = spec.name == "dice" and not spec.params and set(grid) == {"p"}
    search = make_search("dice" if plain else detector, None if plain else grid, **options)
    say(f"tuning {spec.name} on {tune_id}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_search(search, fs, train_data, id_split=tune_id, noise_splits=tune_noise, ood_val_splits=tune_ood)
    for item in caught:
        # stacklevel: the caller of evaluate_store (_tune < _fit_methods < evaluate_store)
        warnings.warn(f"tuning {spec.name}: {item.message}", item.category, stacklevel=4)
    return search
