"""Where the paper's weights come from, and files that are not weights (issue 22, item 6).

A missing file's error keeps the download location; a file that is not a
weights file of the expected kind is one line saying so, never NumPy's or
torch's advice to load it as a pickle.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skdice.extract.models import WeightsMismatchError, load_preset  # noqa: E402
from skdice.extract.models.factory import load_factory  # noqa: E402

BIT_URL = "https://storage.googleapis.com/bit_models/BiT-S-R101x1.npz"
DICE_REPO = "https://github.com/deeplearning-wisc/dice"
PICKLE_ADVICE = ("allow_pickle", "weights_only", "pickle.load", "trusted source", "unsafely")


@pytest.fixture
def not_weights(tmp_path):
    """Files that are no weights: a Python file, junk bytes, an .npz of objects, text named .npz."""
    (tmp_path / "model.py").write_text("import os\nprint('a model file')\n")
    (tmp_path / "junk.npz").write_bytes(bytes(range(256)) * 3)
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    (tmp_path / "text.npz").write_text("not an archive\n")
    (tmp_path / "tiny.py").write_text("from torch import nn\n\n\ndef f():\n    return nn.Linear(4, 2)\n")
    return tmp_path


def _one_line_without_pickle_advice(exc):
    text = str(exc.value)
    assert "\n" not in text and not any(word in text for word in PICKLE_ADVICE), text
    return text


def test_missing_weights_name_where_they_come_from(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_preset("bit-s-r101", tmp_path / "BiT-S-R101x1.npz")
    assert str(info.value) == (f"BiT weights file not found: {tmp_path / 'BiT-S-R101x1.npz'} "
                               f"(download BiT-S-R101x1.npz from {BIT_URL}).")
    with pytest.raises(FileNotFoundError) as info:
        load_preset("densenet-bc-100", tmp_path / "checkpoint_100.pth.tar")
    assert str(info.value).endswith(
        f"(the paper's checkpoint is checkpoints/CIFAR-10/densenet/checkpoint_100.pth.tar in {DICE_REPO}).")


@pytest.mark.parametrize("name", ["model.py", "junk.npz", "objects.npz", "text.npz"])
def test_a_file_that_is_not_bit_weights_is_one_line(not_weights, name):
    with pytest.raises(WeightsMismatchError) as info:
        load_preset("bit-s-r101", not_weights / name)
    assert _one_line_without_pickle_advice(info) == (
        f"{not_weights / name} is not a BiT weights file (an .npz of plain numeric arrays, such as {BIT_URL}).")


@pytest.mark.parametrize("name", ["model.py", "junk.npz", "objects.npz", "text.npz"])
def test_a_file_that_is_not_a_densenet_checkpoint_is_one_line(not_weights, name):
    with pytest.raises(WeightsMismatchError) as info:
        load_preset("densenet-bc-100", not_weights / name)
    assert _one_line_without_pickle_advice(info) == (
        f"{not_weights / name} is not a readable torch checkpoint of DenseNet weights (a state_dict saved with "
        f"torch.save, such as checkpoints/CIFAR-10/densenet/checkpoint_100.pth.tar in {DICE_REPO}).")


@pytest.mark.parametrize("name", ["model.py", "junk.npz", "objects.npz", "tiny.py"])
def test_a_python_file_as_factory_weights_is_one_line(not_weights, name):
    with pytest.raises(ValueError) as info:
        load_factory(f"{not_weights / 'tiny.py'}:f", not_weights / name)
    assert _one_line_without_pickle_advice(info) == (
        f"--weights {not_weights / name} is not a torch state dict file (one saved with "
        "torch.save(model.state_dict(), path); files holding pickled Python objects are not loaded).")
