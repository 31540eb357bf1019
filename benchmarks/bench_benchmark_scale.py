"""Time and peak memory of ``skdice benchmark`` per method at a size toward ImageNet-1K's.

    python benchmarks/bench_benchmark_scale.py [--train 200000] [--test 50000] [--ood 10000]
        [--n-ood 5] [--val 5000] [--features 2048] [--classes 1000] [--bootstrap 200]
        [--methods NAME ...] [--dir DIR]

Writes (once, then reuses) a synthetic store shaped like an ImageNet-1K
ResNet-50 one (2048 features, 1000 classes): a labelled training split of
``--train`` rows, an ID test split of ``--test`` rows, ``--n-ood`` OOD test
splits of ``--ood`` rows (the first two near, the rest far, as OpenOOD's 2 + 3),
and ID and OOD validation splits of ``--val`` rows. Then, each method in a
fresh process, runs :func:`skdice.workflows.benchmark.benchmark_stores` with a
protocol that names them all (tuning on the validation splits, ``--bootstrap``
resamples per cell) and reports its wall time and peak memory (``VmHWM``, read
in the child). ``knn`` is left out by default: its exact search is
``n_test x n_train`` distances (50,000 x 1.28M x 2048 at ImageNet scale).
The memory of the methods that read the training split whole (the ones
``skdice evaluate`` says need ``--train``) grows with ``--train``; the
others' does not (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine, print_table  # noqa: E402


def make_store(path: Path, sizes: dict, m: int, n_classes: int, seed: int = 0) -> Path:
    """Write (or reuse) the synthetic store: ``sizes`` maps each split to its rows."""
    from skdice import Head
    from skdice.store import create_store, default_chunk_rows, open_store

    if path.exists():
        try:
            fs = open_store(path)
            if all(fs.split_info(s)["complete"] and fs.split_info(s)["count"] == n for s, n in sizes.items()):
                return path
        except Exception:  # a half-written store of an interrupted run: write it again
            pass
        shutil.rmtree(path)
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, 0.05, size=(m, n_classes)).astype(np.float32)
    b = rng.normal(0.0, 0.1, size=n_classes).astype(np.float32)
    protos = rng.random((n_classes, m), dtype=np.float32)
    writer = create_store(path, model="bench-imagenet-like", head=Head(W, b))
    rows = default_chunk_rows(m, n_classes, 64)
    start = time.perf_counter()
    for k, (split, n) in enumerate(sizes.items()):
        labelled = split in ("train", "test", "val")
        with writer.prepare_split(split, n, source=f"synthetic:{seed}", chunk_rows=rows) as out:
            for i in out.pending():
                s, e = out.chunk_bounds(i)
                g = np.random.default_rng([seed, k, i])
                X = g.random((e - s, m), dtype=np.float32)
                if labelled:
                    y = g.integers(0, n_classes, e - s)
                    X += protos[y]
                else:
                    y = np.full(e - s, -1)
                    X *= np.float32(0.6 + 0.1 * k % 5)
                out.write_chunk(i, X, X @ W + b, y, [""] * (e - s))
            out.finalize()
    print(f"# wrote {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return path


_CHILD = r"""
import json, sys, time, warnings

def hwm_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

store, protocol, method, n_bootstrap = sys.argv[1:5]
warnings.simplefilter("ignore")
from skdice.workflows.benchmark import benchmark_stores
start = time.perf_counter()
benchmark_stores([store], protocol, [method], n_bootstrap=int(n_bootstrap))
print(json.dumps({"peak_kib": hwm_kib(), "seconds": time.perf_counter() - start}), file=sys.stderr)
"""


def protocol_text(n_ood: int) -> str:
    near = [f"ood{j}" for j in range(min(2, n_ood))]
    far = [f"ood{j}" for j in range(len(near), n_ood)]
    return (f'name = "imagenet-like"\n[id]\ntest = "test"\nval = "val"\ntrain = "train"\n'
            f'[ood]\nval = ["oodval"]\nnear = {json.dumps(near)}\nfar = {json.dumps(far)}\n')


def run(args) -> list[dict]:
    """Write the store, then measure one process per method; returns table rows."""
    sizes = {"train": args.train, "test": args.test, "val": args.val, "oodval": args.val,
             **{f"ood{j}": args.ood for j in range(args.n_ood)}}
    args.dir.mkdir(parents=True, exist_ok=True)
    need = sum(sizes.values()) * (args.features + args.classes) * 4 * 1.1
    store = args.dir / f"imagenet-like-{args.train}x{args.features}.zarr"
    if not store.exists() and shutil.disk_usage(args.dir).free < need + 2e9:
        raise SystemExit(f"{args.dir} lacks the {need / 1e9:.1f} GB the store needs: pass a smaller --train.")
    make_store(store, sizes, args.features, args.classes)
    protocol = args.dir / "imagenet-like.toml"
    protocol.write_text(protocol_text(args.n_ood))
    if args.methods:
        methods = args.methods
    else:
        from skdice import available_detectors

        methods = [name for name in available_detectors() if name != "knn"]
    shape = (f"train {args.train:,}, test {args.test:,}, {args.n_ood} OOD x {args.ood:,}, val 2 x {args.val:,}; "
             f"{args.features} features, {args.classes} classes; {args.bootstrap} resamples")
    out = []
    for method in methods:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(store), str(protocol), method,
                               str(args.bootstrap)], capture_output=True, text=True)
        if done.returncode:
            out.append({"name": method, "ratio": "failed", "target": "", "note": done.stderr.strip()[-200:]})
            continue
        r = json.loads(done.stderr.strip().splitlines()[-1])
        out.append({"name": f"{method}: seconds, peak MB", "ratio": f"{r['seconds']:.1f} s, "
                    f"{r['peak_kib'] * 1024 / 1e6:.0f}", "target": "< 2000 MB", "note": shape})
        print(out[-1], file=sys.stderr, flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=200_000)
    parser.add_argument("--test", type=int, default=50_000)
    parser.add_argument("--ood", type=int, default=10_000)
    parser.add_argument("--n-ood", type=int, default=5)
    parser.add_argument("--val", type=int, default=5_000)
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method but knn")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "skdice-bench")
    args = parser.parse_args(argv)
    print(machine())
    print_table(run(args))


if __name__ == "__main__":
    main()
