"""Numbers out of range are refused before any work, with one line: flags, environment variables, addresses."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from skdice.cli.app import app

runner = CliRunner()


def _words(output: str) -> str:
    """The output's words on one line, without rich's box around usage errors."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())


def _extract(*extra, env=None):
    args = ["extract", "--model", "never-loaded", "--data", "noise:4", "--out", "s", "--split", "noise", *extra]
    return runner.invoke(app, args, env=env)


@pytest.mark.parametrize("extra, words", [
    (["--workers", "99999999999999999999"], "'--workers'"),
    (["--batch-size", "99999999999999999999"], "'--batch-size'"),
    (["--input-size", "30000"], "'--input-size': '30000': image sizes are 1 to 4096 pixels."),
    (["--input-size", "99999999999999999999"], "image sizes are 1 to 4096 pixels."),
    (["--input-size", "224x0"], "image sizes are 1 to 4096 pixels."),
    (["--mean", "nan"], "'--mean': 'nan': every value must be a finite number."),
    (["--mean", "0.5,inf,0.5"], "every value must be a finite number."),
    (["--std", "1e-320"], "'--std': '1e-320': a std below 1e-06 would blow the input up to infinity."),
])
def test_extract_numbers_out_of_range_are_refused_before_the_model_loads(monkeypatch, extra, words):
    import skdice.extract.models as models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    result = _extract(*extra)
    assert result.exit_code == 2 and words in _words(result.output), result.output


