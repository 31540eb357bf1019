"""Tests of ``skdice plot``: argument mapping and one full run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from skdice import Head
from skdice.cli.app import app
from stores import write_store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    m, c = 12, 3
    head = Head(rng.normal(size=(m, c)), np.zeros(c))
    path = tmp_path_factory.mktemp("plotcli") / "s.zarr"
    splits = {}
    for name, loc in (("train", 0.5), ("test", 0.5), ("noise", 0.0)):
        X = np.maximum(rng.normal(loc, 1.0, size=(64, m)), 0).astype(np.float32)
        splits[name] = (X, head.logits(X).argmax(axis=1) if name != "noise" else -np.ones(64, dtype=np.int64))
    write_store(path, head, splits, chunk_rows=32)
    return path


def test_plot_passes_arguments_to_plot_store(monkeypatch, tmp_path):
    import skdice.plotting

    seen = {}

    def fake(store, out, **kwargs):
        seen.update(store=store, out=out, **kwargs)
        return {k: tmp_path / f"{k}.png" for k in ("histograms", "contributions", "p_sweep")}

    monkeypatch.setattr(skdice.plotting, "plot_store", fake)
    result = CliRunner().invoke(
        app,
        ["plot", "S.zarr", "--id", "test", "--ood", "a", "--ood", "b", "--train-mean", "m.npy",
         "--p", "0.7", "--class", "2", "--ps", "0,0.5", "--out", str(tmp_path), "--bins", "20",
         "--prefix", "x-"],
    )
    assert result.exit_code == 0, result.output
    assert str(seen.pop("store")) == "S.zarr"
    assert seen.pop("out") == tmp_path
    assert seen == {
        "id_split": "test", "ood_splits": ["a", "b"], "train_split": None,
        "train_mean": __import__("pathlib").Path("m.npy"), "p": 0.7, "class_index": 2,
        "ps": [0.0, 0.5], "bins": 20, "prefix": "x-",
    }
    assert result.output.splitlines() == [str(tmp_path / f"{k}.png") for k in ("histograms", "contributions", "p_sweep")]


def test_plot_writes_three_pngs(store, tmp_path):
    path = store
    result = CliRunner().invoke(
        app, ["plot", str(path), "--id", "test", "--ood", "noise", "--train", "train",
              "--out", str(tmp_path), "--ps", "0,0.5,0.9"],
    )
    assert result.exit_code == 0, result.output
    for name in ("histograms", "contributions", "p_sweep"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "skdice", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "give exactly one of --train SPLIT or --train-mean FILE.npy"),
        (["--train", "train", "--train-mean", "m.npy"], "give exactly one of --train SPLIT"),
        (["--train", "train", "--ps", "0,x"], "--ps must be comma-separated numbers"),
        (["--train", "train", "--p", "1.5"], r"p must be in [0, 1), got 1.5"),
        (["--train", "nope"], "has no split 'nope'"),
    ],
)
def test_plot_errors_are_one_line_without_traceback(store, tmp_path, extra, message):
    path = store
    proc = _cli("plot", str(path), "--id", "test", "--ood", "noise", "--out", str(tmp_path), *extra)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_plot_train_mean_of_the_wrong_width_is_refused(store, tmp_path):
    path = store
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones(5))
    proc = _cli("plot", str(path), "--id", "test", "--ood", "noise", "--train-mean", str(bad),
                "--out", str(tmp_path))
    assert proc.returncode == 1
    assert "holds a mean of 5 features but the store's head has 12" in proc.stderr
