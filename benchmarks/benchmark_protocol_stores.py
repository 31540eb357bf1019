"""Build the two CIFAR-10 DenseNet stores that ``docs/benchmark.md`` runs its protocol on.

Two stores stand in for two runs of one benchmark: the same model (the DICE
paper's DenseNet-BC-100 from ``../shared/data``) and the same training
stand-in, but two different random draws (``--seeds``) of the ID test, ID
validation, covariate-shifted ID, near-OOD, OOD validation and far-OOD images.
The split names are those of ``skdice/protocols/shared-cifar10-densenet.toml``.

Per store (``--scale 1``): cifar10-test 500 (50 a class), cifar10-val 300,
cifar10-blur 300 (labelled CIFAR-10 images blurred with a Gaussian of 0.7
pixels: a stand-in for CIFAR-10-C, which is not in ../shared/data),
tin 500 and tin-val 300 (disjoint Tiny-ImageNet-32 validation images),
mnist 400, noise 200 (``gaussian[sigma=1]`` pixel noise), val-jigsaw 200
(4 x 4 jigsaw puzzles of further CIFAR-10 test images: the synthetic
outliers of the tuning, beside tin-val, the real ones). The training split
``cifar10-train`` is 600 CIFAR-10 *test* images (60 a class) that no draw
uses: the CIFAR-10 training set is not in ../shared/data, so this is a
stand-in for the methods that fit on training features (KNN, ViM,
Mahalanobis, ...); DICE's mask uses the official cached training mean. It is
extracted once and copied into every store.

Usage (about 6,000 forward passes; 4-6 minutes on two shared CPU cores)::

    python benchmarks/benchmark_protocol_stores.py --out /tmp/skdice-benchmark

Nothing is downloaded; the shared data folder is ``$SKDICE_SHARED_DATA`` or
``../shared/data`` next to the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
N_TRAIN_PER_CLASS = 60


def _data_root() -> Path:
    env = os.environ.get("SKDICE_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _classes(cifar: Path) -> list[Path]:
    return sorted(p for p in cifar.iterdir() if p.is_dir())


def _link_folder(dest: Path, files_by_class: dict) -> None:
    for name, files in files_by_class.items():
        (dest / name).mkdir(parents=True, exist_ok=True)
        for f in files:
            link = dest / name / f.name
            if not link.exists():
                link.symlink_to(f.resolve())


def _blurred_npz(path: Path, files_by_class: dict, sigma: float) -> None:
    """Labelled uint8 images blurred over height and width (labels: sorted class order)."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    images, labels = [], []
    for label, files in enumerate(files_by_class.values()):
        for f in files:
            x = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64)
            x = gaussian_filter(x, sigma=(sigma, sigma, 0), mode="reflect")
            images.append(np.clip(np.round(x), 0, 255).astype(np.uint8))
            labels.append(label)
    np.savez(path, images=np.stack(images), labels=np.asarray(labels, dtype=np.int64))


def _mnist_npz(path: Path, source: Path, rows: np.ndarray) -> None:
    with np.load(source) as data:
        np.savez(path, images=data["images"][rows], labels=np.full(len(rows), -1, dtype=np.int64))


def _extract(store: Path, split: str, source: str, weights: Path, log: dict) -> None:
    cmd = [sys.executable, "-m", "skdice", "extract", "--model", "densenet-bc-100", "--weights", str(weights),
           "--data", source, "--out", str(store), "--split", split, "--batch-size", "100", "--device", "cpu"]
    print("$ skdice " + " ".join(cmd[3:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    log[(store.name, split)] = time.perf_counter() - t0


def build(out: Path, seeds, scale: float = 1.0) -> dict:
    """Extract the training stand-in once, then one store per seed; return the wall times."""
    data = _data_root()
    weights = data / "models" / "densenet-bc-100-cifar10.pth.tar"
    cifar = data / "images" / "cifar10-test"
    tin = sorted((data / "images" / "tinyimagenet32-val").iterdir())
    classes = _classes(cifar)
    files = {c.name: sorted(c.glob("*.jpg")) for c in classes}
    n = {k: max(1, int(round(v * scale))) for k, v in
         dict(test=50, val=30, blur=30, jigsaw=20, tin=500, tin_val=300, mnist=400, noise=200).items()}
    out.mkdir(parents=True, exist_ok=True)
    log: dict = {}
    base = out / "train-only.zarr"
    if not (base / "cifar10-train").exists():
        train_dir = out / "inputs" / "cifar10-train"
        _link_folder(train_dir, {k: v[:N_TRAIN_PER_CLASS] for k, v in files.items()})
        _extract(base, "cifar10-train", str(train_dir), weights, log)
    for seed in seeds:
        store = out / f"cifar10-densenet-seed{seed}.zarr"
        if not store.exists():
            shutil.copytree(base, store)
        rng = np.random.default_rng(seed)
        inputs = out / "inputs" / f"seed{seed}"
        draw = {k: list(np.asarray(v[N_TRAIN_PER_CLASS:])[rng.permutation(len(v) - N_TRAIN_PER_CLASS)])
                for k, v in files.items()}
        cut = np.cumsum([0, n["test"], n["val"], n["blur"], n["jigsaw"]])
        parts = {name: {k: v[cut[i]:cut[i + 1]] for k, v in draw.items()}
                 for i, name in enumerate(["test", "val", "blur", "jigsaw"])}
        _link_folder(inputs / "cifar10-test", parts["test"])
        _link_folder(inputs / "cifar10-val", parts["val"])
        _link_folder(inputs / "jigsaw-source", parts["jigsaw"])
        blur = inputs / "cifar10-blur.npz"
        if not blur.exists():
            _blurred_npz(blur, parts["blur"], sigma=0.7)
        tin_rows = rng.permutation(len(tin))
        (inputs / "tin").mkdir(parents=True, exist_ok=True)
        (inputs / "tin-val").mkdir(parents=True, exist_ok=True)
        for folder, rows in (("tin", tin_rows[:n["tin"]]), ("tin-val", tin_rows[n["tin"]:n["tin"] + n["tin_val"]])):
            for i in rows:
                link = inputs / folder / tin[i].name
                if not link.exists():
                    link.symlink_to(tin[i].resolve())
        mnist = inputs / "mnist.npz"
        if not mnist.exists():
            _mnist_npz(mnist, data / "images" / "mnist-test.npz", rng.permutation(10000)[:n["mnist"]])
        jobs = [("cifar10-test", str(inputs / "cifar10-test")), ("cifar10-val", str(inputs / "cifar10-val")),
                ("cifar10-blur", str(blur)), ("tin", str(inputs / "tin")), ("tin-val", str(inputs / "tin-val")),
                ("mnist", str(mnist)), ("noise", f"gaussian[sigma=1]:{n['noise']}:{seed}"),
                ("val-jigsaw", f"jigsaw[grid=4,seed={seed}]:{inputs / 'jigsaw-source'}")]
        for split, source in jobs:
            if not (store / split).exists():
                _extract(store, split, source, weights, log)
    return log


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/skdice-benchmark"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every split's size")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    log = build(args.out, args.seeds, args.scale)
    for (store, split), seconds in log.items():
        print(f"{store} {split}: {seconds:.1f} s")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
