"""MSP, MaxLogit, Energy and ODIN: formulas, references and the sign convention."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import logsumexp, softmax

from skdice import get_detector
from skdice.detectors.baselines import (
    EnergyDetector,
    MaxLogitDetector,
    MSPDetector,
    ODINDetector,
)


def _logits(H, W, b):
    return H.astype(np.float64) @ W.astype(np.float64) + b


def test_msp_of_hand_made_logits():
    # logits (log 2, 0, 0): softmax (1/2, 1/4, 1/4)
    H = np.eye(3, dtype=np.float32)
    det = MSPDetector().fit(H, np.eye(3) * np.log(2.0))
    np.testing.assert_allclose(det.score_samples(H), 0.5, rtol=1e-6)


def test_maxlogit_and_energy_of_hand_made_logits():
    H = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    W = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert MaxLogitDetector().fit(H, W).score_samples(H).tolist() == [1.0, 2.0]
    energy = EnergyDetector().fit(H, W).score_samples(H)
    np.testing.assert_allclose(energy, [np.log(np.e + 1), np.log(1 + np.e**2)], rtol=1e-6)
    # T = 2: 2 log(exp(1/2) + 1)
    hot = EnergyDetector(temperature=2.0).fit(H, W).score_samples(H[:1])
    np.testing.assert_allclose(hot, [2 * np.log(np.exp(0.5) + 1)], rtol=1e-6)


def test_odin_of_hand_made_logits():
    # logits (1000, 0): softmax at T = 1000 is (e / (e + 1), 1 / (e + 1))
    H = np.array([[1000.0, 0.0]], dtype=np.float32)
    det = ODINDetector().fit(H, np.eye(2))
    np.testing.assert_allclose(det.score_samples(H), [np.e / (np.e + 1)], rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "params", "reference"),
    [
        ("msp", {}, lambda Z: softmax(Z, axis=1).max(axis=1)),
        ("maxlogit", {}, lambda Z: Z.max(axis=1)),
        ("energy", {}, lambda Z: logsumexp(Z, axis=1)),
        ("energy", {"temperature": 3.0}, lambda Z: 3.0 * logsumexp(Z / 3.0, axis=1)),
        ("odin", {}, lambda Z: softmax(Z / 1000.0, axis=1).max(axis=1)),
        ("odin", {"temperature": 10.0}, lambda Z: softmax(Z / 10.0, axis=1).max(axis=1)),
    ],
)
def test_scores_match_numpy_reference(name, params, reference):
    H, W, b = random_problem()
    det = get_detector(name, **params).fit(H, W, b)
    np.testing.assert_allclose(
        det.score_samples(H), reference(_logits(H, W, b)), rtol=1e-5
    )


def test_odin_keeps_order_at_high_temperature():
    H, W, b = random_problem(n=200)
    scores = ODINDetector().fit(H, W, b).score_samples(H)
    reference = softmax(_logits(H, W, b) / 1000.0, axis=1).max(axis=1)
    # the scores differ only in the 5th digit; their order must survive
    np.testing.assert_array_equal(np.argsort(scores), np.argsort(reference))


@pytest.mark.parametrize("name", ["msp", "maxlogit", "energy", "odin"])
def test_id_scores_higher_than_ood(name):
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector(name).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95


def test_energy_equals_dice_at_p_zero():
    H, W, b = random_problem()
    dense = get_detector("energy").fit(H, W, b).score_samples(H)
    dice = get_detector("dice", p=0.0).fit(H, W, b).score_samples(H)
    np.testing.assert_allclose(dense, dice, rtol=1e-6)


def test_temperature_must_be_positive():
    H, W, b = random_problem(n=20)
    with pytest.raises(ValueError, match="temperature"):
        EnergyDetector(temperature=0.0).fit(H, W, b)


def test_head_is_required():
    H, _, _ = random_problem(n=20)
    with pytest.raises(ValueError, match="needs the classifier head"):
        MSPDetector().fit(H)


def test_train_mean_is_refused_where_it_is_not_the_statistic():
    H, W, b = random_problem(n=20)
    with pytest.raises(ValueError, match="EnergyDetector does not accept train_mean"):
        EnergyDetector().fit(H, W, b, train_mean=H.mean(axis=0))
