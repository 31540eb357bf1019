"""``skdice evaluate`` through Typer's CliRunner: argument mapping and full runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("typer")
pytest.importorskip("zarr")

from typer.testing import CliRunner

import skdice.evaluation
from skdice import Head
from skdice.cli.app import app
from skdice.evaluation import evaluate_store
from stores import write_store

M, C = 12, 3
runner = CliRunner()


def toy_store(path):
    """train/id labelled, ood unlabelled; the head separates the three classes."""
    rng = np.random.default_rng(0)
    protos = rng.gamma(1.0, 1.0, size=(C, M))
    head = Head(protos.T - protos.T.mean(1, keepdims=True), np.zeros(C))
    splits = {}
    for name, n, ood in (("train", 90, False), ("id", 60, False), ("ood", 50, True)):
        y = -np.ones(n, int) if ood else np.arange(n) % C
        X = rng.normal(0.3, 1.5, (n, M)) if ood else protos[y] + 0.5 * rng.normal(size=(n, M))
        splits[name] = (np.maximum(X, 0).astype(np.float32), y)
    write_store(path, head, splits, chunk_rows=32)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_store(tmp_path_factory.mktemp("cli") / "toy.zarr")


@pytest.fixture
def recorded(monkeypatch):
    """Replace the library call by a recorder that still returns a real result."""
    calls = []

    def fake(store, id_split, ood_splits, **kwargs):
        calls.append({"store": store, "id_split": id_split, "ood_splits": list(ood_splits), **kwargs})
        kwargs.pop("progress", None)
        return evaluate_store(store, id_split, ood_splits, **kwargs)

    monkeypatch.setattr(skdice.evaluation, "evaluate_store", fake)
    return calls


def test_arguments_map_to_one_library_call(store, recorded, tmp_path):
    np.save(tmp_path / "mean.npy", np.ones(M))
    result = runner.invoke(
        app,
        ["evaluate", str(store), "--id", "id", "--ood", "ood", "--ood", "train",
         "--method", "dice", "--method", "msp", "--p", "0.5", "--train-mean",
         str(tmp_path / "mean.npy"), "--positive", "ood", "--format", "csv"],
    )
    assert result.exit_code == 0, result.output
    (call,) = recorded
    assert call["store"] == store and call["id_split"] == "id"
    assert call["ood_splits"] == ["ood", "train"]
    assert call["methods"] == ["dice", "msp"] and call["p"] == 0.5
    assert call["train"] is None and call["train_mean"] == tmp_path / "mean.npy"
    assert call["positive"] == "ood"


def test_defaults_are_dice_and_energy_with_id_positive(store, recorded):
    result = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--train", "train"])
    assert result.exit_code == 0, result.output
    (call,) = recorded
    assert tuple(call["methods"]) == ("dice", "energy")
    assert call["p"] is None and call["positive"] == "id" and call["train"] == "train"


def test_table_has_every_row_and_value_of_the_json_then_convention_and_accuracy(store):
    result = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--train", "train"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["method", "p", "ood", "FPR95", "AUROC", "AUPR-In", "AUPR-Out"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    expected = json.loads(evaluate_store(store, "id", ["ood"], train="train").report.to_json())["results"]
    # a leaderboard: the methods' rows in order of their average FPR95 (ties as given)
    order = sorted({r["method"]: r["fpr95"] for r in expected if r["ood"] == "average"}.items(),
                   key=lambda item: item[1])
    rank = {method: i for i, (method, _) in enumerate(order)}
    expected = sorted(expected, key=lambda r: rank[r["method"]])
    body = [line.split() for line in lines[2:2 + len(expected)]]
    assert body == [
        [r["method"], *([] if r["p"] is None else [f"{r['p']:g}"]), r["ood"],
         *(f"{r[k]:.2f}" for k in ("fpr95", "auroc", "aupr_in", "aupr_out"))]
        for r in expected
    ]
    assert sorted(row[0] for row in body) == ["dice", "dice", "energy", "energy"]
    assert lines[2 + len(expected)] == ""
    assert lines[3 + len(expected)].startswith("FPR95 with ID positive (DICE paper)")
    assert lines[4 + len(expected)] == "hyperparameters:"
    assert lines[5 + len(expected)] == "  dice: p=0.9"
    assert lines[6 + len(expected)] == "  energy: temperature=1"
    assert lines[7 + len(expected)].startswith("ID accuracy on 'id' (60 labelled rows): original head")
    assert lines[8 + len(expected)].startswith("  masked head of dice (p=0.9):")
    assert result.stderr == ""  # stderr is not a terminal here: no progress


def test_progress_steps_are_drawn_on_stderr_when_it_is_a_terminal(store, monkeypatch):
    import sys

    from skdice.cli import _console

    monkeypatch.setattr(_console, "_isatty", lambda stream: stream is sys.stderr)
    args = ["evaluate", str(store), "--id", "id", "--ood", "ood", "--train", "train", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for step in ("checking splits of", "fitting dice", "scoring dice, energy on id",
                 "scoring dice, energy on ood"):
        assert step in result.stderr
    assert json.loads(result.stdout)["results"]  # stdout holds the results only


def test_evaluate_passes_one_progress_callable_for_the_messages(store, recorded):
    result = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--format", "csv",
                                 "--method", "energy"])
    assert result.exit_code == 0, result.output
    (call,) = recorded
    assert callable(call["progress"])
    call["progress"]("a message after the run")  # closed and not a terminal: nothing, no error
    assert result.stderr == ""


def test_json_output_is_the_documented_structure_and_matches_the_library(store):
    result = runner.invoke(
        app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--train", "train", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"results", "fpr_at_tpr", "fpr_positive", "id_accuracy"}
    assert (out["fpr_at_tpr"], out["fpr_positive"]) == (0.95, "id")
    assert [(r["method"], r["p"], r["ood"]) for r in out["results"]] == [
        ("dice", 0.9, "ood"), ("dice", 0.9, "average"), ("energy", None, "ood"), ("energy", None, "average"),
    ]
    direct = evaluate_store(store, "id", ["ood"], train="train")
    assert out == json.loads(direct.report.to_json())
    assert out["id_accuracy"]["n_labelled"] == 60
    assert out["id_accuracy"]["masked"][0]["method"] == "dice"


def test_markdown_and_csv_formats(store):
    md = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--method", "energy",
                             "--format", "markdown"])
    assert md.exit_code == 0, md.output
    assert md.stdout.startswith("| method | p | ood | FPR95 |")
    assert "- ID accuracy on 'id'" in md.stdout
    csv = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--method", "energy",
                              "--format", "csv"])
    assert csv.exit_code == 0, csv.output
    rows = csv.stdout.strip().splitlines()
    assert rows[0] == "method,p,ood,fpr95,auroc,aupr_in,aupr_out"
    assert [r.split(",")[:3] for r in rows[1:]] == [["energy", "", "ood"], ["energy", "", "average"]]


def test_method_specs_with_parameters_reach_the_detectors(store):
    result = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--train", "train",
                                 "--method", "dice:p=0.3", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {r["p"] for r in json.loads(result.stdout)["results"]} == {0.3}


def test_help_lists_every_documented_option():
    result = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0
    for option in ("--id", "--ood", "--method", "--p", "--train", "--train-mean", "--positive", "--format"):
        assert option in result.stdout


def test_class_conditional_method_on_an_unlabelled_training_split_is_one_line(store):
    result = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "train",
                                 "--train", "ood", "--method", "mahalanobis"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError)
    assert "split 'ood' has 50 rows without a class label (-1)" in str(result.exception)


def test_unlabelled_id_split_says_accuracy_is_not_available_and_null_in_json(store):
    import json

    result = runner.invoke(app, ["evaluate", str(store), "--id", "ood", "--ood", "id",
                                 "--train", "train", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id_accuracy"] is None
    table = runner.invoke(app, ["evaluate", str(store), "--id", "ood", "--ood", "id", "--train", "train"])
    assert table.exit_code == 0
    assert table.stdout.rstrip().endswith("ID accuracy: n/a (the ID split has no labels)")


def test_ood_positive_changes_fpr95_only_and_says_so(store):
    import json

    def rows(*extra):
        out = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--train", "train",
                                  "--format", "json", *extra])
        assert out.exit_code == 0, out.output
        doc = json.loads(out.stdout)
        assert doc["fpr_positive"] == ("ood" if "ood" in extra else "id")
        return doc["results"]

    by_id, by_ood = rows(), rows("--positive", "ood")
    for a, b in zip(by_id, by_ood):
        assert (a["auroc"], a["aupr_in"], a["aupr_out"]) == (b["auroc"], b["aupr_in"], b["aupr_out"])
    table = runner.invoke(app, ["evaluate", str(store), "--id", "id", "--ood", "ood", "--train", "train",
                                "--positive", "ood"])
    assert "FPR95 with OOD positive (OpenOOD v1.5)" in table.stdout
