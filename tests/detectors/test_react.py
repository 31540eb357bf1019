"""ReAct and DICE + ReAct: clip, (mask,) energy."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import logsumexp

from skdice import get_detector


def _energy(H, W, b):
    return logsumexp(H.astype(np.float64) @ np.asarray(W, dtype=np.float64) + b, axis=1)


def test_react_hand_case_clips_then_energy():
    # activations 0..9: the 90th percentile (linear) is 8.1; rows clip to it
    H = np.arange(10, dtype=np.float32).reshape(5, 2)
    det = get_detector("react").fit(H, np.eye(2))
    assert det.threshold_ == pytest.approx(8.1)
    np.testing.assert_allclose(
        det.score_samples([[9.0, 1.0]]), [np.log(np.exp(8.1) + np.e)], rtol=1e-6
    )


@pytest.mark.parametrize("percentile", [50, 90, 99])
def test_react_matches_numpy_reference(percentile):
    H, W, b = random_problem()
    det = get_detector("react", percentile=percentile).fit(H, W, b)
    c = np.percentile(H.ravel(), percentile)
    np.testing.assert_allclose(det.score_samples(H), _energy(np.minimum(H, c), W, b), rtol=1e-5)


def test_official_recipe_clip_from_id_validation_rows():
    # compute_threshold.py: the 90th percentile of the flattened activations of
    # ID validation images; fitted on those rows (or given the clip) the detector
    # scores test rows with exactly that clip
    H_train, W, b = random_problem(seed=0)
    H_val, _, _ = random_problem(seed=1)
    official_clip = np.percentile(H_val.reshape(-1), 90)
    reference = _energy(np.minimum(H_train, official_clip), W, b)
    on_val = get_detector("react").fit(H_val, W, b)
    given = get_detector("react", threshold=official_clip).fit(H_train, W, b)
    assert on_val.threshold_ == pytest.approx(official_clip)
    for det in (on_val, given):
        np.testing.assert_allclose(det.score_samples(H_train), reference, rtol=1e-5)


def test_absolute_threshold_overrides_percentile():
    H, W, b = random_problem()
    det = get_detector("react", threshold=1.0).fit(H, W, b)
    assert det.threshold_ == 1.0
    np.testing.assert_allclose(det.score_samples(H), _energy(np.minimum(H, 1.0), W, b), rtol=1e-5)


@pytest.mark.parametrize(("p", "threshold"), [(0.1, 1.0), (0.15, 1.5), (0.9, None)])
def test_dice_react_mask_from_unclipped_mean(p, threshold):
    H, W, b = random_problem()
    det = get_detector("dice-react", p=p, threshold=threshold).fit(H, W, b)
    c = np.percentile(H, 90) if threshold is None else threshold
    V = H.astype(np.float64).mean(axis=0)[:, None] * W  # the unclipped mean
    mask = V > np.percentile(V, 100 * p)
    np.testing.assert_array_equal(det.mask_, mask)
    np.testing.assert_allclose(
        det.score_samples(H), _energy(np.minimum(H, c), np.where(mask, W, 0), b), rtol=1e-5
    )
    clipped_mean = np.minimum(H, c).mean(axis=0)
    assert not np.allclose(det.mean_feature_, clipped_mean)


def test_dice_react_from_train_mean_needs_absolute_threshold():
    H, W, b = random_problem()
    with pytest.raises(ValueError, match="needs an absolute clip"):
        get_detector("dice-react").fit(W=W, b=b, train_mean=H.mean(axis=0))
    det = get_detector("dice-react", threshold=1.0).fit(W=W, b=b, train_mean=H.mean(axis=0))
    ref = get_detector("dice-react", threshold=1.0).fit(H, W, b)
    np.testing.assert_allclose(det.score_samples(H), ref.score_samples(H), rtol=1e-6)


@pytest.mark.parametrize("name", ["react", "dice-react"])
def test_id_scores_higher_than_ood(name):
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector(name).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95


def test_percentile_out_of_range_is_refused():
    H, W, b = random_problem(n=10)
    with pytest.raises(ValueError, match="percentile"):
        get_detector("react", percentile=120).fit(H, W, b)


def test_dice_react_hand_case():
    # two units, one class: means (1, 3) so V = (1, -3) * (1, 3) = (1, -9); p = 0.5 keeps unit 0
    H = np.array([[0.0, 2.0], [2.0, 4.0]], dtype=np.float32)
    W = np.array([[1.0, 0.0], [-3.0, 0.0]])  # a second, all-zero class keeps logsumexp simple
    det = get_detector("dice-react", p=0.5, threshold=1.5).fit(H, W)
    np.testing.assert_array_equal(det.mask_[:, 0], [True, False])
    # clip (5, 5) to (1.5, 1.5); only unit 0 counts: logits (1.5, 0)
    np.testing.assert_allclose(det.score_samples([[5.0, 5.0]]), [np.logaddexp(1.5, 0.0)], rtol=1e-6)
