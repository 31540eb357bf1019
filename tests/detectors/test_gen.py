"""GEN: minus the generalized entropy of the top-M softmax probabilities."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import softmax

from skdice import get_detector


def _reference(Z, gamma, M):
    P = np.sort(softmax(Z, axis=1), axis=1)[:, -M:]
    return -np.sum(P**gamma * (1 - P) ** gamma, axis=1)


def test_hand_case_two_equal_classes():
    # p = (1/2, 1/2), gamma = 1: G = 2 * 1/2 * 1/2 = 1/2
    H = np.ones((1, 1), dtype=np.float32)
    det = get_detector("gen", gamma=1.0).fit(H, np.ones((1, 2)))
    np.testing.assert_allclose(det.score_samples(H), [-0.5], rtol=1e-7)


@pytest.mark.parametrize(
    ("gamma", "M"), [(0.1, 100), (0.1, 3), (0.5, 5), (1.0, 1), (2.0, 12), (10.0, 4)]
)  # gamma above 1: OpenOOD's gen.yml sweeps it to 10
def test_matches_numpy_reference(gamma, M):
    H, W, b = random_problem(C=12)
    det = get_detector("gen", gamma=gamma, M=M).fit(H, W, b)
    Z = H.astype(np.float64) @ W + b
    # float32 logits: p^gamma carries gamma times their relative rounding error
    rtol = 1e-5 * max(gamma, 1.0)
    np.testing.assert_allclose(det.score_samples(H), _reference(Z, gamma, min(M, 12)), rtol=rtol)


def test_confident_rows_keep_their_order():
    # logit gaps of 30 and 35: 1 - p_max is about 1e-13 and 6e-16
    H = np.array([[30.0], [35.0]], dtype=np.float32)
    det = get_detector("gen").fit(H, np.array([[1.0, 0.0]]))
    scores = det.score_samples(H)
    assert scores[1] > scores[0]
    # two classes: p_max^g (1 - p_max)^g = p_min^g (1 - p_min)^g ~ exp(-30 g)
    expected = -2 * np.exp(-3.0)
    assert scores[0] == pytest.approx(expected, rel=1e-3)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("gen").fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95