@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is out of range: 1 to 65536"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK='2' is out of range: 0 to 1"),
    ({"SKDICE_RENDEZVOUS_TIMEOUT": "1e9"}, "SKDICE_RENDEZVOUS_TIMEOUT='1e9' is out of range: 1 to 86400"),
])
def test_malformed_distributed_variables_are_refused_before_the_model_loads(monkeypatch, capsys, env, words):
    pytest.importorskip("torch")
    import skdice.extract.models as models
    from skdice.cli.app import main

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "--model", "m", "--data", "noise:4", "--out", "s", "--split", "noise"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith(f"skdice: error: the environment variable {words}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_leftover_world_size_stops_extract_within_the_stated_time(tmp_path):
    """WORLD_SIZE=2 RANK=0 with no other rank: one line after SKDICE_RENDEZVOUS_TIMEOUT, not torch's 30 minutes."""
    pytest.importorskip("torch")
    (tmp_path / "tinymodel.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 3))\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "SKDICE_RENDEZVOUS_TIMEOUT": "2", "SKDICE_DIST_BACKEND": "gloo"}
    started = time.monotonic()
    process = subprocess.run([sys.executable, "-m", "skdice", "extract", "--model", "tinymodel:build", "--data",
                              "noise:4:0", "--input-size", "2", "--out", str(tmp_path / "s.zarr"), "--split", "noise",
                              "--device", "cpu"], env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == 1, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "skdice: error: the environment makes this a distributed extraction (WORLD_SIZE=2, RANK=0, "
        "MASTER_ADDR=127.0.0.1, MASTER_PORT="), lines
    assert "did not meet within 2 s" in lines[0] and "unset WORLD_SIZE and RANK" in lines[0]
    assert time.monotonic() - started < 60


_RANK = r"""
import sys, time, torch
from torch import nn
import skdice.extract.models as models
from skdice.extract.data import ArraySource
from skdice.extract.run import extract_features, join_ranks
from skdice.exceptions import SkdiceError

how, out = sys.argv[1], sys.argv[2]
if how == "preset":  # a preset loaded by name inside extract_features: never, the ranks have not met
    models.load_preset = lambda *a, **k: sys.exit("the model was loaded before the ranks met")
    target = "densenet-bc-100"
else:
    torch.manual_seed(0)
    target = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 3))
rows = 0 if how == "empty" else 4
try:
    extract_features(target, ArraySource(torch.rand(rows, 3, 2, 2)), out, "test", device="cpu")
except (SkdiceError, ValueError) as exc:
    print(type(exc).__name__, exc)
"""


def _ranks(tmp_path, hows, timeout_s="3", world=None):
    env = {**os.environ, "WORLD_SIZE": str(world or len(hows)), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "SKDICE_RENDEZVOUS_TIMEOUT": timeout_s, "SKDICE_DIST_BACKEND": "gloo"}
    procs = [subprocess.Popen([sys.executable, "-c", _RANK, how, str(tmp_path / "s.zarr")],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r, how in enumerate(hows)]
    try:
        return [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()


def test_the_ranks_meet_before_a_preset_is_loaded(tmp_path):
    """A leftover WORLD_SIZE=2 with extract_features given a preset name: the wait ends before any load."""
    pytest.importorskip("torch")
    ((out, err),) = _ranks(tmp_path, ["preset"], timeout_s="2", world=2)  # rank 1 never comes
    assert out.startswith("SkdiceError the environment makes this a distributed extraction") and \
        "did not meet within 2 s" in out, (out, err)


def test_a_rank_that_cannot_start_stops_every_rank_with_one_line(tmp_path):
    """Rank 1's source is empty: rank 0 stops at once naming it, instead of waiting torch's 30 minutes."""
    pytest.importorskip("torch")
    started = time.monotonic()
    (out0, err0), (out1, err1) = _ranks(tmp_path, ["ok", "empty"])
    assert out1.startswith("ValueError data source ") and "holds no images" in out1, (out1, err1)
    assert out0.startswith("SkdiceError rank 1 of 2 could not start the extraction (ValueError: data source ") and \
        out0.strip().endswith("every rank stops."), (out0, err0)
    assert time.monotonic() - started < 100


def test_plot_bins_and_tune_bootstrap_have_bounds():
    result = runner.invoke(app, ["plot", "s", "--id", "a", "--ood", "b", "--bins", "1000000000"])
    assert result.exit_code == 2 and "'--bins': Input should be less than or equal to 10000" in _words(result.output)
    result = runner.invoke(app, ["tune", "s", "--id", "a", "--noise", "b", "--n-bootstrap", "10000000"])
    assert result.exit_code == 2 and "'--n-bootstrap': Input should be less than or equal to 100000" in _words(
        result.output)


class _Server:
    """A TCP server on 127.0.0.1 that says ``reply`` (or nothing) to each connection and then waits."""

    def __init__(self, reply: bytes | None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.address = "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.reply, self.conns = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)

    def close(self):
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("reply, words", [
    (None, "is not a dask scheduler: it sent nothing within 0.5 s of connecting"),
    (b"HTTP/1.0 426 Upgrade Required\r\n\r\n", "is not a dask scheduler: it answered b'HTTP/1.0' instead of a"),
])
def test_an_address_that_is_not_a_dask_scheduler_is_one_line_within_the_probe_time(reply, words):
    pytest.importorskip("distributed")
    from skdice.workflows.cluster import dask_client, probe_scheduler

    server = _Server(reply)
    try:
        started = time.monotonic()
        with pytest.raises(ValueError, match=f"^{server.address!r} \\(from the scheduler= argument\\) {words}"):
            probe_scheduler(server.address, origin="the scheduler= argument", timeout=0.5)
        assert time.monotonic() - started < 5
        with pytest.raises(ValueError, match="is not a dask scheduler"):  # what the workflows call
            with dask_client(server.address):
                pass
    finally:
        server.close()


def test_nothing_listening_is_one_line():
    pytest.importorskip("distributed")
    from skdice.workflows.cluster import probe_scheduler

    with pytest.raises(ValueError, match="could not connect to the dask scheduler at 'tcp://127.0.0.1:"):
        probe_scheduler(f"tcp://127.0.0.1:{_free_port()}", timeout=0.5)


# --------------------------------------------------------------------------- plot, evaluate and tune numbers


def _cli(args, capsys):
    from skdice.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


_SWEEP = ",".join(str(i / 1000) for i in range(101))


@pytest.mark.parametrize("args, line", [
    (["evaluate", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--p", "1.5"], "p must be in [0, 1), got 1.5."),
    (["evaluate", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--p", "nan"], "p must be in [0, 1), got nan."),
    (["evaluate", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--p", "-0.1"], "p must be in [0, 1), got -0.1."),
    (["plot", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--p", "nan"], "p must be in [0, 1), got nan."),
    (["plot", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--ps", "0,2"], "ps: every p must be in [0, 1), got 2.0."),
    (["plot", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--ps", "0,x"],
     "--ps must be comma-separated numbers, got '0,x'."),
    (["plot", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--ps", ","],
     "ps is empty: give at least one sparsity p in [0, 1)."),
    (["plot", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--ps", _SWEEP],
     "ps holds 101 sparsities; the sweep takes at most 100 (each is one DICE head scoring every row)."),
    (["plot", "NONE", "--id", "a", "--ood", "b", "--train", "t", "--class", "-1"],
     "class -1 is out of range: a class is an integer from 0 to the number of classes - 1."),
    (["tune", "NONE", "--id", "a", "--noise", "b", "--train", "t", "--max-accuracy-drop", "nan"],
     "--max-accuracy-drop must be in [0, 100] points, got nan."),
    (["tune", "NONE", "--id", "a", "--noise", "b", "--train", "t", "--max-accuracy-drop", "100.5"],
     "--max-accuracy-drop must be in [0, 100] points, got 100.5."),
])
def test_numbers_are_refused_before_the_store_is_opened(tmp_path, capsys, args, line):
    """The store does not exist: each number's line comes first, so it is checked before any work."""
    args = [str(tmp_path / "none.zarr") if a == "NONE" else a for a in args]
    code, err = _cli(args, capsys)
    assert code == 1 and err == f"skdice: error: {line}\n"


def test_plot_class_past_the_heads_classes_is_refused_before_any_row_is_read(tmp_path, capsys, monkeypatch):
    import numpy as np

    from skdice import Head
    from skdice.workflows import plot as plot_workflow
    from stores import write_store

    rng = np.random.default_rng(0)
    write_store(tmp_path / "s.zarr", Head(rng.normal(size=(4, 3))), {"id": rng.random((8, 4)),
                                                                     "ood": rng.random((8, 4))})
    monkeypatch.setattr(plot_workflow, "stream_mean", lambda *a, **k: pytest.fail("a split was read"))
    code, err = _cli(["plot", str(tmp_path / "s.zarr"), "--id", "id", "--ood", "ood", "--train", "id",
                      "--class", "3", "--out", str(tmp_path / "f")], capsys)
    assert code == 1 and err == "skdice: error: class 3 is out of range for 3 classes.\n"
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("bins", [0, 10001, True, 2.5, 10**20])
def test_plot_store_bins_from_python_are_bounded_before_any_work(tmp_path, bins):
    from skdice.workflows.plot import plot_store

    with pytest.raises(ValueError, match=rf"bins must be an integer from 1 to 10000, got {bins!r}\."):
        plot_store(tmp_path / "none.zarr", tmp_path, id_split="a", ood_splits=["b"], train_split="t", bins=bins)


def test_the_cli_bins_bound_is_the_librarys():
    from skdice.cli.plot import MAX_BINS
    from skdice.workflows.plot import MAX_BINS as LIBRARY_MAX_BINS

    assert MAX_BINS == LIBRARY_MAX_BINS
