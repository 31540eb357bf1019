"""Run a benchmark protocol over one or several feature stores (``skdice benchmark``).

A protocol (:mod:`~skdice.workflows._protocol`, docs/benchmark.md) says which
split is the ID test set, which are near- and far-OOD, which are
covariate-shifted ID (CSID) and which are the validation splits the methods
are tuned on. :func:`benchmark_stores` runs, on every store, the evaluation of
``skdice evaluate`` (:func:`~skdice.workflows.evaluate.evaluate_store`: each
method tuned on the validation splits by the search, fitted, every test split
read once for all methods) and one more pass over each CSID split (scores and
every classifier's accuracy from the same blocks). It then reports each
method per OOD set, per group (near, far) and overall, as the mean over the
stores with their standard deviation and a bootstrap interval, and records
what it takes to run it again: the protocol, every split's content
fingerprint, skdice's version, each method's parameters and the seeds
(:func:`check_benchmark` re-runs a result and compares it byte for byte).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from .._base import detector_tags
from .._numeric import located_errors, predicted_classes
from .._version import __version__
from ._cells import METRICS, Pair, batch_size, draw_batch, summary
from ._protocol import MAX_RESAMPLES, Protocol, ProtocolError, load_protocol, parse_protocol, shipped_protocols
from .evaluate import evaluate_store
from .methods import MethodSpec, expand_methods, parse_method
from .resolve import SplitFeatures, open_feature_store, resolve_train_mean

__all__ = [
    "Benchmark",
    "BenchmarkCheck",
    "Protocol",
    "ProtocolError",
    "benchmark_stores",
    "check_benchmark",
    "load_protocol",
    "shipped_protocols",
]

#: the version of the JSON a benchmark writes (``skdice_benchmark``)
FORMAT_VERSION = 1
#: what ``skdice benchmark`` runs without ``--method``
DEFAULT_BENCHMARK_METHODS = ("all",)


@dataclass
class Benchmark:
    """What :func:`benchmark_stores` returns.

    Attributes
    ----------
    record : dict
        The whole result, as ``skdice benchmark --format json`` prints it:
        ``results`` (one row per method and OOD set, group and ``overall``),
        ``accuracy``, ``protocol``, ``stores`` (fingerprints, parameters),
        ``bootstrap``, ``skdice_version``, ... (docs/benchmark.md).
    protocol : Protocol
    scores : list of dict
        ``scores[store][method][split]``: every test split's scores (ID, OOD
        and CSID) on each store, by method name.
    evaluations : list of Evaluation
        Each store's :class:`~skdice.workflows.evaluate.Evaluation` (fitted detectors, tuning).
    """

    record: dict
    protocol: Protocol
    scores: list = field(default_factory=list)
    evaluations: list = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        """The method names, in the order they were run."""
        return list(self.record["methods"])

    def rows(self, method: str | None = None) -> list[dict]:
        """The ``results`` rows, all or one method's.

        Parameters
        ----------
        method : str, default=None

        Returns
        -------
        list of dict
        """
        return [r for r in self.record["results"] if method is None or r["method"] == method]

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict (:attr:`record`).

        Returns
        -------
        dict
        """
        return self.record

    def to_json(self) -> str:
        """The JSON of :attr:`record`, indented by 2, keys in a fixed order; no trailing newline.

        Returns
        -------
        str
        """
        return json.dumps(self.record, indent=2)


