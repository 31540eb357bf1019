"""``skdice evaluate --tune-id --tune-noise``: every method tuned on validation splits first."""

from __future__ import annotations

import json

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
    """Labelled train / val / test ID splits, a noise split for tuning and an OOD split for testing."""
    rng = np.random.default_rng(1)
    m, C, live = 24, 4, 12
    centres = np.zeros((C, m))
    centres[:, :live] = np.maximum(rng.normal(0, 1, (C, live)), 0) * 3
    centres[:, live:] = 0.05
    W = np.zeros((m, C))
    W[:live] = centres[:, :live].T / 3
    W[live:] = rng.normal(0, 1, (m - live, C))

    def id_rows(n):
        y = rng.integers(0, C, n)
        return (centres[y] + np.abs(rng.normal(0, 0.5, (n, m))) * (np.arange(m) < live)).astype(np.float32), y

    def noise(n, scale):
        X = np.abs(rng.normal(0, 0.5, (n, m)))
        X[:, live:] = np.abs(rng.normal(0, scale, (n, m - live)))
        return X.astype(np.float32)

    splits = {"train": id_rows(200), "val": id_rows(200), "test": id_rows(150),
              "noise": noise(200, 1.0), "ood": noise(150, 1.5), "real": noise(200, 1.0)}
    path = tmp_path_factory.mktemp("evaluate-tuned") / "s.zarr"
    write_store(path, Head(W, np.zeros(C)), splits, chunk_rows=64)
    return path


def _run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


BASE = ("--id", "test", "--ood", "ood", "--train", "train", "--method", "dice", "--method", "react",
        "--method", "energy", "--tune-id", "val", "--tune-noise", "noise")


def test_every_method_with_a_grid_is_evaluated_at_its_tuned_values(store, capsys):
    code, out, err = _run(capsys, "evaluate", str(store), *BASE, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    dice = tune_store(store, id_split="val", noise_split="noise", train="train")
    react = tune_store(store, id_split="val", noise_split="noise", train="train", method="react")
    rows = {(r["method"], r["ood"]): r for r in data["results"]}
    # the JSON keeps its shape; the chosen values are in the rows and under "tuning"
    for row in data["results"]:
        assert {"method", "p", "ood", "fpr95", "auroc", "aupr_in", "aupr_out"} <= set(row)
    assert rows[("dice", "ood")]["p"] == dice.best_params_["p"]
    label = f"react:percentile={react.best_params_['percentile']}"
    assert (label, "ood") in rows and ("energy", "ood") in rows
    methods = {item["method"]: item for item in data["tuning"]["methods"]}
    assert set(methods) == {"dice", label}  # energy declares no grid: evaluated as it is
    assert methods["dice"]["params"] == dice.best_params_
    assert methods["dice"]["informative"] == dice.informative_
    assert data["tuning"]["id"] == "val" and data["tuning"]["noise"] == ["noise"]
    # the numbers are those of the detectors at the tuned values
    direct = evaluate_store(store, "test", ["ood"], ["dice", f"react:percentile={react.best_params_['percentile']}"],
                            p=dice.best_params_["p"], train="train")
    ref = {(r.method, r.ood): r for r in direct.report.rows}
    assert rows[("dice", "ood")]["fpr95"] == pytest.approx(ref[("dice", "ood")].fpr95)
    assert rows[(label, "ood")]["auroc"] == pytest.approx(ref[(label, "ood")].auroc)


def test_table_prints_the_chosen_values(store, capsys):
    code, out, err = _run(capsys, "evaluate", str(store), *BASE)
    assert code == 0, err
    lines = out.splitlines()
    start = lines.index("tuned on 'val' vs 'noise' before the evaluation:")
    dice = tune_store(store, id_split="val", noise_split="noise", train="train")
    how = "chosen" if dice.informative_ else "defaults kept: validation cannot move them"
    assert lines[start + 1] == f"  dice: p = {dice.best_params_['p']:g} ({how})"
    assert lines[start + 2].startswith("  react: percentile = ")
    assert any(line.split()[:2] == ["dice", f"{dice.best_params_['p']:g}"] for line in lines[2:])


def test_tune_ood_reaches_the_search_as_a_real_set_and_tune_agrees(store, capsys):
    code, out, err = _run(capsys, "evaluate", str(store), *BASE, "--tune-ood", "real", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["tuning"]["noise"] == ["noise"] and data["tuning"]["ood"] == ["real"]
    for method in ("dice", "react"):
        ref = tune_store(store, id_split="val", noise_split="noise", ood_val_split="real", train="train",
                         method=method)
        item = next(i for i in data["tuning"]["methods"] if i["method"].partition(":")[0] == method)
        assert item["params"] == ref.best_params_ and item["informative"] == ref.informative_
        assert item["decided_by"] == ref.decided_by_ and item["reason"] == ref.informative_reason_
        assert [s["kind"] for s in ref.validation_sets_] == ["synthetic", "real"]


def test_spec_parameters_and_p_are_not_tuned(store, capsys):
    code, out, _ = _run(capsys, "evaluate", str(store), "--id", "test", "--ood", "ood", "--train", "train",
                        "--method", "dice", "--method", "react:percentile=80", "--p", "0.5",
                        "--tune-id", "val", "--tune-noise", "noise", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["tuning"]["methods"] == []  # p given run-wide, percentile in the spec: nothing left
    assert {r["p"] for r in data["results"] if r["method"] == "dice"} == {0.5}


def test_uninformative_tuning_warns_once_per_method_naming_it(store, capsys):
    code, out, err = _run(capsys, "evaluate", str(store), "--id", "test", "--ood", "ood", "--train", "train",
                          "--method", "dice", "--tune-id", "val", "--tune-noise", "val",
                          "--format", "json")
    assert code == 1 and "given both as the ID validation split and as an OOD validation split" in err
    code, out, err = _run(capsys, "evaluate", str(store), "--id", "test", "--ood", "ood", "--train", "train",
                          "--method", "dice", "--method", "odin", "--tune-id", "val", "--tune-noise", "train",
                          "--format", "json")
    assert code == 0
    data = json.loads(out)
    for item in data["tuning"]["methods"]:
        lines = [line for line in err.splitlines() if line.startswith(f"warning: tuning {item['method'].split(':')[0]}:")]
        assert len(lines) == (0 if item["informative"] else 1)
    assert any(not item["informative"] for item in data["tuning"]["methods"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tune-id", "test", "--tune-noise", "noise"], "split 'test' is both a validation split and a test split"),
        (["--tune-id", "val", "--tune-noise", "ood"], "split 'ood' is both a validation split and a test split"),
        (["--tune-id", "val"], "--tune-id goes with --tune-noise and/or --tune-ood: give both, or neither"),
        (["--tune-noise", "noise"], "--tune-id goes with --tune-noise and/or --tune-ood: give both, or neither"),
    ],
)
def test_validation_splits_that_are_test_splits_are_refused(store, capsys, extra, message):
    code, out, err = _run(capsys, "evaluate", str(store), "--id", "test", "--ood", "ood", "--train", "train", *extra)
    assert code == 1 and out == "" and message in err
    assert err.startswith("skdice: error: ") and len(err.strip().splitlines()) == 1
