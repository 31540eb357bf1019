"""KNN: negative distance to the k-th nearest normalised training feature."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem

from skdice import get_detector
from skdice.detectors.knn import KNNDetector
from skdice.exceptions import MissingExtraError


def _reference(train, query, k):
    a = train / (np.linalg.norm(train, axis=1, keepdims=True) + 1e-10)
    q = query / (np.linalg.norm(query, axis=1, keepdims=True) + 1e-10)
    d = np.sqrt(((q[:, None, :] - a[None, :, :]) ** 2).sum(axis=2))
    return -np.sort(d, axis=1)[:, k - 1]


def test_hand_case_direction_only():
    H = np.array([[1.0, 0.0], [0.0, 2.0]])
    det = KNNDetector(n_neighbors=1, backend="sklearn").fit(H)
    # (3, 3) normalises to (1, 1)/sqrt 2: distance to (1, 0) is sqrt(2 - sqrt 2)
    expected = -np.sqrt(2 - np.sqrt(2))
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
    d = np.sqrt(((a[:, None] - a[None]) ** 2).sum(axis=2))
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
