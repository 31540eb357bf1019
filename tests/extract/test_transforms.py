"""torchvision-exact transforms: sizes, crop offsets, value conversion, normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from skdice.extract.transforms import (  # noqa: E402
    CenterCrop,
    Compose,
    ConvertRGB,
    Normalize,
    Resize,
    ToTensor,
    center_crop_box,
    resized_size,
)


def _coordinate_image(height, width):
    """RGB image whose red channel is the row and green channel the column."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    arr = np.stack([rows, cols, np.full_like(rows, 7)], axis=-1).astype(np.uint8)
    return Image.fromarray(arr), arr


# -- Resize sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "height, width, size, expected",
    [
        (30, 40, 32, (32, 42)),  # landscape: long side int(32 * 40 / 30) = int(42.67) = 42
        (40, 30, 32, (42, 32)),  # portrait
        (33, 33, 32, (32, 32)),  # square
        (33, 50, 32, (32, 48)),  # int(32 * 50 / 33) = int(48.48) truncates, never rounds up
        (500, 375, 32, (42, 32)),  # int(32 * 500 / 375) = int(42.67) = 42
        (32, 32, 32, (32, 32)),
        (30, 40, (24, 20), (24, 20)),  # a pair is exact (height, width)
        (30, 40, [32], (32, 42)),  # a one-element list is the int form
    ],
)
def test_resized_size_matches_torchvision_rule(height, width, size, expected):
    assert resized_size(height, width, size) == expected


def test_resized_size_max_size_bounds_long_side():
    # long side would be int(32 * 100 / 10) = 320 > 64: long = 64, short = int(64 * 32 / 320) = 6
    assert resized_size(10, 100, 32, max_size=64) == (6, 64)
    with pytest.raises(ValueError, match="max_size = 32 must be larger"):
        resized_size(10, 100, 32, max_size=32)
    with pytest.raises(ValueError, match="max_size is only allowed"):
        resized_size(10, 100, (32, 32), max_size=64)


def test_resize_output_size_pil_order():
    img = Image.new("RGB", (40, 30))  # PIL: (width, height)
    assert Resize(32)(img).size == (42, 32)
    assert Resize((480, 480))(img).size == (480, 480)


def test_resize_is_identity_when_size_already_matches():
    img, arr = _coordinate_image(32, 45)
    out = Resize(32)(img)
    assert out is img


def test_resize_accepts_uint8_arrays():
    _, arr = _coordinate_image(30, 40)
    assert Resize(32)(arr).size == (42, 32)


def test_resize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="interpolation must be one of"):
        Resize(32, interpolation="cubic-ish")
    with pytest.raises(ValueError, match="size must be an int or a sequence"):
        Resize((1, 2, 3))
    with pytest.raises(ValueError, match="must be uint8"):
        Resize(32)(np.zeros((4, 4), dtype=np.float32))


# -- Resize pixels: antialiased bilinear --------------------------------------------------------


def _triangle_weights(in_size, out_size):
    """Resampling matrix (out, in) of an antialiased bilinear filter (support scaled by the
    downscaling factor, pixel centres at i + 0.5), written from the filter's definition."""
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    matrix = np.zeros((out_size, in_size))
    centres_in = np.arange(in_size) + 0.5
    for i in range(out_size):
        centre = (i + 0.5) * scale
        w = np.clip(1.0 - np.abs(centres_in - centre) / stretch, 0.0, None)
        matrix[i] = w / w.sum()
    return matrix


def test_resize_downscale_is_antialiased():
    # alternating black/white columns: an antialiased 2x shrink averages them to grey (127.5);
    # point-sampled bilinear would keep 0 or 255
    arr = np.zeros((8, 16), dtype=np.uint8)
    arr[:, 1::2] = 255
    out = np.asarray(Resize((8, 8))(Image.fromarray(arr)), dtype=float)
    assert np.all(np.abs(out[:, 1:-1] - 127.5) <= 1.0)


@pytest.mark.parametrize("in_hw, size", [((37, 53), (24, 20)), ((12, 9), (30, 25)), ((40, 30), 32)])
def test_resize_matches_separable_triangle_filter(in_hw, size):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(*in_hw, 3), dtype=np.uint8)
    out = np.asarray(Resize(size)(Image.fromarray(arr)), dtype=float)
    out_h, out_w = resized_size(*in_hw, size)
    rows, cols = _triangle_weights(in_hw[0], out_h), _triangle_weights(in_hw[1], out_w)
    reference = np.einsum("ij,jkc,lk->ilc", rows, arr.astype(float), cols)
    assert out.shape == reference.shape
    # Pillow rounds to uint8 between its horizontal and vertical passes
    assert np.abs(out - reference).max() <= 1.5


