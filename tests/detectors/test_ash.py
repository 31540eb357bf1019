"""ASH-P, ASH-B, ASH-S and SCALE: per-row shaping, then energy."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import logsumexp

from skdice import get_detector


def _shape(name, H, percentile):
    """The ASH / SCALE rules written from the papers, row by row, in float64."""
    H = H.astype(np.float64)
    out = np.zeros_like(H)
    m = H.shape[1]
    k = max(m - int(np.round(m * percentile / 100.0)), 1)
    for i, row in enumerate(H):
        top = np.argsort(row)[::-1][:k]
        s1, s2 = row.sum(), row[top].sum()
        if name == "ash-p":
            out[i, top] = row[top]
        elif name == "ash-b":
            out[i, top] = s1 / k
        elif name == "ash-s":
            out[i, top] = row[top] * np.exp(s1 / s2)
        elif name == "scale":
            out[i] = row * np.exp(s1 / s2)
    return out


def test_hand_case_four_units():
    # h = (4, 3, 2, 1), percentile 50: k = 2, top = {4, 3}, s1 = 10, s2 = 7
    H = np.array([[4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    W = np.c_[np.eye(4)[:, 0], np.zeros(4)]  # logits (h'_0, 0)
    scaled = 4.0 * np.exp(10 / 7)
    expected_first_logit = {"ash-p": 4.0, "ash-b": 5.0, "ash-s": scaled, "scale": scaled}
    for name, z in expected_first_logit.items():
        det = get_detector(name, percentile=50).fit(H, W)
        np.testing.assert_allclose(det.score_samples(H), [np.logaddexp(z, 0.0)], rtol=1e-6)


@pytest.mark.parametrize("name", ["ash-p", "ash-b", "ash-s", "scale"])
@pytest.mark.parametrize("percentile", [50, 85])
def test_matches_numpy_reference(name, percentile):
    H, W, b = random_problem(m=40, C=10)
    det = get_detector(name, percentile=percentile).fit(H, W, b)
    reference = logsumexp(_shape(name, H, percentile) @ W.astype(np.float64) + b, axis=1)
    np.testing.assert_allclose(det.score_samples(H), reference, rtol=1e-5)


def test_paper_defaults():
    assert get_detector("ash-p").percentile == 60
    assert get_detector("ash-b").percentile == 65
    assert get_detector("ash-s").percentile == 90
    assert get_detector("scale").percentile == 85


def test_all_zero_row_is_finite():
    H, W, b = random_problem(n=20)
    H[0] = 0
    for name in ("ash-s", "scale", "ash-b", "ash-p"):
        scores = get_detector(name).fit(H, W, b).score_samples(H[:1])
        np.testing.assert_allclose(scores, logsumexp(b.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("name", ["ash-p", "ash-b", "ash-s", "scale"])
def test_id_scores_higher_than_ood(name):
    # OOD here: ID-shaped rows (same sparsity profile, so the same s1 / s2 law)
    # at half the strength with their units shuffled off the class directions
    H_train, _, H_id, _, W, b = id_ood_problem()
    rng = np.random.default_rng(5)
    H_ood = 0.5 * rng.permuted(H_id, axis=1)
    det = get_detector(name).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95
