"""DICE + MSP (Table 9): DICE's mask under the maximum softmax."""

import numpy as np
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import softmax

from skdice import DICEDetector, get_detector


def test_masked_logits_under_softmax():
    H, W, b = random_problem()
    det = get_detector("dice-msp", p=0.7).fit(H, W, b)
    mean = H.astype(np.float64).mean(axis=0)
    V = mean[:, None] * W
    masked = np.where(V > np.percentile(V, 70), W, 0).astype(np.float64)
    reference = softmax(H.astype(np.float64) @ masked + b, axis=1).max(axis=1)
    np.testing.assert_allclose(det.score_samples(H), reference, rtol=1e-5)


def test_same_mask_as_dice_and_msp_at_p_zero():
    H, W, b = random_problem()
    det = get_detector("dice-msp", p=0.9).fit(H, W, b)
    np.testing.assert_array_equal(det.mask_, DICEDetector(p=0.9).fit(H, W, b).mask_)
    dense = get_detector("dice-msp", p=0.0).fit(H, W, b).score_samples(H)
    np.testing.assert_allclose(dense, get_detector("msp").fit(H, W, b).score_samples(H), rtol=1e-6)


def test_hand_checkable_case():
    # one unit, two classes, mean feature 1: V = W = [[log 3, -1]]; p = 0.5 keeps only log 3
    H = np.ones((4, 1), dtype=np.float32)
    det = get_detector("dice-msp", p=0.5).fit(H, np.array([[np.log(3.0), -1.0]]))
    np.testing.assert_allclose(det.score_samples(H[:1]), [0.75], rtol=1e-6)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("dice-msp", p=0.5).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95
