"""Out-of-core fitting and scoring from a Zarr feature store: ratios and peak memory.

    python benchmarks/bench_store.py [--rows 1000000] [--features 2048] [--dir DIR] [--cold]

- fit from a store (``skdice.streaming.fit_store``) vs a plain read of the same
  store, as a throughput ratio (target >= 0.8: the fit is I/O bound), on a
  ``--fit-rows`` split and on the ``--rows`` one, page cache warm;
- with ``--cold`` (root only), the same with the page cache emptied before
  each timing, as a split larger than memory is read;
- peak resident memory of a fresh process that scores ``--rows`` rows of a
  store and writes the scores back (``score_to_store``), and of one that fits
  from it (target < 1 GB). Measured as ``VmHWM`` from ``/proc/self/status`` in
  the child (``ru_maxrss`` would inherit the parent's peak across fork + exec).

The stores are written once under ``--dir`` (default: a folder in the system's
temporary directory) in the layout ``skdice extract`` writes, with its default
chunking, and reused by later runs. The store for the 1,000,000-row test holds
8 GB of features at m = 2048: the script checks the free disk space first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import interleaved, machine, print_table  # noqa: E402

C = 1000


def make_store(path: Path, n: int, m: int, n_classes: int = C, seed: int = 0) -> Path:
    """Write (or reuse) a store with one complete split ``train`` of synthetic features.

    Parameters
    ----------
    path : Path
    n, m, n_classes : int
        Rows, features and classes.
    seed : int

    Returns
    -------
    Path
    """
    from skdice import Head
    from skdice.store import create_store, default_chunk_rows, open_store

    if path.exists():
        try:
            info = open_store(path).split_info("train")
            if info["complete"] and info["count"] == n and info.get("n_features") == m:
                return path
        except Exception:
            pass
        shutil.rmtree(path)
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 1.0, size=m).astype(np.float32)
    W = rng.normal(0.0, 0.03, size=(m, n_classes)).astype(np.float32)
    b = rng.normal(0.0, 0.1, size=n_classes).astype(np.float32)
    writer = create_store(path, model="bench", head=Head(W, b))
    rows = default_chunk_rows(m, n_classes, 64)  # what `skdice extract` uses at its default batch
    zeros = np.zeros((rows, n_classes), np.float32)
    labels = np.zeros(rows, np.int64)
    names = [""] * rows
    start = time.perf_counter()
    with writer.prepare_split("train", n, source=f"synthetic:{seed}", chunk_rows=rows) as split:
        for i in split.pending():
            s, e = split.chunk_bounds(i)
            X = np.random.default_rng([seed, i]).random((e - s, m), dtype=np.float32)
            X *= scale
            k = e - s
            split.write_chunk(i, X, zeros[:k], labels[:k], names[:k])
        split.finalize()
    print(f"# wrote {path} ({n:,} x {m}) in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return path


def plain_read(arr) -> None:
    """The baseline: read every row once, in the blocks fit_store reads, one call each."""
    from skdice.streaming import block_rows_for

    step = block_rows_for(arr)
    for s in range(0, arr.shape[0], step):
        arr[s : s + step]


def fit_vs_read(path: Path, rounds: int, variants: bool = True) -> dict:
    """Time of fit_store relative to a plain block-by-block read of the same store."""
    from skdice import DICEDetector
    from skdice.store import open_store
    from skdice.streaming import fit_store

    fs = open_store(path)
    arr = fs.array("train", "features")

    def store_chunks():
        for _ in fs.iter_features("train"):
            pass

    candidates = {"fit": lambda: fit_store(DICEDetector(p=0.9), path, "train")}
    if variants:
        candidates.update({
            "fit-none": lambda: fit_store(DICEDetector(p=0.9), path, "train", calibration="none"),
            "fit-exact": lambda: fit_store(DICEDetector(p=0.9), path, "train", calibration="exact"),
            "iter_features": store_chunks,
        })
    return interleaved(lambda: plain_read(arr), candidates, rounds)


_DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def can_drop_caches() -> bool:
    """Whether this process may empty the kernel's page cache (root on Linux)."""
    return _DROP_CACHES.exists() and os.access(_DROP_CACHES, os.W_OK)


def _drop_caches() -> None:
    os.sync()
    _DROP_CACHES.write_text("1\n")


def cold_fit_vs_read(path: Path, rounds: int) -> dict:
    """fit_store vs a plain read with the page cache emptied before every timing.

    What a split larger than memory meets: every byte comes from the disk.
    Needs root (``/proc/sys/vm/drop_caches``); the store's metadata is re-read
    too, so the read opens the store inside its timing as the fit does.
    """
    from skdice import DICEDetector
    from skdice.store import open_store
    from skdice.streaming import fit_store

    ratios = []
    for _ in range(rounds):
        _drop_caches()
        start = time.perf_counter()
        plain_read(open_store(path).array("train", "features"))
        read = time.perf_counter() - start
        _drop_caches()
        start = time.perf_counter()
        fit_store(DICEDetector(p=0.9), path, "train")
        ratios.append(read / (time.perf_counter() - start))
    return {"ratio": float(np.median(ratios)), "ratios": ratios}


