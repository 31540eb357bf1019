"""``skdice extract`` and ``skdice info``: argument mapping, error lines, one real run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")
from typer.testing import CliRunner  # noqa: E402

from skdice import Head  # noqa: E402
from skdice.cli.app import app, main  # noqa: E402
from skdice.store import open_store  # noqa: E402
from stores import write_store  # noqa: E402

runner = CliRunner()
HEAD = Head(np.ones((3, 2)), np.zeros(2))  # 3 features, 2 classes


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Replace the library calls with recorders; the store written is a tiny real one."""
    import skdice.extract.models as models
    import skdice.extract.run as run

    seen = {}

    def fake_load_preset(name, weights=None):
        seen["preset"] = (name, weights)
        return "SPEC"

    def fake_extract(spec, data, out, split, **kwargs):
        seen["extract"] = (spec, data, out, split, kwargs)
        write_store(out, HEAD, {split: (np.zeros((2, 3)), [0, 1])}, chunk_rows=2, model="m", source="x")
        return out

    monkeypatch.setattr(models, "load_preset", fake_load_preset)
    monkeypatch.setattr(run, "extract_features", fake_extract)
    return seen


def test_extract_options_reach_the_library(calls, tmp_path):
    result = runner.invoke(app, [
        "extract", "--model", "densenet-bc-100", "--weights", str(tmp_path / "w.pth"), "--data", "noise:10:3",
        "--out", str(tmp_path / "s.zarr"), "--split", "noise", "--batch-size", "16", "--device", "cpu",
        "--workers", "2", "--limit", "5", "--amp", "--no-channels-last",
    ])
    assert result.exit_code == 0, result.output
    assert calls["preset"] == ("densenet-bc-100", tmp_path / "w.pth")
    spec, data, out, split, kwargs = calls["extract"]
    assert (spec, data, out, split) == ("SPEC", "noise:10:3", tmp_path / "s.zarr", "noise")
    progress = kwargs.pop("progress")
    assert callable(progress)  # the CLI's display, drawn only when stderr is a terminal
    assert kwargs == {"batch_size": 16, "device": "cpu", "workers": 2, "limit": 5, "amp": True,
                      "channels_last": False}
    assert "split 'noise' complete, 2 rows of 3 features and 2 logits" in result.output


def test_extract_defaults(calls, tmp_path):
    result = runner.invoke(app, ["extract", "--model", "bit-s-r101", "--data", "d", "--out", str(tmp_path / "s"),
                                 "--split", "test"])
    assert result.exit_code == 0, result.output
    assert calls["preset"] == ("bit-s-r101", None)
    kwargs = dict(calls["extract"][4])
    assert callable(kwargs.pop("progress"))
    assert kwargs == {"batch_size": 64, "device": "auto", "workers": None, "limit": None, "amp": False,
                      "channels_last": None}  # chosen per device and model by the library


def test_extract_requires_model_data_out_and_split():
    result = runner.invoke(app, ["extract", "--model", "densenet-bc-100", "--data", "x", "--out", "s"])
    assert result.exit_code != 0 and "Missing option '--split'" in result.output


def test_library_errors_become_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "--model", "resnet-9000", "--data", "noise:4", "--out", str(tmp_path / "s"),
              "--split", "noise"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("skdice: error: unknown model 'resnet-9000': give a preset")


def test_info_lists_splits_counts_completeness_and_head(tmp_path):
    recorded = {"weights_sha256": "ab" * 32, "feature_layer": "fc:input"}
    write_store(tmp_path / "s.zarr", HEAD, {"test": (np.zeros((4, 3)), [0, 1, 0, 1])}, chunk_rows=2,
                source="folder:/data", **recorded)
    write_store(tmp_path / "s.zarr", HEAD, {"noise": np.zeros((6, 3))}, chunk_rows=2, source="noise:6:0",
                incomplete=("noise",), **recorded)
    result = runner.invoke(app, ["info", str(tmp_path / "s.zarr")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "model    toy (weights sha256 abababababababab...)" in out
    assert "head     W (3, 2) (features x classes), b (2,)" in out
    assert "feature  fc:input" in out
    table = [line for line in out.splitlines() if line.startswith("  ")]
    assert table[0].split() == ["split", "rows", "state", "source"]
    assert set(table[1].replace(" ", "")) == {"-"}
    rows = {line.split()[0]: line.split() for line in table[2:]}
    assert rows.keys() == {"test", "noise"}
    assert rows["test"] == ["test", "4", "complete", "folder:/data"]
    assert rows["noise"] == ["noise", "6", "INCOMPLETE", "(1", "of", "3", "chunks)", "noise:6:0"]
    assert out.rstrip().splitlines()[-1] == "re-run the same `skdice extract` to resume an INCOMPLETE split."


def test_info_lists_the_scores_written_back(tmp_path):
    from skdice.store import open_scores_writer

    write_store(tmp_path / "s.zarr", HEAD, {"test": (np.zeros((4, 3)), [0, 1, 0, 1])}, chunk_rows=4,
                source="x")
    done = open_scores_writer(tmp_path / "s.zarr", "test", "dice", chunk_rows=2, fingerprint="a")
    done.write(0, np.ones(2))
    done.write(2, np.ones(2))
    done.finalize()
    half = open_scores_writer(tmp_path / "s.zarr", "test", "knn", chunk_rows=2, fingerprint="b")
    half.write(0, np.ones(2))
    assert open_store(tmp_path / "s.zarr").score_names("test") == {"dice": True, "knn": False}
    result = runner.invoke(app, ["info", str(tmp_path / "s.zarr")])
    assert result.exit_code == 0, result.output
    header, _, row = [line.strip() for line in result.output.splitlines() if line.startswith("  ")]
    assert header.split() == ["split", "rows", "state", "source", "scores"]
    assert row.split(None, 4) == ["test", "4", "complete", "x", "dice, knn (incomplete)"]


def test_info_of_missing_store_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(tmp_path / "nothing.zarr")])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        f"skdice: error: feature store {tmp_path / 'nothing.zarr'} does not exist; "
        "create it by extracting features into it (`skdice extract`, or skdice.store.create_store)."
    )


