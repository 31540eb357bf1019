"""RMDS: the class Mahalanobis distance relative to a background Gaussian's."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem
from scipy.stats import spearmanr
from sklearn.covariance import EmpiricalCovariance

from skdice import get_detector
from skdice.detectors.mahalanobis import MahalanobisDetector
from skdice.detectors.rmds import RMDSDetector


def _official(H_train, y, H):
    """OpenOOD's RMDSPostprocessor in float64: EmpiricalCovariance precisions of the
    class-centred and of the mean-centred features, max_c (-d_c^2 + d_0^2)."""
    H_train, H = H_train.astype(np.float64), H.astype(np.float64)
    classes = np.unique(y)
    means = np.stack([H_train[y == c].mean(axis=0) for c in classes])
    centred = np.concatenate([H_train[y == c] - means[i] for i, c in enumerate(classes)])
    precision = EmpiricalCovariance(assume_centered=False).fit(centred).precision_
    whole_mean = H_train.mean(axis=0)
    whole_precision = EmpiricalCovariance(assume_centered=False).fit(H_train - whole_mean).precision_
    t = H - whole_mean
    background = -np.einsum("nm,mk,nk->n", t, whole_precision, t)
    class_scores = np.stack(
        [-np.einsum("nm,mk,nk->n", H - mu, precision, H - mu) - background for mu in means], axis=1
    )
    return class_scores.max(axis=1)


def _problem(seed=1, n=500, m=12, C=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, size=n)
    H = rng.normal(size=(n, m)) @ rng.normal(size=(m, m)) + 2 * rng.normal(size=(C, m))[y]
    return H.astype(np.float32), y


def test_scores_equal_openoods_rmds():
    H, y = _problem()
    queries = np.r_[H[:100], np.random.default_rng(2).normal(0, 4, size=(50, H.shape[1]))]
    det = RMDSDetector().fit(H, y)
    reference = _official(H, y, queries)
    exact = det.score_samples(queries.astype(np.float64))
    assert spearmanr(exact, reference).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(exact, reference, rtol=1e-7, atol=1e-9 * np.abs(reference).max())
    # float32 input is scored in float64 too (ill-conditioned covariances)
    np.testing.assert_allclose(det.score_samples(queries), reference, rtol=1e-7, atol=1e-9 * np.abs(reference).max())


def test_is_mahalanobis_plus_the_background_distance():
    H, y = _problem(seed=3)
    det = RMDSDetector().fit(H, y)
    maha = MahalanobisDetector().fit(H, y).score_samples(H[:40])
    z = H[:40].astype(np.float64) - det.background_mean_
    d0 = np.einsum("nm,mk,nk->n", z, det.background_precision_, z)
    np.testing.assert_allclose(det.score_samples(H[:40]), maha + d0, rtol=1e-7, atol=1e-8)


def test_hand_case_with_identity_covariances():
    # two classes at (-2, 0) and (2, 0), +-1 deviations: within-class covariance 0.5 I,
    # background covariance diag(4.5, 0.5) about the origin
    offsets = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float64)
    H = np.r_[offsets + [-2, 0], offsets + [2, 0]]
    det = RMDSDetector().fit(H, np.repeat([0, 1], 4))
    np.testing.assert_allclose(det.background_precision_, np.diag([1 / 4.5, 2.0]), atol=1e-12)
    # at (2, 1): d_1^2 = 2 * 1 = 2, d_0^2 = 4 / 4.5 + 2 * 1 = 2.888..., S = -2 + 2.888...
    np.testing.assert_allclose(det.score_samples([[2.0, 1.0]]), [-2.0 + 4 / 4.5 + 2.0])


def test_needs_class_labels():
    with pytest.raises(ValueError, match="RMDSDetector.fit needs class labels y"):
        RMDSDetector().fit(np.ones((5, 2)))


def test_id_scores_higher_than_ood():
    H_train, y_train, H_id, H_ood, _, _ = id_ood_problem()
    det = get_detector("rmds").fit(H_train, y_train)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95
