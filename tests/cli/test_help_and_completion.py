"""Help in placeholders (STORE, SPLIT), shell completion, split names completed from the store."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("zarr")
from typer.testing import CliRunner  # noqa: E402

from skdice import Head  # noqa: E402
from skdice.cli.app import command, main  # noqa: E402
from stores import write_store  # noqa: E402

COMMANDS = ["demo", "extract", "info", "methods", "evaluate", "tune", "fit", "score", "plot"]


def _help(args):
    with CliRunner().isolation(env={"COLUMNS": "150"}) as (out, _, _):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--help"])
        assert exit_info.value.code == 0
        return out.getvalue().decode()


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_placeholders_in_capitals_and_no_type_tags(name):
    text = _help([name])
    assert not re.search(r"<(bool|str|path|int|float|list\[[a-z]+\])>", text), text
    assert "{" not in text.split("\n\n", 2)[1] if text.count("\n\n") > 1 else True
    for match in re.finditer(r"(--[a-z][a-z-]+)\s+([A-Z][A-Z0-9_,\[\]|.-]*)\s", text):
        assert match.group(2).upper() == match.group(2)


def test_arguments_are_named_in_the_usage_line():
    assert re.search(r"Usage: skdice score \[OPTIONS\] STORE\b", _help(["score"]))


def _complete(words, cword, cwd):
    env = {**os.environ, "_SKDICE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    done = subprocess.run([sys.executable, "-m", "skdice.cli", *[]], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    return done.stdout.split()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("complete") / "s.zarr"
    X = np.ones((4, 3), np.float32)
    write_store(path, Head(np.ones((3, 2))), {"cifar-test": X, "cifar-val": X, "svhn": X}, chunk_rows=4)
    return path


def test_commands_options_and_split_names_complete(store, tmp_path):
    assert _complete("skdice ev", 1, tmp_path) == ["evaluate"]
    assert "--split" in _complete("skdice score --sp", 2, tmp_path)
    # split names come from the store given earlier on the line
    assert _complete(f"skdice evaluate {store} --id cifar", 4, tmp_path) == ["cifar-test", "cifar-val"]
    assert _complete(f"skdice score {store} --split s", 4, tmp_path) == ["svhn"]
    # no store yet, or not a store: nothing offered, no error
    assert _complete("skdice evaluate nowhere.zarr --id c", 4, tmp_path) == []


def test_completion_can_be_shown_for_a_shell():
    with CliRunner().isolation() as (out, err, _):
        with pytest.raises(SystemExit) as exit_info:
            main(["--show-completion", "bash"])
        assert exit_info.value.code == 0, err.getvalue().decode()
        assert "_skdice_completion" in out.getvalue().decode()


def test_every_split_option_completes_from_the_store():
    from skdice.cli.app import SPLIT_OPTIONS

    completed = []
    for name, cmd in command().commands.items():
        if not any(p.name == "store" for p in cmd.params):
            continue  # extract names a new split: nothing to complete
        for param in cmd.params:
            if param.name in SPLIT_OPTIONS:
                completed.append(f"{name} {param.name}")
                assert "complete_split" in getattr(param.shell_complete, "__code__", None).co_names
    assert {"evaluate id_split", "score split", "fit train"} <= set(completed)
