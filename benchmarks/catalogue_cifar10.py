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

Usage::

    python benchmarks/catalogue_cifar10.py STORE [--fit-split cifar10-val]
        [--id-split cifar10-test] [--ood tinyimagenet32 mnist]
"""

from __future__ import annotations

import argparse
import time

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
    args = parser.parse_args(argv)

    store = open_store(args.store)
    complete = [s for s in store.splits if store.split_info(s).get("complete")]
    ood = args.ood or [s for s in complete if s not in (args.fit_split, args.id_split)]
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
    header = "| method | " + " | ".join(columns) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in available_detectors():
        det = get_detector(name, **PARAMS.get(name, {}))
        start = time.perf_counter()
        if detector_tags(det).requires_class_labels:
            det.fit(H_fit, y_fit, head=head)
        else:
            det.fit(H_fit, head=head)
        s_id = det.score_samples(H_id)
        cells, fprs, aucs = [], [], []
        for H in H_ood.values():
            s = det.score_samples(H)
            f, a = fpr_at_tpr(s_id, s), auroc(s_id, s)
            fprs.append(f)
            aucs.append(a)
            cells.append(f"{100 * f:.2f} / {100 * a:.2f}")
        elapsed = time.perf_counter() - start
        print(
            f"| {name} | " + " | ".join(cells)
            + f" | {100 * np.mean(fprs):.2f} / {100 * np.mean(aucs):.2f} | {elapsed:.2f} |"
        )


if __name__ == "__main__":
    main()
