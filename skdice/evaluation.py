"""Evaluate detectors on the splits of a feature store, as in the paper's tables.

The library behind ``skdice evaluate``, ``skdice fit`` and ``skdice score``:

- :func:`evaluate_store` fits each method on the training split (or a cached
  training mean), scores the ID split and every OOD split, and returns the
  per-set and average FPR95 / AUROC / AUPR-In / AUPR-Out together with the ID
  accuracy of the original head and of each masked (DICE) head;
- :func:`fit_from_store` fits one detector from a store, for saving;
- :func:`score_store` scores one split with a fitted detector and writes the
  scores back into the store (``<split>/scores/<name>``).

Nothing here knows about torch: the store holds the features and the head.
"""

from __future__ import annotations

import ast
from numbers import Real
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._base import BaseDetector, available_detectors
from ._numeric import chunk_rows
from .exceptions import SkdiceError, StoreError

__all__ = [
    "DEFAULT_METHODS",
    "Evaluation",
    "MethodSpec",
    "parse_method",
    "load_train_mean",
    "fit_from_store",
    "evaluate_store",
    "score_store",
    "write_scores",
]

#: What ``skdice evaluate`` compares when no ``--method`` is given: DICE beside energy.
DEFAULT_METHODS = ("dice", "energy")


# ------------------------------------------------------------------ methods
@dataclass(frozen=True)
class MethodSpec:
    """A registry name with constructor parameters, parsed from ``NAME[:key=value,...]``.

    Attributes
    ----------
    name : str
        Registry name (see :func:`skdice.available_detectors`).
    params : dict
        Constructor parameters given in the spec.
    """

    name: str
    params: dict = field(default_factory=dict)


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word is a string


def parse_method(spec: str) -> MethodSpec:
    """Parse a method spec ``NAME`` or ``NAME:key=value[,key=value...]``.

    Values are Python literals (``0.5``, ``10``, ``True``, ``None``); anything
    else is taken as a string.

    Parameters
    ----------
    spec : str
        For example ``"dice"``, ``"dice:p=0.7"`` or ``"energy:temperature=2"``.

    Returns
    -------
    MethodSpec

    Raises
    ------
    ValueError
        For an unknown detector name or a malformed parameter.

    Examples
    --------
    >>> parse_method("dice:p=0.7")
    MethodSpec(name='dice', params={'p': 0.7})
    """
    name, _, rest = str(spec).partition(":")
    name = name.strip()
    registry = available_detectors()
    if name not in registry:
        raise ValueError(
            f"unknown method {name!r}; choose from: {', '.join(registry)} "
            "(`skdice methods` lists them)."
        )
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(
                f"method spec {spec!r}: parameters are key=value pairs separated by "
                f"commas, got {item!r}."
            )
        params[key.strip()] = _literal(value.strip())
    valid = registry[name]().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"method {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(valid) or 'none'}."
        )
    return MethodSpec(name, params)


def _build(spec: MethodSpec, p: float | None) -> BaseDetector:
    cls = available_detectors()[spec.name]
    params = dict(spec.params)
    if p is not None and "p" in cls().get_params() and "p" not in params:
        params["p"] = p
    return cls(**params)


def _check_p(p):
    if p is None:
        return
    if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p < 1:
        percent = isinstance(p, Real) and 1 < p <= 100 and float(p).is_integer()
        hint = f" (p is a fraction: {p / 100:g} for {p:g}%)" if percent else ""
        raise ValueError(f"p must be in [0, 1), got {p!r}{hint}.")


def _learns_nothing_from_features(cls) -> bool:
    """Whether a detector's scores depend on the head alone (MSP, energy, ...).

    Such detectors are fitted on the ID split when no training data is given:
    only their ``offset_`` sees it, and evaluation does not use ``offset_``.
    """
    declared = getattr(cls, "_uses_features", None)
    if declared is not None:
        return not declared
    from .detectors._common import _HeadDetector

    return cls._fit_statistics is _HeadDetector._fit_statistics


