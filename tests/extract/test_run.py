"""The extraction loop: values, resume after a kill, the lock, workers and two-process runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
from torch import nn  # noqa: E402

from skdice.exceptions import IncompleteSplitError, StoreError  # noqa: E402
from skdice.extract.data import ArraySource, NoiseSource  # noqa: E402
from skdice.extract.run import extract_features, resolve_device  # noqa: E402
from skdice.store import create_store, open_store  # noqa: E402

# The toy model used by the in-process tests and by the subprocess scripts.
MODEL_SRC = """
import torch
from torch import nn

def toy_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
    ).eval()
"""
_ns: dict = {}
exec(MODEL_SRC, _ns)
toy_model = _ns["toy_model"]


def _reference(model, x):
    with torch.no_grad():
        feats = model[:5](x)
        return feats.numpy(), model(x).numpy()


def test_store_holds_direct_forward_features_logits_labels_and_paths(tmp_path):
    model = toy_model()
    x = torch.randn(23, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = np.arange(23) % 4
    out = extract_features(model, ArraySource(x, labels, name="toy"), tmp_path / "s.zarr", "test",
                           batch_size=4, chunk_rows=8, progress=False)
    store = open_store(out)
    feats, logits = _reference(model, x)
    np.testing.assert_allclose(store.features("test"), feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(store.logits("test"), logits, rtol=1e-5, atol=1e-6)
    head = store.head
    np.testing.assert_allclose(store.features("test") @ head.weight + head.bias, store.logits("test"), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(head.weight, model[5].weight.detach().numpy().T)
    np.testing.assert_array_equal(store.labels("test"), labels)
    assert store.paths("test") == [f"toy#{i}" for i in range(23)]
    info = store.split_info("test")
    assert info["complete"] and info["count"] == 23 and info["source"] == "array:toy" and info["n_chunks"] == 3
    assert store.model == "Sequential" and store.attrs["feature_layer"] == "5:input"  # as the presets write it


def test_one_by_one_conv_head_and_named_model(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(5, 3, 1), nn.Flatten()).eval()
    x = torch.randn(6, 3, 6, 6)
    store = open_store(extract_features(model, ArraySource(x), tmp_path / "s.zarr", "a", model_name="tiny",
                                        batch_size=4, progress=False))
    with torch.no_grad():
        feats = model[:3](x).flatten(1).numpy()
    np.testing.assert_allclose(store.features("a"), feats, rtol=1e-5, atol=1e-6)
    assert store.model == "tiny" and store.head.weight.shape == (5, 3)
    np.testing.assert_array_equal(store.labels("a"), -1)


def test_workers_and_batch_size_do_not_change_rows(tmp_path):
    model = toy_model()
    src = NoiseSource(20, (3, 8, 8), seed=3)
    a = extract_features(model, src, tmp_path / "a.zarr", "n", batch_size=5, chunk_rows=10, progress=False)
    b = extract_features(model, src, tmp_path / "b.zarr", "n", batch_size=5, chunk_rows=10, workers=2, progress=False)
    c = extract_features(model, src, tmp_path / "c.zarr", "n", batch_size=2, chunk_rows=10, progress=False)
    fa, fb, fc = (open_store(p).features("n") for p in (a, b, c))
    np.testing.assert_array_equal(fa, fb)  # same batches: identical
    np.testing.assert_allclose(fa, fc, rtol=1e-5, atol=1e-6)  # other batches: equal to float32 rounding
    assert open_store(a).paths("n") == open_store(b).paths("n")


def test_noise_string_with_bare_module_needs_input_size(tmp_path):
    with pytest.raises(ValueError, match="need the network's input size"):
        extract_features(toy_model(), "noise:4", tmp_path / "s.zarr", "noise", progress=False)


def test_limit_uses_first_rows(tmp_path):
    out = extract_features(toy_model(), "noise:30:0", tmp_path / "s.zarr", "noise", input_size=(3, 8, 8),
                           limit=7, batch_size=4, progress=False)
    store = open_store(out)
    assert store.split_info("noise")["count"] == 7
    assert store.paths("noise")[-1] == "noise:30:0#6"


@pytest.mark.parametrize("data, limit, match", [
    ("noise:0", None, r"data source noise:0:0 holds no images: nothing to extract into split 'e'"),
    ("noise:5", 0, r"holds no images after --limit 0"),
])
def test_empty_source_is_refused_and_writes_no_split(tmp_path, data, limit, match):
    with pytest.raises(ValueError, match=match):
        extract_features(toy_model(), data, tmp_path / "s.zarr", "e", input_size=(3, 8, 8),
                         limit=limit, progress=False)
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_is_one_line_naming_the_file_with_or_without_workers(tmp_path, workers):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{i}.png")
    (folder / "3.png").write_bytes(b"not a png")
    with pytest.raises(ValueError) as info:
        extract_features(toy_model(), folder, tmp_path / "s.zarr", "t", workers=workers,
                         batch_size=2, progress=False)
    message = str(info.value)
    assert message.startswith(f"could not read image {folder / '3.png'}")
    assert "\n" not in message and "Traceback" not in message
    assert not (tmp_path / "s.zarr.t.lock").exists()


def test_out_of_memory_says_to_lower_the_batch_size(tmp_path, monkeypatch):
    from skdice.extract.hooked import HookedExtractor

    def exhausted(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(HookedExtractor, "__call__", exhausted)
    from skdice.exceptions import SkdiceError

    with pytest.raises(SkdiceError, match=r"out of cpu memory at --batch-size 4 \(CUDA out of memory. Tried "
                                         r"to allocate 2.00 GiB\): lower --batch-size; .*delete the folder "
                                         r".*s.zarr/n before running again"):
        extract_features(toy_model(), NoiseSource(8, (3, 8, 8)), tmp_path / "s.zarr", "n",
                         batch_size=4, progress=False)
    assert not (tmp_path / "s.zarr.n.lock").exists()


def test_extraction_refused_while_another_writer_holds_the_split(tmp_path):
    model = toy_model()
    src = NoiseSource(8, (3, 8, 8))
    extract_features(model, src, tmp_path / "s.zarr", "other", batch_size=4, progress=False)
    writer = create_store(tmp_path / "s.zarr", model="Sequential", head=open_store(tmp_path / "s.zarr").head,
                          feature_layer="5")
    held = writer.prepare_split("noise", 8, source=src.description, chunk_rows=4)
    try:
        with pytest.raises(StoreError, match=r"being written by pid \d+ .*second writer is refused"):
            extract_features(model, src, tmp_path / "s.zarr", "noise", batch_size=4, progress=False)
    finally:
        held.close()


def test_rerun_of_complete_split_writes_nothing(tmp_path):
    model = toy_model()
    src = NoiseSource(8, (3, 8, 8))
    out = extract_features(model, src, tmp_path / "s.zarr", "n", batch_size=4, progress=False)
    chunk_files = sorted((out / "n" / "features").rglob("*"))
    stamps = [p.stat().st_mtime_ns for p in chunk_files]
    err = io.StringIO()
    sys_stderr, sys.stderr = sys.stderr, err
    try:
        extract_features(model, src, out, "n", batch_size=4, progress=lambda done, total: None)
    finally:
        sys.stderr = sys_stderr
    assert "every chunk written already" in err.getvalue()  # said to whoever follows the progress
    assert [p.stat().st_mtime_ns for p in chunk_files] == stamps


def test_other_source_on_existing_split_is_refused(tmp_path):
    model = toy_model()
    extract_features(model, NoiseSource(8, (3, 8, 8), seed=0), tmp_path / "s.zarr", "n", batch_size=4, progress=False)
    with pytest.raises(StoreError, match=r"started with other settings \(source 'noise:8:0' vs 'noise:8:1'"):
        extract_features(model, NoiseSource(8, (3, 8, 8), seed=1), tmp_path / "s.zarr", "n", batch_size=4, progress=False)


_KILL_SCRIPT = MODEL_SRC + """
import os, signal, sys
from skdice.extract.run import extract_features
from skdice.store import SplitWriter

