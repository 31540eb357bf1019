"""``skdice fit`` and ``skdice score`` through Typer's CliRunner."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("typer")
zarr = pytest.importorskip("zarr")

from typer.testing import CliRunner

import skdice.evaluation
from skdice import DICEDetector, Head, load_detector
from skdice.cli.app import app
from skdice.store import open_store, read_scores
from stores import write_store

M, C = 10, 3
runner = CliRunner()


def toy_store(path):
    rng = np.random.default_rng(3)
    head = Head(rng.normal(size=(M, C)), rng.normal(size=C))
    splits = {}
    for name, n in (("train", 70), ("test", 45)):
        splits[name] = (np.maximum(rng.normal(1.0, 1.0, (n, M)), 0).astype(np.float32), np.arange(n) % C)
    write_store(path, head, splits, chunk_rows=16)
    return path


@pytest.fixture
def store(tmp_path):
    return toy_store(tmp_path / "toy.zarr")


def test_fit_arguments_map_to_fit_from_store(store, tmp_path, monkeypatch):
    calls = []
    real = skdice.evaluation.fit_from_store

    def fake(store_arg, method, **kwargs):
        calls.append((store_arg, method, kwargs))
        return real(store_arg, method, **kwargs)

    monkeypatch.setattr(skdice.evaluation, "fit_from_store", fake)
    np.save(tmp_path / "mean.npy", np.ones(M))
    out = tmp_path / "det.npz"
    result = runner.invoke(app, ["fit", str(store), "--train", "train", "--method", "dice", "--p", "0.7",
                                 "--train-mean", str(tmp_path / "mean.npy"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    progress = calls[0][2].pop("progress")
    assert callable(progress)  # the bar drawn on a terminal while the split streams
    assert calls == [(store, "dice", {"train": "train", "p": 0.7, "train_mean": tmp_path / "mean.npy"})]


def test_fit_saves_a_detector_equal_to_an_in_memory_fit(store, tmp_path):
    out = tmp_path / "dice.npz"
    result = runner.invoke(app, ["fit", str(store), "--train", "train", "--p", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "fitted dice (p=0.5, tpr=0.95) on split 'train'" in result.stdout
    assert f"saved to {out}" in result.stdout
    fs = open_store(store)
    reference = DICEDetector(p=0.5).fit(fs.features("train"), head=fs.head)
    loaded = load_detector(out)
    np.testing.assert_array_equal(loaded.mask_, reference.mask_)
    np.testing.assert_allclose(loaded.score_samples(fs.features("test")),
                               reference.score_samples(fs.features("test")), rtol=1e-6)
    assert loaded.offset_ == pytest.approx(reference.offset_, rel=1e-6)
    assert f"kept weights: {int(reference.mask_.sum())} of {M * C}" in result.stdout


def test_fit_other_method_by_name(store, tmp_path):
    out = tmp_path / "energy.npz"
    result = runner.invoke(app, ["fit", str(store), "--train", "train", "--method", "energy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert type(load_detector(out)).name == "energy"


def test_score_writes_scores_into_the_store_and_prints_a_summary(store, tmp_path):
    out = tmp_path / "dice.npz"
    assert runner.invoke(app, ["fit", str(store), "--train", "train", "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["score", str(store), "--split", "test", "--detector", str(out)])
    assert result.exit_code == 0, result.output
    det = load_detector(out)
    X = open_store(store).features("test")
    expected = det.score_samples(X)
    np.testing.assert_array_equal(read_scores(store, "test", "dice"), expected)
    n_ood = int(np.sum(det.predict(X) == -1))
    assert "scored 45 rows of split 'test' with dice" in result.stdout
    assert f"flagged OOD at the saved threshold: {n_ood} ({100 * n_ood / 45:.2f}%)" in result.stdout
    assert f"written to {store / 'test/scores/dice'}" in result.stdout


@pytest.mark.parametrize("terminal", [False, True])
def test_fit_and_score_bars_only_on_a_terminal(store, tmp_path, monkeypatch, terminal):
    import sys

    from skdice.cli import _console

    monkeypatch.setattr(_console, "_isatty", lambda stream: terminal and stream is sys.stderr)
    out = tmp_path / "dice.npz"
    fitted = runner.invoke(app, ["fit", str(store), "--train", "train", "--out", str(out)])
    scored = runner.invoke(app, ["score", str(store), "--split", "test", "--detector", str(out)])
    assert fitted.exit_code == 0 and scored.exit_code == 0, fitted.output + scored.output
    if terminal:  # the rows done of total: two passes over 70 training rows, one over 45 test rows
        assert "fitting on train" in fitted.stderr and "140/140" in fitted.stderr
        assert "scoring test" in scored.stderr and "45/45" in scored.stderr
    else:
        assert fitted.stderr == "" and scored.stderr == ""
    assert fitted.stdout.startswith("fitted dice") and scored.stdout.startswith("scored 45 rows")


def test_score_with_name_and_overwrite(store, tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    runner.invoke(app, ["fit", str(store), "--train", "train", "--p", "0.9", "--out", str(a)])
    runner.invoke(app, ["fit", str(store), "--train", "train", "--p", "0.5", "--out", str(b)])
    assert runner.invoke(app, ["score", str(store), "--split", "test", "--detector", str(a),
                               "--name", "mine"]).exit_code == 0
    again = runner.invoke(app, ["score", str(store), "--split", "test", "--detector", str(a), "--name", "mine"])
    assert "nothing recomputed" in again.stdout
    clash = runner.invoke(app, ["score", str(store), "--split", "test", "--detector", str(b), "--name", "mine"])
    assert clash.exit_code != 0
    forced = runner.invoke(app, ["score", str(store), "--split", "test", "--detector", str(b),
                                 "--name", "mine", "--overwrite"])
    assert forced.exit_code == 0, forced.output
    np.testing.assert_array_equal(
        read_scores(store, "test", "mine"), load_detector(b).score_samples(open_store(store).features("test"))
    )


def test_fit_from_a_cached_mean_says_the_threshold_is_not_calibrated(store, tmp_path):
    fs = open_store(store)
    np.save(tmp_path / "mean.npy", fs.features("train").astype(np.float64).mean(axis=0))
    out = tmp_path / "dice.npz"
    result = runner.invoke(app, ["fit", str(store), "--train-mean", str(tmp_path / "mean.npy"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"on the mean in {tmp_path / 'mean.npy'} of {store}" in result.stdout
    assert "offset_ not calibrated" in result.stdout
    scored = runner.invoke(app, ["score", str(store), "--split", "test", "--detector", str(out)])
    assert scored.exit_code == 0, scored.output
    assert "flagged OOD" not in scored.stdout
    reference = DICEDetector().fit(fs.features("train"), head=fs.head)
    np.testing.assert_allclose(read_scores(store, "test", "dice"), reference.score_samples(fs.features("test")),
                               rtol=1e-6)


def test_a_degenerate_fit_is_one_warning_line_in_fit_evaluate_and_tune(tmp_path):
    """An all-zero training split keeps no weight: every command says why, in one line."""
    rng = np.random.default_rng(0)
    head = Head(rng.normal(size=(M, C)), np.zeros(C))
    path = tmp_path / "dead.zarr"
    write_store(path, head, {"train": np.zeros((40, M), np.float32),
                             "id": (np.abs(rng.normal(size=(30, M))).astype(np.float32), np.arange(30) % C),
                             "ood": np.abs(rng.normal(size=(30, M))).astype(np.float32)}, chunk_rows=16)
    expected = ("warning: DICEDetector kept no weight of the head (p=0.9): the training mean feature "
                "is all zero")
    runs = {
        "fit": ["fit", str(path), "--train", "train", "--out", str(tmp_path / "det.skdice")],
        "evaluate": ["evaluate", str(path), "--id", "id", "--ood", "ood", "--train", "train",
                     "--method", "dice"],
        "tune": ["tune", str(path), "--id", "id", "--noise", "ood", "--train", "train"],
    }
    for name, args in runs.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (name, result.output)
        lines = [line for line in result.stderr.splitlines() if line.startswith("warning: DICEDetector")]
        assert lines and lines[0].startswith(expected), (name, result.stderr)
        assert "Traceback" not in result.stderr and "DegenerateFitWarning" not in result.stderr
