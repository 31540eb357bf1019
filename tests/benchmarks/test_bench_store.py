"""benchmarks/bench_store.py at a toy size: every row is measured and printable."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("zarr")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_store  # noqa: E402


def test_store_benchmark_measures_every_row_at_a_toy_size(tmp_path, monkeypatch):
    dropped = []
    monkeypatch.setattr(bench_store, "can_drop_caches", lambda: True)
    # count the drops instead of emptying the machine's page cache under other tests
    monkeypatch.setattr(bench_store, "_drop_caches", lambda: dropped.append(1))
    rows = bench_store.run(3000, 64, tmp_path, rounds=2, fit_rows=1500, cold=True)
    names = [r["name"] for r in rows]
    assert "fit_store throughput / plain read, page cache dropped" in names
    assert names.count("fit_store throughput / plain read of the same store") == 2
    ratios = [r["ratio"] for r in rows if isinstance(r["ratio"], float)]
    assert len(ratios) == 6 and all(math.isfinite(x) and x > 0 for x in ratios)
    peaks = [int(r["ratio"]) for r in rows if r["name"].startswith("peak RSS")]
    assert len(peaks) == 2 and all(p > 0 for p in peaks)
    assert len(dropped) == 4  # before each read and each fit, two rounds


def test_cold_run_without_root_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_store, "can_drop_caches", lambda: False)
    with pytest.raises(SystemExit, match="needs root"):
        bench_store.run(600, 16, tmp_path / "stores", rounds=1, fit_rows=300, cold=True)
    assert not (tmp_path / "stores").exists()  # refused before writing or timing anything