kill_after = int(sys.argv[2])
if kill_after >= 0:
    original = SplitWriter.write_chunk
    count = [0]
    def write_then_maybe_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no lock release: a crash
    SplitWriter.write_chunk = write_then_maybe_die
extract_features(toy_model(), "noise:45:5", sys.argv[1], "noise", input_size=(3, 8, 8),
                 batch_size=3, chunk_rows=6, progress=False)
"""


def _run_script(tmp_path, script, *args):
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.run([sys.executable, str(path), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_killed_extraction_is_refused_then_resumes_bit_identical(tmp_path):
    full = _run_script(tmp_path, _KILL_SCRIPT, tmp_path / "full.zarr", -1)
    assert full.returncode == 0, full.stderr
    killed = _run_script(tmp_path, _KILL_SCRIPT, tmp_path / "resumed.zarr", 3)
    assert killed.returncode == -9, killed.stderr
    store = open_store(tmp_path / "resumed.zarr")
    info = store.split_info("noise")
    assert not info["complete"] and 3 <= info["written_chunks"] < 8
    with pytest.raises(IncompleteSplitError, match=r"'noise' .* is incomplete .*re-run the same `skdice extract`"):
        store.features("noise")
    assert (tmp_path / "resumed.zarr.noise.lock").exists()  # stale lock of the killed process
    resumed = _run_script(tmp_path, _KILL_SCRIPT, tmp_path / "resumed.zarr", -1)
    assert resumed.returncode == 0, resumed.stderr
    a, b = open_store(tmp_path / "full.zarr"), open_store(tmp_path / "resumed.zarr")
    for name in ("features", "logits", "labels", "paths"):
        np.testing.assert_array_equal(b.array("noise", name)[...], a.array("noise", name)[...])
    assert not (tmp_path / "resumed.zarr.noise.lock").exists()


_TORCHRUN_SCRIPT = MODEL_SRC + """
import sys
from skdice.extract.run import extract_features
extract_features(toy_model(), "noise:50:2", sys.argv[1], "noise", input_size=(3, 8, 8),
                 batch_size=4, chunk_rows=8, progress=False)
