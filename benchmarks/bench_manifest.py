"""What the manifest's per-chunk digest checks cost the readers (docs/store.md, "The manifest").

    python benchmarks/bench_manifest.py [--rows 200000] [--features 512] [--dir DIR] [--rounds 3]

Writes (or reuses) a store with one complete split of ``--rows`` x ``--features``
float32 features (10 classes, the chunking ``skdice extract`` uses at batch 64),
then, page cache warm, times in alternation and keeps the best of ``--rounds``:

- ``plain``: the features read block by block (``iter_blocks`` on the checked
  Zarr array: crc32c verified, no digest), the denominator of fit_store's
  plain-read ratio;
- ``digests``: the same read with the readers' checks (``iter_blocks``'s
  default): the digest of every 128th row of each chunk compared with the
  manifest, parsed once per process while its file is unchanged;
- ``digests (before)``: the readers' checks as they were before, in the same
  run: every 32nd row, the manifest parsed again by each ``iter_blocks`` call
  (the stride-32 digests are computed here from the split's values);
- the three reads again in one thread (``prefetch=False``): the CPU time of a
  single-threaded read is the steadiest figure on a shared machine;
- ``full digests``: the same read with the digest of every chunk whole (what
  ``verify`` checks), for comparison;
- ``fit_store`` without the readers' digest checks, with them, and with the
  checks as they were before (a DICE fit, sample calibration).

Each is timed in wall-clock seconds and in CPU seconds of the process (all its
threads: the work the checks add, which other jobs on the machine disturb less
than the wall clock). Prints the ratios: ``digests / plain`` is the cost on a
plain read, and ``fit_store (digests) / fit_store (no digests)`` the cost on
fit_store, whose target is at most 1.10.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

C = 10


def make_store(path: Path, n: int, m: int) -> Path:
    """Write (or reuse) ``path`` with a complete split ``train`` of synthetic features."""
    import shutil

    from skdice import Head
    from skdice.store import create_store, default_chunk_rows, open_store
    from skdice.store._manifest import ROW_STRIDE

    if path.exists():
        try:
            fs = open_store(path)
            if (fs.split_info("train")["complete"] and fs.array("train", "features").shape == (n, m)
                    and fs.manifest("train")["row_stride"] == ROW_STRIDE):  # written with today's stride
                return path
        except Exception:  # noqa: BLE001 - anything else: write it again
            pass
        shutil.rmtree(path)
    rng = np.random.default_rng(0)
    head = Head(rng.normal(0, 0.03, (m, C)).astype(np.float32), np.zeros(C, np.float32))
    writer = create_store(path, model="bench", head=head)
    rows = default_chunk_rows(m, C, 64)
    with writer.prepare_split("train", n, source="synthetic", chunk_rows=rows) as split:
        for k in split.pending():
            a, z = split.chunk_bounds(k)
            X = np.random.default_rng([0, k]).random((z - a, m), dtype=np.float32)
            split.write_chunk(k, X, head.logits(X), np.zeros(z - a, np.int64), [""] * (z - a))
        split.finalize()
    return path


def best(fn, rounds: int) -> float:
    """Best wall time of ``rounds`` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "skdice-bench-manifest")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from skdice import DICEDetector
    from skdice.store import _blocks, iter_blocks, open_store
    from skdice.workflows.fit import fit_store

    args.dir.mkdir(parents=True, exist_ok=True)
    path = make_store(args.dir / f"m{args.features}-n{args.rows}.zarr", args.rows, args.features)
    arr = open_store(path).array("train", "features")

    def plain():
        for _ in iter_blocks(arr, check=False):
            pass

    def digests():
        for _ in iter_blocks(arr):  # the manifest read and parsed by each call
            pass

    def full_digests():
        whole = open_store(path).chunk_digests("train", "features")

        def check(start, block):
            assert not whole.mismatches(start, block)

        for _ in iter_blocks(arr, check=check):
            pass

    before = _before_check(path, arr)

    def digests_before():
        for _ in iter_blocks(arr, check=before()):
            pass

    def fit(check):
        original = _blocks.array_check
        if check is not True:
            _blocks.array_check = ((lambda array, read_rows=None: None) if check is False
                                   else (lambda array, read_rows=None: before()))
        try:
            fit_store(DICEDetector(), path, "train")
        finally:
            _blocks.array_check = original

    def one_thread(check):
        def read():
            for _ in iter_blocks(arr, prefetch=False, **check()):
                pass
        return read

    plain(), digests()  # warm the page cache
    runs = {"plain (1 thread)": one_thread(lambda: {"check": False}), "digests (1 thread)": one_thread(dict),
            "digests before (1 thread)": one_thread(lambda: {"check": before()}),
            "plain": plain, "digests": digests, "digests (before)": digests_before, "full digests": full_digests,
            "fit_store (no digests)": lambda: fit(False), "fit_store (digests)": lambda: fit(True),
            "fit_store (digests before)": lambda: fit("before")}
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(args.rounds):  # alternating, best of the rounds
        for name, fn in runs.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    t = {name: min(values) for name, values in wall.items()}
    tc = {name: min(values) for name, values in cpu.items()}
    # the checks alone, on blocks already in memory (the work they add, whatever the load)
    blocks = list(iter_blocks(arr, check=False))
    sampled = _blocks.array_check(arr)
    whole = open_store(path).chunk_digests("train", "features")
    t["sampled check alone"] = best(lambda: [sampled(s, b) for s, b in blocks], args.rounds)
    t["sampled check alone (before)"] = best(lambda: [check(s, b) for check in [before()] for s, b in blocks],
                                             args.rounds)
    t["full check alone"] = best(lambda: [whole.mismatches(s, b) for s, b in blocks], args.rounds)
    del blocks
    size = arr.nbytes / 1e9
    print(f"{args.rows} x {args.features} float32 ({size:.2f} GB), {arr.chunks[0]} rows per chunk, "
          f"best of {args.rounds}, page cache warm")
    for name, seconds in t.items():
        extra = f"  cpu {tc[name]:7.3f} s" if name in tc else ""
        print(f"  {name:28s} {seconds:7.3f} s  {size / seconds:6.2f} GB/s{extra}")

    def ratio(label, a, b):
        cpu_part = f"   cpu {tc[a] / tc[b]:.3f}" if a in tc and b in tc else ""
        print(f"{label:52s} {t[a] / t[b]:.3f}{cpu_part}")

    ratio("digests / plain read, one thread:", "digests (1 thread)", "plain (1 thread)")
    ratio("digests (before) / plain read, one thread:", "digests before (1 thread)", "plain (1 thread)")
    ratio("digests / plain read:", "digests", "plain")
    ratio("digests (before) / plain read:", "digests (before)", "plain")
    ratio("full digests / plain read:", "full digests", "plain")
    ratio("sampled check alone / plain read:", "sampled check alone", "plain")
    ratio("sampled check alone (before) / plain read:", "sampled check alone (before)", "plain")
    ratio("full check alone / plain read:", "full check alone", "plain")
    ratio("fit_store (digests) / fit_store (no digests):", "fit_store (digests)", "fit_store (no digests)")
    ratio("fit_store (digests before) / fit_store (no digests):", "fit_store (digests before)",
          "fit_store (no digests)")
    print(f"fit_store plain-read ratio without digests:          {t['plain'] / t['fit_store (no digests)']:.3f}")
    print(f"fit_store plain-read ratio with digests:             {t['plain'] / t['fit_store (digests)']:.3f}")
    print(f"fit_store plain-read ratio with digests (before):    "
          f"{t['plain'] / t['fit_store (digests before)']:.3f}")


def _before_check(path: Path, arr):
    """A factory of the readers' check as it was before: every 32nd row, the manifest parsed on each call."""
    import json

    from skdice.store._manifest import chunk_digest, digest_check, sampled_key

    step, n = int(arr.chunks[0]), int(arr.shape[0])
    values = arr[...]
    hexes = [chunk_digest(sampled_key("features", 32), k, values[a : a + step][::32]).hex()
             for k, a in enumerate(range(0, n, step))]
    del values
    text = (path / "train" / "manifest" / "zarr.json").read_text()
    record = json.loads(text)["attributes"]
    record = {**record, "row_stride": 32, "chunks": {**record["chunks"], "features[::32]": hexes}}
    text = json.dumps({"attributes": record})

    def make():
        parsed = json.loads(text)["attributes"]  # what each iter_blocks call did before
        return digest_check(path, "train", "features", parsed)

    return make

if __name__ == "__main__":
    main()
