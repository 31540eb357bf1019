"""Peak memory of ``skdice evaluate`` and ``skdice tune`` on large splits.

    python benchmarks/bench_workflow_memory.py [--rows 2000000] [--features 512]
        [--classes 100] [--dir DIR]

Writes (once, then reuses) a store with two splits of ``--rows`` synthetic
float32 feature rows: ``id`` (every row labelled) and ``ood``, and a cached
training mean. Then, each in a fresh process, runs the commands as a user
would (the CLI's own ``main``):

- ``skdice evaluate STORE --id id --ood ood --train-mean MEAN --format json``
  (DICE and energy: one pass over each split, scoring both methods and the
  ID accuracy of both heads);
- ``skdice tune STORE --id id --noise ood --train-mean MEAN --format json``
  (DICE's six p, the guard, 200 bootstrap resamples);
- ``skdice plot STORE --id id --ood ood --train-mean MEAN --out DIR`` (the four
  figures; DICE heads at seven p);
- for reference, a process that only loads both splits into memory, which is
  what ``evaluate``, ``tune`` and ``plot`` did before they streamed.

Peak memory is ``VmHWM`` from ``/proc/self/status`` read in the child at the
end (``ru_maxrss`` would inherit the parent's peak across fork + exec). Target
(issue 13): under 1 GB at 2,000,000 x 512 for every command.
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


def make_store(path: Path, n: int, m: int, n_classes: int, seed: int = 0) -> Path:
    """Write (or reuse) a store with complete splits ``id`` (labelled) and ``ood``.

    Parameters
    ----------
    path : Path
    n, m, n_classes : int
        Rows per split, features and classes.
    seed : int

    Returns
    -------
    Path
    """
    from skdice import Head
    from skdice.store import create_store, default_chunk_rows, open_store

    if path.exists():
        try:
            fs = open_store(path)
            if all(fs.split_info(s)["complete"] and fs.split_info(s)["count"] == n for s in ("id", "ood")):
                return path
        except Exception:  # a half-written store of an interrupted run: write it again
            pass
        shutil.rmtree(path)
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, 0.05, size=(m, n_classes)).astype(np.float32)
    b = rng.normal(0.0, 0.1, size=n_classes).astype(np.float32)
    writer = create_store(path, model="bench", head=Head(W, b))
    rows = default_chunk_rows(m, n_classes, 64)  # what `skdice extract` uses at its default batch
    start = time.perf_counter()
    for split, shift in (("id", 1.0), ("ood", 0.7)):
        with writer.prepare_split(split, n, source=f"synthetic:{seed}", chunk_rows=rows) as out:
            for i in out.pending():
                s, e = out.chunk_bounds(i)
                g = np.random.default_rng([seed, i, int(shift * 10)])
                X = g.random((e - s, m), dtype=np.float32)
                X *= np.float32(shift)
                labels = g.integers(0, n_classes, e - s) if split == "id" else np.full(e - s, -1)
                out.write_chunk(i, X, X @ W + b, labels, [""] * (e - s))
            out.finalize()
    print(f"# wrote {path} (2 x {n:,} x {m}) in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return path


_CHILD = r"""
import json, sys, time

def hwm_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

what, args = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
if what == "load":
    from skdice.store import open_store
    fs = open_store(args[0])
    kept = [fs.features(split) for split in ("id", "ood")]
else:
    from skdice.cli.app import main
    try:
        main(args)
    except SystemExit as exc:
        if exc.code:
            raise
seconds = time.perf_counter() - start
print(json.dumps({"peak_kib": hwm_kib(), "seconds": seconds}), file=sys.stderr)
"""


def peak(what: str, args: list[str]) -> dict:
    """Peak RSS (VmHWM) and time of a fresh process running ``what`` with ``args``."""
    out = subprocess.run([sys.executable, "-c", _CHILD, what, *args],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stderr.strip().splitlines()[-1])


def run(rows: int, m: int, n_classes: int, directory: Path,
        only=("evaluate", "tune", "plot", "load")) -> list[dict]:
    """Measure the processes named in ``only``; returns table rows."""
    directory.mkdir(parents=True, exist_ok=True)
    need = 2 * rows * (m + n_classes) * 4 * 1.1
    free = shutil.disk_usage(directory).free
    store = directory / f"workflow-{rows}x{m}x{n_classes}.zarr"
    if not store.exists() and free < need + 2e9:
        raise SystemExit(f"{directory} has {free / 1e9:.1f} GB free; the store needs about "
                         f"{need / 1e9:.1f} GB: pass a smaller --rows or --features.")
    make_store(store, rows, m, n_classes)
    mean = directory / f"workflow-{m}-mean.npy"
    np.save(mean, np.full(m, 0.5))
    size = f"2 splits of {rows:,} x {m} float32 ({rows * m * 4 / 1e9:.1f} GB each), C = {n_classes}"
    common = [str(store), "--id", "id", "--train-mean", str(mean), "--format", "json"]
    cases = {
        "evaluate": ("skdice evaluate (dice, energy)", "cli", ["evaluate", *common, "--ood", "ood"]),
        "tune": ("skdice tune (six p, guard, 200 resamples)", "cli", ["tune", *common, "--noise", "ood"]),
        "plot": ("skdice plot (four figures, seven p)", "cli",
                 ["plot", str(store), "--id", "id", "--ood", "ood", "--train-mean", str(mean),
                  "--out", str(directory / "plots")]),
        "load": ("reference: both splits loaded whole", "load", [str(store)]),
    }
    out = []
    for name, what, args in (cases[key] for key in only):
        r = peak(what, args)
        out.append({"name": f"peak RSS, {name} (MB)", "ratio": f"{r['peak_kib'] * 1024 / 1e6:.0f}",
                    "target": "< 1000" if what == "cli" else "",
                    "note": f"{size}; {r['seconds']:.0f} s"})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of each split")
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "skdice-bench")
    parser.add_argument("--only", nargs="+", choices=["evaluate", "tune", "plot", "load"],
                        default=["evaluate", "tune", "plot", "load"], help="the processes to measure")
    args = parser.parse_args(argv)
    print(machine())
    print_table(run(args.rows, args.features, args.classes, args.dir, args.only))


if __name__ == "__main__":
    main()
