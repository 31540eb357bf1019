"""skdice.store.import_arrays: features from any framework written as extraction writes them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("zarr")

from skdice import Head  # noqa: E402
from skdice.exceptions import IncompleteSplitError, StoreError  # noqa: E402
from skdice.store import SplitWriter, import_arrays, load_array, open_store, verify_store  # noqa: E402
from stores import write_store  # noqa: E402

M, C = 8, 3


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    H = np.abs(rng.normal(size=(100, M))).astype(np.float32)
    W = rng.normal(size=(M, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    return H, rng.integers(0, C, 100), W, b


def _new(path, H, y, W, b, split="test", **kw):
    return import_arrays(path, split, features=H, labels=y, weight=W, bias=b,
                         weight_layout="features-classes", model="jax-net", chunk_rows=32, **kw)


def test_import_writes_a_split_that_reads_back_with_logits_from_the_head(tmp_path, arrays):
    H, y, W, b = arrays
    path = _new(tmp_path / "s.zarr", H, y, W, b)
    fs = open_store(path)
    np.testing.assert_array_equal(fs.features("test"), H)
    np.testing.assert_array_equal(fs.labels("test"), y)
    np.testing.assert_allclose(fs.logits("test"), H @ W + b, rtol=1e-5, atol=1e-5)
    assert fs.paths("test")[:2] == ["features#0", "features#1"]
    assert fs.model == "jax-net" and fs.manifest("test") is not None and fs.manifest() is not None
    assert fs.split_info("test")["content_fingerprint"].startswith("blake2b:")
    report = verify_store(path)
    assert report.ok and not report.unmanifested, report.problems


def test_the_two_weight_layouts_give_the_same_head(tmp_path, arrays):
    H, y, W, b = arrays
    a = _new(tmp_path / "a.zarr", H, y, W, b)
    t = import_arrays(tmp_path / "t.zarr", "test", features=H, labels=y, weight=W.T, bias=b,
                      weight_layout="classes-features", model="onnx-net")
    np.testing.assert_array_equal(open_store(a).head.weight, open_store(t).head.weight)


def test_files_load_without_pickle_npy_memory_mapped_and_npz_members(tmp_path, arrays):
    H, y, W, b = arrays
    np.save(tmp_path / "H.npy", H)
    np.savez(tmp_path / "more.npz", y=y, W=W)
    assert isinstance(load_array(tmp_path / "H.npy"), np.memmap)
    np.testing.assert_array_equal(load_array(f"{tmp_path / 'more.npz'}:y"), y)
    path = import_arrays(tmp_path / "s.zarr", "test", features=tmp_path / "H.npy",
                         labels=f"{tmp_path / 'more.npz'}:y", weight=f"{tmp_path / 'more.npz'}:W",
                         weight_layout="features-classes", model="tf-net")
    fs = open_store(path)
    np.testing.assert_array_equal(fs.labels("test"), y)
    assert fs.paths("test")[5] == "H.npy#5" and "H.npy" in fs.split_info("test")["source"]
    np.testing.assert_array_equal(fs.head.bias, np.zeros(C, np.float32))  # a weight without bias


@pytest.mark.parametrize("make, message", [
    (lambda d: np.save(d / "o.npy", np.array([{"a": 1}], dtype=object)), "Python objects, not numbers"),
    (lambda d: np.savez(d / "o.npz", x=np.ones(3)), "name one member as"),
    (lambda d: (d / "o.npy").write_bytes(b"not numpy"), "is not a NumPy .npy or .npz file"),
])
def test_bad_files_are_one_line(tmp_path, make, message):
    make(tmp_path)
    name = next(p for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=message):
        load_array(name)


def test_a_missing_npz_member_names_the_members(tmp_path):
    np.savez(tmp_path / "a.npz", feats=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"has no member 'nope' \(members: feats\)"):
        load_array(f"{tmp_path / 'a.npz'}:nope")


class _Rows:
    """A memory-mapped file as import sees it, recording the largest read (never a whole read)."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.ndim, self.largest = arr, arr.shape, arr.dtype, arr.ndim, 0

    def __getitem__(self, rows):
        got = self.arr[rows]
        self.largest = max(self.largest, len(got))
        return got


def test_a_large_file_streams_in_chunks(tmp_path, monkeypatch, arrays):
    _, _, W, b = arrays
    H = np.abs(np.random.default_rng(1).normal(size=(10_000, M))).astype(np.float32)
    spy = _Rows(H)
    monkeypatch.setattr("skdice.store._import.load_array", lambda spec: spy)
    monkeypatch.setattr("skdice.store._import.SCAN_ROWS", 1000)
    path = import_arrays(tmp_path / "s.zarr", "big", features="H.npy", weight=W, bias=b,
                         weight_layout="features-classes", model="m", chunk_rows=500)
    assert spy.largest == 1000  # the scan's block; the writes take 500
    np.testing.assert_array_equal(open_store(path).features("big"), H)


