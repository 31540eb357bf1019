"""Tests of ``skdice demo``: options reach run_demo, formats, and one full run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skdice.cli.app import app
from skdice.metrics import Report, ReportRow


class _FakeResult:
    def __init__(self):
        self.report = Report([ReportRow("dice", 0.5, "uniform", 1.0, 99.0, 98.0, 97.0)])
        self.best_p = 0.5
        self.p_reason = "the reason"
        self.id_accuracy = {"original": 91.5, "dice": 90.25}
        self.files = {"results.json": Path("r.json")}


@pytest.fixture
def fake_demo(monkeypatch):
    pytest.importorskip("torch")
    import skdice.workflows.demo

    seen = {}

    def fake(out, *, seed=0, echo=None):
        seen.update(out=out, seed=seed, echo=echo)
        if echo is not None:
            echo("a step of the demo")
        return _FakeResult()

    monkeypatch.setattr(skdice.workflows.demo, "run_demo", fake)
    return seen


@pytest.mark.parametrize(
    "fmt, expected",
    [("table", "p = 0.5: the reason"), ("markdown", "| dice | 0.5 | uniform |"),
     ("csv", "dice,0.5,uniform,1.0")],
)
def test_demo_formats_and_options(fake_demo, tmp_path, fmt, expected):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--seed", "3", "--format", fmt, "-q"])
    assert result.exit_code == 0, result.output
    assert expected in result.stdout
    assert fake_demo["out"] == tmp_path and fake_demo["seed"] == 3 and fake_demo["echo"] is None


def test_demo_table_has_the_choice_the_accuracy_and_every_report_cell(fake_demo, tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "p = 0.5: the reason",
        "ID accuracy (digits 0-5): 91.50% original head, 90.25% DICE-masked head",
        "",
    ]
    assert lines[3].split() == ["method", "p", "ood", "FPR95", "AUROC", "AUPR-In", "AUPR-Out"]
    assert lines[5].split() == ["dice", "0.5", "uniform", "1.00", "99.00", "98.00", "97.00"]


def test_demo_steps_are_progress_silent_when_stderr_is_not_a_terminal(fake_demo, tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert callable(fake_demo["echo"])  # the steps go to the progress display
    assert "a step of the demo" not in result.stderr
    assert result.stderr.strip() == "wrote r.json"  # the files written are not progress


def test_demo_json_format_is_the_report(fake_demo, tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--format", "json", "-q"])
    assert json.loads(result.stdout)["results"][0]["method"] == "dice"


def test_demo_default_output_folder(fake_demo):
    result = CliRunner().invoke(app, ["demo", "-q"])
    assert result.exit_code == 0
    import tempfile

    assert fake_demo["out"] == Path(tempfile.gettempdir()) / "skdice-demo"  # never the repository


def test_demo_rejects_an_unknown_format_with_one_line(fake_demo, capsys):
    from skdice.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--format", "yaml"])
    assert exc.value.code == 1
    assert "--format must be table, markdown, csv or json, got 'yaml'" in capsys.readouterr().err


def test_demo_runs_end_to_end_from_the_command_line(tmp_path):
    pytest.importorskip("torch")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    methods = {row["method"] for row in data["results"]}
    assert {"dice", "energy", "msp"} <= methods
    assert (tmp_path / "histograms.png").is_file()
    assert (tmp_path / "digits.zarr").is_dir()


def _report(dice_fpr, energy_fpr):
    rows = [ReportRow("dice", 0.7, ood, dice_fpr, 95.0, 90.0, 97.0) for ood in ("uniform", "average")]
    rows += [ReportRow("energy", None, ood, energy_fpr, 97.0, 95.0, 98.0) for ood in ("uniform", "average")]
    return Report(rows)


@pytest.mark.parametrize("dice_fpr, energy_fpr, verdict", [
    (7.78, 4.31, "Energy is ahead: this 64-unit MLP uses most of its units"),
    (3.0, 4.31, "DICE is ahead: pruning the weights that ID digits barely use"),
])
def test_demo_table_ends_with_what_it_means(fake_demo, tmp_path, monkeypatch, dice_fpr, energy_fpr, verdict):
    import skdice.workflows.demo

    fake = _FakeResult()
    fake.report = _report(dice_fpr, energy_fpr)
    monkeypatch.setattr(skdice.workflows.demo, "run_demo", lambda out, *, seed=0, echo=None: fake)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2] == (f"Reading it: lower FPR95 is better; averaged over the OOD sets DICE (p=0.7) has "
                         f"{dice_fpr:.2f}, the dense head's energy {energy_fpr:.2f}.")
    assert lines[-1].startswith(verdict) and lines[-3] == ""
    csv = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "-q", "--format", "csv"]).stdout
    assert "Reading it" not in csv  # the machine-readable formats stay the report alone