# ------------------------------------------------------------------ inputs
def _open(store):
    from .store import FeatureStore, open_store

    return store if isinstance(store, FeatureStore) else open_store(store)


def load_train_mean(path, n_features: int | None = None) -> np.ndarray:
    """Read a cached mean training feature from a ``.npy`` file (no pickle).

    The DICE authors ship such files (``*_feat_stat.npy``); they let DICE be
    fitted without the training features.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file holding a float array of shape ``(n_features,)`` (or
        ``(1, n_features)``).
    n_features : int, default=None
        Expected width, checked when given.

    Returns
    -------
    ndarray of shape (n_features,), float64

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a numeric ``.npy`` array of the expected width.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train mean file {path} does not exist.")
    try:
        mean = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a readable .npy array (train mean): {exc}") from None
    if not isinstance(mean, np.ndarray) or mean.dtype.kind not in "fiu":
        raise ValueError(
            f"{path} must hold one numeric .npy array (the mean training feature), "
            f"got {'an .npz archive' if not isinstance(mean, np.ndarray) else mean.dtype}."
        )
    if mean.ndim == 2 and 1 in mean.shape:
        mean = mean.reshape(-1)
    if mean.ndim != 1:
        raise ValueError(f"{path} must hold a 1-D mean feature, got shape {mean.shape}.")
    if n_features is not None and mean.shape[0] != n_features:
        raise ValueError(
            f"{path} holds a mean of {mean.shape[0]} features but the store's head has "
            f"{n_features}: it belongs to another model."
        )
    mean = mean.astype(np.float64)
    if not np.isfinite(mean).all():
        raise ValueError(f"{path} contains NaN or infinity.")
    return mean


def _resolve_train_mean(train_mean, n_features: int) -> np.ndarray:
    """A training mean given as a ``.npy`` path (:func:`load_train_mean`) or as an array, checked."""
    if isinstance(train_mean, (str, Path)):
        return load_train_mean(train_mean, n_features)
    return BaseDetector._check_train_mean(train_mean, n_features)


def _class_labels(fs, split):
    labels = fs.labels(split)
    unknown = int(np.count_nonzero(labels < 0))
    if unknown:
        raise ValueError(
            f"split {split!r} has {unknown} rows without a class label (-1); "
            "class-conditional methods need every training row labelled."
        )
    return labels


def _corrupt(fs, split, exc) -> Exception:
    if isinstance(exc, OSError) and exc.errno is not None:
        # the file system refused (full disk, permissions, read-only): the data
        # is not damaged, and deleting it would be the wrong advice
        return OSError(exc.errno, f"{exc.strerror} (split {split!r} of {fs.path})", exc.filename)
    return StoreError(
        f"split {split!r} of {fs.path} could not be read ({type(exc).__name__}: {exc}): "
        "the store is damaged; delete the split's folder and re-run `skdice extract` for it."
    )


def _features(fs, split, dask):
    try:
        return fs.features(split, dask=dask)
    except SkdiceError:
        raise
    except (RuntimeError, OSError, ValueError) as exc:  # a codec or file error in a chunk
        raise _corrupt(fs, split, exc) from exc


def _fits_from_a_mean(detector, head) -> bool:
    """Whether the detector, with its parameters, is fitted from the mean feature alone.

    Such detectors are fitted by streaming the training split. DICE+ReAct, for
    one, accepts a mean but also needs the features for its clip percentile
    unless given an absolute threshold; a trial fit on a placeholder mean
    tells them apart without reading any data.
    """
    from sklearn.base import clone

    if not type(detector)._accepts_train_mean or not hasattr(detector, "_stream_start"):
        return False
    try:
        clone(detector).fit(head=head, train_mean=np.ones(head.n_features))
    except ValueError:
        return False
    return True


class _TrainData:
    """The training information of a run, with the features read only if a method needs them."""

    def __init__(self, fs, split, mean, dask):
        self.fs, self.split, self.mean, self.dask = fs, split, mean, dask
        self._X = None

    @property
    def X(self):
        if self._X is None:
            X = _features(self.fs, self.split, self.dask)
            self._X = X.compute() if self.dask else X
        return self._X


def _fit(detector, head, train: _TrainData, *, id_X=None, dask=False, calibrate=True, progress=None):
    """Fit one detector from whatever training information there is.

    Mean-based detectors (DICE and its variants) stream the training split
    block by block (:func:`skdice.streaming.fit_store`), so memory does not
    grow with its size; ``calibrate=False`` skips the second pass that
    calibrates ``offset_`` (evaluation does not use it). Detectors whose
    scores depend on the head alone are fitted on the ID split ``id_X`` when
    no training data is given or ``offset_`` is not wanted: only their
    ``offset_`` sees it.
    """
    cls = type(detector)
    head_only = id_X is not None and _learns_nothing_from_features(cls)
    if head_only and (train.split is None or not calibrate):
        return detector.fit(id_X.compute() if dask else id_X, head=head)
    if train.split is not None:
        if train.mean is None and _fits_from_a_mean(detector, head):
            from .streaming import fit_store

            return fit_store(detector, train.fs, train.split, head=head,
                             calibration="exact" if calibrate else "none", progress=progress)
        args = (_class_labels(train.fs, train.split),) if cls._requires_class_labels else ()
        kwargs = {"train_mean": train.mean} if train.mean is not None and cls._accepts_train_mean else {}
        return detector.fit(train.X, *args, head=head, **kwargs)
    if train.mean is not None and cls._accepts_train_mean:
        return detector.fit(head=head, train_mean=train.mean)
    need = "training features: pass --train SPLIT"
    if cls._accepts_train_mean:
        need += " or --train-mean PATH"
    raise ValueError(f"method {cls.name!r} is fitted on in-distribution {need}.")


def _scores(detector, X, dask, fs=None, split=None):
    scores = detector.score_samples(X)
    if dask:
        try:
            scores = scores.compute()
        except SkdiceError:
            raise
        except (RuntimeError, OSError) as exc:  # lazy reads fail here
            raise _corrupt(fs, split, exc) from exc
    return np.asarray(scores, dtype=np.float64)


def _predicted_classes(X, weight, bias, dask):
    """Argmax of ``X @ weight + bias`` in row chunks (never the full logits at once)."""
    weight = np.asarray(weight, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)

    def block(chunk):
        chunk = np.asarray(chunk, dtype=np.float32)
        out = np.empty(chunk.shape[0], dtype=np.int64)
        step = chunk_rows(chunk.shape[0], 4 * (chunk.shape[1] + weight.shape[1]))
        for start in range(0, chunk.shape[0], step):
            logits = chunk[start : start + step] @ weight
            logits += bias
            out[start : start + step] = logits.argmax(axis=1)
        return out

    if dask:
        import dask.array as da

        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        return np.asarray(da.map_blocks(block, X, drop_axis=1, dtype=np.int64).compute())
    return block(X)


# ------------------------------------------------------------------ results
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
        "accuracy"}, ...]}``, accuracies in percent, computed on the ID rows
        whose label is known (``>= 0``); None when no ID row is labelled.
    detectors : dict of str to BaseDetector
        The fitted detectors, by method label (the report's method column;
        ``"dice@p=0.5"`` when one method appears at several sparsities).
        They are fitted for scoring: their ``offset_`` may be uncalibrated
        (NaN) or calibrated on the ID split; use :func:`fit_from_store` for a
        detector to deploy.
    scores : dict of str to dict of str to ndarray
        ``scores[method][split]``: the scores of the ID split and each OOD split.
    positive : str
        The FPR95 convention of the report (``"id"`` or ``"ood"``).
    """

    report: object
    id_accuracy: dict | None
    detectors: dict
    scores: dict
    positive: str = "id"

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
        return lines


