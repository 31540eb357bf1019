"""Interrupted commands: SIGINT exits 130 and SIGTERM 143 (with the resume line), kill -9 leftovers cleaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")

#: a tiny model whose factory or forward is slow, and says (a marker file) when it got there
MODEL = textwrap.dedent('''
    import os, time
    import torch.nn as nn

    def _mark(what):
        open(os.environ["SKDICE_TEST_MARK"] + "." + what, "w").close()

    class Slow(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU())
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            _mark("forward")
            time.sleep(0.5)
            return self.fc(self.body(x))

    def slow_factory():
        _mark("factory")
        time.sleep(120)
        return Slow()

    def slow_forward():
        return Slow()
''')


def _start(tmp_path, factory, out):
    (tmp_path / "slowmodel.py").write_text(MODEL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "SKDICE_TEST_MARK": str(tmp_path / "mark")}
    args = [sys.executable, "-m", "skdice", "extract", "--model", f"slowmodel:{factory}", "--data", "noise:64:0",
            "--input-size", "2", "--batch-size", "2", "--out", str(out), "--split", "noise", "--device", "cpu"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_when(process, marker: Path, signum, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never got there"
        time.sleep(0.1)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


@pytest.mark.parametrize("signum, status, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_while_extracting_exits_128_plus_its_number_with_the_resume_line(tmp_path, signum, status, name):
    process = _start(tmp_path, "slow_forward", tmp_path / "s.zarr")
    code, out, err = _signal_when(process, tmp_path / "mark.forward", signum)
    assert code == status, err
    assert "of split 'noise' are written; re-run the same command to resume." in err
    assert err.rstrip().endswith(f"skdice: interrupted by {name}.")
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_a_slow_factory_loads_exits_128_plus_its_number(tmp_path, signum, status):
    process = _start(tmp_path, "slow_factory", tmp_path / "s.zarr")
    code, out, err = _signal_when(process, tmp_path / "mark.factory", signum)
    assert code == status, err
    assert "Traceback" not in err and not (tmp_path / "s.zarr").exists()


def test_an_interrupt_in_process_exits_130(monkeypatch, tmp_path):
    """Every command goes through run_app: a KeyboardInterrupt anywhere in one is status 130."""
    import skdice.evaluation as evaluation
    from skdice.cli.app import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "fit_from_store", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(tmp_path / "s.zarr"), "--train", "train", "--out", str(tmp_path / "d.npz")])
    assert exit_info.value.code == 130


def test_score_prints_its_resume_line_when_interrupted(monkeypatch, tmp_path, capsys):
    import skdice.evaluation as evaluation
    import skdice.persistence as persistence
    from skdice.cli.app import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(persistence, "load_detector", lambda path: "DETECTOR")
    monkeypatch.setattr(evaluation, "score_store", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(tmp_path / "s.zarr"), "--split", "test", "--detector", str(tmp_path / "d.npz")])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted: the scores of split 'test' written so far are kept; re-run the same command to resume." in err


def test_closed_stdout_is_an_error_not_lost_results():
    """`skdice methods >&-`: the results cannot be written, so one line on stderr and exit 1."""
    process = subprocess.run([sys.executable, "-m", "skdice", "methods"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, pass_fds=(), close_fds=True,
                             preexec_fn=lambda: os.close(1))
    assert process.returncode == 1
    assert process.stderr.strip().splitlines() == [
        "skdice: error: standard output is closed, so the results cannot be written: redirect it to a file "
        "(> results.txt) or to /dev/null instead of closing it (>&-)."]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_results_to_a_full_device_are_an_error():
    with open("/dev/full", "w") as full:
        process = subprocess.run([sys.executable, "-m", "skdice", "methods"], stdout=full,
                                 stderr=subprocess.PIPE, text=True)
    assert process.returncode == 1
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skdice: error: ") and "No space left" in lines[0]


def _kill_before_marker(path):
    """What kill -9 during creation leaves: the head and the manifest written, the root without its marker."""
    import json

    from skdice import Head
    from skdice.store import create_store

    create_store(path, model="m", head=Head(np.ones((3, 2)), np.zeros(2)))
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"] = {}
    (path / "zarr.json").write_text(json.dumps(meta))


def test_a_store_killed_while_being_created_is_completed_by_the_same_run(tmp_path):
    from skdice import Head
    from skdice.exceptions import StoreError
    from skdice.store import create_store, open_store

    path = tmp_path / "s.zarr"
    _kill_before_marker(path)
    with pytest.raises(StoreError, match=r"not a skdice feature store .*if a `skdice extract` was stopped while "
                                         r"creating it, re-running that command completes it\."):
        open_store(path)
    create_store(path, model="m", head=Head(np.ones((3, 2)), np.zeros(2)))  # the re-run
    assert open_store(path).attrs["model"] == "m"


def test_a_zarr_group_with_other_content_is_not_taken_for_a_half_created_store(tmp_path):
    from skdice import Head
    from skdice.exceptions import StoreError
    from skdice.store import create_store

    path = tmp_path / "s.zarr"
    _kill_before_marker(path)
    (path / "theirs").mkdir()  # something skdice's creation never writes: not ours to replace
    with pytest.raises(StoreError, match="not a skdice feature store"):
        create_store(path, model="m", head=Head(np.ones((3, 2)), np.zeros(2)))
    assert (path / "theirs").is_dir()


#: a command run in a child process whose work (the library call it makes) marks a file and waits
CHILD = textwrap.dedent('''
    import importlib, os, sys, time
    module, name = sys.argv[1].rsplit(".", 1)

    def working(*args, **kwargs):
        open(os.environ["SKDICE_TEST_MARK"], "w").close()
        time.sleep(120)

    setattr(importlib.import_module(module), name, working)
    from skdice.cli.app import main
    main(sys.argv[2:])
''')


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from skdice.store import import_arrays

    folder = tmp_path_factory.mktemp("signals")
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(8, 3)).astype(np.float32), np.zeros(3, np.float32)
    np.save(folder / "H.npy", rng.random((40, 8), dtype=np.float32))
    np.save(folder / "W.npy", W)
    np.save(folder / "b.npy", b)
    for i, split in enumerate(("train", "test", "ood")):
        head = dict(weight=W, bias=b, weight_layout="features-classes", model="toy") if i == 0 else {}
        import_arrays(folder / "s.zarr", split, features=rng.random((40, 8), dtype=np.float32), **head)
    return folder


#: each command, the library function its work goes through, and its arguments ({d}: the folder)
COMMANDS = {
    "evaluate": ("skdice.evaluation.evaluate_store", "evaluate {d}/s.zarr --id test --ood ood --train train"),
    "verify": ("skdice.store.verify_store", "verify {d}/s.zarr"),
    "tune": ("skdice.tuning.tune_store", "tune {d}/s.zarr --train train --id test --noise ood"),
    "plot": ("skdice.plotting.plot_store", "plot {d}/s.zarr --id test --ood ood --train train --out {d}/fig"),
    "import": ("skdice.store.import_arrays", "import {d}/new.zarr --split x --features {d}/H.npy --weight {d}/W.npy "
                                             "--bias {d}/b.npy --weight-layout features-classes --model m"),
    "benchmark": ("skdice.workflows.benchmark.benchmark_stores",
                  "benchmark {d}/s.zarr --protocol shared-cifar10-densenet"),
    "demo": ("skdice.workflows.demo.run_demo", "demo --out {d}/demo"),
}


@pytest.mark.parametrize("command, signum, status, name", [
    *[(command, signal.SIGTERM, 143, "SIGTERM") for command in sorted(COMMANDS)],
    ("evaluate", signal.SIGINT, 130, "SIGINT"), ("demo", signal.SIGINT, 130, "SIGINT"),
])
def test_every_command_exits_128_plus_the_signal_it_got_while_working(small_store, command, signum, status, name):
    target, args = COMMANDS[command]
    mark = small_store / f"mark.{command}.{name}"
    env = {**os.environ, "SKDICE_TEST_MARK": str(mark)}
    process = subprocess.Popen([sys.executable, "-c", CHILD, target, *args.format(d=small_store).split()],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code, out, err = _signal_when(process, mark, signum)
    assert code == status, err
    assert err.rstrip().endswith(f"skdice: interrupted by {name}."), err
    assert "Traceback" not in err
