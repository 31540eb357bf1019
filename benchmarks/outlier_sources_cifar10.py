"""Validation outliers without real OOD data, on the paper's CIFAR-10 DenseNet-BC-100.

Extracts ``--n`` rows of every generated outlier source of ``skdice extract``
into the store written by ``benchmarks/reproduce_cifar10.py``, one split per
generator named ``val-<generator>``:

==========================  =======================================================
split                       ``--data``
==========================  =======================================================
``val-gaussian``            ``gaussian:N:SEED`` (clip(N(0.5, 0.25^2), 0, 1) per pixel)
``val-gaussian-sigma1``     ``gaussian[sigma=1]:N:SEED`` (the pixel noise of issue 12)
``val-uniform``             ``uniform:N:SEED``
``val-rademacher``          ``rademacher:N:SEED``
``val-blobs``               ``blobs:N:SEED``
``val-jigsaw``              ``jigsaw[seed=SEED]:FOLDER`` (4 x 4 patches shuffled)
``val-permute``             ``permute[seed=SEED]:FOLDER`` (pixels permuted)
``val-blur``                ``blur:FOLDER`` (Gaussian blur, sigma 3 pixels)
==========================  =======================================================

``FOLDER`` is a folder of symbolic links to ``N / 10`` CIFAR-10 test images
per class, none of them among the images of the store's ID test and ID
validation splits (read from those splits' source folders, so the choice
follows whatever ``reproduce_cifar10.py`` linked); the script refuses to run
if they would overlap.

Then it prints, per split, the rows, the extraction time and the dense
energy score's FPR95 and AUROC against the ID validation split (ID
positive), beside the two noise splits of ``reproduce_cifar10.py``: an
outlier set that the dense model does not separate from CIFAR-10 at all
(``noise:N`` here: FPR95 100%) cannot rank candidate hyperparameters. How
well each set *chooses* ``p`` is measured by the tuning evidence of issue 12,
not here.

Usage (from the repository root; 26-132 s per 1000-row split were measured
on two CPU cores shared with other work, 11 minutes for the eight)::

    python benchmarks/reproduce_cifar10.py --n 1000      # first: the store
    python benchmarks/outlier_sources_cifar10.py --n 1000

Nothing is downloaded; re-running skips the splits already complete.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STORE = Path("/tmp/skdice-reproduction/cifar10-densenet-n1000.zarr")
ID_SPLITS = ("cifar10-test", "cifar10-val")
VAL_SPLIT = "cifar10-val"


def _default_data_root() -> Path:
    env = os.environ.get("SKDICE_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _used_images(store, splits) -> set[Path]:
    """Resolved image files behind the folder splits ``splits`` of the store."""
    used = set()
    for split in splits:
        source = store.split_info(split).get("source", "")
        if not source.startswith("folder:"):
            raise SystemExit(f"split {split!r} was not extracted from a folder ({source!r}); cannot tell its images")
        root = Path(source[len("folder:"):])
        for rel in store.paths(split):
            used.add((root / rel).resolve())
    return used


def disjoint_folder(cifar: Path, dest: Path, per_class: int, used: set[Path]) -> int:
    """Class subfolders of links to the first ``per_class`` images of each class not in ``used``."""
    total = 0
    for class_dir in sorted(p for p in cifar.iterdir() if p.is_dir()):
        files = [f for f in sorted(class_dir.glob("*.jpg")) if f.resolve() not in used][:per_class]
        if len(files) < per_class:
            raise SystemExit(f"{class_dir} has too few images outside the ID splits for --n")
        (dest / class_dir.name).mkdir(parents=True, exist_ok=True)
        for f in files:
            link = dest / class_dir.name / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
            elif link.resolve() != f.resolve():
                raise SystemExit(f"{link} exists and points elsewhere; remove {dest}")
        total += len(files)
    linked = {p.resolve() for p in dest.rglob("*.jpg")}
    if linked & used or len(linked) != total:
        raise SystemExit(f"{dest} holds images of the ID splits or stale links; remove it and re-run")
    return total


def outlier_specs(n: int, seed: int, folder: Path) -> dict[str, str]:
    """``{split: --data spec}`` of every generated outlier source."""
    return {
        "val-gaussian": f"gaussian:{n}:{seed}",
        "val-gaussian-sigma1": f"gaussian[sigma=1]:{n}:{seed}",
        "val-uniform": f"uniform:{n}:{seed}",
        "val-rademacher": f"rademacher:{n}:{seed}",
        "val-blobs": f"blobs:{n}:{seed}",
        "val-jigsaw": f"jigsaw[seed={seed}]:{folder}",
        "val-permute": f"permute[seed={seed}]:{folder}",
        "val-blur": f"blur:{folder}",
    }


def _energy(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))).astype(np.float64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--n", type=int, default=1000, help="rows per split (a multiple of 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=_default_data_root())
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    from skdice.extract.models import load_preset
    from skdice.extract.run import extract_features
    from skdice.metrics import auroc, fpr_at_tpr
    from skdice.store import open_store

    store = open_store(args.store)
    missing = [s for s in ID_SPLITS if s not in store.splits or not store.split_info(s).get("complete")]
    if missing:
        raise SystemExit(f"{args.store} lacks the complete splits {missing}: run benchmarks/reproduce_cifar10.py first")
    folder = args.store.parent / "inputs" / f"cifar10-outlier-base-{args.n}"
    n_linked = disjoint_folder(args.data_root / "images" / "cifar10-test", folder, args.n // 10,
                               _used_images(store, ID_SPLITS))
    print(f"{folder}: {n_linked} CIFAR-10 test images outside {', '.join(ID_SPLITS)}", flush=True)

    spec = load_preset("densenet-bc-100", args.data_root / "models" / "densenet-bc-100-cifar10.pth.tar")
    seconds = {}
    for split, data in outlier_specs(args.n, args.seed, folder).items():
        print(f"extract {split:<20} --data {data}", flush=True)
        t0 = time.perf_counter()
        extract_features(spec, data, args.store, split, batch_size=args.batch_size, device=args.device,
                         progress=False)
        seconds[split] = time.perf_counter() - t0

    store = open_store(args.store)
    e_val = _energy(store.logits(VAL_SPLIT))
    reference = {"gaussian-noise": "noise:N (N(0, 1) on the network's input)",
                 "gaussian-noise-pixels": "clip(N(0.5, 1), 0, 1) pixels, the test seed"}
    rows = [(s, d) for s, d in reference.items() if s in store.splits]
    rows += [(s, store.split_info(s)["source"]) for s in seconds]
    print(f"\ndense energy score, {VAL_SPLIT} ({len(e_val)} rows, ID positive) against each outlier split")
    print(f"{'split':<22} {'rows':>5} {'seconds':>8} {'FPR95 %':>8} {'AUROC %':>8}  source")
    for split, source in rows:
        e_out = _energy(store.logits(split))
        fpr, area = 100 * fpr_at_tpr(e_val, e_out), 100 * auroc(e_val, e_out)
        took = f"{seconds[split]:.1f}" if split in seconds else "-"
        print(f"{split:<22} {len(e_out):>5} {took:>8} {fpr:>8.2f} {area:>8.2f}  {source}")


if __name__ == "__main__":
    main()
