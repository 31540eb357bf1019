"""benchmarks/bench_detectors.py at a toy size: every method gets a finite ratio."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_detectors  # noqa: E402


def test_every_method_is_timed_against_the_gemm_at_a_toy_size():
    rows = bench_detectors.run(
        ["energy", "mahalanobis", "react:percentile=95"], rounds=2, n=400, m=16,
        n_classes=5, fit_rows=200,
    )
    names = [r["name"] for r in rows]
    assert names[0] == "bare float32 GEMM H @ W"
    assert names[1:] == [
        "energy: score_samples / H @ W",
        "mahalanobis: score_samples / H @ W",
        "react:percentile=95: score_samples / H @ W",
    ]
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in rows)
