"""``skdice evaluate --method all``: every registered method, a leaderboard, --train with --train-mean."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("zarr")
from typer.testing import CliRunner  # noqa: E402

from skdice import Head, available_detectors  # noqa: E402
from skdice.cli.app import app  # noqa: E402
from stores import write_store  # noqa: E402

runner = CliRunner()
M, C = 12, 3


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    prototypes = rng.gamma(1.0, 1.0, size=(C, M))
    head = Head(prototypes.T - prototypes.T.mean(axis=1, keepdims=True), np.zeros(C))
    y = np.arange(150) % C
    train = np.maximum(prototypes[y] + rng.normal(size=(150, M)), 0)
    ood = np.maximum(rng.normal(0.5, 1.5, (60, M)), 0)
    path = tmp_path_factory.mktemp("all") / "s.zarr"
    write_store(path, head, {"train": (train, y), "id": (train[:60], y[:60]), "ood": ood})
    mean = tmp_path_factory.mktemp("mean") / "mean.npy"
    np.save(mean, train.mean(axis=0) * 1.1)  # a cached mean that is not the split's
    return path, mean


def test_method_all_runs_every_registered_method_with_train_and_train_mean(store):
    path, mean = store
    result = runner.invoke(app, ["evaluate", str(path), "--id", "id", "--ood", "ood", "--method", "all",
                                 "--method", "knn:n_neighbors=5", "--train", "train",
                                 "--train-mean", str(mean), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    methods = {row["method"] for row in rows}
    assert set(available_detectors()) <= methods | {"knn"}  # knn from "all" and knn:n_neighbors=5
    assert {"method", "p", "ood", "fpr95", "auroc", "aupr_in", "aupr_out"} <= set(rows[0])


def test_the_table_is_a_leaderboard_with_hyperparameters(store):
    path, mean = store
    result = runner.invoke(app, ["evaluate", str(path), "--id", "id", "--ood", "ood", "--method", "energy",
                                 "--method", "dice", "--method", "knn:n_neighbors=5", "--train", "train",
                                 "--train-mean", str(mean)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    averages = [line.split() for line in lines if " average " in f" {line} "]
    fprs = [float(cells[-4]) for cells in averages]
    assert fprs == sorted(fprs) and len(fprs) == 3
    assert "hyperparameters:" in result.output
    assert any(line.strip().startswith("dice: p=0.9") for line in lines)
    assert any(line.strip().startswith("knn") and "n_neighbors=5" in line for line in lines)
