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


#: what a command body may import, never the start of the command line (--version, --help, a TAB)
HEAVY = ("torch", "zarr", "dask", "matplotlib", "PIL", "sklearn", "scipy", "skdice.store",
         "skdice.workflows", "skdice.extract", "skdice.detectors")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["evaluate", "--help"], ["extract", "--help"]])
def test_the_start_imports_nothing_a_command_body_needs(argv):
    code = ("import sys; from skdice.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def _complete(words):
    env = {**os.environ, "_SKDICE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    done = subprocess.run([sys.executable, "-m", "skdice.cli"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_method_names_and_model_presets_complete():
    assert _complete("skdice evaluate s.zarr --method d") == [
        "dice", "dice-bottom-k", "dice-msp", "dice-random-k", "dice-react", "dice-top-bottom-k"]
    assert _complete("skdice evaluate s.zarr --method al") == ["all"]
    assert _complete("skdice fit s.zarr --method ene") == ["energy"]
    assert _complete("skdice tune s.zarr --method al") == []
    assert _complete("skdice extract --model ") == ["bit-s-r101", "densenet-bc-100"]


def test_the_completed_names_are_the_registry_and_the_presets():
    from skdice import available_detectors
    from skdice.cli._names import METHOD_NAMES, MODEL_PRESETS

    assert METHOD_NAMES == tuple(available_detectors())
    models = pytest.importorskip("skdice.extract.models")
    assert MODEL_PRESETS == tuple(sorted(models.PRESETS))


def test_import_skdice_is_light_and_the_registry_still_full():
    code = ("import sys, skdice\n"
            "light = not any(m in sys.modules for m in ('sklearn', 'scipy', 'skdice.detectors'))\n"
            "from skdice._registry import available_detectors\n"
            "print(light, len(available_detectors()), 'dice' in available_detectors())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    from skdice import available_detectors

    # the registry read without importing the detectors lists every detector skdice defines
    # (tests register detectors of their own in this process)
    shipped = [c for c in available_detectors().values() if c.__module__.startswith("skdice.")]
    assert len(shipped) >= 37
    assert done.stdout.split() == ["True", str(len(shipped)), "True"], done.stderr
    # the first public name loads them all, as an eager import would
    code = "import skdice; skdice.Head; print(sorted(set(skdice.__all__) - set(vars(skdice))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