@pytest.mark.shared_data
def test_end_to_end_densenet_on_shared_cifar_images(shared_data, tmp_path):
    checkpoint = shared_data / "models" / "densenet-bc-100-cifar10.pth.tar"
    images = shared_data / "images" / "cifar10-test"
    if not checkpoint.is_file() or not images.is_dir():
        pytest.skip(f"needs {checkpoint} and {images}")
    folder = tmp_path / "cifar"
    for cls in sorted(p.name for p in images.iterdir() if p.is_dir()):
        (folder / cls).mkdir(parents=True)
        for f in sorted((images / cls).iterdir())[:3]:
            (folder / cls / f.name).symlink_to(f)
    store_path = tmp_path / "c10.zarr"
    result = runner.invoke(app, [
        "extract", "--model", "densenet-bc-100", "--weights", str(checkpoint), "--data", str(folder),
        "--out", str(store_path), "--split", "test", "--batch-size", "10", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    store = open_store(store_path)
    features, logits, labels = store.features("test"), store.logits("test"), store.labels("test")
    assert features.shape == (30, 342) and store.head.weight.shape == (342, 10)
    np.testing.assert_allclose(features @ store.head.weight + store.head.bias, logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 3))
    assert store.paths("test")[:2] == ["airplane/0000.jpg", "airplane/0001.jpg"]
    assert (logits.argmax(1) == labels).mean() >= 0.6  # about 82% on these JPEGs
    assert store.attrs["model"] == "densenet-bc-100" and store.attrs["weights_sha256"].startswith("deaefd08")
    assert store.split_info("test")["classes"][0] == "airplane"
    info = runner.invoke(app, ["info", str(store_path)])
    row = next(line.split() for line in info.output.splitlines() if line.strip().startswith("test "))
    assert row[1:3] == ["30", "complete"] and "W (342, 10)" in info.output


def _error_line(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1, err
    assert len(err) == 1 and err[0].startswith("skdice: error: "), err
    return err[0]


def test_preset_without_weights_names_the_option(tmp_path, capsys):
    line = _error_line(capsys, ["extract", "--model", "densenet-bc-100", "--data", "noise:4",
                                "--out", str(tmp_path / "s.zarr"), "--split", "n"])
    assert "model 'densenet-bc-100' needs its weights file" in line and "--weights FILE" in line and "weights=" not in line
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "noise:abc"], "noise source 'noise:abc' must look like noise:N or noise:N:SEED"),
        (["--data", "{tmp}/absent"], "data source {tmp}/absent does not exist"),
        (["--data", "noise:4", "--device", "tpu"], "unknown device 'tpu': use auto, cpu or cuda"),
        (["--data", "noise:4", "--limit", "0"], "holds no images after --limit 0"),
        (["--data", "noise:4", "--split", "head"], "invalid split name 'head'"),
        (["--data", "noise:4", "--out", "{tmp}/file"], "{tmp}/file is not a feature store"),
    ],
)
def test_extract_user_errors_are_one_line(shared_data, tmp_path, capsys, extra, message):
    checkpoint = shared_data / "models" / "densenet-bc-100-cifar10.pth.tar"
    if not checkpoint.is_file():
        pytest.skip(f"needs {checkpoint}")
    (tmp_path / "file").write_text("x")
    args = {"--out": str(tmp_path / "s.zarr"), "--split": "n"}
    extra = [e.format(tmp=tmp_path) for e in extra]
    for key, value in zip(extra[::2], extra[1::2]):
        args[key] = value
    line = _error_line(capsys, ["extract", "--model", "densenet-bc-100", "--weights", str(checkpoint),
                                "--device", "cpu", *[x for kv in args.items() for x in kv]])
    assert message.format(tmp=tmp_path) in line, line


_TINY_NET = '''
import torch
from torch import nn


def build(classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))
'''


@pytest.mark.parametrize(
    "layout, extra, message",
    [
        ({"a.png": 8, "b.png": 10}, [], "images of several sizes in one batch: a.png gives a 3x8x8 input but b.png "
                                        "a 3x10x10 one, and the preprocessing does not resize them: give a size "
                                        "rule (--input-size SIZE"),
        ({f"c{k}/0.png": 8 for k in range(12)}, [], "has 12 class subfolders but the model's head has 3 classes"),
        ({"huge.png": 0}, [], "huge.png is 9000x9000 pixels (81,000,000), more than the 67,108,864"),
    ],
)
def test_data_refused_at_the_source_is_one_line_and_leaves_nothing_complete(tmp_path, capsys, layout, extra,
                                                                             message):
    from PIL import Image

    (tmp_path / "tinynet.py").write_text(_TINY_NET)
    for name, side in layout.items():
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if side:
            Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(path)
        else:  # a PNG header declaring 9000 x 9000 pixels: refused before any decoding
            import struct
            import zlib

            ihdr = b"IHDR" + struct.pack(">IIBBBBB", 9000, 9000, 8, 2, 0, 0, 0)
            iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
                             + iend)
    out = tmp_path / "s.zarr"
    line = _error_line(capsys, ["extract", "--model", f"{tmp_path / 'tinynet.py'}:build", "--data",
                                str(tmp_path / "data"), "--out", str(out), "--split", "t", "--device", "cpu", *extra])
    assert message in line, line
    assert not out.exists() or "t" not in open_store(out).splits or not open_store(out).split_info("t")["complete"]
