"""Images are converted by their value range: 16-bit, float, palette and alpha files.

Real files of each kind are written with Pillow; each must reach the model as
its 8-bit twin does (Pillow's plain ``convert("RGB")`` clips a 16-bit PNG to
white).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from skdice.extract.data import ImageFolderSource  # noqa: E402
from skdice.extract.transforms import ConvertRGB, to_rgb8  # noqa: E402

GRAY = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every 8-bit level once


def _tensor(folder, name):
    source = ImageFolderSource(folder)
    index = [p.name for p in source.files].index(name)
    return source[index][0].numpy()


def test_a_16_bit_png_gives_its_8_bit_twin(tmp_path):
    Image.fromarray(GRAY, mode="L").save(tmp_path / "a8.png")
    Image.fromarray(GRAY.astype(np.uint16) * 257).save(tmp_path / "b16.png")  # 0..65535
    with Image.open(tmp_path / "b16.png") as img:
        assert img.mode in ("I;16", "I")  # Pillow's 16-bit modes
    twin, wide = _tensor(tmp_path, "a8.png"), _tensor(tmp_path, "b16.png")
    np.testing.assert_array_equal(wide, twin)
    assert wide.max() == 1.0 and wide.min() == 0.0  # not a solid white image


def test_a_float_tiff_in_zero_one_gives_its_8_bit_twin(tmp_path):
    Image.fromarray(GRAY, mode="L").save(tmp_path / "a8.png")
    Image.fromarray(GRAY.astype(np.float32) / 255.0, mode="F").save(tmp_path / "f.tif")
    np.testing.assert_array_equal(_tensor(tmp_path, "f.tif"), _tensor(tmp_path, "a8.png"))


def test_a_float_image_in_0_255_is_read_as_such_and_nan_becomes_black():
    values = GRAY.astype(np.float32)
    values[0, 0] = np.nan
    rgb = np.asarray(to_rgb8(Image.fromarray(values, mode="F")))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[15, 15].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(rgb[1:, :, 0], GRAY[1:])


def test_palette_and_alpha_images_convert_as_torchvision_loads_them(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(tmp_path / "p.png")
    rgba = np.dstack([rgb, rng.integers(0, 256, (16, 16), dtype=np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(_tensor(tmp_path, "rgba.png"), _tensor(tmp_path, "rgb.png"))  # alpha dropped
    with Image.open(tmp_path / "p.png") as img:
        expected = np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(_tensor(tmp_path, "p.png"), expected)


def test_convert_rgb_transform_uses_the_same_rule():
    wide = Image.fromarray(GRAY.astype(np.uint16) * 257)
    np.testing.assert_array_equal(np.asarray(ConvertRGB()(wide))[:, :, 1], GRAY)
