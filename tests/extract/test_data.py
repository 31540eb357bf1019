"""Data sources: order, labels, paths, grayscale handling, safe loading, reproducible noise."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from skdice.extract.data import (  # noqa: E402
    ArraySource,
    CifarSource,
    ImageFolderSource,
    NoiseSource,
    NpzSource,
    open_source,
)


def _png(path, value, size=(5, 4), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), value, dtype=np.uint8)
    Image.fromarray(arr).save(path)


def test_class_folders_give_sorted_labels_and_relative_paths(tmp_path):
    _png(tmp_path / "zebra" / "b.png", 10)
    _png(tmp_path / "zebra" / "a.png", 20)
    _png(tmp_path / "ant" / "x.png", 30)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    src = open_source(tmp_path)
    assert isinstance(src, ImageFolderSource)
    assert src.classes == ["ant", "zebra"]
    assert [src[i][2] for i in range(len(src))] == ["ant/x.png", "zebra/a.png", "zebra/b.png"]
    np.testing.assert_array_equal(src.labels(), [0, 1, 1])
    x, label, _ = src[1]
    assert x.shape == (3, 4, 5) and x.dtype == torch.float32 and label == 1
    np.testing.assert_allclose(x.numpy(), 20 / 255, rtol=1e-6)


def test_flat_folder_has_unknown_labels_and_grayscale_becomes_rgb(tmp_path):
    _png(tmp_path / "2.png", 7, mode="L")
    _png(tmp_path / "1.png", 9)
    src = ImageFolderSource(tmp_path, preprocess=lambda img: torch.tensor(np.asarray(img)).permute(2, 0, 1))
    assert [src[i][2] for i in range(2)] == ["1.png", "2.png"]
    np.testing.assert_array_equal(src.labels(), [-1, -1])
    x, label, _ = src[1]
    assert x.shape == (3, 4, 5) and label == -1 and int(x[2, 0, 0]) == 7


def test_folder_mixing_images_and_subfolders_is_refused(tmp_path):
    _png(tmp_path / "a" / "x.png", 1)
    _png(tmp_path / "y.png", 1)
    with pytest.raises(ValueError, match="both images and subfolders"):
        ImageFolderSource(tmp_path)


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        ImageFolderSource(tmp_path)


def test_npz_grayscale_images_become_rgb_with_labels_and_paths(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([4, 5]))
    src = open_source(tmp_path / "d.npz")
    assert isinstance(src, NpzSource) and len(src) == 2
    x, label, path = src[1]
    assert x.shape == (3, 3, 4) and label == 5 and path.endswith("d.npz#1")
    for c in range(3):  # all three channels carry the gray value
        np.testing.assert_allclose(x[c].numpy(), images[1] / 255, rtol=1e-6)


def test_npz_without_labels_has_unknown_labels(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 2, 2, 3), dtype=np.uint8))
    np.testing.assert_array_equal(NpzSource(tmp_path / "d.npz").labels(), [-1, -1, -1])


def test_npz_of_python_objects_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="holds Python objects"):
        NpzSource(tmp_path / "d.npz")


def test_npz_errors_name_the_problem(tmp_path):
    np.savez(tmp_path / "a.npz", pictures=np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="no 'images' array .*pictures"):
        NpzSource(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", images=np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="must be uint8"):
        NpzSource(tmp_path / "b.npz")


def _cifar_dir(tmp_path, n=3, key="labels", name="test_batch"):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(b"")
    with open(folder / name, "wb") as fh:  # written the way the originals were: protocol 2
        pickle.dump({b"data": data, key.encode(): list(range(n)), b"batch_label": b"testing"}, fh, protocol=2)
    return folder, data


def test_cifar_batches_decode_channel_planes(tmp_path):
    folder, data = _cifar_dir(tmp_path)
    src = open_source(folder, preprocess=lambda img: torch.tensor(np.asarray(img)).permute(2, 0, 1))
    assert isinstance(src, CifarSource) and len(src) == 3
    x, label, path = src[2]
    assert label == 2 and path.endswith("test_batch#2")
    # rows hold 1024 red, then 1024 green, then 1024 blue values, row-major
    np.testing.assert_array_equal(x.numpy(), data[2].reshape(3, 32, 32))


def test_cifar100_fine_labels(tmp_path):
    folder, _ = _cifar_dir(tmp_path, key="fine_labels", name="test")
    np.testing.assert_array_equal(CifarSource(folder).labels(), [0, 1, 2])


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_cifar_loader_refuses_pickles_naming_other_callables(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Boom()}, fh, protocol=2)
    with pytest.raises(ValueError, match=r"not a CIFAR python batch: refusing to load (posix|os)\.system"):
        CifarSource(folder)


def test_noise_rows_are_seeded_per_row_and_standard_normal():
    src = open_source("noise:50:7", input_size=(3, 8, 8))
    assert isinstance(src, NoiseSource) and len(src) == 50 and src.description == "noise:50:7"
    again = NoiseSource(50, (3, 8, 8), seed=7)
    for i in (0, 13, 49):
        torch.testing.assert_close(src[i][0], again[i][0], rtol=0, atol=0)
    assert not torch.equal(src[0][0], src[1][0])
    assert not torch.equal(src[0][0], NoiseSource(50, (3, 8, 8), seed=8)[0][0])
    # the row depends on (seed, index) only: the same as numpy's generator seeded that way
    expected = np.random.default_rng([7, 13]).standard_normal((3, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(src[13][0].numpy(), expected)
    values = torch.stack([src[i][0] for i in range(50)]).numpy().ravel()
    assert abs(values.mean()) < 0.05 and abs(values.std() - 1) < 0.05
    assert src[3][1] == -1 and src[3][2] == "noise:50:7#3"


@pytest.mark.parametrize("spec", ["noise:abc", "noise:1:2:3", "noise:"])
def test_malformed_noise_spec_is_refused(spec):
    with pytest.raises(ValueError, match="noise:N or noise:N:SEED"):
        open_source(spec, input_size=(3, 2, 2))


def test_noise_without_input_size_is_refused():
    with pytest.raises(ValueError, match="need the network's input size"):
        open_source("noise:4")


def test_array_source_float_and_uint8():
    x = torch.randn(4, 3, 2, 2)
    src = ArraySource(x, labels=[0, 1, 2, 3])
    got, label, path = src[2]
    assert torch.equal(got, x[2]) and label == 2 and path == "array#2"
    u = ArraySource(np.full((2, 3, 3), 255, np.uint8), name="mine")
    got, label, path = u[1]
    assert got.shape == (3, 3, 3) and label == -1 and path == "mine#1"
    np.testing.assert_allclose(got.numpy(), 1.0)


def test_array_source_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) network inputs"):
        ArraySource(torch.randn(4, 2, 2))
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(4,\)"):
        ArraySource(torch.randn(4, 3, 2, 2), labels=[0, 1])


def test_limit_takes_the_first_rows():
    src = ArraySource(torch.randn(5, 3, 2, 2), labels=[0, 1, 2, 3, 4])
    lim = src.limit(2)
    assert len(lim) == 2 and lim[1][1] == 1 and "first 2" in lim.description
    np.testing.assert_array_equal(lim.labels(), [0, 1])
    assert src.limit(None) is src and src.limit(10) is src


def test_missing_or_unknown_data_path_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        open_source(tmp_path / "nothing")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match="neither an .npz file nor a CIFAR python batch"):
        open_source(tmp_path / "x.csv")


def test_dataloader_collates_images_labels_and_paths():
    src = ArraySource(torch.randn(5, 3, 2, 2), labels=[0, 1, 2, 3, 4])
    x, y, paths = next(iter(torch.utils.data.DataLoader(src, batch_size=3)))
    assert x.shape == (3, 3, 2, 2) and y.dtype == torch.int64 and list(paths) == ["array#0", "array#1", "array#2"]


def test_cifar_batch_file_is_opened_directly(tmp_path):
    folder, data = _cifar_dir(tmp_path, n=2, name="data_batch_1")
    src = open_source(folder / "data_batch_1")
    assert isinstance(src, CifarSource) and len(src) == 2 and src[1][2].endswith("data_batch_1#1")
    with pytest.raises(ValueError, match="neither test_batch .* nor test"):
        CifarSource(folder)