def _labels(spec: MethodSpec, detector, used: set) -> tuple[str, str]:
    """The method column of the report, and a unique key for the result dicts."""
    label = spec.name
    extra = {k: v for k, v in spec.params.items() if k != "p"}
    if extra:
        label += ":" + ",".join(f"{k}={v}" for k, v in extra.items())
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
        :func:`parse_method`.
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

    Examples
    --------
    >>> result = evaluate_store("features.zarr", "cifar10-test",  # doctest: +SKIP
    ...                         ["svhn", "places365"], train="cifar10-train")
    >>> print(result.report.to_table())  # doctest: +SKIP
    """
    from .metrics import Report, ood_report

    if positive not in ("id", "ood"):
        raise ValueError(f"positive must be 'id' or 'ood', got {positive!r}.")
    _check_p(p)
    ood_splits = list(ood_splits)
    if not ood_splits:
        raise ValueError("give at least one OOD split (--ood SPLIT).")
    repeated = sorted({name for name in ood_splits if ood_splits.count(name) > 1})
    if repeated:
        raise ValueError(f"OOD split {', '.join(map(repr, repeated))} is given more than once.")
    if id_split in ood_splits:
        raise ValueError(f"split {id_split!r} is given both as the ID split and as an OOD split.")
    if not methods:
        raise ValueError("give at least one method.")
    specs = [m if isinstance(m, MethodSpec) else parse_method(m) for m in methods]
    detectors_unfitted = [_build(spec, p) for spec in specs]
    if p is not None and not any("p" in d.get_params() for d in detectors_unfitted):
        raise ValueError(
            f"p={p:g} was given but none of the methods ({', '.join(s.name for s in specs)}) "
            "has a sparsity parameter p."
        )

    say = progress or (lambda message: None)
    fs = _open(store)
    head = fs.head
    mean = None
    if train_mean is not None:
        mean = _resolve_train_mean(train_mean, head.n_features)
    say(f"reading splits of {fs.path}")
    # Open everything first, so that a missing or incomplete split fails before any fit.
    id_X = _features(fs, id_split, dask)
    ood_X = {name: _features(fs, name, dask) for name in ood_splits}
    if train is not None:
        fs.array(train, "features")
    train_data = _TrainData(fs, train, mean, dask)

    reports, fitted, scores, used, masked = [], {}, {}, set(), []
    for spec, detector in zip(specs, detectors_unfitted):
        label, key = _labels(spec, detector, used)
        say(f"fitting {key}")
        _fit(detector, head, train_data, id_X=id_X, dask=dask, calibrate=False)
        det_p = detector.get_params().get("p")
        say(f"scoring {key} on {id_split}")
        method_scores = {id_split: _scores(detector, id_X, dask, fs, id_split)}
        for name, X in ood_X.items():
            say(f"scoring {key} on {name}")
            method_scores[name] = _scores(detector, X, dask, fs, name)
        reports.append(
            ood_report(
                method_scores[id_split],
                {name: method_scores[name] for name in ood_splits},
                method=label,
                p=det_p,
                tpr=tpr,
                positive=positive,
            )
        )
        fitted[key], scores[key] = detector, method_scores
        if hasattr(detector, "masked_weight_"):
            masked.append((label, det_p, detector))

    id_accuracy = None
    labels = fs.labels(id_split)
    known = labels >= 0
    if known.any():
        X_known = id_X[np.flatnonzero(known)] if not known.all() else id_X
        truth = labels[known]

        def accuracy(weight, bias):
            return float(100 * np.mean(_predicted_classes(X_known, weight, bias, dask) == truth))

        id_accuracy = {
            "split": id_split,
            "n_labelled": int(known.sum()),
            "original": accuracy(head.weight, head.bias),
            "masked": [
                {"method": label, "p": det_p, "accuracy": accuracy(det.masked_weight_, det.bias_)}
                for label, det_p, det in masked
            ],
        }
    report = Report.concat(reports)
    report.extra["id_accuracy"] = id_accuracy
    return Evaluation(report, id_accuracy, fitted, scores, positive)


# ------------------------------------------------------------- fit / score
def fit_from_store(
    store,
    method: str | MethodSpec = "dice",
    *,
    train: str | None = None,
    p: float | None = None,
    train_mean=None,
    progress=None,
) -> BaseDetector:
    """Fit one detector on a store's training split (or a cached training mean).

    Parameters
    ----------
    store : str, path-like or FeatureStore
    method : str or MethodSpec, default="dice"
        Registry name, optionally with parameters (``"dice:p=0.7"``).
    train : str, default=None
        Split of in-distribution training features. Needed by every method
        except those that accept ``train_mean`` when it is given; without it
        ``offset_`` is not calibrated (``predict`` refuses to run).
    p : float, default=None
        Sparsity, for methods with a ``p`` parameter.
    train_mean : array-like, str or path-like, default=None
        Cached mean training feature (``.npy``), for methods that accept it.
    progress : callable, default=None
        ``progress(rows_done, rows_total)``, called after each block when the
        training split is streamed (:func:`skdice.streaming.fit_store`).

    Returns
    -------
    BaseDetector
        The fitted detector; save it with :func:`skdice.save_detector`.
    """
    spec = method if isinstance(method, MethodSpec) else parse_method(method)
    _check_p(p)
    detector = _build(spec, p)
    if p is not None and "p" not in detector.get_params():
        raise ValueError(f"method {spec.name!r} has no sparsity parameter p; drop --p.")
    if train is None and train_mean is None:
        raise ValueError(
            "give the training data to fit on: --train SPLIT"
            + (" or --train-mean PATH." if type(detector)._accepts_train_mean else ".")
        )
    fs = _open(store)
    head = fs.head
    mean = None
    if train_mean is not None:
        if not type(detector)._accepts_train_mean:
            raise ValueError(
                f"method {spec.name!r} cannot be fitted from a training mean; use --train SPLIT."
            )
        mean = _resolve_train_mean(train_mean, head.n_features)
    if train is not None:
        fs.array(train, "features")  # a missing or incomplete split fails here
    return _fit(detector, head, _TrainData(fs, train, mean, False), progress=progress)


def write_scores(store, split: str, name: str, scores, *, overwrite: bool = True) -> str:
    """Write an array of scores to ``<split>/scores/<name>`` of a store.

    Goes through the store's own score writer
    (:func:`skdice.store.open_scores_writer`), so the array carries the same
    completion marker as scores written by ``skdice score``.

    Parameters
    ----------
    store : str, path-like or FeatureStore
    split : str
        A complete split of the store.
    name : str
        Name of the score array (no slashes).
    scores : array-like of shape (n_samples,)
        One score per row of the split.
    overwrite : bool, default=True
        Replace an existing array of that name.

    Returns
    -------
    str
        The array's path inside the store, ``"<split>/scores/<name>"``.
    """
    import hashlib

    from .store import open_scores_writer

    fs = _open(store)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    count = fs.array(split, "features").shape[0]  # refuses a missing or incomplete split
    if scores.shape != (count,):
        raise ValueError(f"split {split!r} has {count} rows but {scores.shape} scores were given.")
    writer = open_scores_writer(
        fs.path, split, name,
        chunk_rows=int(fs.split_info(split).get("chunk_rows") or max(count, 1)),
        fingerprint="array:" + hashlib.sha256(scores.tobytes()).hexdigest(),
        overwrite=overwrite,
    )
    if not writer.complete:
        writer.write(writer.rows_done, scores[writer.rows_done:])
        writer.finalize()
    return f"{split}/scores/{name}"


def _summary(scores, detector, split) -> dict:
    offset = getattr(detector, "offset_", np.nan)
    flagged = None if np.isnan(offset) else int(np.count_nonzero(scores < offset))
    empty = not scores.size
    return {
        "split": split,
        "method": type(detector).name,
        "n": int(scores.size),
        "mean": float("nan") if empty else float(scores.mean()),
        "std": float("nan") if empty else float(scores.std()),
        "min": float("nan") if empty else float(scores.min()),
        "max": float("nan") if empty else float(scores.max()),
        "n_ood": flagged,
        "fraction_ood": None if flagged is None or empty else flagged / scores.size,
    }


def score_store(
    store,
    split: str,
    detector,
    *,
    name: str | None = None,
    write: bool = True,
    overwrite: bool = False,
    scheduler=None,
    progress=None,
) -> dict:
    """Score one split of a store with a fitted detector and write the scores back.

    Writing goes block by block through :func:`skdice.streaming.score_to_store`:
    memory stays bounded, an interrupted run resumes, and scores already
    written by the same detector are not recomputed.

    Parameters
    ----------
    store : str, path-like or FeatureStore
    split : str
        Split to score.
    detector : BaseDetector or str or path-like
        A fitted detector, or the path of one saved with :func:`skdice.save_detector`.
    name : str, default=None
        Name of the score array; the detector's registry name by default.
    write : bool, default=True
        Write the scores to ``<split>/scores/<name>``; False only computes them.
    overwrite : bool, default=False
        Replace scores of that name written by another detector.
    scheduler : str, default=None
        A ``dask.distributed`` scheduler address to score on (see
        :func:`skdice.streaming.score_to_store`).
    progress : callable, default=None
        Called as ``progress(rows_done, n_rows)`` while writing.

    Returns
    -------
    dict
        ``scores`` (ndarray), ``written`` (the array path or None),
        ``computed`` (rows scored by this run), and a summary: ``split``,
        ``method``, ``n``, ``mean``, ``std``, ``min``, ``max``, and ``n_ood`` /
        ``fraction_ood`` (rows ``predict`` flags as OOD; None when ``offset_``
        is not calibrated).
    """
    from .persistence import load_detector

    if isinstance(detector, (str, Path)):
        detector = load_detector(detector)
    fs = _open(store)
    array = fs.array(split, "features")  # refuses a missing or incomplete split
    expected = getattr(detector, "n_features_in_", None)
    if expected is not None and array.shape[1] != expected:
        raise ValueError(
            f"split {split!r} of {fs.path} has {array.shape[1]} features but the detector was "
            f"fitted on {expected}: it belongs to another model."
        )
    fitted_weight = getattr(detector, "weight_", None)
    if fitted_weight is not None:
        # Same width is not enough: scores of a head other than the store's are meaningless.
        head = fs.head
        same = np.shape(fitted_weight) == head.weight.shape and np.allclose(
            fitted_weight, head.weight, rtol=1e-6, atol=0
        ) and np.allclose(getattr(detector, "bias_", head.bias), head.bias, rtol=1e-6, atol=0)
        if not same:
            raise ValueError(
                f"the detector was fitted with another classifier head (W {np.shape(fitted_weight)}) "
                f"than the one of {fs.path} (W {head.weight.shape}): it belongs to another model."
            )
    if write:
        from .store import read_scores
        from .streaming import score_to_store

        try:
            done = score_to_store(fs.path, split, detector, method=name, overwrite=overwrite,
                                  scheduler=scheduler, progress=progress)
        except (RuntimeError, OSError) as exc:
            raise _corrupt(fs, split, exc) from exc
        scores = read_scores(fs.path, split, done["written"].rsplit("/", 1)[-1])
        written, computed = done["written"], done["computed"]
    else:
        scores = _scores(detector, _features(fs, split, False), False)
        written, computed = None, int(scores.size)
    return {"scores": scores, "written": written, "computed": computed,
            **_summary(scores, detector, split)}
