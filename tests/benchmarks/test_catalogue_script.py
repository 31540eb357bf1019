"""benchmarks/catalogue_cifar10.py: every registered detector's row, and the search's choice with --tune-id."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import catalogue_cifar10  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from skdice.store import import_arrays

    rng = np.random.default_rng(0)
    m, C = 24, 3
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = np.zeros(C, np.float32)
    centers = np.abs(rng.normal(size=(C, m))) * 2
    path = tmp_path_factory.mktemp("cat") / "s.zarr"
    first = True
    for split, n, ood in (("fit", 300, False), ("val", 120, False), ("test", 150, False),
                          ("jig", 80, True), ("tin", 80, True), ("far", 100, True)):
        y = rng.integers(0, C, n)
        H = np.abs(rng.normal(size=(n, m)) + (0 if ood else centers[y])).astype(np.float32)
        head = dict(weight=W, bias=b, weight_layout="features-classes", model="toy") if first else {}
        import_arrays(path, split, features=H, labels=np.where(ood, -1, y), **head)
        first = False
    return path


def test_every_detector_has_a_row_and_the_tuned_columns(store, capsys):
    from skdice import available_detectors
    from skdice.tuning import default_grid

    catalogue_cifar10.main([str(store), "--fit-split", "fit", "--id-split", "test", "--ood", "far",
                  "--tune-id", "val", "--tune-noise", "jig", "--tune-ood", "tin"])
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "tuned on val (120 labelled rows) against jig (80, synthetic), tin (80, real)"
    rows = {line.split(" | ")[0][2:]: line.strip("| ").split(" | ") for line in out[4:]}
    assert sorted(rows) == sorted(available_detectors())
    for name, cells in rows.items():
        assert len(cells) == 6, name  # method, far, mean, seconds, chosen, tuned
        if default_grid(name):
            assert cells[4].endswith(("(moved)", "(the defaults)", "(nearest the defaults the guard allows)")), cells
            assert " / " in cells[5]
        else:
            assert cells[4:] == ["(nothing to tune)", "–"]
