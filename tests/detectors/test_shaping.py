"""VRA and BATS: features shaped before the head's energy, against OpenOOD's and the authors' code."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import logsumexp
from scipy.stats import spearmanr

from skdice import get_detector


def _energy(F, W, b):
    return logsumexp(F.astype(np.float64) @ W.astype(np.float64) + b, axis=1)


def _openood_vra(H_val, W, b, H, high, low):
    """OpenOOD's VRAPostprocessor: flattened percentiles, feature.clip(min=, max=), logsumexp."""
    threshold_high = np.percentile(H_val.flatten(), high)
    threshold_low = np.percentile(H_val.flatten(), low)
    return _energy(np.clip(H, threshold_low, threshold_high), W, b)


def _authors_bats(H_train, W, b, H, lam):
    """bats_iterate_data_energy's two torch.where, with the pooled features' mean and std."""
    feature_mean = H_train.astype(np.float64).mean(axis=0)
    feature_std = H_train.astype(np.float64).std(axis=0)
    f = np.where(H < (feature_std * lam + feature_mean), H, feature_std * lam + feature_mean)
    f = np.where(f > (-feature_std * lam + feature_mean), f, -feature_std * lam + feature_mean)
    return _energy(f, W, b)


@pytest.mark.parametrize(("high", "low"), [(90, 10), (99, 1), (85, 15), (75, 25)])
def test_vra_matches_openood(high, low):
    # features without a block of zeros, so that both clips bind
    _, W, b = random_problem()
    rng = np.random.default_rng(0)
    H = rng.lognormal(0.0, 1.0, size=(400, 24)).astype(np.float32)
    H_test = rng.lognormal(0.0, 1.2, size=(200, 24)).astype(np.float32)
    det = get_detector("vra", percentile_high=high, percentile_low=low).fit(H, W, b)
    ref = _openood_vra(H, W, b, H_test, high, low)
    scores = det.score_samples(H_test)
    np.testing.assert_allclose(scores, ref, rtol=1e-5)
    assert spearmanr(scores, ref).statistic == pytest.approx(1.0)


def test_vra_with_lowest_percentile_of_post_relu_features_is_react():
    H, W, b = random_problem()
    vra = get_detector("vra", percentile_high=90, percentile_low=0).fit(H, W, b)
    react = get_detector("react", percentile=90).fit(H, W, b)
    assert vra.lower_ == 0.0  # post-ReLU features: the minimum is 0, so the clip from below is void
    np.testing.assert_allclose(vra.score_samples(H), react.score_samples(H), rtol=1e-6)


def test_vra_lower_percentile_above_upper_is_refused():
    H, W, b = random_problem(n=20)
    with pytest.raises(ValueError, match="percentile_low=95 exceeds percentile_high=90; the lower"):
        get_detector("vra", percentile_high=90, percentile_low=95).fit(H, W, b)
    with pytest.raises(ValueError, match="percentile_low=95 exceeds percentile_high=90"):
        get_detector("vra", percentile_high=90, percentile_low=95).effective_params(24, 7)


@pytest.mark.parametrize("lam", [0.5, 1.0, 1.25, 3.3])
def test_bats_matches_the_authors_truncation_on_pooled_features(lam):
    H, W, b = random_problem(n=400)
    H_test, _, _ = random_problem(n=200, seed=1)
    det = get_detector("bats", lam=lam).fit(H, W, b)
    ref = _authors_bats(H, W, b, H_test, lam)
    scores = det.score_samples(H_test)
    np.testing.assert_allclose(scores, ref, rtol=1e-5)
    assert spearmanr(scores, ref).statistic == pytest.approx(1.0)


