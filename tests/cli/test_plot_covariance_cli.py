"""``skdice plot`` writes the covariance figure (Figure 6) and names every file it wrote."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from skdice import Head
from skdice.cli.app import app

from stores import write_store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("histograms", "contributions", "p_sweep", "covariance")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(1)
    m, c = 10, 3
    head = Head(rng.normal(size=(m, c)), np.zeros(c))
    X = {name: np.maximum(rng.normal(loc, 1.0, size=(48, m)), 0).astype(np.float32)
         for name, loc in (("train", 0.5), ("test", 0.5), ("noise", 0.0))}
    path = tmp_path_factory.mktemp("plotcov") / "s.zarr"
    write_store(path, head, {"train": X["train"], "test": (X["test"], head.logits(X["test"]).argmax(axis=1)),
                             "noise": X["noise"]})
    return path


def test_plot_writes_the_covariance_figure_and_prints_every_path(store, tmp_path):
    pytest.importorskip("matplotlib")
    result = CliRunner().invoke(
        app, ["plot", str(store), "--id", "test", "--ood", "noise", "--train", "train",
              "--out", str(tmp_path), "--ps", "0,0.9", "--class", "1", "--prefix", "run-"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [str(tmp_path / f"run-{k}.png") for k in FIGURES]
    assert (tmp_path / "run-covariance.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_help_names_the_covariance_figure():
    result = CliRunner().invoke(app, ["plot", "--help"])
    assert result.exit_code == 0
    assert "covariance.png" in result.output


@pytest.mark.parametrize("prefix", ["../../x", "a/b", "..", "x\\y", "a b"])
def test_a_prefix_cannot_write_outside_the_output_folder(prefix, tmp_path):
    from skdice.workflows.plot import check_file_prefix

    with pytest.raises(ValueError, match=r"may hold letters, digits, '\.', '_' and '-' only"):
        check_file_prefix(prefix)
    assert check_file_prefix("cifar10-run_1.") == "cifar10-run_1."
