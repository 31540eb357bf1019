"""Every benchmark in one run, printed as one table of ratios.

    python benchmarks/run_all.py            # the full set (writes ~10 GB of stores to /tmp)
    python benchmarks/run_all.py --quick    # smaller sizes, a minute or two

Ratios are measured within this one run, interleaved (see bench_core.py);
absolute times on a shared machine are noise. The extraction figures come from
benchmarks/bench_extract.py (the extraction stage's own script), run as is.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_core  # noqa: E402
import bench_store  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per ratio")
    parser.add_argument("--rows", type=int, default=None, help="rows of the peak-memory test")
    parser.add_argument("--features", type=int, default=2048, help="feature width of the store tests")
    parser.add_argument("--dir", type=Path, default=None, help="where the benchmark stores are written")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--cold", action="store_true", help="store fit vs read from disk too (root only)")
    parser.add_argument("--skip-extract", action="store_true")
    args = parser.parse_args(argv)

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# {bench_core.machine()}")
    print(f"# load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows = bench_core.run(rounds=args.rounds, quick=args.quick)
    if not args.skip_store:
        import tempfile

        directory = args.dir or Path(tempfile.gettempdir()) / "skdice-bench"
        n = args.rows or (100_000 if args.quick else 1_000_000)
        fit_rows = 20_000 if args.quick else 200_000
        rows += bench_store.run(n, args.features, directory, max(2, args.rounds // 2), fit_rows,
                                cold=args.cold)
    print(f"# load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    bench_core.print_table(rows)

    if not args.skip_extract:
        script = HERE / "bench_extract.py"
        print()
        if not script.is_file():
            print(f"(extraction: {script.name} is not there yet; nothing measured)")
        else:
            cmd = [sys.executable, str(script)] + (["--n", "64", "--rounds", "2"] if args.quick else [])
            print(f"# {' '.join(cmd[1:])}", flush=True)
            done = subprocess.run(cmd, text=True, capture_output=True)
            sys.stdout.write(done.stdout)
            if done.returncode != 0:
                print(f"(bench_extract.py failed, exit {done.returncode}): "
                      f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")


if __name__ == "__main__":
    main()