@pytest.mark.parametrize("change, message", [
    (lambda H, y, W, b: dict(features=np.where(np.arange(100)[:, None] == 7, np.nan, H)),
     "NaN or infinity .* at row 7"),
    (lambda H, y, W, b: dict(features=H.astype(np.float64) * np.where(np.arange(100)[:, None] == 3, 1e300, 1)),
     "NaN or infinity .* at row 3"),
    (lambda H, y, W, b: dict(labels=np.where(np.arange(100) == 9, C, y)), r"label 3 at row 9 is outside \[-1, 3\)"),
    (lambda H, y, W, b: dict(labels=y.astype(float)), "labels .* must hold integers"),
    (lambda H, y, W, b: dict(logits=H @ W), "logits differ from the features times the head"),
    (lambda H, y, W, b: dict(logits=(H @ W + b)[:, :2]), "logits .* have 2 classes but the head 3"),
    (lambda H, y, W, b: dict(labels=y[:50]), "labels .* have 50 rows but the features 100"),
    (lambda H, y, W, b: dict(weight_layout=None), "a weight needs its layout stated"),
    (lambda H, y, W, b: dict(weight_layout="classes-features"),
     "as classes-features has 3 features, but the features have 8 .*what weight_layout='features-classes'"),
    (lambda H, y, W, b: dict(weight=None, bias=None, weight_layout=None), "is a new store: give its head"),
    (lambda H, y, W, b: dict(model=None), "is a new store: give its head"),
    (lambda H, y, W, b: dict(features=H[:0]), "nothing to import"),
])
def test_bad_inputs_are_refused_before_anything_is_written(tmp_path, arrays, change, message):
    H, y, W, b = arrays
    kwargs = dict(features=H, labels=y, weight=W, bias=b, weight_layout="features-classes", model="m")
    kwargs.update(change(H, y, W, b))
    with pytest.raises(ValueError, match=message):
        import_arrays(tmp_path / "s.zarr", "test", **kwargs)
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("change, message", [
    (lambda H, W, b: dict(features=H[:, :5]), "holds features of width 8 .*these have 5"),
    (lambda H, W, b: dict(weight=W * 2, bias=b, weight_layout="features-classes"), "the head given .* differs"),
    (lambda H, W, b: dict(model="another"), "holds features of model 'toy', not 'another'"),
    (lambda H, W, b: dict(bias=b), "describe a weight: give weight= too"),
])
def test_an_existing_store_refuses_another_width_head_or_model(tmp_path, arrays, change, message):
    H, y, W, b = arrays
    path = tmp_path / "x.zarr"
    write_store(path, Head(W, b), {"train": H})
    before = sorted(p.name for p in path.iterdir())
    kwargs = dict(features=H)
    kwargs.update(change(H, W, b))
    with pytest.raises(ValueError, match=message):
        import_arrays(path, "more", **kwargs)
    assert sorted(p.name for p in path.iterdir()) == before


def test_import_extends_an_extracted_store_with_its_head(tmp_path, arrays):
    H, y, W, b = arrays
    path = tmp_path / "x.zarr"
    write_store(path, Head(W, b), {"train": H})
    import_arrays(path, "more", features=H[:10] * 3, weight=W, bias=b, weight_layout="features-classes")
    fs = open_store(path)
    assert fs.splits == ["more", "train"]
    np.testing.assert_allclose(fs.logits("more"), (H[:10] * 3) @ W + b, rtol=1e-5)
    assert verify_store(path).ok


def test_an_interrupted_import_resumes_bit_identical_and_refuses_other_data(tmp_path, monkeypatch, arrays):
    H, y, W, b = arrays
    whole = _new(tmp_path / "whole.zarr", H, y, W, b)
    real, calls = SplitWriter.write_chunk, []

    def once_then_stop(self, *args):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(SplitWriter, "write_chunk", once_then_stop)
    path = tmp_path / "s.zarr"
    with pytest.raises(KeyboardInterrupt):
        _new(path, H, y, W, b)
    with pytest.raises(IncompleteSplitError):
        open_store(path).features("test")
    with pytest.raises(StoreError, match="started with other settings .*content_fingerprint"):
        _new(path, H * 2, y, W, b)
    monkeypatch.setattr(SplitWriter, "write_chunk", real)
    _new(path, H, y, W, b)
    a, z = open_store(path), open_store(whole)
    assert calls[0] == 0  # one chunk was written before the interruption, and kept
    for name in ("features", "logits", "labels"):
        np.testing.assert_array_equal(getattr(a, name)("test"), getattr(z, name)("test"))
    assert a.paths("test") == z.paths("test") and a.manifest("test")["chunks"] == z.manifest("test")["chunks"]


def test_an_npz_member_holding_objects_is_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"o\.npz:x holds Python objects, not numbers \(pickles are never loaded\)"):
        load_array(f"{tmp_path / 'o.npz'}:x")
