"""Refused at the source: what a later read would call damage is one line at extraction time.

Each test builds the damage (tiny PNGs written with Pillow, tiny torch
models) and checks the one-line message and that nothing is marked complete.
Non-UTF-8 file names are stored losslessly; images above the pixel limit are
refused before they are decoded.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from skdice.exceptions import IncompleteSplitError  # noqa: E402
from skdice.extract.data import (  # noqa: E402
    MAX_IMAGE_PIXELS,
    ArraySource,
    ImageFolderSource,
    escape_file_name,
    file_name_bytes,
)
from skdice.extract.run import extract_features  # noqa: E402
from skdice.store import open_store  # noqa: E402


def tiny(classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, classes)).eval()


def png(path, size=(8, 8), value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def assert_not_complete(out, split):
    if out.exists() and split in open_store(out).splits:
        with pytest.raises(IncompleteSplitError):
            open_store(out).features(split)


# --------------------------------------------------------------------------- labels


def test_a_folder_with_more_classes_than_the_head_is_refused_before_anything_is_written(tmp_path):
    for k in range(12):
        png(tmp_path / "data" / f"class{k:02d}" / "0.png", value=k)
    with pytest.raises(ValueError) as info:
        extract_features(tiny(3), tmp_path / "data", tmp_path / "s.zarr", "test", progress=False)
    message = one_line(info)
    assert "has 12 class subfolders but the model's head has 3 classes, so labels 3 to 11" in message
    assert "put them in one flat folder (labels -1)" in message
    assert not (tmp_path / "s.zarr").exists()


def test_a_label_outside_the_heads_classes_is_refused_and_the_split_stays_incomplete(tmp_path):
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    source = ArraySource(x, np.array([0, 1, 2, -1, 0, 7, 1, 2]), name="arr")
    with pytest.raises(ValueError) as info:
        extract_features(tiny(3), source, tmp_path / "s.zarr", "test", batch_size=4, chunk_rows=4, progress=False)
    message = one_line(info)
    assert message.startswith("arr#5 has label 7, outside the model's 3 classes [0, 3) (or -1 for unknown)")
    assert_not_complete(tmp_path / "s.zarr", "test")


# --------------------------------------------------------------------------- the model's output


class _Poisoned(nn.Module):
    """A classifier whose features (or only logits) hold NaN or infinity."""

    def __init__(self, where):
        super().__init__()
        self.body, self.fc, self.where = tiny(3)[:4], nn.Linear(4, 3), where
        if where == "logits":  # a finite head whose output overflows float32
            with torch.no_grad():
                self.fc.weight.fill_(3e38)

    def forward(self, x):
        h = self.body(x).abs() + 1
        if self.where == "features":
            h = h.clone()
            h[2, 0] = float("nan")
        return self.fc(h)


@pytest.mark.parametrize("where", ["features", "logits"])
def test_non_finite_features_or_logits_are_refused_and_nothing_is_marked_complete(tmp_path, where):
    source = ArraySource(torch.randn(4, 3, 8, 8), name="arr")
    with pytest.raises(ValueError) as info:
        extract_features(_Poisoned(where), source, tmp_path / "s.zarr", "test", progress=False)
    message = one_line(info)
    first = "arr#2" if where == "features" else "arr#0"
    assert message.startswith(f"the model gave non-finite {where} (NaN or infinity) for ")
    assert f"first {first}: fix the model" in message and "another --out" in message
    assert_not_complete(tmp_path / "s.zarr", "test")


class _DropsARow(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = tiny(3)

    def forward(self, x):
        return self.net(x[:-1])


def test_a_forward_that_drops_a_row_is_one_line_not_a_broadcast_error(tmp_path):
    with pytest.raises(ValueError) as info:
        extract_features(_DropsARow(), ArraySource(torch.randn(8, 3, 8, 8)), tmp_path / "s.zarr", "test",
                         batch_size=4, progress=False)
    message = one_line(info)
    assert message.startswith("the model's forward returned 3 rows of 4 features and 3 rows of logits for a "
                              "batch of 4 inputs")
    assert "keep one row per input" in message and "broadcast" not in message
    assert_not_complete(tmp_path / "s.zarr", "test")


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("workers", [0, 1])
def test_images_of_several_sizes_without_a_size_rule_are_one_line(tmp_path, workers):
    png(tmp_path / "data" / "a.png", (8, 8))
    png(tmp_path / "data" / "b.png", (10, 12))
    with pytest.raises(ValueError) as info:
        extract_features(tiny(), tmp_path / "data", tmp_path / "s.zarr", "test", batch_size=2, workers=workers,
                         progress=False)
    message = one_line(info)
    assert message.startswith("images of several sizes in one batch: a.png gives a 3x8x8 input but b.png a "
                              "3x12x10 one")
    assert "--input-size SIZE" in message and "stack expects" not in message
    assert_not_complete(tmp_path / "s.zarr", "test")
    # one image per forward needs no size rule
    extract_features(tiny(), tmp_path / "data", tmp_path / "t.zarr", "test", batch_size=1, progress=False)
    assert open_store(tmp_path / "t.zarr").features("test").shape == (2, 4)


def test_a_non_utf8_file_name_is_stored_escaped_and_maps_back_to_its_bytes(tmp_path):
    data = tmp_path / "data"
    try:
        png(data / os.fsdecode(b"bad\xff.png"))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    png(data / "back\\slash.png")
    png(data / "good.png")
    out = extract_features(tiny(), data, tmp_path / "s.zarr", "test", progress=False)
    paths = open_store(out).paths("test")
    assert paths == ["back\\\\slash.png", "bad\\xff.png", "good.png"]
    assert [file_name_bytes(p) for p in paths] == [b"back\\slash.png", b"bad\xff.png", b"good.png"]
    assert all((data / os.fsdecode(file_name_bytes(p))).is_file() for p in paths)


def test_a_non_utf8_class_folder_is_recorded_escaped(tmp_path):
    try:
        png(tmp_path / "data" / os.fsdecode(b"caf\xe9") / "0.png")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    png(tmp_path / "data" / "dog" / "0.png")
    out = extract_features(tiny(), tmp_path / "data", tmp_path / "s.zarr", "test", progress=False)
    store = open_store(out)
    assert store.split_info("test")["complete"] and store.split_group("test").attrs["classes"] == ["caf\\xe9", "dog"]
    assert store.paths("test") == ["caf\\xe9/0.png", "dog/0.png"]


def test_escape_file_name_keeps_utf8_names_and_round_trips_any_bytes():
    assert escape_file_name("chat/été.png") == "chat/été.png"
    for raw in (b"bad\xff.png", b"a\\xff", b"\\\\", b"\xc3", b"ok"):
        assert file_name_bytes(escape_file_name(os.fsdecode(raw))) == raw
    assert escape_file_name(os.fsdecode(b"a\\xff")) != escape_file_name(os.fsdecode(b"a\xff"))


def _png_header_only(path, width, height):
    """A PNG whose header declares ``width`` x ``height`` and which holds no pixel data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [9000, 12000])  # below Pillow's warning (89.5 Mpx), and between it and its error
def test_an_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path, side):
    folder = tmp_path / "data"
    folder.mkdir()
    _png_header_only(folder / "huge.png", side, side)
    source = ImageFolderSource(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(ValueError) as info:
            source[0]
    message = one_line(info)
    assert side * side > MAX_IMAGE_PIXELS == 8192 * 8192
    assert f"huge.png is {side}x{side} pixels ({side * side:,}), more than the 67,108,864 (8192x8192)" in message
    assert "refused before decoding" in message and "truncated" not in message


def test_an_image_at_the_pixel_limit_is_read(tmp_path, monkeypatch):
    import skdice.extract._files as files

    monkeypatch.setattr(files, "MAX_IMAGE_PIXELS", 12 * 10)
    png(tmp_path / "data" / "a.png", (12, 10))
    png(tmp_path / "data" / "b.png", (12, 11))
    source = ImageFolderSource(tmp_path / "data")
    assert tuple(source[0][0].shape) == (3, 10, 12)
    with pytest.raises(ValueError, match=r"b.png is 12x11 pixels \(132\), more than the 120"):
        source[1]
