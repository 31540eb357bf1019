"""A/B of two source trees of skdice in one run, interleaved: scoring and store reads.

    git worktree add /tmp/before <commit>
    python benchmarks/ab_trees.py --before /tmp/before            # this checkout is "after"
    python benchmarks/ab_trees.py --before /tmp/before --rounds 5 --skip-store

Each round runs one fresh process per tree, alternately, so that both trees
see the same machine state; each process imports skdice from its tree (the
path goes first on ``sys.path``; the process checks it). Printed per tree:
every round's ratio, then the median.

- ``score/gemm``: ``score_samples`` of DICE (p = 0.9) and of energy over
  50,000 x 2048 float32 rows, 1,000 classes, divided by the bare float32 GEMM
  ``H @ W`` (best of 3 each), the float32 path issue 19 must not slow down;
- ``fit_store`` and the store's reads: throughput relative to a plain
  block read of the same store (benchmarks/bench_store.py's ``fit_vs_read``,
  100,000 x 2048 float32), each tree reading a store its own writer made.

Ratios only: absolute times on a shared machine are noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_SCORE = r"""
import sys, time, json, numpy as np
sys.path.insert(0, sys.argv[1])
import skdice
assert skdice.__file__.startswith(sys.argv[1]), skdice.__file__
from skdice import DICEDetector, EnergyDetector
rng = np.random.default_rng(0)
n, m, C = 50_000, 2048, 1000
H = np.maximum(rng.normal(1, 1, (n, m)), 0).astype(np.float32)
W = rng.normal(size=(m, C)).astype(np.float32)
b = np.zeros(C, np.float32)
dice = DICEDetector(p=0.9).fit(H[:5000], W, b)
energy = EnergyDetector().fit(H[:5000], W, b)
def best(f):
    out = 1e9
    for _ in range(3):
        s = time.perf_counter(); f(); out = min(out, time.perf_counter() - s)
    return out
gemm = best(lambda: H @ W)
print(json.dumps({"dice score/gemm": best(lambda: dice.score_samples(H)) / gemm,
                  "energy score/gemm": best(lambda: energy.score_samples(H)) / gemm}))
"""

_STORE = r"""
import sys, json
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/benchmarks")
import skdice
assert skdice.__file__.startswith(sys.argv[1]), skdice.__file__
from pathlib import Path
import bench_store
path = Path(sys.argv[2])
if not path.exists():
    bench_store.make_store(path, 100_000, 2048)
res = bench_store.fit_vs_read(path, 3, variants=True)
print(json.dumps({f"{k} / read": 1.0 / v["ratio"] for k, v in res.items()
                  if isinstance(v, dict) and "ratio" in v}))
"""


def _run(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other tree (a git worktree)")
    parser.add_argument("--after", type=Path, default=HERE.parent, help="this checkout by default")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the stores are written")
    parser.add_argument("--skip-store", action="store_true")
    args = parser.parse_args(argv)
    trees = {"before": str(args.before.resolve()), "after": str(args.after.resolve())}
    results = {label: [] for label in trees}
    for _ in range(args.rounds):
        for label, tree in trees.items():
            row = _run(_SCORE, tree)
            if not args.skip_store:
                row.update(_run(_STORE, tree, str(args.dir / f"ab-trees-{label}.zarr")))
            results[label].append(row)
    for label, rows in results.items():
        print(f"{label} ({trees[label]}):")
        for key in rows[0]:
            values = [row[key] for row in rows]
            print(f"  {key:32s} {' '.join(f'{v:.3f}' for v in values)}  median {statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
