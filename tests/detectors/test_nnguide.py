"""NNGuide: the energy times the mean guided similarity to the k nearest bank features."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import logsumexp
from scipy.stats import spearmanr

from skdice import get_detector
from skdice.detectors.nnguide import NNGuideDetector


def _official(H_train, H, W, b, k):
    """The authors' NNGuideOODDetector in float64: F.normalize'd features, the bank
    scaled by its energy, faiss IndexFlatIP's k largest inner products (a full sort
    here), their mean times the input's energy."""
    def unit(X):
        X = X.astype(np.float64)
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

    bank = unit(H_train) * logsumexp(H_train.astype(np.float64) @ W + b, axis=1)[:, None]
    D = np.sort(unit(H) @ bank.T, axis=1)[:, ::-1][:, :k]
    return D.mean(axis=1) * logsumexp(H.astype(np.float64) @ W + b, axis=1)


@pytest.mark.parametrize("k", [1, 10, 50])
def test_scores_equal_the_authors_nnguide(k):
    H, W, b = random_problem(n=300, m=24, C=7)
    queries = np.r_[H[:60], np.abs(np.random.default_rng(1).normal(size=(40, 24)))]
    det = NNGuideDetector(n_neighbors=k).fit(H, W, b)
    reference = _official(H, queries, W, b, k)
    # the bank is float32 (as the authors' features): compare to float32 rounding
    scores = det.score_samples(queries.astype(np.float64))
    assert spearmanr(scores, reference).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(scores, reference, rtol=1e-5)
    np.testing.assert_allclose(det.score_samples(queries), reference, rtol=1e-5)


def test_offset_is_calibrated_leaving_each_fitting_row_out():
    H, W, b = random_problem(n=200, m=16, C=5)
    det = NNGuideDetector(n_neighbors=5, tpr=0.9).fit(H, W, b)
    loo = np.array([_official(np.delete(H, i, axis=0), H[i : i + 1], W, b, 5)[0] for i in range(len(H))])
    np.testing.assert_allclose(det.offset_, np.quantile(loo, 0.1), rtol=1e-5)


def test_hand_case_one_neighbour():
    # identity head, bank rows (3, 0) and (0, 3): energies logsumexp(3, 0) on both
    H = np.array([[3.0, 0.0], [0.0, 3.0]])
    det = NNGuideDetector(n_neighbors=1).fit(H, np.eye(2), np.zeros(2))
    e = np.log(np.exp(3.0) + 1.0)
    np.testing.assert_allclose(det.bank_, [[e, 0.0], [0.0, e]], rtol=1e-6)
    # (1, 1): cosine 1/sqrt(2) with both, energy logsumexp(1, 1)
    np.testing.assert_allclose(det.score_samples([[1.0, 1.0]]), [e / np.sqrt(2) * np.log(2 * np.e)], rtol=1e-6)


def test_n_neighbors_may_not_exceed_the_bank():
    H, W, b = random_problem(n=8, m=4, C=3)
    with pytest.raises(ValueError, match="n_neighbors=10 exceeds the number of fitting rows: got 8"):
        NNGuideDetector().fit(H, W, b)
    with pytest.raises(ValueError, match="n_neighbors=10 exceeds the 8 fitting rows"):
        NNGuideDetector().effective_params(4, 3, 8)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("nnguide").fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9
