"""benchmarks/bench_store.py at a toy size: every row is measured and printable."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("zarr")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_store  # noqa: E402


class _KernelControlFile:
    """Stands in for /proc/sys/vm/drop_caches: records what is written instead of emptying the cache."""

    def __init__(self):
        self.writes = []

    def exists(self):
        return True

    def write_text(self, text):
        self.writes.append(text)


def test_store_benchmark_measures_every_row_at_a_toy_size(tmp_path, monkeypatch):
    # the machine's page cache is left alone under other tests: the kernel's
    # control file is a recorder, and root is granted by the test
    drop_caches = _KernelControlFile()
    monkeypatch.setattr(bench_store, "_DROP_CACHES", drop_caches)
    monkeypatch.setattr(bench_store, "can_drop_caches", lambda: True)
    rows = bench_store.run(3000, 64, tmp_path, rounds=2, fit_rows=1500, cold=True)
    names = [r["name"] for r in rows]
    assert "fit_store throughput / plain read, page cache dropped" in names
    assert names.count("fit_store throughput / plain read of the same store") == 2
    ratios = [r["ratio"] for r in rows if isinstance(r["ratio"], float)]
    assert len(ratios) == 6 and all(math.isfinite(x) and x > 0 for x in ratios)
    peaks = [int(r["ratio"]) for r in rows if r["name"].startswith("peak RSS")]
    assert len(peaks) == 2 and all(p > 0 for p in peaks)
    # the kernel was asked to drop the page cache ("1") before each read and each fit, two rounds
    assert drop_caches.writes == ["1\n"] * 4
    cold = next(r for r in rows if r["name"].endswith("page cache dropped"))
    assert len(cold["note"].split("rounds ")[1].split(", ")) == 2


def test_cold_run_without_root_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_store, "can_drop_caches", lambda: False)
    with pytest.raises(SystemExit, match="needs root"):
        bench_store.run(600, 16, tmp_path / "stores", rounds=1, fit_rows=300, cold=True)
    assert not (tmp_path / "stores").exists()  # refused before writing or timing anything
