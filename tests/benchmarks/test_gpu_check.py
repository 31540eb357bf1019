"""benchmarks/gpu_check.py: the prepared GPU check runs (``--smoke``: tiny sizes on the CPU)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_prints_every_figure_the_issue_asks_for(capsys):
    _load().main(["--smoke"])
    out = capsys.readouterr().out
    assert re.search(r"bit-s-r101 32x32, batch 1: fp32 eager [\d.]+ images/s; bf16 \+ channels_last [\d.]+", out)
    for preset in ("densenet-bc-100", "bit-s-r101"):
        assert re.search(rf"{preset}: cpu fp32 vs cpu fp32, 2 images: max \|diff\| / max \|cpu\| = 0\.00e\+00", out)
    assert re.search(r"bare forward \d+ images/s; extract_features into a store \d+ images/s", out)


def test_without_cuda_and_without_smoke_it_says_what_to_do(monkeypatch, capsys):
    # one line that says why nothing ran and what to run instead; exit status 0 (no device
    # is not a failure of the script), and no section starts
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _load().main([]) is None
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "# no CUDA device: every section of the GPU check needs one and is skipped "
        "(run with --smoke to check the script on the CPU at tiny sizes)."]