def test_bats_statistics_are_the_per_unit_mean_and_std():
    H, W, b = random_problem()
    det = get_detector("bats", lam=2.0).fit(H, W, b)
    H64 = H.astype(np.float64)
    np.testing.assert_allclose(det.mean_, H64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(det.std_, H64.std(axis=0), rtol=1e-10)
    np.testing.assert_allclose(det.upper_ - det.lower_, 4.0 * det.std_, rtol=1e-12)


@pytest.mark.parametrize("name", ["vra", "bats"])
def test_predict_class_reads_the_shaped_features(name):
    H, W, b = random_problem()
    det = get_detector(name).fit(H, W, b)
    shaped = np.clip(H, det.lower_, det.upper_)
    np.testing.assert_array_equal(det.predict_class(H), np.argmax(shaped @ W + b, axis=1))


@pytest.mark.parametrize("name", ["vra", "bats"])
def test_non_finite_row_is_reported(name):
    H, W, b = random_problem()
    det = get_detector(name).fit(H, W, b)
    bad = H[:5].copy()
    bad[3, 0] = -np.inf
    with pytest.raises(ValueError, match="first at row 3"):
        det.score_samples(bad)


@pytest.mark.parametrize("name", ["vra", "bats"])
def test_id_scores_higher_than_ood(name):
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector(name).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9


def _authors_optfs(H_train, W, b, H, use_ood_score):
    """The OptFS authors' Ours.setup / get_lc_fv_list / postprocess, with their loops over bins."""
    w_np, b_np = W.T, b[None, :]  # torch's fc.weight (C, m) and bias
    feature = H_train
    pred = np.argmax(feature @ w_np.T + b_np, axis=1)
    left_b = np.quantile(feature, 1e-3)
    right_b = np.quantile(feature, 1 - 1e-3)
    width = (right_b - left_b) / 100.0
    left_boundary = np.arange(left_b, right_b, width)
    lc = w_np[pred] * feature
    lc_fv_list = []
    for x in left_boundary:
        mask = (feature >= x) & (feature < x + width)
        lc_fv_list.append(np.mean(np.sum(mask * lc, axis=1)))
    lc_fv_list = np.array(lc_fv_list)
    theta = lc_fv_list / np.linalg.norm(lc_fv_list, 2) * 1000
    output = H @ w_np.T + b_np
    pred = np.argmax(output, axis=1)
    feat_p = np.zeros_like(H, dtype=np.float64)
    for i, x in enumerate(left_boundary):
        mask = (H >= x) & (H < x + width)
        feat_p += mask * H * theta[i]
    if use_ood_score == "energy":
        return logsumexp(feat_p @ w_np.T + b_np, axis=1)
    return np.sum(w_np[pred] * feat_p, axis=1)


@pytest.mark.parametrize("ood_score", ["vanilla", "energy"])
def test_optfs_matches_the_authors_code(ood_score):
    H, W, b = random_problem(n=400)
    H_test, _, _ = random_problem(n=200, seed=1)
    det = get_detector("optfs", ood_score=ood_score).fit(H, W, b)
    ref = _authors_optfs(H, W, b, H_test, ood_score)
    scores = det.score_samples(H_test)
    # the authors' bin weights come from float32 products: theta agrees to about 1e-6
    np.testing.assert_allclose(scores, ref, rtol=1e-5)
    assert spearmanr(scores, ref).statistic == pytest.approx(1.0)


def test_optfs_bins_are_the_authors_arange():
    H, W, b = random_problem(n=400)
    det = get_detector("optfs").fit(H, W, b)
    left, right = np.quantile(H, 1e-3), np.quantile(H, 1 - 1e-3)
    width = (right - left) / 100.0
    np.testing.assert_array_equal(det.bin_lower_, np.arange(left, right, width))
    np.testing.assert_array_equal(det.bin_upper_, np.arange(left, right, width) + width)
    assert det.bin_lower_.size in (100, 101)
    assert np.linalg.norm(det.theta_) == pytest.approx(1000.0)


def test_optfs_entries_outside_the_bins_are_zeroed():
    H, W, b = random_problem(n=400)
    det = get_detector("optfs").fit(H, W, b)
    far = np.full((1, H.shape[1]), 10 * H.max(), dtype=np.float32)
    assert det.score_samples(far)[0] == 0.0  # every entry above the 99.9% quantile's last bin


def test_optfs_constant_features_are_refused():
    _, W, b = random_problem(n=10)
    with pytest.raises(ValueError, match="needs activations that vary: the 0.1% and 99.9% quantiles"):
        get_detector("optfs").fit(np.ones((10, 24), dtype=np.float32), W, b)


@pytest.mark.parametrize("ood_score", ["vanilla", "energy"])
def test_optfs_id_scores_higher_than_ood(ood_score):
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("optfs", ood_score=ood_score).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_segment_index_is_searchsorted_exactly(dtype):
    from skdice.detectors.shaping import _segment_index

    rng = np.random.default_rng(0)
    # nearly even edges with pairs one rounding apart, as the authors' b + width makes them
    pairs = np.linspace(1.0, 2.0, 5).astype(dtype)
    edges = np.unique(np.r_[np.linspace(0.1, 7.3, 60).astype(dtype), pairs, np.nextafter(pairs, dtype(9))])
    assert edges.size == 70
    X = rng.normal(3.0, 3.0, size=(400, 80)).astype(dtype)
    X[0, :edges.size] = edges  # every edge itself and the number just below it
    X[1, :edges.size] = np.nextafter(edges, -np.inf)
    X[2, :3] = [np.inf, -np.inf, 1e30]
    np.testing.assert_array_equal(_segment_index(edges, X), np.searchsorted(edges, X, side="right"))
