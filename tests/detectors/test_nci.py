"""NCI: alignment of the centred feature with the predicted class's weight, plus an L1 norm."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.stats import spearmanr

from skdice import get_detector
from skdice.detectors.nci import NCIDetector


def _official(H_train, H, W, b, alpha):
    """OpenOOD's NCIPostprocessor (the authors' code) in float64: with w = fc.weight
    (W.T here), sum(w[pred] * (h - mu), 1) / ||h - mu|| + alpha * ||h||_1."""
    H = H.astype(np.float64)
    mu = H_train.astype(np.float64).mean(axis=0)
    pred = (H @ W + b).argmax(axis=1)
    w = W.T.astype(np.float64)
    return np.sum(w[pred] * (H - mu), axis=1) / np.linalg.norm(H - mu, axis=1) + alpha * np.abs(H).sum(axis=1)


@pytest.mark.parametrize("alpha", [0.0, 1e-4, 0.1])
def test_scores_equal_the_official_nci(alpha):
    H, W, b = random_problem(n=300, m=24, C=7)
    queries = np.r_[H[:100], np.abs(np.random.default_rng(1).normal(size=(40, 24)))]
    det = NCIDetector(alpha=alpha).fit(H, W, b)
    reference = _official(H, queries, W, b, alpha)
    exact = det.score_samples(queries.astype(np.float64))
    assert spearmanr(exact, reference).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(exact, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(det.score_samples(queries), reference, rtol=1e-5, atol=1e-5)


def test_fits_from_the_mean_alone_and_streams():
    H, W, b = random_problem(n=300, m=24, C=7)
    whole = NCIDetector().fit(H, W, b)
    from_mean = NCIDetector().fit(W=W, b=b, train_mean=H.astype(np.float64).mean(axis=0))
    streamed = NCIDetector()
    for start in range(0, 300, 70):
        streamed.partial_fit(H[start : start + 70], **({"W": W, "b": b} if start == 0 else {}))
    for det in (from_mean, streamed):
        np.testing.assert_allclose(det.score_samples(H), whole.score_samples(H), rtol=1e-6)


def test_a_row_at_the_mean_has_zero_alignment():
    H = np.array([[1.0, 0.0], [3.0, 2.0]])
    det = NCIDetector(alpha=0.5).fit(H, np.eye(2), np.zeros(2))
    np.testing.assert_allclose(det.score_samples([[2.0, 1.0]]), [0.5 * 3.0])


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("nci").fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9