def _method_names(methods) -> list:
    """``[(name, spec), ...]``: each method's stable name (its spec as written) and its spec."""
    out = []
    for item in expand_methods(methods):
        spec = item if isinstance(item, MethodSpec) else parse_method(item)
        name = item if isinstance(item, str) else spec.name + (
            ":" + ",".join(f"{k}={v}" for k, v in spec.params.items()) if spec.params else "")
        out.append((name.strip(), spec))
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(partial(f.read, 1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_fingerprint(fs, split: str) -> str:
    """The content fingerprint of a split: BLAKE2b of its manifest's chunk digests and counts.

    The manifest's digests cover every chunk's decoded features, logits and
    labels (docs/store.md, "The manifest"); the fingerprint leaves out the
    split's name and its rows' paths: the same rows extracted under another
    name, or from a copy of the images elsewhere, give the same fingerprint. A
    split written before manifests is hashed from its features, logits and
    labels, read block by block.

    Parameters
    ----------
    fs : FeatureStore
    split : str

    Returns
    -------
    str
        ``"blake2b:<32 hex digits>"``.
    """
    h = hashlib.blake2b(digest_size=16, person=b"skdice-split")
    record = fs.manifest(split)
    if record is not None:
        keep = {k: record[k] for k in ("count", "chunk_rows", "n_features", "n_classes", "head")}
        keep["chunks"] = {k: record["chunks"][k] for k in ("features", "logits", "labels")}
        h.update(json.dumps(keep, sort_keys=True).encode("ascii"))
    else:
        for _, block in SplitFeatures(fs, split).iter_blocks():
            h.update(np.ascontiguousarray(block, dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(fs.logits(split), dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(fs.labels(split), dtype="<i8").tobytes())
    return "blake2b:" + h.hexdigest()


def source_fingerprint() -> str:
    """BLAKE2b of the source of the skdice package that runs (every ``.py`` file under it, by path).

    The version number names a release; this names the code itself, so that a
    result computed by an edited or newer checkout of the same version does
    not pass :func:`check_benchmark` unnoticed.

    Returns
    -------
    str
        ``"blake2b:<32 hex digits>"``.
    """
    root = Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=16, person=b"skdice-source")
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        h.update(path.read_bytes())
    return "blake2b:" + h.hexdigest()


def _check_store_splits(fs, protocol: Protocol, train) -> None:
    """Every split the protocol names is in the store, before anything is fitted."""
    have = set(fs.splits)
    roles = [("id.test", [protocol.id_test]), ("id.val", [protocol.id_val] if protocol.id_val else []),
             ("ood.val", protocol.ood_val), ("ood.noise", protocol.noise), ("ood.near", protocol.near), ("ood.far", protocol.far),
             ("csid.test", protocol.csid), ("training split", [train] if train else [])]
    for role, splits in roles:
        missing = [s for s in splits if s not in have]
        if missing:
            raise ProtocolError(
                f"{fs.path} has no split {', '.join(map(repr, missing))} (the protocol's {role}); its splits: "
                f"{', '.join(sorted(have)) or 'none'}. Extract or import it into the store under that name.")


def _csid_pass(fs, split, detectors, head):
    """Every detector's scores of a CSID split and how many labelled rows each one's classifier gets right.

    One read of the split, block by block: each block is scored by every
    detector and classified by the store's head and by every detector that
    changes the classifier (:meth:`~skdice.BaseDetector.predict_class`).
    """
    rows, labels = SplitFeatures(fs, split), fs.labels(split)
    scores = {key: np.empty(len(rows)) for key in detectors}
    own = {key: detector_tags(det).changes_classifier for key, det in detectors.items()}
    correct = dict.fromkeys([None, *detectors], 0)  # None: the store's head
    dense = partial(predicted_classes, weight=head.weight, bias=head.bias)
    for start, block in rows.iter_blocks():
        stop = start + block.shape[0]
        with located_errors(rows, start, block):
            for key, det in detectors.items():
                scores[key][start:stop] = det.score_samples(block)
        known = labels[start:stop] >= 0
        if known.any():
            part, truth = block[known], labels[start:stop][known]
            correct[None] += np.count_nonzero(dense(part) == truth)
            for key, det in detectors.items():
                if own[key]:
                    correct[key] += np.count_nonzero(det.predict_class(part) == truth)
    n = int(np.count_nonzero(labels >= 0))
    return scores, {key: (int(c if key is None or own[key] else correct[None]), n) for key, c in correct.items()}


def _id_counts(evaluation, keys):
    """``{key: (right, labelled)}`` on the ID split for every method and None (the store's head)."""
    acc = evaluation.id_accuracy
    if acc is None:
        return {key: (0, 0) for key in [None, *keys]}
    n = acc["n_labelled"]

    def right(rate):
        return int(round(rate * n / 100))

    dets = evaluation.detectors
    tags = {key: detector_tags(dets[key]) for key in keys}
    # id_accuracy lists the masked heads, then the other changed classifiers, in method order
    order = [k for k in keys if tags[k].masked_head] + \
            [k for k in keys if tags[k].changes_classifier and not tags[k].masked_head]
    out = {key: (right(acc["original"]), n) for key in [None, *keys]}
    for key, item in zip(order, [*acc["masked"], *acc.get("changed", ())]):
        out[key] = (right(item["accuracy"]), n)
    return out


def _run_store(index, store, protocol, named, *, full_spectrum, train, train_mean, p, say):
    """One store's evaluation, CSID pass, per-set values and what it records."""
    fs = open_feature_store(store)
    _check_store_splits(fs, protocol, train)
    say(f"store {index + 1}: {fs.path}")
    tune = {}
    if protocol.tuned:
        tune = dict(tune_id=protocol.id_val, tune_metric=protocol.tune_metric, random_state=protocol.seed)
        if "tune_ood" in inspect.signature(evaluate_store).parameters:
            tune.update(tune_noise=list(protocol.noise), tune_ood=list(protocol.ood_val))
        else:  # an evaluate_store that does not tell real OOD validation sets from synthetic ones
            tune.update(tune_noise=[*protocol.noise, *protocol.ood_val])
    ev = evaluate_store(fs, protocol.id_test, list(protocol.ood), [spec for _, spec in named], p=p,
                        train=train, train_mean=train_mean, positive=protocol.positive, tpr=protocol.tpr,
                        progress=say, **tune)
    keys = dict(zip(ev.detectors, (name for name, _ in named)))  # evaluate's key -> our name
    scores = {keys[k]: dict(v) for k, v in ev.scores.items()}
    counts = {split: {} for split in [protocol.id_test, *protocol.csid]}
    for key, value in _id_counts(ev, list(ev.detectors)).items():
        counts[protocol.id_test][keys.get(key)] = value
    for split in protocol.csid:
        say(f"scoring {', '.join(keys.values())} on {split} (CSID)")
        csid_scores, csid_counts = _csid_pass(fs, split, ev.detectors, fs.head)
        for key, s in csid_scores.items():
            scores[keys[key]][split] = s
        for key, value in csid_counts.items():
            counts[split][keys.get(key)] = value
    searches = ev.searches or {}
    methods = {}
    for key, det in ev.detectors.items():
        search = searches.get(key)
        methods[keys[key]] = {
            "params": {k: _plain(v) for k, v in sorted(det.get_params().items())},
            "tuned": None if search is None else {
                "params": {k: _plain(v) for k, v in search.best_params_.items()},
                "informative": bool(search.informative_)},
        }
    used = [protocol.id_test, *([protocol.id_val] if protocol.id_val else []), *protocol.ood_val, *protocol.noise,
            *protocol.ood, *protocol.csid, *([train] if train else [])]
    root = fs.manifest() or {}
    record = {"path": str(Path(fs.path).resolve()), "model": fs.model, "weights_sha256": root.get("weights_sha256"),
              "head": root.get("head"),
              "splits": {s: {"rows": int(fs.split_info(s)["count"]), "fingerprint": split_fingerprint(fs, s)}
                         for s in used},
              "methods": methods}
    return ev, scores, counts, record


def _id_scores(scores, protocol, full_spectrum):
    s = scores[protocol.id_test]
    return np.concatenate([s, *(scores[c] for c in protocol.csid)]) if full_spectrum and protocol.csid else s


def _cell_values(runs, names, protocol, full_spectrum):
    """``values[name][j]``: (4, n_stores) metrics of method ``name`` on OOD set ``j``, from skdice.metrics."""
    from ..metrics import aupr_in, aupr_out, auroc, fpr_at_tpr

    values = {name: np.zeros((len(protocol.ood), len(METRICS), len(runs))) for name in names}
    for s, scores in enumerate(runs):
        for name in names:
            s_id = _id_scores(scores[name], protocol, full_spectrum)
            for j, split in enumerate(protocol.ood):
                s_ood = scores[name][split]
                values[name][j, :, s] = [100 * fpr_at_tpr(s_id, s_ood, tpr=protocol.tpr, positive=protocol.positive),
                                         100 * auroc(s_id, s_ood), 100 * aupr_in(s_id, s_ood),
                                         100 * aupr_out(s_id, s_ood)]
    return values


def _replicates(runs, names, protocol, full_spectrum, n_bootstrap, say):
    """``reps[name][j]``: (4, B) metrics of each resample, averaged over the stores (None when B = 0)."""
    if not n_bootstrap:
        return None
    reps = {name: np.zeros((len(protocol.ood), len(METRICS), n_bootstrap)) for name in names}
    for s, scores in enumerate(runs):
        say(f"bootstrap intervals ({n_bootstrap} resamples) on store {s + 1}")
        pairs = {name: [Pair(_id_scores(scores[name], protocol, full_spectrum), scores[name][split])
                        for split in protocol.ood] for name in names}
        n_id = pairs[names[0]][0].n_id
        n_ood = [pair.n_ood for pair in pairs[names[0]]]
        step = batch_size(n_id + max(n_ood), n_bootstrap)
        for start in range(0, n_bootstrap, step):
            batch = range(start, min(start + step, n_bootstrap))
            c_id = draw_batch(protocol.seed, s, 0, batch, n_id)
            c_ood = [draw_batch(protocol.seed, s, j + 1, batch, n) for j, n in enumerate(n_ood)]
            for name in names:
                for j, pair in enumerate(pairs[name]):
                    reps[name][j, :, batch.start:batch.stop] += pair.metrics(
                        c_id, c_ood[j], tpr=protocol.tpr, positive=protocol.positive) / len(runs)
    return reps


def _accuracy(counts_per_store, names, protocol, full_spectrum):
    """The ``accuracy`` records and each method's ACC column (pooled ID + CSID in full-spectrum mode)."""
    records, acc = [], {}
    splits = [protocol.id_test, *protocol.csid]
    for name in [None, *names]:
        for split in splits:
            per = [100 * c[split][name][0] / c[split][name][1] if c[split][name][1] else None
                   for c in counts_per_store]
            ok = [v for v in per if v is not None]
            records.append({"method": name, "split": split, "accuracy": float(np.mean(ok)) if ok else None,
                            "accuracy_std": float(np.std(ok)) if ok else None, "per_store": per})
        pooled = splits if full_spectrum else [protocol.id_test]
        per = []
        for c in counts_per_store:
            right = sum(c[split][name][0] for split in pooled)
            total = sum(c[split][name][1] for split in pooled)
            per.append(100 * right / total if total else None)
        ok = [v for v in per if v is not None]
        acc[name] = (float(np.mean(ok)) if ok else None, float(np.std(ok)) if ok else None)
    return records, acc


def _rows(values, reps, names, protocol, p_of, acc, confidence):
    """The ``results`` rows: each method's OOD sets and group rows (near, far), then ``overall``."""
    rows = []
    for name in names:
        index = {split: j for j, split in enumerate(protocol.ood)}
        cells = []
        for group, splits in protocol.groups.items():
            cells += [(split, group, [index[split]]) for split in splits]
            cells.append((group, group, [index[s] for s in splits]))
        cells.append(("overall", "overall", list(range(len(protocol.ood)))))
        for ood, group, sets in cells:
            per_store = values[name][sets].mean(axis=0)
            rep = None if reps is None else reps[name][sets].mean(axis=0)
            row = {"method": name, "p": p_of[name], "ood": ood, "group": group,
                   **summary(per_store, rep, confidence),
                   "acc": acc[name][0], "acc_std": acc[name][1],
                   "per_store": {k: per_store[i].tolist() for i, k in enumerate(METRICS)}}
            rows.append(row)
    return rows


def benchmark_stores(
    stores: Sequence,
    protocol,
    methods: Sequence[str | MethodSpec] = DEFAULT_BENCHMARK_METHODS,
    *,
    full_spectrum: bool = False,
    train: str | None = None,
    train_mean=None,
    p: float | None = None,
    n_bootstrap: int | None = None,
    progress=None,
) -> Benchmark:
    """Run a benchmark protocol on one or several stores (runs or seeds of one model family).

    Parameters
    ----------
    stores : sequence of str, path-like or FeatureStore
        One store per run; every one must hold every split the protocol names.
    protocol : str, path-like or Protocol
        A protocol file, a shipped protocol's name (:func:`shipped_protocols`) or a Protocol.
    methods : sequence of str or MethodSpec, default=("all",)
        As :func:`~skdice.workflows.evaluate.evaluate_store`; ``"all"`` is every registered method.
    full_spectrum : bool, default=False
        Count the CSID splits as ID (OpenOOD's full-spectrum mode): the ID
        set of every OOD metric is the ID test split followed by the CSID
        splits, and the ACC column is the accuracy over all of them.
    train : str, default=None
        The training split; default the protocol's ``id.train``.
    train_mean : array-like, str or path-like, default=None
        A cached mean training feature for the mean-based methods (as evaluate).
    p : float, default=None
        Sparsity of every method with a ``p`` its spec does not set; with a
        tuned protocol, ``p`` is then not tuned.
    n_bootstrap : int, default=None
        Resamples behind each interval; default the protocol's
        ``metrics.n_bootstrap``; 0 gives no interval.
    progress : callable, default=None
        Called with a short message at each step.

    Returns
    -------
    Benchmark

    Raises
    ------
    ProtocolError
        For a bad protocol, or a store that lacks one of its splits.
    StoreError, ValueError
        As :func:`~skdice.workflows.evaluate.evaluate_store`.

    Notes
    -----
    Memory: each store's evaluation reads its splits block by block; the
    scores (8 bytes a row per method and test split) and, for the intervals,
    one sorted order per method and OOD set (about 24 bytes a row) are kept,
    with draw counts of at most 32 MiB per set at a time (docs/performance.md).

    Examples
    --------
    >>> result = benchmark_stores(["run0.zarr", "run1.zarr"], "cifar10-openood-v1.5")  # doctest: +SKIP
    >>> [r["auroc"] for r in result.rows("dice") if r["ood"] in ("near", "far")]  # doctest: +SKIP
    """
    protocol = load_protocol(protocol)
    if not stores:
        raise ValueError("give at least one store.")
    named = _method_names(methods)
    if not named:
        raise ValueError("give at least one method.")
    names = [name for name, _ in named]
    train = train if train is not None else protocol.id_train
    n_bootstrap = protocol.n_bootstrap if n_bootstrap is None else int(n_bootstrap)
    if not 0 <= n_bootstrap <= MAX_RESAMPLES:
        raise ValueError(f"n_bootstrap must be in [0, {MAX_RESAMPLES}], got {n_bootstrap}.")
    mean_record = None
    if train_mean is not None and not hasattr(train_mean, "shape"):
        mean_record = {"path": str(train_mean), "sha256": _file_sha256(train_mean)}
    elif train_mean is not None:
        mean_record = {"path": None, "sha256": hashlib.sha256(np.ascontiguousarray(train_mean).tobytes()).hexdigest()}
    say = progress or (lambda message: None)
    evaluations, runs, counts, store_records = [], [], [], []
    for i, store in enumerate(stores):
        mean = None if train_mean is None else resolve_train_mean(train_mean, open_feature_store(store).head.n_features)
        ev, scores, c, record = _run_store(i, store, protocol, named, full_spectrum=full_spectrum, train=train,
                                           train_mean=mean, p=p, say=say)
        evaluations.append(ev)
        runs.append(scores)
        counts.append(c)
        store_records.append(record)
    values = _cell_values(runs, names, protocol, full_spectrum)
    reps = _replicates(runs, names, protocol, full_spectrum, n_bootstrap, say)
    accuracy, acc = _accuracy(counts, names, protocol, full_spectrum)
    p_of = {}
    for name in names:
        ps = {r["methods"][name]["params"].get("p") for r in store_records}
        p_of[name] = ps.pop() if len(ps) == 1 else None
    record = {
        "skdice_benchmark": FORMAT_VERSION,
        "skdice_version": __version__,
        "skdice_source": source_fingerprint(),
        "protocol": {**protocol.to_dict(), "source": protocol.source},
        "full_spectrum": bool(full_spectrum),
        "methods": names,
        "p": p,
        "train": train,
        "train_mean": mean_record,
        "fpr_at_tpr": protocol.tpr,
        "fpr_positive": protocol.positive,
        "bootstrap": {"n_resamples": n_bootstrap, "confidence": protocol.confidence, "seed": protocol.seed,
                      "rows": "numpy.random.default_rng([seed, store, set, resample]).integers(0, n, n); "
                              "set 0 is the ID set, set j + 1 the j-th OOD split (near, then far)"},
        "stores": store_records,
        "results": _rows(values, reps, names, protocol, p_of, acc, protocol.confidence),
        "accuracy": accuracy,
    }
    return Benchmark(record, protocol, runs, evaluations)


@dataclass
class BenchmarkCheck:
    """What :func:`check_benchmark` found.

    Attributes
    ----------
    identical : bool
        Whether the re-run printed the same bytes.
    differences : list of str
        Where the two differ (``results[3].auroc: 91.2 != 91.3``), at most 20.
    rerun : Benchmark
        The re-run.
    """

    identical: bool
    differences: list
    rerun: Benchmark


def _differences(old, new, where="", out=None, limit=20):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new or key not in old:
                out.append(f"{where}{key}: only in the {'result' if key in old else 're-run'}")
            else:
                _differences(old[key], new[key], f"{where}{key}.", out, limit)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            _differences(a, b, f"{where.rstrip('.')}[{i}].", out, limit)
    elif old != new:
        out.append(f"{where.rstrip('.')}: {old!r} != {new!r}")
    return out[:limit]


def check_benchmark(result, *, progress=None) -> BenchmarkCheck:
    """Re-run a benchmark from its JSON and compare the two byte for byte.

    The re-run takes everything from the result: the stores' paths, the
    protocol as recorded (not the file, which may have changed), the
    methods, ``p``, the training split, the training mean's path, the full-
    spectrum mode and the seeds.

    Parameters
    ----------
    result : str or path-like
        A file written by ``skdice benchmark --format json``.
    progress : callable, default=None

    Returns
    -------
    BenchmarkCheck

    Raises
    ------
    ProtocolError
        For a file that is not a benchmark's JSON.
    """
    path = Path(result)
    text = path.read_text(encoding="utf-8")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{path} is not JSON ({exc}).") from None
    if not isinstance(record, dict) or record.get("skdice_benchmark") != FORMAT_VERSION:
        raise ProtocolError(f"{path} is not a benchmark result's JSON "
                            f"(no \"skdice_benchmark\": {FORMAT_VERSION}).")
    data = {k: v for k, v in record["protocol"].items() if k != "source"}
    protocol = parse_protocol(data, origin=f"the protocol recorded in {path}", source=record["protocol"]["source"])
    mean = record.get("train_mean")
    rerun = benchmark_stores(
        [s["path"] for s in record["stores"]], protocol, record["methods"],
        full_spectrum=record["full_spectrum"], train=record["train"],
        train_mean=None if mean is None else mean["path"], p=record["p"],
        n_bootstrap=record["bootstrap"]["n_resamples"], progress=progress,
    )
    produced = rerun.to_json()
    identical = text.rstrip("\n") == produced
    differences = [] if identical else _differences(record, json.loads(produced))
    if not identical and not differences:
        differences = ["the values agree but the text differs (indentation or key order edited by hand?)"]
    return BenchmarkCheck(identical, differences, rerun)
