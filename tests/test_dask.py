"""Dask: fit reduces the mean with Dask, score_samples is lazy, a distributed cluster scores a store."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from skdice import DICEDetector, Head, get_detector
from stores import write_store
from tolerances import reorder_bound

da = pytest.importorskip("dask.array")


def _problem(n=900, m=20, C=6, seed=0):
    rng = np.random.default_rng(seed)
    H = rng.gamma(2.0, size=(n, m)).astype(np.float32)
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    return H, W, b


def test_fit_on_a_dask_array_equals_fit_in_memory():
    H, W, b = _problem()
    full = DICEDetector(p=0.8).fit(H, W, b)
    det = DICEDetector(p=0.8).fit(da.from_array(H, chunks=(128, 7)), W, b)
    np.testing.assert_allclose(det.mean_feature_, full.mean_feature_, rtol=1e-12)
    np.testing.assert_array_equal(det.mask_, full.mask_)
    assert det.offset_ == pytest.approx(full.offset_, rel=1e-6)
    assert det.n_features_in_ == 20


def test_dask_fit_leaves_out_rows_marked_y_zero():
    H, W, b = _problem()
    y = (np.arange(len(H)) % 3 != 0).astype(int)
    det = DICEDetector().fit(da.from_array(H, chunks=100), y, W=W, b=b)
    np.testing.assert_allclose(det.mean_feature_, H[y == 1].astype(np.float64).mean(0), rtol=1e-12)


def test_score_samples_of_a_dask_array_is_lazy_and_row_chunked():
    H, W, b = _problem()
    det = DICEDetector(p=0.7).fit(H, W, b)
    X = da.from_array(H, chunks=(200, 5))  # several chunks across the features too
    scores = det.score_samples(X)
    assert isinstance(scores, da.Array)
    assert scores.chunks == ((200, 200, 200, 200, 100),)
    np.testing.assert_allclose(scores.compute(), det.score_samples(H), rtol=1e-12)


def test_the_detector_is_one_node_of_the_graph():
    H, W, b = _problem()
    det = DICEDetector().fit(H, W, b)
    graph = dict(det.score_samples(da.from_array(H, chunks=100)).__dask_graph__())
    holders = [key for key in graph if str(key).startswith("skdice-detector")]
    assert len(holders) == 1


def test_dask_input_errors():
    H, W, b = _problem()
    det = DICEDetector().fit(H, W, b)
    with pytest.raises(ValueError, match="is expecting 20 features"):
        det.score_samples(da.from_array(H[:, :5], chunks=100))
    with pytest.raises(ValueError, match="cannot be fitted out of core"):
        get_detector("mahalanobis").fit(da.from_array(H, chunks=100), np.zeros(len(H), int), W=W, b=b)
    bad = H.copy()
    bad[5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        DICEDetector().fit(da.from_array(bad, chunks=100), W, b)
    with pytest.raises(ValueError, match="needs the classifier head"):
        DICEDetector().fit(da.from_array(H, chunks=100))


def test_distributed_cluster_scores_a_split_larger_than_its_memory(tmp_path):
    """Two worker processes whose memory limit (320 MB each) is below the 491 MB split.

    A worker process starts at about 160-210 MB resident (Python, NumPy,
    scikit-learn, zarr, skdice), so the limit leaves room for a few 20 MB blocks
    and nothing more. Pausing is switched off: at distributed's default of 80%
    (256 MB) an idle worker could sit paused forever on a loaded CI machine,
    and the test is about memory, not about pausing; the nanny still kills a
    worker that passes 95% of its limit, which would fail the test.
    """
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    from skdice.store import open_store, read_scores
    from skdice.streaming import score_to_store

    n, m, C = 192_000, 640, 10
    limit = 320_000_000
    assert n * m * 4 > limit
    rng = np.random.default_rng(0)
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    path = tmp_path / "big.zarr"
    # a lazy split: write_store computes one 8000-row chunk at a time, never the 491 MB
    big = da.random.default_rng(0).random((n, m), dtype=np.float32, chunks=(8000, m))
    write_store(path, Head(W, b), {"big": (big, np.zeros(n, int))}, chunk_rows=8000, logits=False)
    det = DICEDetector(p=0.7).fit(head=Head(W, b), train_mean=np.full(m, 0.5))
    import dask

    with dask.config.set({"distributed.worker.memory.pause": False}), distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit=limit,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster) as client:
        limits = client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit)
        assert sorted(limits.values()) == [limit, limit]
        paused_at = client.run(lambda: dask.config.get("distributed.worker.memory.pause"))
        assert set(paused_at.values()) == {False}  # the setting reached the worker processes
        result = score_to_store(path, "big", det, scheduler=client, block_rows=8000)
    assert result["computed"] == n
    fs = open_store(path)
    blocks = [X for _, X in fs.iter_features("big")]
    expected = np.concatenate([det.score_samples(X) for X in blocks])
    # float32 rows scored in other batches than the reference's: the float32 reordering
    # bound (tests/tolerances.py), with |h| <= 1 (uniform features) bounding sum |h_j w_jc|
    atol = reorder_bound(np.float32, m, np.abs(W).sum(axis=0).max())
    np.testing.assert_allclose(read_scores(path, "big", "dice"), expected, rtol=0, atol=atol)


def test_threaded_dask_scores_match_numpy_on_a_store(tmp_path):
    pytest.importorskip("zarr")
    from skdice.store import open_store

    H, W, b = _problem(n=1000)
    write_store(tmp_path / "s.zarr", Head(W, b), {"id": (H, np.zeros(len(H), int))}, chunk_rows=128)
    X = open_store(tmp_path / "s.zarr").features("id", dask=True)
    det = DICEDetector(p=0.6).fit(X, W, b)
    np.testing.assert_allclose(det.score_samples(X).compute(), DICEDetector(p=0.6).fit(H, W, b).score_samples(H), rtol=1e-6)


def test_cli_score_and_evaluate_run_on_a_scheduler(tmp_path, monkeypatch):
    """`--scheduler ADDRESS` (and SKDICE_SCHEDULER) put the work on a running cluster."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from skdice.cli.app import app
    from skdice.persistence import save_detector
    from skdice.store import read_scores

    H, W, b = _problem(n=600)
    splits = {"id": (H[:300], np.zeros(300, int)), "ood": (H[300:] * 3, np.zeros(300, int))}
    write_store(tmp_path / "s.zarr", Head(W, b), splits, chunk_rows=64, logits=False)
    det = DICEDetector(p=0.7).fit(H[:300], W, b)
    save_detector(det, tmp_path / "d.npz")
    monkeypatch.delenv("SKDICE_SCHEDULER", raising=False)
    import dask

    with dask.config.set({"distributed.worker.memory.pause": False}), distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        address = cluster.scheduler_address
        runner = CliRunner()
        result = runner.invoke(app, ["score", str(tmp_path / "s.zarr"), "--split", "ood",
                                     "--detector", str(tmp_path / "d.npz"), "--scheduler", address])
        assert result.exit_code == 0, result.output
        with distributed.Client(address) as client:
            # only this test's tasks ran there: the scheduler saw the scoring
            assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter) > 0
        monkeypatch.setenv("SKDICE_SCHEDULER", address)
        result = runner.invoke(app, ["evaluate", str(tmp_path / "s.zarr"), "--id", "id",
                                     "--ood", "ood", "--train-mean", str(_save_mean(tmp_path, H))])
        assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_scores(tmp_path / "s.zarr", "ood", "dice"), det.score_samples(H[300:] * 3), rtol=1e-12)
    monkeypatch.setattr("skdice.workflows.cluster._CONNECT_TIMEOUT", "1s")
    result = CliRunner().invoke(app, ["score", str(tmp_path / "s.zarr"), "--split", "id",
                                      "--detector", str(tmp_path / "d.npz"), "--scheduler", "tcp://127.0.0.1:9"])
    assert isinstance(result.exception, ValueError)  # the CLI's main() prints it as one line
    assert "could not connect to the dask scheduler at 'tcp://127.0.0.1:9'" in str(result.exception)


def _save_mean(tmp_path, H):
    path = tmp_path / "mean.npy"
    np.save(path, H[:300].astype(np.float64).mean(axis=0))
    return path
