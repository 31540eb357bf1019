"""KL matching: minus the KL divergence from the softmax to the nearest class template."""

import warnings

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import softmax
from scipy.stats import entropy, spearmanr

from skdice import get_detector
from skdice.detectors.klm import KLMatchingDetector


def _official(H_fit, H, W, b):
    """OpenOOD's KLMatchingPostprocessor in float64: templates are the mean softmax of
    the rows predicted as each class (one-hot for a class never predicted), the score
    minus the smallest scipy.stats.entropy(p, template) (pairwise_distances_argmin_min)."""
    P_fit = softmax(H_fit.astype(np.float64) @ W + b, axis=1)
    pred = P_fit.argmax(axis=1)
    C = W.shape[1]
    templates = [P_fit[pred == c].mean(axis=0) if np.any(pred == c) else np.eye(C)[c] for c in range(C)]
    P = softmax(H.astype(np.float64) @ W + b, axis=1)
    return -np.array([min(entropy(p, q) for q in templates) for p in P])


@pytest.mark.filterwarnings("ignore:KLMatchingDetector. the head predicts no fitting row")
def test_scores_equal_openoods_kl_matching():
    H, W, b = random_problem(n=300, m=24, C=7)
    queries = np.r_[H[:100], np.abs(np.random.default_rng(1).normal(size=(40, 24)))]
    det = KLMatchingDetector().fit(H, W, b)
    reference = _official(H, queries, W, b)
    exact = det.score_samples(queries.astype(np.float64))
    assert spearmanr(exact, reference).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(exact, reference, rtol=1e-9, atol=1e-12)
    # float32: the divergences of order 1 to float32 rounding
    np.testing.assert_allclose(det.score_samples(queries), reference, rtol=0, atol=2e-5)


def test_a_class_never_predicted_gets_a_one_hot_template_and_infinite_divergence():
    # class 2's logit is always far below the others: no fitting row is predicted as it
    rng = np.random.default_rng(2)
    H = np.abs(rng.normal(size=(60, 3)))
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    b = np.array([0.0, 0.0, -5.0])
    with pytest.warns(UserWarning, match=r"predicts no fitting row as class\(es\) \[2\]"):
        det = KLMatchingDetector().fit(H, W, b)
    np.testing.assert_array_equal(det.templates_[2], [0.0, 0.0, 1.0])
    assert det.class_counts_[2] == 0
    np.testing.assert_allclose(det.score_samples(H[:20].astype(np.float64)), _official(H, H[:20], W, b), rtol=1e-9)


def test_hand_case_template_equals_softmax_scores_zero():
    # one class only predicted, by one row: its template is that row's softmax
    H = np.array([[2.0, 0.0], [1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # class 1 is never predicted
        det = KLMatchingDetector().fit(H[:1], np.eye(2), np.zeros(2))
    np.testing.assert_allclose(det.templates_[0], softmax([2.0, 0.0]))
    p, q = softmax([1.0, 0.0]), softmax([2.0, 0.0])
    np.testing.assert_allclose(det.score_samples(H), [0.0, -np.sum(p * np.log(p / q))], atol=1e-12)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("klm").fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9


def test_templates_with_underflowed_zeros_block_only_where_the_softmax_has_mass():
    # class 1's fitting rows have logits 1000 apart: its template is exactly (0, 1, 0)
    H = np.array([[2.0, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1000.0, 0.0], [0.0, 1000.0, 0.0], [0.0, 0.0, 3.0]])
    W, b = np.eye(3), np.zeros(3)
    det = KLMatchingDetector().fit(H, W, b)
    np.testing.assert_array_equal(det.templates_[1], [0.0, 1.0, 0.0])
    assert det._zero_classes.tolist() == [1] and det._one_hot_classes.size == 0
    queries = np.array([[0.0, 1000.0, 0.0], [1.0, 1.0, 1.0], [3.0, 0.0, 0.0]])
    scores = det.score_samples(queries)
    np.testing.assert_allclose(scores, _official(H, queries, W, b), rtol=1e-9, atol=1e-12)
    assert scores[0] == 0.0  # the softmax equals class 1's template
