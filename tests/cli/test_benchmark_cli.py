"""``skdice benchmark`` through Typer's CliRunner: argument mapping, every format, --check, errors."""

from __future__ import annotations

import csv
import io
import json

import pytest

pytest.importorskip("typer")
pytest.importorskip("zarr")

from typer.testing import CliRunner

import skdice.workflows.benchmark as bm
from benchmark_toy import TOY_PROTOCOL, toy_store
from skdice.cli.app import app
from skdice.workflows._benchmark_report import OPENOOD_COLUMNS

runner = CliRunner()
PLAIN = 'name = "plain"\n[id]\ntest = "test"\n[ood]\nnear = ["near_a", "near_b"]\nfar = ["far_a"]\n' \
        '[csid]\ntest = ["shift"]\n[metrics]\nn_bootstrap = 20\n'


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-cli")
    stores = [toy_store(root / f"run{s}.zarr", s) for s in (0, 1)]
    (root / "toy.toml").write_text(TOY_PROTOCOL)
    (root / "plain.toml").write_text(PLAIN)
    return root, [str(s) for s in stores]


@pytest.fixture(scope="module")
def json_result(setup):
    root, stores = setup
    out = root / "result.json"
    result = runner.invoke(app, ["benchmark", *stores, "--protocol", str(root / "plain.toml"), "--method", "energy",
                                 "--method", "msp", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_arguments_map_to_one_library_call(setup, monkeypatch, tmp_path):
    root, stores = setup
    calls = []
    real = bm.benchmark_stores

    def recorder(stores_, protocol, methods, **kwargs):
        calls.append({"stores": stores_, "protocol": protocol, "methods": methods, **kwargs})
        kwargs.pop("progress")
        return real(stores_, protocol, methods, **kwargs)

    monkeypatch.setattr(bm, "benchmark_stores", recorder)
    (tmp_path / "mean.npy").write_bytes(b"")  # never read: the recorder's call fails first if it were
    result = runner.invoke(app, ["benchmark", *stores, "--protocol", str(root / "plain.toml"), "--method", "energy",
                                 "--method", "dice:p=0.5", "--full-spectrum", "--train", "train", "--p", "0.7",
                                 "--n-bootstrap", "0", "--format", "csv"])
    assert result.exit_code == 0, result.output
    (call,) = calls
    assert [str(s) for s in call["stores"]] == stores and call["protocol"] == str(root / "plain.toml")
    assert call["methods"] == ["energy", "dice:p=0.5"] and call["full_spectrum"] is True
    assert call["train"] == "train" and call["p"] == 0.7 and call["n_bootstrap"] == 0 and call["train_mean"] is None


def test_default_is_every_method(setup, monkeypatch):
    root, stores = setup
    seen = []
    monkeypatch.setattr(bm, "benchmark_stores", lambda stores, protocol, methods, **k: seen.append(methods) or 1 / 0)
    runner.invoke(app, ["benchmark", stores[0], "--protocol", str(root / "plain.toml")])
    assert seen == [("all",)]


def test_check_reproduces_a_result_byte_for_byte(json_result):
    result = runner.invoke(app, ["benchmark", "--check", str(json_result)])
    assert result.exit_code == 0, result.output
    assert f"reproduced {json_result} byte for byte" in result.output


def test_check_names_what_differs(json_result, tmp_path):
    record = json.loads(json_result.read_text())
    record["results"][0]["auroc"] += 1
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(record, indent=2) + "\n")
    result = runner.invoke(app, ["benchmark", "--check", str(edited)])
    assert result.exit_code == 1
    assert "results[0].auroc:" in result.output
    assert isinstance(result.exception, ValueError)
    assert f"the re-run differs from {edited} (differences listed above)" in str(result.exception)


def test_json_has_the_issues_keys(json_result):
    record = json.loads(json_result.read_text())
    row = record["results"][0]
    for key in ("fpr95", "auroc", "aupr_in", "aupr_out"):
        assert {key, f"{key}_std", f"{key}_ci_low", f"{key}_ci_high"} <= set(row)
    assert [r["ood"] for r in record["results"] if r["method"] == "energy"] == \
        ["near_a", "near_b", "near", "far_a", "far", "overall"]


def test_csv_has_openoods_columns_and_rows(setup):
    root, stores = setup
    result = runner.invoke(app, ["benchmark", *stores, "--protocol", str(root / "plain.toml"), "--method", "energy",
                                 "--n-bootstrap", "0", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == ("method", "dataset", *OPENOOD_COLUMNS)
    assert [r[1] for r in rows[1:]] == ["near_a", "near_b", "nearood", "far_a", "farood"]
    assert all(" ± " in cell for cell in rows[1][2:])
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(io.StringIO(result.stdout), index_col=[0, 1])
    assert tuple(frame.columns) == OPENOOD_COLUMNS


def test_html_page_and_figure_render(setup, tmp_path):
    pytest.importorskip("matplotlib")
    root, stores = setup
    page, fig = tmp_path / "board.html", tmp_path / "board.png"
    result = runner.invoke(app, ["benchmark", *stores, "--protocol", str(root / "plain.toml"), "--method", "energy",
                                 "--method", "msp", "--format", "html", "--out", str(page), "--figure", str(fig)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<h2>Leaderboard</h2>" in text
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_links_the_figure_it_wrote(setup, tmp_path):
    pytest.importorskip("matplotlib")
    root, stores = setup
    page, fig = tmp_path / "md" / "board.md", tmp_path / "md" / "img" / "board.svg"
    result = runner.invoke(app, ["benchmark", stores[0], "--protocol", str(root / "plain.toml"), "--method", "energy",
                                 "--format", "markdown", "--out", str(page), "--figure", str(fig)])
    assert result.exit_code == 0, result.output
    assert "](img/board.svg)" in page.read_text() and fig.read_text().lstrip().startswith("<?xml")


def test_table_is_a_leaderboard_then_every_row(setup):
    root, stores = setup
    result = runner.invoke(app, ["benchmark", *stores, "--protocol", str(root / "plain.toml"), "--method", "energy",
                                 "--method", "msp", "--n-bootstrap", "0"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "near AUROC" in out and "overall AUROC" in out and "farood" not in out
    assert "protocol plain" in out and "2 stores" in out and " ± " in out


@pytest.mark.parametrize("args, words", [
    (["benchmark"], "give at least one STORE (or --check RESULT.json)"),
    (["benchmark", "x.zarr"], "give --protocol FILE or the name of a shipped protocol"),
    (["benchmark", "x.zarr", "--check", "r.json"], "--check re-runs what the result records"),
    (["benchmark", "x.zarr", "--protocol", "cifar11"], "no shipped protocol of that name"),
])
def test_errors_are_library_errors_cli_prints_in_one_line(args, words):
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError) and words in str(result.exception)


def test_n_bootstrap_has_a_bound_before_any_work(tmp_path):
    from skdice.cli.benchmark import MAX_RESAMPLES as CLI_MAX
    from skdice.workflows._protocol import MAX_RESAMPLES
    from skdice.workflows.benchmark import benchmark_stores

    assert CLI_MAX == MAX_RESAMPLES
    result = runner.invoke(app, ["benchmark", str(tmp_path / "none.zarr"), "--protocol", "cifar10-openood-v1.5",
                                 "--n-bootstrap", str(MAX_RESAMPLES + 1)])
    assert result.exit_code == 2 and "--n-bootstrap" in result.output and "100000" in result.output
    with pytest.raises(ValueError, match=r"n_bootstrap must be in \[0, 100000\], got 100001"):
        benchmark_stores([str(tmp_path / "none.zarr")], "cifar10-openood-v1.5", n_bootstrap=MAX_RESAMPLES + 1)


def test_a_store_lacking_a_split_is_one_line(setup):
    root, stores = setup
    result = runner.invoke(app, ["benchmark", stores[0], "--protocol", "cifar10-openood-v1.5"])
    assert result.exit_code == 1
    assert "has no split 'cifar10-test' (the protocol's id.test)" in str(result.exception)
