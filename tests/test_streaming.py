"""Out-of-core fitting and scoring: partial_fit, fit_store, score_to_store."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skdice import DICEDetector, Head, get_detector
from skdice.exceptions import IncompleteSplitError, StoreError

zarr = pytest.importorskip("zarr")

from skdice.store import create_store, open_scores_writer, read_scores  # noqa: E402
from skdice.streaming import (  # noqa: E402
    SCHEDULER_ENV,
    block_rows_for,
    calibrate_offset,
    dask_client,
    detector_fingerprint,
    fit_store,
    iter_blocks,
    resolve_scheduler,
    score_to_store,
)
from stores import write_store  # noqa: E402


def _problem(n=600, m=12, C=5, seed=0):
    rng = np.random.default_rng(seed)
    H = rng.gamma(2.0, size=(n, m)).astype(np.float32)
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    return H, W, b


def _reference_scores(H, W, b, mean, p):
    """Plain NumPy DICE in float64, independent of skdice."""
    V = mean[:, None] * W.astype(np.float64)
    keep = np.ones_like(V, bool) if p == 0 else V > np.percentile(V, 100 * p)
    Z = H.astype(np.float64) @ (W * keep) + b
    top = Z.max(axis=1)
    return top + np.log(np.exp(Z - top[:, None]).sum(axis=1))


def _write_store(path, H, W, b):
    """One split 'train' in chunks of 64 rows; logits zeros (H may hold NaN), labels 0."""
    write_store(path, Head(W, b), {"train": (H, np.zeros(len(H), int))}, chunk_rows=64, logits=False)
    return path


@pytest.fixture
def store(tmp_path):
    H, W, b = _problem()
    return _write_store(tmp_path / "f.zarr", H, W, b), H, W, b


# ------------------------------------------------------------------ partial_fit
def test_partial_fit_equals_fit_for_a_fixed_chunking():
    H, W, b = _problem()
    full = DICEDetector(p=0.8).fit(H, W, b)
    det = DICEDetector(p=0.8)
    det.partial_fit(H[:100], W, b)
    for start in range(100, len(H), 137):
        det.partial_fit(H[start : start + 137])
    assert det.n_samples_seen_ == len(H)
    np.testing.assert_allclose(det.mean_feature_, H.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_array_equal(det.mask_, full.mask_)
    np.testing.assert_allclose(
        det.score_samples(H), _reference_scores(H, W, b, H.astype(np.float64).mean(0), 0.8), rtol=1e-5
    )


@given(cuts=st.lists(st.integers(1, 599), max_size=8, unique=True))
def test_partial_fit_mean_is_invariant_to_chunking(cuts):
    H, W, b = _problem()
    det = DICEDetector(p=0.5)
    bounds = [0, *sorted(cuts), len(H)]
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        det.partial_fit(H[lo:hi], head=Head(W, b) if i == 0 else None)
    np.testing.assert_allclose(det.mean_feature_, H.astype(np.float64).mean(0), rtol=1e-12)
    assert det.n_samples_seen_ == len(H)


def test_partial_fit_skips_rows_marked_y_zero():
    H, W, b = _problem()
    y = np.r_[np.ones(400), np.zeros(200)]
    det = DICEDetector().partial_fit(H, y, W=W, b=b)
    np.testing.assert_allclose(det.mean_feature_, H[:400].astype(np.float64).mean(0), rtol=1e-12)
    assert det.n_samples_seen_ == 400


def test_partial_fit_leaves_offset_uncalibrated_until_calibrate_offset():
    H, W, b = _problem()
    det = DICEDetector(p=0.7).partial_fit(H, W, b)
    assert np.isnan(det.offset_)
    with pytest.raises(ValueError, match="offset_ is not calibrated"):
        det.predict(H)
    calibrate_offset(det, (H[i : i + 50] for i in range(0, len(H), 50)))
    full = DICEDetector(p=0.7).fit(H, W, b)
    assert det.offset_ == pytest.approx(full.offset_, rel=1e-6)


def test_partial_fit_errors_say_what_is_wrong():
    H, W, b = _problem()
    with pytest.raises(ValueError, match="first DICEDetector.partial_fit call needs the classifier head"):
        DICEDetector().partial_fit(H)
    det = DICEDetector().partial_fit(H, W, b)
    with pytest.raises(ValueError, match="takes the head on its first call only"):
        det.partial_fit(H, W, b)
    with pytest.raises(ValueError, match="X has 11 features, but DICEDetector is expecting 12"):
        det.partial_fit(H[:, :-1])
    with pytest.raises(ValueError, match="has seen no in-distribution rows"):
        DICEDetector().partial_fit(H, np.zeros(len(H)), W=W, b=b)
    with pytest.raises(ValueError, match="'p' parameter of DICEDetector must be a float in the range"):
        DICEDetector(p=1.5).partial_fit(H, W, b)


def test_fit_starts_a_new_stream():
    H, W, b = _problem()
    det = DICEDetector().partial_fit(H[:100], W, b)
    det.fit(H[100:], W, b)
    assert not hasattr(det, "n_samples_seen_")
    det.partial_fit(H[:10], W, b)  # a new stream: the head is taken again
    assert det.n_samples_seen_ == 10
    np.testing.assert_allclose(det.mean_feature_, H[:10].astype(np.float64).mean(0), rtol=1e-12)


def test_partial_fit_exists_only_for_mean_statistics():
    assert hasattr(DICEDetector(), "partial_fit")
    assert not hasattr(get_detector("energy"), "partial_fit")


# ------------------------------------------------------------------ blocks
class _RecordingArray:
    """Array stand-in recording every slice read from it."""

    def __init__(self, data, chunk):
        self.data, self.shape, self.dtype, self.chunks = data, data.shape, data.dtype, (chunk, data.shape[1])
        self.reads = []

    def __getitem__(self, key):
        self.reads.append((key.start, key.stop))
        return self.data[key]


@pytest.mark.parametrize("prefetch", [False, True])
def test_iter_blocks_reads_each_row_once_in_bounded_blocks(prefetch):
    data = np.arange(1000 * 4, dtype=np.float32).reshape(1000, 4)
    arr = _RecordingArray(data, chunk=30)
    blocks = list(iter_blocks(arr, 90, prefetch=prefetch))
    assert [s for s, _ in blocks] == list(range(0, 1000, 90))
    np.testing.assert_array_equal(np.concatenate([blk for _, blk in blocks]), data)
    assert max(stop - start for start, stop in arr.reads) == 90


def test_iter_blocks_reads_at_most_two_blocks_ahead_and_stops_when_closed():
    data = np.zeros((1000, 4), np.float32)
    arr = _RecordingArray(data, chunk=10)
    blocks = iter_blocks(arr, 100)
    start, _ = next(blocks)
    assert start == 0 and len(arr.reads) <= 3  # the block handed out and two in flight
    blocks.close()  # waits for the reads already running, cancels the rest
    assert len(arr.reads) <= 3 and sorted(arr.reads)[0] == (0, 100)


def test_iter_blocks_reraises_a_failed_read_at_its_block():
    class Failing(_RecordingArray):
        def __getitem__(self, key):
            if key.start == 300:
                raise OSError("chunk c/3/0 unreadable")
            return super().__getitem__(key)

    arr = Failing(np.ones((1000, 4), np.float32), chunk=10)
    seen = []
    with pytest.raises(OSError, match="chunk c/3/0 unreadable"):
        for start, _ in iter_blocks(arr, 100):
            seen.append(start)
    assert seen == [0, 100, 200]


def test_block_rows_is_a_whole_number_of_store_chunks():
    arr = _RecordingArray(np.zeros((10, 256), np.float32), chunk=30)
    rows = block_rows_for(arr, target_bytes=2**20)
    assert rows % 30 == 0 and rows * 256 * 4 <= 2**20
    assert block_rows_for(arr, target_bytes=1) == 30


# ------------------------------------------------------------------ fit_store
def test_fit_store_exact_equals_in_memory_fit(store):
    path, H, W, b = store
    full = DICEDetector(p=0.8).fit(H, W, b)
    det = fit_store(DICEDetector(p=0.8), path, "train", calibration="exact", block_rows=128)
    np.testing.assert_allclose(det.mean_feature_, full.mean_feature_, rtol=1e-12)
    np.testing.assert_array_equal(det.mask_, full.mask_)
    assert det.offset_ == pytest.approx(full.offset_, rel=1e-6)
    assert det.n_samples_seen_ == len(H)


def test_fit_store_sample_calibration_is_exact_when_the_sample_is_the_split(store):
    path, H, W, b = store
    full = DICEDetector(p=0.8).fit(H, W, b)
    det = fit_store(DICEDetector(p=0.8), path, "train", calibration_rows=len(H))
    assert det.offset_ == pytest.approx(full.offset_, rel=1e-6)


def test_fit_store_sample_calibration_keeps_about_tpr(store):
    path, H, W, b = store
    det = fit_store(DICEDetector(p=0.8, tpr=0.9), path, "train", calibration_rows=300, random_state=1)
    kept = np.mean(det.score_samples(H) >= det.offset_)
    assert abs(kept - 0.9) < 0.05  # 300 draws: standard error about 0.012


@pytest.mark.parametrize("calibration, total", [("sample", 600), ("none", 600), ("exact", 1200)])
def test_fit_store_reports_progress_in_rows_over_every_pass(store, calibration, total):
    path, H, W, b = store
    calls = []
    fit_store(DICEDetector(), path, "train", calibration=calibration, block_rows=128,
              progress=lambda done, of: calls.append((done, of)))
    first = [(d, total) for d in (128, 256, 384, 512, 600)]
    second = [(600 + d, total) for d in (128, 256, 384, 512, 600)]
    assert calls == (first + second if calibration == "exact" else first)


def test_fit_store_stops_reading_at_the_block_that_fails(tmp_path, monkeypatch):
    from skdice.store import FeatureStore

    H, W, b = _problem(n=1280)
    H[300, 4] = np.nan
    path = _write_store(tmp_path / "bad.zarr", H, W, b)
    reads = []
    real = FeatureStore.array

    class Counting:
        def __init__(self, arr):
            self.arr, self.shape, self.dtype, self.chunks = arr, arr.shape, arr.dtype, arr.chunks

        def __getitem__(self, key):
            reads.append(key.start)
            return self.arr[key]

    monkeypatch.setattr(FeatureStore, "array", lambda self, split, name: Counting(real(self, split, name)))
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 300\)"):
        fit_store(DICEDetector(), path, "train", block_rows=128)
    # the failing block (rows 256-383) is consumed while at most two more are read ahead
    assert sorted(reads)[:3] == [0, 128, 256] and max(reads) <= 512


def test_fit_store_errors(store, tmp_path):
    path, H, W, b = store
    with pytest.raises(ValueError, match="calibration must be"):
        fit_store(DICEDetector(), path, "train", calibration="all")
    with pytest.raises(ValueError, match="cannot be fitted out of core"):
        fit_store(get_detector("energy"), path, "train")
    with pytest.raises(ValueError, match=r"ReActDetector is not fitted from a mean feature: fit it on the split read in passes"):
        fit_store(get_detector("react"), path, "train")
    with pytest.raises(StoreError, match="no split 'val'"):
        fit_store(DICEDetector(), path, "val")
    writer = create_store(path, model="toy", head=Head(W, b))
    writer.prepare_split("half", 100, source="toy", chunk_rows=50).close()
    with pytest.raises(IncompleteSplitError, match="incomplete"):
        fit_store(DICEDetector(), path, "half")


# ------------------------------------------------------------------ score_to_store
def test_score_to_store_writes_the_in_memory_scores(store):
    path, H, W, b = store
    det = DICEDetector(p=0.7).fit(H, W, b)
    result = score_to_store(path, "train", det, block_rows=128)
    assert result == {"written": "train/scores/dice", "n": 600, "resumed_from": 0, "computed": 600}
    np.testing.assert_allclose(read_scores(path, "train", "dice"), det.score_samples(H), rtol=1e-12)


def test_score_to_store_resumes_after_an_interruption(store):
    path, H, W, b = store
    det = DICEDetector(p=0.7).fit(H, W, b)

    def interrupt(done, n):
        if done >= 256:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_to_store(path, "train", det, block_rows=128, progress=interrupt)
    with pytest.raises(IncompleteSplitError, match="256 of 600 rows"):
        read_scores(path, "train", "dice")
    result = score_to_store(path, "train", det, block_rows=128)
    assert (result["resumed_from"], result["computed"]) == (256, 344)
    np.testing.assert_allclose(read_scores(path, "train", "dice"), det.score_samples(H), rtol=1e-12)
    again = score_to_store(path, "train", det, block_rows=128)
    assert again["computed"] == 0


def test_score_to_store_never_mixes_two_detectors(store):
    path, H, W, b = store
    score_to_store(path, "train", DICEDetector(p=0.7).fit(H, W, b), block_rows=128)
    other = DICEDetector(p=0.5).fit(H, W, b)
    with pytest.raises(StoreError, match="written by another detector"):
        score_to_store(path, "train", other, block_rows=128)
    score_to_store(path, "train", other, block_rows=128, overwrite=True)
    np.testing.assert_allclose(read_scores(path, "train", "dice"), other.score_samples(H), rtol=1e-12)


def test_second_scorer_of_the_same_array_is_refused_and_lock_released(store):
    import json
    from pathlib import Path

    from skdice.store import scores_lock

    path, H, W, b = store
    det = DICEDetector(p=0.7).fit(H, W, b)
    held = scores_lock(Path(path), "train", "dice")
    held.acquire()  # another live writer (this process) holds the array
    try:
        with pytest.raises(StoreError, match=r"scores train/scores/dice .* a second writer is refused.*skdice score"):
            score_to_store(path, "train", det, block_rows=128)
    finally:
        held.release()
    # a lock left by a dead process on this host is stale and taken over
    held.path.write_text(json.dumps({"pid": 2**22 + 12345, "host": __import__("socket").gethostname()}))
    assert score_to_store(path, "train", det, block_rows=128)["computed"] == 600
    assert not held.path.exists()  # released after the run, as after an error


def test_score_to_store_refuses_another_width(store, tmp_path):
    path, H, W, b = store
    det = DICEDetector().fit(H[:, :5], W[:5], b)
    with pytest.raises(ValueError, match="has 12 features but the detector was fitted on 5"):
        score_to_store(path, "train", det)


def test_scores_writer_checks_order_and_names(store):
    path, *_ = store
    writer = open_scores_writer(path, "train", "x", chunk_rows=100, fingerprint="f")
    with pytest.raises(ValueError, match="in order in whole chunks of 100 rows"):
        writer.write(100, np.zeros(100))
    with pytest.raises(IncompleteSplitError, match="0 of 600 rows"):
        writer.finalize()
    with pytest.raises(StoreError, match="invalid score name"):
        open_scores_writer(path, "train", "a/b", chunk_rows=100, fingerprint="f")
    with pytest.raises(StoreError, match="no scores train/scores/y"):
        read_scores(path, "train", "y")


def test_fingerprint_tells_fitted_detectors_apart():
    H, W, b = _problem()
    a = detector_fingerprint(DICEDetector(p=0.7).fit(H, W, b))
    assert a == detector_fingerprint(DICEDetector(p=0.7).fit(H, W, b))
    assert a != detector_fingerprint(DICEDetector(p=0.6).fit(H, W, b))
    assert a != detector_fingerprint(DICEDetector(p=0.7).fit(H[:300], W, b))


# ------------------------------------------------------------------ schedulers
def test_scheduler_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert resolve_scheduler() is None
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://env:8786")
    assert resolve_scheduler() == "tcp://env:8786"
    assert resolve_scheduler("tcp://arg:8786") == "tcp://arg:8786"
    assert resolve_scheduler("") is None


def test_no_scheduler_means_no_client(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    with dask_client() as client:
        assert client is None


def test_unreachable_scheduler_is_one_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    with pytest.raises(ValueError, match="could not connect to the dask scheduler at 'tcp://127.0.0.1:9'"):
        with dask_client("tcp://127.0.0.1:9", timeout="1s"):
            pass


def test_fit_store_reports_the_first_non_finite_row(tmp_path):
    H, W, b = _problem()
    H[300, 4] = np.inf
    path = _write_store(tmp_path / "bad.zarr", H, W, b)
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 300\)"):
        fit_store(DICEDetector(), path, "train", block_rows=128)