"""


def test_two_process_gloo_run_equals_single_process(tmp_path):
    script = tmp_path / "dist.py"
    script.write_text(_TORCHRUN_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SKDICE_DIST_BACKEND": "gloo"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(tmp_path / "two.zarr")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the single-process run at the same thread count, for a bitwise comparison
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one.zarr")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = open_store(tmp_path / "one.zarr"), open_store(tmp_path / "two.zarr")
    assert b.split_info("noise")["complete"] and b.split_info("noise")["written_chunks"] == 7
    for name in ("features", "logits", "labels", "paths"):
        np.testing.assert_array_equal(b.array("noise", name)[...], a.array("noise", name)[...])
    assert not (tmp_path / "two.zarr.noise.lock").exists()


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device; use --device cpu"):
            resolve_device("cuda")


def test_amp_on_cpu_warns_and_runs_float32(tmp_path):
    with pytest.warns(UserWarning, match="CUDA only"):
        out = extract_features(toy_model(), NoiseSource(4, (3, 8, 8)), tmp_path / "s.zarr", "n",
                               device="cpu", amp=True, progress=False)
    assert open_store(out).split_info("n")["amp"] is False


def test_callable_progress_gets_increasing_rows_done_up_to_the_total(tmp_path):
    calls = []
    extract_features(toy_model(), NoiseSource(10, (3, 8, 8)), tmp_path / "s.zarr", "n", batch_size=3,
                     chunk_rows=6, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 10), (3, 10), (6, 10), (9, 10), (10, 10)]  # batches never straddle a chunk


def test_callable_progress_of_a_resumed_split_counts_the_rows_left(tmp_path):
    model = toy_model()
    with pytest.raises(KeyboardInterrupt):
        extract_features(model, _InterruptAt(12, (3, 8, 8), stop_at=9), tmp_path / "s.zarr", "n",
                         batch_size=4, chunk_rows=4, progress=False)
    calls = []
    extract_features(model, NoiseSource(12, (3, 8, 8), seed=0), tmp_path / "s.zarr", "n", batch_size=4,
                     chunk_rows=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 4), (4, 4)]  # two chunks were written before the interruption


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("progress", [None, False])
def test_extraction_draws_nothing_of_its_own_even_on_a_terminal(tmp_path, monkeypatch, progress):
    # one progress display in the project: the CLI's, reached through the callback
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    extract_features(toy_model(), NoiseSource(8, (3, 8, 8)), tmp_path / "s.zarr", "n", batch_size=4,
                     progress=progress)
    assert err.getvalue() == ""


def test_progress_true_is_deprecated_and_draws_nothing(tmp_path, monkeypatch):
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with pytest.warns(DeprecationWarning, match=r"progress=True\) is deprecated and draws nothing.*callable"):
        extract_features(toy_model(), NoiseSource(8, (3, 8, 8)), tmp_path / "s.zarr", "n", batch_size=4,
                         progress=True)
    assert err.getvalue() == ""


def test_progress_that_is_not_callable_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"progress must be a callable progress\(rows_done, rows_total\) or None"):
        extract_features(toy_model(), NoiseSource(8, (3, 8, 8)), tmp_path / "s.zarr", "n", progress="yes")


class _InterruptAt(NoiseSource):
    """Noise whose row ``stop_at`` raises KeyboardInterrupt, like Ctrl-C mid-split."""

    def __init__(self, n, input_size, stop_at):
        super().__init__(n, input_size, seed=0)
        self.stop_at = stop_at

    def _item(self, index):
        if index == self.stop_at:
            raise KeyboardInterrupt
        return super()._item(index)


def test_ctrl_c_keeps_finished_chunks_releases_lock_and_says_how_to_resume(tmp_path, capsys):
    model = toy_model()
    with pytest.raises(KeyboardInterrupt):
        extract_features(model, _InterruptAt(20, (3, 8, 8), stop_at=13), tmp_path / "s.zarr", "n",
                         batch_size=4, chunk_rows=4, progress=False)
    assert "interrupted: 3 of 5 chunks of split 'n' are written; re-run the same command" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr.n.lock").exists()
    assert open_store(tmp_path / "s.zarr").split_info("n")["written_chunks"] == 3
    # the resumed split equals an uninterrupted one
    extract_features(model, NoiseSource(20, (3, 8, 8), seed=0), tmp_path / "s.zarr", "n", batch_size=4,
                     chunk_rows=4, progress=False)
    full = extract_features(model, NoiseSource(20, (3, 8, 8), seed=0), tmp_path / "full.zarr", "n",
                            batch_size=4, chunk_rows=4, progress=False)
    np.testing.assert_array_equal(open_store(tmp_path / "s.zarr").features("n"), open_store(full).features("n"))


def test_reduced_bit_from_official_npz_layout_store_equals_direct_forward(tmp_path):
    bit = pytest.importorskip("skdice.extract.models.bit")
    torch.manual_seed(0)
    original = bit.ResNetV2(units=(1, 1, 1, 1), base_width=32, num_classes=7).eval()
    with torch.no_grad():
        for p in original.parameters():  # non-trivial norms and biases
            p.add_(0.1 * torch.randn(p.shape))
    path = bit.save_bit_npz(original, tmp_path / "bit-small.npz")
    loaded = bit.load_bit_npz(path, units=None, base_width=None)
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    out = extract_features(loaded, ArraySource(x), tmp_path / "bit.zarr", "test", batch_size=2,
                           model_name="bit-small", progress=False)
    store = open_store(out)
    with torch.no_grad():
        direct = original.forward_features(x).numpy()
        logits = original(x).numpy()
    assert store.features("test").shape == (5, 32 * 32) and store.head.weight.shape == (1024, 7)
    np.testing.assert_allclose(store.features("test"), direct, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(store.logits("test"), logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(store.head.weight, original.head.conv.weight.detach().numpy()[:, :, 0, 0].T)


def test_channels_last_by_default_except_groupnorm_models_on_the_cpu():
    from skdice.extract.run import default_channels_last

    batchnorm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    groupnorm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4))
    assert default_channels_last(batchnorm, torch.device("cpu")) is True
    assert default_channels_last(groupnorm, torch.device("cpu")) is False  # precision on the CPU
    assert default_channels_last(groupnorm, torch.device("cuda")) is True


@pytest.mark.parametrize("channels_last", [True, False])
def test_either_memory_format_stores_the_direct_forward_features(tmp_path, channels_last):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 2)).eval()
    images = torch.rand(6, 3, 8, 8)
    with torch.no_grad():
        expected = net[:5](images).numpy()
    path = extract_features(net, ArraySource(images), tmp_path / "s.zarr", "t", progress=False,
                            channels_last=channels_last)
    np.testing.assert_allclose(open_store(path).features("t"), expected, rtol=1e-4, atol=1e-5)
