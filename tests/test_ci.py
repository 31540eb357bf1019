""".ci/run: runs the README's test command in a clean checkout and fails with it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _repo(tmp_path, command):
    """A tiny committed repository with .ci/run and a README whose test command is given."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    readme = f"# demo\n\n<!-- test-command -->\n```bash\n{command}\n```\n"
    (repo / "README.md").write_text(readme)
    env = {**os.environ, "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.org",
           "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.org"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env, capture_output=True)
    return repo


def _run(repo):
    return subprocess.run(
        ["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=60
    )


def test_ci_runs_the_readme_command_in_a_clean_checkout(tmp_path):
    # the untracked file exists in the working tree but not in a clean checkout
    repo = _repo(tmp_path, 'test -f README.md && test ! -e untracked.txt && echo "in $PWD"')
    (repo / "untracked.txt").write_text("not committed")
    done = _run(repo)
    assert done.returncode == 0, done.stderr
    assert "in " in done.stdout and str(repo) not in done.stdout.split("in ", 1)[1]


def test_ci_fails_when_the_test_command_fails(tmp_path):
    done = _run(_repo(tmp_path, "exit 3"))
    assert done.returncode == 3


def test_readme_test_command_pins_torch_and_runs_pytest():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- test-command -->", 1)[1].split("```bash\n", 1)[1]
    command = block.split("\n", 1)[0]
    assert "torch==2.13.0" in command and "pytest" in command


def test_ci_points_the_clean_checkout_at_the_shared_data(tmp_path):
    repo = _repo(tmp_path, 'echo "data=$SKDICE_SHARED_DATA"')
    (tmp_path / "shared" / "data").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "SKDICE_SHARED_DATA"}
    done = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert f"data={tmp_path / 'shared' / 'data'}" in done.stdout


def test_ci_stops_a_run_past_its_time_limit(tmp_path):
    repo = _repo(tmp_path, "sleep 20")
    env = {**os.environ, "SKDICE_CI_TIMEOUT": "1"}
    done = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 124
    assert "ran past 1s (SKDICE_CI_TIMEOUT)" in done.stderr


def test_ci_reruns_the_estimator_checks_under_two_blas_kernels(tmp_path):
    # a stand-in .venv/bin/python that reports the kernel it was run under
    command = (
        "mkdir -p .venv/bin tests/detectors && touch tests/test_registry_sklearn.py && "
        "printf '#!/bin/sh\\necho \"kernel=$OPENBLAS_CORETYPE args=$*\"\\n' > .venv/bin/python && "
        "chmod +x .venv/bin/python"
    )
    done = _run(_repo(tmp_path, command))
    assert done.returncode == 0, done.stderr
    kernels = [line for line in done.stdout.splitlines() if line.startswith("kernel=")]
    assert [line.split()[0] for line in kernels] == ["kernel=Haswell", "kernel=Prescott"]
    assert all("tests/test_registry_sklearn.py" in line for line in kernels)


def test_ci_fails_when_a_kernel_pass_fails(tmp_path):
    command = (
        "mkdir -p .venv/bin tests && touch tests/test_registry_sklearn.py && "
        "printf '#!/bin/sh\\n[ \"$OPENBLAS_CORETYPE\" != Prescott ]\\n' > .venv/bin/python && "
        "chmod +x .venv/bin/python"
    )
    assert _run(_repo(tmp_path, command)).returncode == 1
