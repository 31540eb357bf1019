"""Tests of ``skdice tune``: argument mapping, full runs on a small store, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("zarr")

from skdice import Head  # noqa: E402
from skdice.cli.app import app, main  # noqa: E402
from skdice.tuning import SparsitySearch  # noqa: E402
from stores import write_store  # noqa: E402

M, C = 12, 3


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A small complete store: train, val (ID), noise, and an interrupted split."""
    rng = np.random.default_rng(5)
    head = Head(rng.normal(size=(M, C)), 0.1 * rng.normal(size=C))
    centres = np.maximum(rng.normal(0, 1, size=(C, M)), 0) * 2
    arrays = {}
    for name, n in (("train", 96), ("val", 64)):
        y = rng.integers(0, C, n)
        arrays[name] = np.maximum(centres[y] + rng.normal(0, 0.7, size=(n, M)), 0).astype(np.float32)
    arrays["noise"] = np.abs(rng.normal(0.5, 1.0, size=(64, M))).astype(np.float32)
    arrays["broken"] = arrays["noise"]
    path = tmp_path_factory.mktemp("tunecli") / "s.zarr"
    write_store(path, head, arrays, chunk_rows=32, incomplete=("broken",))
    return path, head, arrays


def _run_main(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


# ------------------------------------------------------- argument mapping
def test_tune_passes_arguments_to_tune_store(monkeypatch, store):
    import skdice.tuning

    path, head, arrays = store
    seen = {}
    fitted = SparsitySearch(grid=[0.2, 0.6]).fit(
        arrays["train"], head=head, X_id=arrays["val"], X_noise=arrays["noise"]
    )

    def fake(store_arg, **kwargs):
        seen.update(store=store_arg, **kwargs)
        return fitted

    monkeypatch.setattr(skdice.tuning, "tune_store", fake)
    result = CliRunner().invoke(
        app,
        ["tune", "S.zarr", "--train-mean", "m.npy", "--id", "val", "--noise", "gauss",
         "--grid", "0.2, 0.6", "--metric", "auroc"],
    )
    assert result.exit_code == 0, result.output
    assert seen == {
        "store": Path("S.zarr"), "id_split": "val", "noise_split": ["gauss"], "ood_val_split": (), "train": None,
        "train_mean": Path("m.npy"), "grid": [0.2, 0.6], "metric": "auroc", "method": "dice",
        "guard": True, "max_accuracy_drop": 0.05, "n_bootstrap": 200, "random_state": 0,
    }
    assert "chosen: p = " in result.output


# --------------------------------------------------------------- full runs
def test_tune_table_lists_every_p_and_the_choice_of_sparsity_search(store):
    path, head, arrays = store
    result = CliRunner().invoke(app, ["tune", str(path), "--train", "train", "--id", "val", "--noise", "noise"])
    assert result.exit_code == 0, result.output
    ref = SparsitySearch().fit(arrays["train"], head=head, X_id=arrays["val"], X_noise=arrays["noise"])
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["p", "FPR95", "CI", "AUROC", "CI", "AUPR-In", "AUPR-Out", "kept", "verdict", "moves", "rank"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = [line.split() for line in lines[2:8]]
    assert [r[0].rstrip("*") for r in rows] == ["0.1", "0.3", "0.5", "0.7", "0.9", "0.99"]
    starred = [r[0] for r in rows if r[0].endswith("*")]
    assert starred == [f"{ref.best_params_['p']:g}*"]
    res, n_weights = ref.cv_results_, head.weight.size
    for i, row in enumerate(rows):
        ci = [f"{100 * res[k + '_ci_low'][i]:.2f}-{100 * res[k + '_ci_high'][i]:.2f}" for k in ("fpr95", "auroc")]
        verdict = "best" if i == ref.leader_index_ else "worse" if res["worse"][i] else "tied"
        assert row[1:] == [
            f"{100 * res['fpr95'][i]:.2f}", ci[0], f"{100 * res['auroc'][i]:.2f}", ci[1],
            *(f"{100 * res[k][i]:.2f}" for k in ("aupr_in", "aupr_out")),
            f"{100 * res['n_kept'][i] / n_weights:.1f}%", verdict,
            "defaults" if i == ref.fallback_index_ else "yes" if res["beats_defaults"][i] else "no",
            str(res["rank_test_score"][i]),
        ]
    assert lines[8:10] == ["", "metrics in % on ID validation 'val' vs OOD validation split 'noise'; FPR at 95% TPR, "
                               "ID positive; CI: 95% interval, paired bootstrap of 200 resamples; kept = weights kept."]
    assert lines[-1].startswith(f"chosen: p = {ref.best_params_['p']:g} (FPR95 ")
    assert len(lines) == 14  # with the line naming the validation sets and their kinds


def test_tune_json_holds_every_metric_in_percent(store):
    path, head, arrays = store
    result = CliRunner().invoke(
        app, ["tune", str(path), "--train", "train", "--id", "val", "--noise", "noise",
              "--grid", "0,0.5,0.9", "--metric", "auroc", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    ref = SparsitySearch(grid=[0, 0.5, 0.9], metric="auroc").fit(
        arrays["train"], head=head, X_id=arrays["val"], X_noise=arrays["noise"]
    )
    assert out["best_p"] == ref.best_params_["p"]
    assert [r["p"] for r in out["results"]] == [0.0, 0.5, 0.9]
    assert out["results"][0]["threshold"] is None  # p = 0: -inf is not JSON
    for key in ("fpr95", "auroc", "aupr_in", "aupr_out"):
        np.testing.assert_allclose([r[key] for r in out["results"]], 100 * ref.cv_results_[key], rtol=1e-9)
    assert [r["rank"] for r in out["results"]] == ref.cv_results_["rank_test_score"].tolist()
    assert (out["metric"], out["units"], out["train"], out["noise"]) == ("auroc", "percent", "train", "noise")


def test_tune_from_train_mean_file_matches_train_split(store, tmp_path):
    path, _, arrays = store
    mean_file = tmp_path / "mean.npy"
    np.save(mean_file, arrays["train"].astype(np.float64).mean(axis=0))
    args = ["--id", "val", "--noise", "noise", "--format", "json"]
    a = CliRunner().invoke(app, ["tune", str(path), "--train", "train", *args])
    b = CliRunner().invoke(app, ["tune", str(path), "--train-mean", str(mean_file), *args])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ra, rb = json.loads(a.stdout), json.loads(b.stdout)
    assert ra["best_p"] == rb["best_p"]
    for x, y in zip(ra["results"], rb["results"]):
        assert x["fpr95"] == pytest.approx(y["fpr95"]) and x["n_kept"] == y["n_kept"]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--train", "train", "--grid", "0.1,abc"], "--grid must be comma-separated numbers in [0, 1)"),
        (["--train", "train", "--grid", "0.5,1.5"], "every p must be in [0, 1), got 1.5"),
        (["--train", "train", "--grid", "0.5,0.5"], "grid has repeated values"),
        (["--train", "nope"], "has no split 'nope'"),
        (["--train", "broken"], "split 'broken' in"),
        ([], "give exactly one of --train SPLIT or --train-mean FILE.npy"),
        (["--train", "train", "--train-mean", "m.npy"], "give exactly one of --train SPLIT"),
        (["--train-mean", "does-not-exist.npy"], "train mean file does-not-exist.npy does not exist"),
    ],
)
def test_tune_errors_are_one_line_and_exit_1(store, capsys, extra, message):
    path = store[0]
    code, out, err = _run_main(capsys, "tune", str(path), "--id", "val", "--noise", "noise", *extra)
    assert code == 1
    assert err.startswith("skdice: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    "option, value, choices",
    [("--metric", "aupr", ("fpr95", "auroc")), ("--format", "csv", ("table", "json"))],
)
def test_tune_choices_outside_the_documented_ones_are_usage_errors(option, value, choices):
    result = CliRunner().invoke(
        app, ["tune", "S.zarr", "--train", "t", "--id", "v", "--noise", "n", option, value],
        env={"COLUMNS": "200"},  # the error box wraps at the terminal width
    )
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert all(f"'{c}'" in result.output for c in choices)


def test_tune_missing_noise_split_is_one_line(store, capsys):
    code, _, err = _run_main(capsys, "tune", str(store[0]), "--train", "train", "--id", "val", "--noise", "gauss")
    assert code == 1 and "has no split 'gauss'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (np.ones(5), "holds a mean of 5 features but the store's head has 12"),
        (np.ones((3, 12)), "must hold a 1-D mean feature, got shape (3, 12)"),
        (b"not a numpy file", "is not a readable .npy array"),
    ],
)
def test_tune_bad_train_mean_file_is_one_line(store, capsys, tmp_path, content, message):
    bad = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        np.save(bad, content)
    code, _, err = _run_main(capsys, "tune", str(store[0]), "--train-mean", str(bad), "--id", "val", "--noise", "noise")
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_tune_error_from_a_real_process_has_no_traceback(store):
    proc = subprocess.run(
        [sys.executable, "-m", "skdice", "tune", str(store[0]), "--train", "train", "--id", "val",
         "--noise", "noise", "--grid", "x"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "skdice: error: --grid must be comma-separated numbers in [0, 1), for example 0.1,0.5,0.9; got 'x'."
    ]
