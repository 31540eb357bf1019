"""KNN: negative squared distance to the k-th nearest normalised training feature."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem

from skdice import get_detector
from skdice.detectors.knn import KNNDetector
from skdice.exceptions import MissingExtraError


def _reference(train, query, k):
    # the KNN authors' run_cifar.py: -D[:, -1] with D faiss IndexFlatL2's squared L2
    a = train / (np.linalg.norm(train, axis=1, keepdims=True) + 1e-10)
    q = query / (np.linalg.norm(query, axis=1, keepdims=True) + 1e-10)
    d2 = ((q[:, None, :] - a[None, :, :]) ** 2).sum(axis=2)
    return -np.sort(d2, axis=1)[:, k - 1]


def test_hand_case_direction_only():
    H = np.array([[1.0, 0.0], [0.0, 2.0]])
    det = KNNDetector(n_neighbors=1, backend="sklearn").fit(H)
    # (3, 3) normalises to (1, 1)/sqrt 2: squared distance to (1, 0) is 2 - sqrt 2
    expected = -(2 - np.sqrt(2))
    np.testing.assert_allclose(det.score_samples([[3.0, 3.0]]), [expected], rtol=1e-6)
    assert det.score_samples([[7.0, 0.0]])[0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("k", [1, 5, 50])
def test_matches_numpy_reference(k):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 16)).astype(np.float32)
    query = rng.normal(size=(40, 16)).astype(np.float32)
    det = KNNDetector(n_neighbors=k, backend="sklearn").fit(train)
    np.testing.assert_allclose(det.score_samples(query), _reference(train, query, k), rtol=1e-5)


def test_offset_scores_fitting_rows_without_themselves():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(100, 8))
    det = KNNDetector(n_neighbors=3, backend="sklearn", tpr=0.9).fit(train)
    a = train / np.linalg.norm(train, axis=1, keepdims=True)
    d = ((a[:, None] - a[None]) ** 2).sum(axis=2)  # squared, as the score
    np.fill_diagonal(d, np.inf)
    loo = -np.sort(d, axis=1)[:, 2]
    assert det.offset_ == pytest.approx(np.quantile(loo, 0.1), rel=1e-5)


def test_too_few_rows_and_missing_faiss_are_explained(monkeypatch):
    message = r"n_neighbors=50 exceeds the number of fitting rows: got 10 sample\(s\)"
    with pytest.raises(ValueError, match=message):
        KNNDetector().fit(np.ones((10, 3)))
    monkeypatch.setattr("skdice.detectors.knn._faiss_available", lambda: False)
    with pytest.raises(MissingExtraError, match="pip install faiss-cpu"):
        KNNDetector(n_neighbors=1, backend="faiss").fit(np.ones((10, 3)))


def test_faiss_backend_agrees_with_sklearn():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    train = rng.normal(size=(300, 16)).astype(np.float32)
    a = KNNDetector(n_neighbors=10, backend="faiss").fit(train).score_samples(train[:50])
    b = KNNDetector(n_neighbors=10, backend="sklearn").fit(train).score_samples(train[:50])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("knn", n_neighbors=10, backend="sklearn").fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95


def test_faiss_path_builds_one_index_and_matches_sklearn(monkeypatch):
    # a stand-in for faiss's exact IndexFlatL2 (squared L2 distances, ascending),
    # so that the faiss code path runs where faiss is not installed
    import importlib.machinery
    import sys
    import types

    from sklearn import config_context

    built = []

    class IndexFlatL2:
        def __init__(self, d):
            self.d, self.data = d, np.empty((0, d), np.float32)
            built.append(self)

        def add(self, x):
            self.data = np.vstack([self.data, x])

        def search(self, x, k):
            sq = ((x[:, None, :] - self.data[None]) ** 2).sum(axis=2)
            idx = np.argsort(sq, axis=1)[:, :k]
            return np.take_along_axis(sq, idx, axis=1).astype(np.float32), idx

    fake = types.ModuleType("faiss")
    fake.__spec__ = importlib.machinery.ModuleSpec("faiss", None)
    fake.IndexFlatL2 = IndexFlatL2
    monkeypatch.setitem(sys.modules, "faiss", fake)

    rng = np.random.default_rng(2)
    train = rng.normal(size=(200, 8)).astype(np.float32)
    det = KNNDetector(n_neighbors=7, backend="faiss").fit(train)
    with config_context(working_memory=0.01):  # many chunks
        scores = det.score_samples(train[:60])
    assert len(built) == 1  # one index for all chunks
    reference = KNNDetector(n_neighbors=7, backend="sklearn").fit(train).score_samples(train[:60])
    np.testing.assert_allclose(scores, reference, rtol=1e-4, atol=1e-6)
    assert not det.train_features_.flags.writeable
    import pickle

    assert not pickle.loads(pickle.dumps(det)).train_features_.flags.writeable


def test_score_is_the_official_squared_distance_not_the_distance():
    # two training directions at right angles: a query along the first is at
    # squared distance 2 from the second (distance sqrt 2); the official
    # score with k = 2 is -2, and the offset uses the same squared scale
    H = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0]])
    det = KNNDetector(n_neighbors=2, backend="sklearn", tpr=0.5).fit(H)
    np.testing.assert_allclose(det.score_samples([[0.0, 5.0]]), [-2.0], rtol=1e-6)
    # leave-one-out: rows 0 and 2 have each other at 0 and row 1 at 2; row 1 has 2 and 2
    assert det.offset_ == pytest.approx(-2.0)