_CHILD = r"""
import json, sys, time

def hwm_kib():
    # VmHWM of this process image: unlike ru_maxrss it does not inherit the
    # parent's peak across fork + exec
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

import numpy as np
from skdice import DICEDetector
from skdice.store import open_store
from skdice.streaming import fit_store, score_to_store
path, what = sys.argv[1], sys.argv[2]
base = hwm_kib()
fs = open_store(path)
start = time.perf_counter()
if what == "score":
    m = fs.head.n_features
    det = DICEDetector(p=0.9).fit(head=fs.head, train_mean=np.ones(m))
    score_to_store(path, "train", det, method="bench", overwrite=True)
else:
    fit_store(DICEDetector(p=0.9), path, "train")
seconds = time.perf_counter() - start
peak = hwm_kib()
print(json.dumps({"peak_kib": peak, "after_imports_kib": base, "seconds": seconds}))
"""


def peak_rss(path: Path, what: str) -> dict:
    """Peak RSS (VmHWM) of a fresh process that scores or fits from the store."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), what],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(rows: int, m: int, directory: Path, rounds: int, fit_rows: int, cold: bool = False) -> list[dict]:
    """Measure everything; returns table rows (``cold``: add the page-cache-dropped fit row)."""
    if cold and not can_drop_caches():  # refused before minutes of measuring, not after
        raise SystemExit("--cold empties the page cache and needs root (/proc/sys/vm/drop_caches).")
    directory.mkdir(parents=True, exist_ok=True)
    need = rows * m * 4 * 1.1 + fit_rows * m * 4 * 1.1
    free = shutil.disk_usage(directory).free
    if free < need + 2e9:
        raise SystemExit(
            f"{directory} has {free / 1e9:.1f} GB free; the stores need about {need / 1e9:.1f} GB: "
            "pass a smaller --features or --rows (and say so when quoting the figure)."
        )
    out = []
    small = make_store(directory / f"fit-{fit_rows}x{m}.zarr", fit_rows, m)
    res = fit_vs_read(small, rounds)
    note = f"{fit_rows:,} x {m} float32 ({fit_rows * m * 4 / 1e9:.1f} GB), page cache warm"
    out.append({
        "name": "fit_store throughput / plain read of the same store",
        "ratio": 1.0 / res["fit"]["ratio"], "target": ">= 0.8",
        "note": note + "; offset_ from a 10,000-row sample (one pass)",
    })
    out.append({
        "name": "fit_store(calibration='none') throughput / plain read",
        "ratio": 1.0 / res["fit-none"]["ratio"], "target": "",
        "note": "the mean alone (offset_ left NaN)",
    })
    out.append({
        "name": "fit_store(calibration='exact') throughput / plain read",
        "ratio": 1.0 / res["fit-exact"]["ratio"], "target": "",
        "note": "second pass scores every row: equals the in-memory fit",
    })
    if cold:
        cold_res = cold_fit_vs_read(small, rounds)
        out.append({
            "name": "fit_store throughput / plain read, page cache dropped",
            "ratio": cold_res["ratio"], "target": ">= 0.8",
            "note": f"{fit_rows:,} rows read from disk each time (the out-of-core case); "
                    f"rounds {', '.join(f'{r:.3f}' for r in cold_res['ratios'])}",
        })
    out.append({
        "name": "FeatureStore.iter_features throughput / plain read",
        "ratio": 1.0 / res["iter_features"]["ratio"], "target": "",
        "note": "the store's own chunk-by-chunk iterator, for reference",
    })
    big = make_store(directory / f"score-{rows}x{m}.zarr", rows, m)
    size = f"{rows:,} x {m} float32 ({rows * m * 4 / 1e9:.1f} GB)"
    res = fit_vs_read(big, max(2, rounds - 1), variants=False)
    out.append({
        "name": "fit_store throughput / plain read of the same store",
        "ratio": 1.0 / res["fit"]["ratio"], "target": ">= 0.8",
        "note": f"{size}: the sample's fixed cost amortised",
    })
    for what in ("score", "fit"):
        r = peak_rss(big, what)
        out.append({
            "name": f"peak RSS, {'score_to_store' if what == 'score' else 'fit_store'} of {rows:,} rows (MB)",
            "ratio": f"{r['peak_kib'] * 1024 / 1e6:.0f}", "target": "< 1000",
            "note": f"{size}; {r['after_imports_kib'] * 1024 / 1e6:.0f} MB after imports; "
                    f"{r['seconds']:.0f} s",
        })
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the peak-memory test")
    parser.add_argument("--fit-rows", type=int, default=200_000, help="rows of the fit/read test")
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "skdice-bench")
    parser.add_argument("--cold", action="store_true",
                        help="also time fit vs read with the page cache dropped before each (root only)")
    args = parser.parse_args(argv)
    print(machine())
    print_table(run(args.rows, args.features, args.dir, args.rounds, args.fit_rows, cold=args.cold))


if __name__ == "__main__":
    main()
