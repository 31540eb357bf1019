"""Every registered detector on one feature store: FPR95 (ID positive) and AUROC per OOD split.

Reads a store made by ``benchmarks/reproduce_cifar10.py`` (the paper's CIFAR-10
DenseNet-BC-100: ID test split, an ID validation split, OOD splits), fits each
detector of :func:`skdice.available_detectors` on the ID *fit* split with the
store's head (Mahalanobis with the split's class labels), scores the ID test
split and every OOD split, and prints one Markdown table.

No CIFAR-10 training images are shared, so the detectors that need training
statistics (means, percentiles, neighbours, covariances) learn them from the
small ID fit split, the DICE family included (its mask then comes from
that split's mean, not the official cached training mean). Numbers on a few hundred images are noisy
and not the paper's six-dataset averages: read the ranking, not the digits.

With ``--tune-id`` (an ID validation split disjoint from the fit split) each
method with a declared grid is also tuned by the library's search
(:class:`skdice.tuning.HyperparameterSearch`, the rule of docs/tuning.md) on
the synthetic ``--tune-noise`` and real ``--tune-ood`` splits, and two more
columns give the chosen values and their scores on the same test splits.

Usage::

    python benchmarks/catalogue_cifar10.py STORE [--fit-split cifar10-val]
        [--id-split cifar10-test] [--ood tinyimagenet32 mnist]
        [--tune-id cifar10-val --tune-noise val-jigsaw --tune-ood val-tin]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from skdice import available_detectors, detector_tags, get_detector
from skdice.metrics import auroc, fpr_at_tpr
from skdice.store import open_store

#: parameters for a fit split of a few hundred rows (k = 50 needs 50 rows: fine)
PARAMS = {
    "weight-dropout": {"random_state": 0},
    "unit-dropout": {"random_state": 0},
    "dice-random-k": {"random_state": 0},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--fit-split", default="cifar10-val")
    parser.add_argument("--id-split", default="cifar10-test")
    parser.add_argument("--ood", nargs="+", default=None)
    parser.add_argument("--tune-id", default=None, help="ID validation split: add the search's choice")
    parser.add_argument("--tune-noise", nargs="*", default=[], help="synthetic validation splits")
    parser.add_argument("--tune-ood", nargs="*", default=[], help="real OOD validation splits")
    args = parser.parse_args(argv)

    store = open_store(args.store)
    complete = [s for s in store.splits if store.split_info(s).get("complete")]
    tuning = [args.tune_id, *args.tune_noise, *args.tune_ood] if args.tune_id else []
    ood = args.ood or [s for s in complete if s not in (args.fit_split, args.id_split, *tuning)]
    H_fit = store.features(args.fit_split)
    y_fit = store.labels(args.fit_split)
    H_id = store.features(args.id_split)
    H_ood = {name: store.features(name) for name in ood}
    head = store.head
    print(
        f"store {args.store}: fit on {args.fit_split} ({len(H_fit)} rows), "
        f"ID {args.id_split} ({len(H_id)}), OOD "
        + ", ".join(f"{k} ({len(v)})" for k, v in H_ood.items())
    )
    columns = [f"{k} FPR95 / AUROC" for k in H_ood] + ["mean FPR95 / AUROC", "fit+score s"]
    if args.tune_id:
        print(f"tuned on {args.tune_id} ({store.split_info(args.tune_id)['count']} labelled rows) against "
              + ", ".join(f"{k} ({store.split_info(k)['count']}, synthetic)" for k in args.tune_noise)
              + (", " if args.tune_noise and args.tune_ood else "")
              + ", ".join(f"{k} ({store.split_info(k)['count']}, real)" for k in args.tune_ood))
        columns += ["tuned: chosen", "tuned mean FPR95 / AUROC"]
    header = "| method | " + " | ".join(columns) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in available_detectors():
        det = get_detector(name, **PARAMS.get(name, {}))
        labels = {"y": y_fit} if detector_tags(det).requires_class_labels else {}
        start = time.perf_counter()
        det.fit(H_fit, head=head, **labels)
        fprs, aucs = _metrics(det, H_id, H_ood)
        elapsed = time.perf_counter() - start
        cells = [f"{100 * f:.2f} / {100 * a:.2f}" for f, a in zip(fprs, aucs)]
        cells += [f"{100 * np.mean(fprs):.2f} / {100 * np.mean(aucs):.2f}", f"{elapsed:.2f}"]
        if args.tune_id:
            cells += _tuned(store, det, args, H_fit, labels, H_id, H_ood)
        print(f"| {name} | " + " | ".join(cells) + " |")


def _metrics(det, H_id, H_ood):
    """FPR95 and AUROC of a fitted detector on each OOD set."""
    s_id = det.score_samples(H_id)
    scores = [det.score_samples(H) for H in H_ood.values()]
    return [fpr_at_tpr(s_id, s) for s in scores], [auroc(s_id, s) for s in scores]


def _tuned(store, det, args, H_fit, labels, H_id, H_ood) -> list:
    """The search's choice for ``det`` and its mean FPR95 / AUROC, or dashes without a grid."""
    from skdice.tuning import HyperparameterSearch, default_grid

    if not default_grid(det.name):
        return ["(nothing to tune)", "–"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the verdict is in the table
        search = HyperparameterSearch(det).fit(
            H_fit, head=store.head, X_id=store.features(args.tune_id), y_id=store.labels(args.tune_id),
            X_noise={k: store.features(k) for k in args.tune_noise} or None,
            X_ood={k: store.features(k) for k in args.tune_ood} or None, **labels)
    fprs, aucs = _metrics(search.best_estimator_, H_id, H_ood)
    if search.best_index_ != search.fallback_index_:
        how = "moved"
    elif search.at_defaults_:
        how = "the defaults"
    else:
        how = "nearest the defaults the guard allows"
    chosen = ", ".join(f"{k}={v}" for k, v in sorted(search.best_params_.items()))
    return [f"{chosen} ({how})", f"{100 * np.mean(fprs):.2f} / {100 * np.mean(aucs):.2f}"]

if __name__ == "__main__":
    main()
