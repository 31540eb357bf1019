"""The command line's start: one line without the ``cli`` extra; --version, --help and completion fast."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: the console script pip wrote beside this interpreter (``skdice = "skdice.cli:main"``)
SCRIPT = Path(sys.executable).with_name("skdice")


def _without_typer(tmp_path, argv):
    """Run ``argv`` where ``import typer`` fails, as on a core-only install."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['typer'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("how", ["script", "python -m skdice", "python -m skdice.cli"])
def test_a_core_only_install_is_told_the_extra_in_one_line(tmp_path, how):
    if how == "script" and not SCRIPT.exists():
        pytest.skip("no console script beside this interpreter")
    argv = {"script": [str(SCRIPT)], "python -m skdice": [sys.executable, "-m", "skdice"],
            "python -m skdice.cli": [sys.executable, "-m", "skdice.cli"]}[how]
    done = _without_typer(tmp_path, [*argv, "--help"])
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == 'skdice: error: typer is not installed: pip install "skdice[cli]"\n'


def test_an_import_error_of_skdice_itself_keeps_its_traceback(monkeypatch):
    import skdice.cli

    monkeypatch.setitem(sys.modules, "skdice.cli.app", None)
    with pytest.raises(ImportError):
        skdice.cli.main(["--version"])
