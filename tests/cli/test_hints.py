"""Hints a command-line user needs: repeat --ood, lower-case methods, p as a fraction, choices in help."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("zarr")
from typer.testing import CliRunner  # noqa: E402

from skdice import Head  # noqa: E402
from skdice.cli.app import main  # noqa: E402
from stores import write_store  # noqa: E402


def run(args):
    with CliRunner().isolation(env={"COLUMNS": "150"}) as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("hints") / "s.zarr"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 6)).astype(np.float32)
    write_store(path, Head(rng.normal(size=(6, 3))), {"train": X, "test": X, "ood": X + 1, "gauss": X - 1},
                chunk_rows=10)
    return path


def _evaluate(store, *extra):
    return ["evaluate", str(store), "--id", "test", "--train", "train", *extra]


def test_several_splits_in_one_ood_are_told_to_repeat_the_flag(store):
    code, _, err = run(_evaluate(store, "--ood", "ood,gauss"))
    assert code == 1
    assert err.endswith("has no split 'ood,gauss': one --ood names one split; repeat it for several "
                        "(--ood ood --ood gauss).\n")
    assert "did you mean" not in err


def test_a_method_in_capitals_is_told_its_name(store):
    code, _, err = run(_evaluate(store, "--ood", "ood", "--method", "DICE"))
    assert code == 1
    assert err.startswith("skdice: error: unknown method 'DICE': did you mean 'dice'? Method names are lower case;")


def test_positive_is_accepted_in_capitals(store):
    assert run(_evaluate(store, "--ood", "ood", "--method", "energy", "--positive", "OOD", "--format", "json")) \
        == run(_evaluate(store, "--ood", "ood", "--method", "energy", "--positive", "ood", "--format", "json"))
    assert run(_evaluate(store, "--ood", "ood", "--method", "energy", "--positive", "OOD"))[0] == 0


def test_p_in_percent_inside_a_method_spec_gets_the_fraction_hint(store):
    code, _, err = run(_evaluate(store, "--ood", "ood", "--method", "dice:p=90"))
    assert code == 1
    assert err.strip().endswith("Got 90 instead (p is a fraction: 0.9 for 90%).")


@pytest.mark.parametrize("name, option, shown", [
    ("evaluate", "--format", "table|markdown|csv|json"), ("tune", "--format", "table|json"),
    ("demo", "--format", "table|markdown|csv|json"), ("evaluate", "--positive", "id|ood"),
    ("evaluate", "--train", "SPLIT"), ("fit", "--out", "FILE"), ("plot", "--out", "DIR"),
    ("extract", "--out", "STORE"), ("extract", "--batch-size", "N"), ("evaluate", "--train-mean", "FILE"),
])
def test_help_shows_placeholders_and_choices(name, option, shown):
    code, out, _ = run([name, "--help"])
    assert code == 0
    line = next(line for line in out.splitlines() if f" {option} " in line)
    assert line.split(option, 1)[1].split()[0] == shown, line