# -- CenterCrop ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "height, width, crop, expected",
    [
        (42, 32, 32, (5, 0)),  # margin 10 -> 5
        (35, 32, 32, (2, 0)),  # margin 3: round(1.5) = 2
        (37, 32, 32, (2, 0)),  # margin 5: round(2.5) = 2 (half to even)
        (33, 34, 32, (0, 1)),  # round(0.5) = 0, round(1.0) = 1
        (39, 32, 32, (4, 0)),  # margin 7: round(3.5) = 4
    ],
)
def test_center_crop_offsets_round_half_to_even(height, width, crop, expected):
    assert center_crop_box(height, width, crop, crop) == expected
    img, arr = _coordinate_image(height, width)
    out = np.asarray(CenterCrop(crop)(img))
    top, left = expected
    np.testing.assert_array_equal(out, arr[top : top + crop, left : left + crop])


def test_center_crop_rectangular():
    img, arr = _coordinate_image(40, 50)
    out = np.asarray(CenterCrop((20, 30))(img))
    np.testing.assert_array_equal(out, arr[10:30, 10:40])


def test_center_crop_pads_small_images_with_zeros():
    # width 29 -> 32: pad (32 - 29) // 2 = 1 left, 2 right; height 40 stays, top = round(8 / 2) = 4
    img, arr = _coordinate_image(40, 29)
    arr = arr + 1  # so that padding zeros are distinguishable
    out = np.asarray(CenterCrop(32)(Image.fromarray(arr)))
    assert out.shape == (32, 32, 3)
    np.testing.assert_array_equal(out[:, 0], 0)
    np.testing.assert_array_equal(out[:, 30:], 0)
    np.testing.assert_array_equal(out[:, 1:30], arr[4:36])


def test_center_crop_pads_both_sides_to_exact_size():
    arr = np.full((30, 30), 9, dtype=np.uint8)
    out = np.asarray(CenterCrop(33)(Image.fromarray(arr)))
    assert out.shape == (33, 33)
    # (33 - 30) // 2 = 1 before, (33 - 30 + 1) // 2 = 2 after
    assert out[0].sum() == 0 and out[1, 1] == 9 and out[30, 30] == 9 and out[31].sum() == 0


# -- ToTensor / Normalize -------------------------------------------------------------------------


def test_to_tensor_scales_and_transposes():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    for source in (arr, Image.fromarray(arr)):
        out = ToTensor()(source)
        assert out.dtype == torch.float32 and out.shape == (3, 5, 7)
        expected = arr.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(out.numpy(), expected)


def test_to_tensor_grayscale_and_bilevel():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert ToTensor()(Image.fromarray(gray)).shape == (1, 3, 4)
    bilevel = Image.fromarray(gray > 5)  # mode "1"
    assert bilevel.mode == "1"
    out = ToTensor()(bilevel)
    np.testing.assert_array_equal(out[0].numpy(), (gray > 5).astype(np.float32))


def test_to_tensor_rejects_non_8bit():
    with pytest.raises(ValueError, match="handles 8-bit images"):
        ToTensor()(Image.new("F", (2, 2)))
    with pytest.raises(ValueError, match="expects a uint8 array"):
        ToTensor()(np.zeros((2, 2), dtype=np.int32))


def test_normalize_matches_reference():
    rng = np.random.default_rng(2)
    x = rng.random((3, 6, 5)).astype(np.float32)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    out = Normalize(mean, std)(torch.from_numpy(x.copy()))
    m32 = np.asarray(mean, dtype=np.float32)[:, None, None]
    s32 = np.asarray(std, dtype=np.float32)[:, None, None]
    np.testing.assert_allclose(out.numpy(), (x - m32) / s32, rtol=1e-6, atol=1e-7)
    # scalar form: (x - 0.5) / 0.5 = 2x - 1
    out = Normalize(0.5, 0.5)(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), 2 * x - 1, atol=1e-6)


def test_normalize_leaves_input_untouched():
    x = torch.ones(3, 2, 2)
    Normalize(0.5, 0.25)(x)
    assert torch.equal(x, torch.ones(3, 2, 2))


def test_normalize_rejects_bad_input():
    with pytest.raises(TypeError, match="apply ToTensor first"):
        Normalize(0.5, 0.5)(torch.ones(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="for a 1-channel image"):
        Normalize((0.1, 0.2, 0.3), (1, 1, 1))(torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="std must be non-zero"):
        Normalize(0.5, 0.0)


# -- Compose ---------------------------------------------------------------------------------------


def test_compose_pipeline_and_json_description():
    pipeline = Compose(
        [ConvertRGB(), Resize(32), CenterCrop(32), ToTensor(), Normalize(0.5, 0.5)]
    )
    out = pipeline(Image.new("L", (40, 30), color=255))
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out, torch.ones_like(out))
    desc = json.loads(json.dumps(pipeline.describe()))
    assert [s["name"] for s in desc["steps"]] == [
        "ConvertRGB", "Resize", "CenterCrop", "ToTensor", "Normalize"
    ]
    assert desc["steps"][1] == {
        "name": "Resize", "size": 32, "interpolation": "bilinear", "antialias": True,
        "max_size": None,
    }
    assert "Resize(size=32" in repr(pipeline)
