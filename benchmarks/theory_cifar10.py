"""Section 6 and Appendix E of the DICE paper, measured on its own CIFAR-10 DenseNet.

For every CIFAR-10 class ``c`` and every OOD split, the script prints the
variance of the OOD logit ``f_c`` (bias left out: it does not change a
variance) with the dense head and with DICE's head at ``--p`` (0.9 by default,
mask from the official cached training mean), and the terms of Appendix E:

* ``dropped``: the dropped units' variances ``sum_{i<=t} sigma_i^2`` (all of
  the reduction under Lemma 2's independence);
* ``all pairs`` and ``kept pairs``: ``2 sum_{i<j} Cov(v_i, v_j)`` over all
  units and over the kept units;
* ``App.E 1st = dropped + all pairs`` and ``App.E 2nd = kept pairs``: the two
  quantities the paper reports for SVHN (6.8 and 2.2); the reduction is their
  difference.

Every number comes from :func:`skdice.theory.variance_decomposition` on the
store's penultimate features. As a check that the features and the head belong
together, the dense variance is compared with the variance of the logits the
network itself wrote into the store. With ``--figure`` the covariance matrix
of the unit contributions to ``--class`` (Figure 6) is drawn with
:func:`skdice.plotting.plot_contribution_covariance`, one panel per OOD split.

Usage (from the repository root, on a store written by
``benchmarks/reproduce_cifar10.py``; a few seconds)::

    python benchmarks/theory_cifar10.py \\
        --store /tmp/skdice-reproduction/cifar10-densenet-n1000.zarr \\
        --figure docs/img/cifar10-covariance.png

The training mean defaults to
``../shared/data/models/densenet-bc-100-cifar10.train-mean.npy``
(``--train-mean`` or ``SKDICE_SHARED_DATA`` to change it).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
OOD_SPLITS = ("tinyimagenet32", "mnist")
COLUMNS = (
    ("class", 12), ("Var f", 8), ("Var f^DICE", 10), ("reduction", 9), ("dropped", 8),
    ("all pairs", 9), ("kept pairs", 10), ("App.E 1st", 9), ("App.E 2nd", 9), ("kept", 5),
)


def _default_train_mean() -> Path:
    env = os.environ.get("SKDICE_SHARED_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root / "models" / "densenet-bc-100-cifar10.train-mean.npy"


def _row(values) -> str:
    return "| " + " | ".join(str(v).rjust(w) for v, (_, w) in zip(values, COLUMNS)) + " |"


def measure(features, logits, head, detector, class_names):
    """One row per class: the Appendix E terms from ``variance_decomposition``."""
    from skdice.theory import variance_decomposition

    rows, worst_logit_gap = [], 0.0
    for c, name in enumerate(class_names):
        kept = detector.mask_[:, c]
        d = variance_decomposition(features, kept, weight=head.weight[:, c])
        # the network's own logits: the same variance up to float32 rounding
        net_var = float(np.var(np.asarray(logits[:, c], dtype=np.float64), ddof=1))
        worst_logit_gap = max(worst_logit_gap, abs(net_var - d.var_dense) / d.var_dense)
        rows.append({
            "class": f"{c} {name}",
            "Var f": d.var_dense,
            "Var f^DICE": d.var_masked,
            "reduction": d.reduction,
            "dropped": d.dropped_variance,
            "all pairs": d.all_pairs_covariance,
            "kept pairs": d.kept_pairs_covariance,
            "App.E 1st": d.dropped_variance + d.all_pairs_covariance,
            "App.E 2nd": d.kept_pairs_covariance,
            "kept": int(kept.sum()),
        })
    return rows, worst_logit_gap


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="feature store of the CIFAR-10 DenseNet")
    parser.add_argument("--train-mean", type=Path, default=None, help="official cached training mean (.npy)")
    parser.add_argument("--ood", action="append", default=None, help="OOD split (repeat); default: %s" % ", ".join(OOD_SPLITS))
    parser.add_argument("--p", type=float, default=0.9, help="DICE sparsity (default 0.9)")
    parser.add_argument("--figure", type=Path, default=None, help="write Figure 6 (covariance matrix) here")
    parser.add_argument("--class", dest="class_index", type=int, default=0, help="class of the figure (0: airplane)")
    args = parser.parse_args(argv)

    from skdice import DICEDetector
    from skdice.plotting import contribution_covariance, plot_contribution_covariance
    from skdice.store import open_store
    from skdice.workflows.resolve import load_train_mean

    fs = open_store(args.store)
    head = fs.head
    mean_path = args.train_mean or _default_train_mean()
    train_mean = load_train_mean(mean_path, head.n_features)
    detector = DICEDetector(p=args.p).fit(head=head, train_mean=train_mean)
    names = CIFAR10_CLASSES if head.n_classes == len(CIFAR10_CLASSES) else tuple(map(str, range(head.n_classes)))
    ood_splits = args.ood or list(OOD_SPLITS)

    print(f"store {args.store} ({fs.model}); training mean {mean_path}")
    print(f"DICE p = {args.p:g}: {int(detector.mask_.sum())} of {detector.mask_.size} weights kept; "
          f"variances with ddof=1, logits without bias\n")
    features = {}
    for split in ood_splits:
        X = np.asarray(fs.features(split))
        features[split] = X
        rows, gap = measure(X, np.asarray(fs.logits(split)), head, detector, names)
        print(f"### {split} ({X.shape[0]} images)\n")
        print(_row([c for c, _ in COLUMNS]))
        print("|" + "|".join("-" * (w + 1) + ":" for _, w in COLUMNS) + "|")
        for r in rows:
            print(_row([r["class"], *(f"{r[k]:.3f}" for k, _ in COLUMNS[1:-1]), r["kept"]]))
        means = {k: np.mean([r[k] for r in rows]) for k, _ in COLUMNS[1:-1]}
        print(_row(["mean", *(f"{means[k]:.3f}" for k, _ in COLUMNS[1:-1]), ""]))
        print(f"\ndense variance vs the variance of the network's own logits: "
              f"largest relative difference {gap:.1e}\n")

    if args.figure is not None:
        c = args.class_index
        data = {
            split: contribution_covariance(X, head.weight, c, train_mean=train_mean, kept=detector.mask_[:, c])
            for split, X in features.items()
        }
        label = names[c] if 0 <= c < len(names) else str(c)
        path = plot_contribution_covariance(
            data, args.figure,
            title=f"{fs.model} on CIFAR-10: covariance of unit contributions to class {c} ({label}); "
            f"dashed: DICE p={args.p:g}",
        )
        print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
