"""Your own model, then generated inputs into the same store (issue 22, item 2).

``skdice extract --model tiny.py:factory --data folder/`` needs no
``--input-size`` (the images keep their size); noise extracted into the same
store afterwards takes that size from the store, and ``--input-size`` equal to
it is not another preprocessing. The message without any size names the flag.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")
from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from skdice.cli.app import main  # noqa: E402
from skdice.extract.run import recorded_input_size  # noqa: E402
from skdice.store import open_store  # noqa: E402

TINY = textwrap.dedent(
    """
    import torch
    from torch import nn


    def factory():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    """
)


def run_main(args):
    """``skdice`` with its error mapping: (exit code, stderr)."""
    with CliRunner().isolation() as (_, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, err.getvalue().decode()


@pytest.fixture
def own(tmp_path):
    """(model import string, folder of 6 PNGs of 12x10 pixels, store path)."""
    (tmp_path / "tiny.py").write_text(TINY)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return f"{tmp_path / 'tiny.py'}:factory", folder, tmp_path / "own.zarr"


def _extract(model, data, out, split, *extra):
    return run_main(["extract", "--model", model, "--data", str(data), "--out", str(out), "--split", split,
                     "--device", "cpu", "--batch-size", "4", *extra])


def test_noise_takes_the_image_size_the_store_recorded(own):
    model, folder, out = own
    assert _extract(model, folder, out, "id") == (0, "")
    assert recorded_input_size(out) == (3, 12, 10)
    code, err = _extract(model, "noise:5", out, "noise")
    assert code == 0, err
    store = open_store(out)
    assert store.features("noise").shape == (5, 4)
    assert store.paths("noise")[0] == "noise:5:0#0"


def test_an_input_size_equal_to_the_images_is_the_same_preprocessing(own):
    model, folder, out = own
    assert _extract(model, folder, out, "id") == (0, "")
    code, err = _extract(model, "noise:5", out, "noise", "--input-size", "12x10")
    assert code == 0, err
    assert open_store(out).features("noise").shape == (5, 4)
    # another size is another preprocessing, and is refused
    code, err = _extract(model, "noise:5", out, "noise2", "--input-size", "16")
    assert code == 1 and "what differs: preprocessing" in err and "another --out" in err, err


def test_images_of_another_size_without_a_resize_are_refused(own, tmp_path):
    model, folder, out = own
    assert _extract(model, folder, out, "id") == (0, "")
    other = tmp_path / "larger"
    other.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(other / "a.png")
    code, err = _extract(model, other, out, "larger")
    assert code == 1 and "what differs: preprocessing" in err, err


def test_noise_without_any_size_names_the_flag(own):
    model, _, out = own
    code, err = _extract(model, "noise:5", out, "noise")
    assert code == 1
    assert "noise inputs need the network's input size: pass --input-size, for example --input-size 32" in err
    assert err.count("\n") == 1, err
