"""benchmarks/reproduce_cifar10.py runs end to end at a small --n and writes what it claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.shared_data
def test_reproduction_script_writes_the_doc_from_its_own_store(shared_data, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reproduce_cifar10.py"), "--n", "20",
         "--device", "cpu", "--data-root", str(shared_data), "--work", str(tmp_path / "work"),
         "--docs", str(tmp_path / "docs")],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = (tmp_path / "docs" / "reproduction.md").read_text()
    assert "python benchmarks/reproduce_cifar10.py --n 20 --device cpu" in doc
    log = json.loads((tmp_path / "work" / "extract-n20.json").read_text())
    assert all(entry["command"].startswith("skdice extract --model densenet-bc-100") for entry in log.values())
    for name in ("cifar10-histograms", "cifar10-contributions", "cifar10-p_sweep"):
        assert (tmp_path / "docs" / "img" / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE

    # the doc's dense-energy row is what `skdice evaluate` gives on the script's store
    from skdice.evaluation import evaluate_store

    store = tmp_path / "work" / "cifar10-densenet-n20.zarr"
    mean = shared_data / "models" / "densenet-bc-100-cifar10.train-mean.npy"
    result = evaluate_store(store, "cifar10-test", ["tinyimagenet32", "mnist"], ["energy"], train_mean=mean)
    average = next(r for r in result.report.rows if r.ood == "average")
    row = next(line for line in doc.splitlines() if line.startswith("| 0 (energy) |"))
    assert f"**{average.fpr95:.2f}**" in row and f"**{average.auroc:.2f}**" in row


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_cifar10", ROOT / "benchmarks" / "reproduce_cifar10.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_repository_docs_are_rewritten_only_when_asked(tmp_path):
    script = _script()
    parser = script.build_parser()
    default = parser.parse_args(["--work", str(tmp_path)])
    assert script.docs_folder(default) == tmp_path / "docs"
    assert script.docs_folder(parser.parse_args(["--docs", str(tmp_path / "d")])) == tmp_path / "d"
    assert script.docs_folder(parser.parse_args(["--write-docs"])) == ROOT / "docs"
    with pytest.raises(SystemExit):
        parser.parse_args(["--write-docs", "--docs", "x"])
