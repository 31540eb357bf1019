"""``tune`` and ``evaluate --tune-id`` on a tiny store: dropped candidates, seeds, one accuracy."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytest.importorskip("typer")
pytest.importorskip("zarr")

from skdice import Head  # noqa: E402
from skdice.cli.app import main  # noqa: E402
from skdice.evaluation import evaluate_store  # noqa: E402
from skdice.tuning import tune_store  # noqa: E402
from stores import write_store  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """24 features (narrower than ViM's dim 32..1000), 60 training rows (fewer than KNN's k 100..1000).

    ``val`` and ``test`` hold the same rows, so the tuned accuracy and the evaluated one are over
    the same rows.
    """
    rng = np.random.default_rng(3)
    m, C = 24, 4
    centres = np.maximum(rng.normal(0, 1, (C, m)), 0) * 3
    W = centres.T / 3 + rng.normal(0, 0.3, (m, C))

    def id_rows(n):
        y = rng.integers(0, C, n)
        return (centres[y] + np.abs(rng.normal(0, 1.0, (n, m)))).astype(np.float32), y

    val = id_rows(120)
    noise = np.abs(rng.normal(0, 2.0, (120, m))).astype(np.float32)
    splits = {"train": id_rows(60), "val": val, "test": val, "noise": noise,
              "ood": np.abs(rng.normal(0, 2.5, (100, m))).astype(np.float32)}
    path = tmp_path_factory.mktemp("tuned-candidates") / "s.zarr"
    write_store(path, Head(W, np.zeros(C)), splits, chunk_rows=32)
    return path


def _run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


TUNED = ("--id", "test", "--ood", "ood", "--train", "train", "--tune-id", "val", "--tune-noise", "noise")


def test_evaluate_all_tuned_runs_and_notes_the_dropped_candidates(store, capsys):
    code, out, err = _run(capsys, "evaluate", str(store), *TUNED, "--method", "all", "--format", "json")
    assert code == 0, err
    tuning = {item["method"].partition(":")[0]: item for item in json.loads(out)["tuning"]["methods"]}
    vim = [d["params"]["dim"] for d in tuning["vim"]["dropped"]]
    assert vim == [32, 64, 128, 256, 512, 1000]
    knn = [d["params"]["n_neighbors"] for d in tuning["knn"]["dropped"]]
    assert knn == [100, 200, 500, 1000]
    assert tuning["knn"]["dropped"][0]["reason"] == "n_neighbors=100 exceeds the 60 fitting rows"
    assert tuning["dice"]["dropped"] == []
    code, text, _ = _run(capsys, "evaluate", str(store), *TUNED, "--method", "knn")
    assert code == 0
    assert ("    dropped before the search (4 candidates): n_neighbors=100 (n_neighbors=100 exceeds "
            "the 60 fitting rows); n_neighbors=200") in text


@pytest.mark.parametrize("method", ["knn", "vim", "gen"])
def test_tune_evaluate_and_python_drop_the_same_candidates(store, capsys, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = tune_store(store, id_split="val", noise_split="noise", train="train", method=method)
        result = evaluate_store(store, "test", ["ood"], [method], train="train", tune_id="val",
                                tune_noise=["noise"])
    code, out, _ = _run(capsys, "tune", str(store), "--method", method, "--train", "train", "--id", "val",
                        "--noise", "noise", "--format", "json")
    assert code == 0
    from_tune = json.loads(out)["dropped"]
    assert from_tune and from_tune == result.tuning["methods"][0]["dropped"]
    assert [(d["params"], d["reason"]) for d in from_tune] == [
        (dict(p), why) for p, why in search.dropped_params_]
    code, table, _ = _run(capsys, "tune", str(store), "--method", method, "--train", "train", "--id", "val",
                          "--noise", "noise")
    assert [line for line in table.splitlines() if line.startswith("dropped before the search (")]


@pytest.mark.parametrize("method", ["weight-dropout", "dice-random-k", "unit-dropout", "react", "ash-b"])
def test_tune_and_evaluate_choose_the_same_values(store, capsys, method):
    args = ("--method", method, "--train", "train", "--id", "val", "--noise", "noise", "--format", "json")
    runs = [json.loads(_run(capsys, "tune", str(store), *args)[1]) for _ in range(2)]
    assert runs[0]["results"] == runs[1]["results"]  # seeded: the same masks every run
    code, out, _ = _run(capsys, "evaluate", str(store), *TUNED, "--method", method, "--format", "json")
    assert code == 0
    assert json.loads(out)["tuning"]["methods"][0]["params"] == runs[0]["best_params"]


@pytest.mark.parametrize("method", ["react", "dice-react", "ash-p", "weight-pruning"])
def test_evaluate_reports_the_accuracy_the_guard_used(store, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate_store(store, "test", ["ood"], [method], train="train", tune_id="val",
                                tune_noise=["noise"])
    search = next(iter(result.searches.values()))
    guard = 100 * search.cv_results_["id_accuracy"][search.best_index_]
    acc = result.id_accuracy
    records = acc["masked"] + acc["changed"]
    assert len(records) == 1 and records[0]["accuracy"] == pytest.approx(guard)
    assert 100 * search.dense_accuracy_ == pytest.approx(acc["original"])


@pytest.fixture(scope="module")
def clip_store(tmp_path_factory):
    """The class in one large unit, noise large on every class unit: a low clip breaks the classifier."""
    rng = np.random.default_rng(0)
    m, C = 16, 4

    def id_rows(n):
        y = rng.integers(0, C, n)
        X = rng.uniform(0, 0.5, (n, m))
        X[:, :C] = rng.uniform(1, 3, (n, C))
        X[np.arange(n), y] = 4.5
        X[:, C] = 0.5
        return X.astype(np.float32), y

    W = np.zeros((m, C))
    W[:C] = np.eye(C) * 2
    W[C] = 1
    noise = rng.uniform(0, 0.5, (200, m))
    noise[:, :C] = rng.uniform(5, 8, (200, C))
    noise[:, C] = 0
    val = id_rows(200)
    splits = {"train": id_rows(300), "val": val, "test": val, "noise": noise.astype(np.float32),
              "ood": noise[:100].astype(np.float32), "real": noise[100:].astype(np.float32)}
    path = tmp_path_factory.mktemp("clip") / "s.zarr"
    write_store(path, Head(W, np.zeros(C)), splits, chunk_rows=64)
    return path


@pytest.mark.parametrize("method", ["react", "dice-react:percentile=70"])
def test_evaluate_reports_the_clipped_accuracy_the_guard_used(clip_store, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate_store(clip_store, "test", ["ood"], [method], train="train", tune_id="val",
                                tune_noise=["noise"], tune_ood=["real"], guard=False)
    search = next(iter(result.searches.values()))
    guard = 100 * search.cv_results_["id_accuracy"][search.best_index_]
    records = result.id_accuracy["masked"] + result.id_accuracy["changed"]
    assert guard < 50  # the clip broke the classifier (and evaluate says so)
    assert len(records) == 1 and records[0]["accuracy"] == pytest.approx(guard)
