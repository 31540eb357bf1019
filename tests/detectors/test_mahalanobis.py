"""Mahalanobis: the squared distance to the nearest class mean, shared covariance."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem

from sklearn.covariance import EmpiricalCovariance

from skdice import get_detector
from skdice.detectors.mahalanobis import MahalanobisDetector


def _reference(H_train, y, H, reg):
    """Lee et al.'s recipe in float64 with an explicit solve (fine at this size)."""
    H_train = H_train.astype(np.float64)
    classes = np.unique(y)
    means = np.stack([H_train[y == c].mean(axis=0) for c in classes])
    centred = H_train - means[np.searchsorted(classes, y)]
    cov = centred.T @ centred / len(H_train)
    m = cov.shape[0]
    cov += reg * np.trace(cov) / m * np.eye(m)
    diffs = H.astype(np.float64)[:, None, :] - means[None, :, :]
    solved = np.linalg.solve(cov, diffs.transpose(0, 2, 1)).transpose(0, 2, 1)
    d2 = np.einsum("ncm,ncm->nc", diffs, solved)
    return -d2.min(axis=1)


def test_hand_checkable_identity_covariance():
    # classes at (0, 0) and (4, 0), within-class deviations +-1 on each axis:
    # the shared covariance is the identity, so the score is -squared Euclidean distance
    offsets = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float64)
    H = np.r_[offsets, offsets + [4, 0]]
    y = np.repeat([0, 1], 4)
    det = MahalanobisDetector(reg=0.0).fit(H, y)
    np.testing.assert_allclose(det.covariance_, np.eye(2) * 0.5)
    # covariance 0.5 I: d^2 = 2 ||x - mu||^2
    queries = [[1.0, 1.0], [2.0, 0.0], [7.0, 0.0]]
    np.testing.assert_allclose(det.score_samples(queries), [-4.0, -8.0, -18.0])


def _official(H_train, y, H):
    """The official recipe (Lee et al.'s sample_estimator, ViM's benchmark.py, OpenOOD's
    MDSPostprocessor): class means, scikit-learn's EmpiricalCovariance of the
    class-centred features, its precision_ (a pseudo-inverse), -min_c d_c^2."""
    H_train = H_train.astype(np.float64)
    classes = np.unique(y)
    means = np.stack([H_train[y == c].mean(axis=0) for c in classes])
    centred = H_train - means[np.searchsorted(classes, y)]
    precision = EmpiricalCovariance(assume_centered=False).fit(centred).precision_
    diffs = H.astype(np.float64)[:, None, :] - means[None, :, :]
    return -np.einsum("ncm,mk,nck->nc", diffs, precision, diffs).min(axis=1)


def test_scores_match_numpy_reference():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, size=400)
    H = (rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12)) + 2 * y[:, None]).astype(np.float32)
    det = MahalanobisDetector().fit(H, y)
    np.testing.assert_allclose(det.score_samples(H[:100]), _official(H, y, H[:100]), rtol=1e-6)
    ridged = MahalanobisDetector(reg=1e-3).fit(H, y)  # the optional ridge: an explicit solve
    np.testing.assert_allclose(ridged.score_samples(H[:100]), _reference(H, y, H[:100], 1e-3), rtol=1e-6)


def test_ill_conditioned_covariance_matches_sklearns_pseudo_inverse():
    # penultimate-like features: units with variances spread over 10 decades
    # (condition number ~1e10, as the DICE paper's DenseNet: 5e9) and dead units
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, size=600)
    scales = np.logspace(0, -5, 14)
    H = rng.normal(size=(600, 14)) * scales + 0.5 * scales * y[:, None]
    H = np.c_[H, np.zeros((600, 3))]  # dead units: the covariance is singular
    det = MahalanobisDetector().fit(H, y)
    assert np.linalg.cond(det.covariance_[:14, :14]) > 1e9
    reference = EmpiricalCovariance().fit(H - det.means_[y]).precision_
    np.testing.assert_allclose(det.precision_, reference, rtol=1e-9, atol=1e-9 * np.abs(reference).max())
    queries = np.r_[H[:50], rng.normal(size=(20, 17)) * np.r_[scales, np.ones(3)]]
    np.testing.assert_allclose(det.score_samples(queries), _official(H, y, queries), rtol=1e-6)
    # a ridge is a different score here: not the official one
    ridged = MahalanobisDetector(reg=1e-6).fit(H, y).score_samples(queries)
    assert not np.allclose(ridged, _official(H, y, queries), rtol=1e-3)


def test_string_labels_and_head_is_optional():
    rng = np.random.default_rng(3)
    H = rng.normal(size=(60, 4))
    y = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, size=60)]
    det = MahalanobisDetector().fit(H, y)
    assert det.classes_.tolist() == ["cat", "dog", "eel"]
    with_head = MahalanobisDetector().fit(H, rng.normal(size=(4, 3)), None, y)
    np.testing.assert_allclose(with_head.score_samples(H), det.score_samples(H))


def test_needs_class_labels():
    with pytest.raises(ValueError, match="needs class labels y"):
        MahalanobisDetector().fit(np.ones((5, 2)))
    with pytest.raises(ValueError, match="class labels y contain NaN or infinity"):
        MahalanobisDetector().fit(np.ones((5, 2)), [0.0, 1.0, np.nan, 0.0, 1.0])


def test_dead_unit_is_ignored_by_the_pseudo_inverse():
    rng = np.random.default_rng(5)
    H = np.c_[rng.normal(size=(40, 3)), np.zeros(40)]  # a dead unit: zero variance
    y = np.arange(40) % 2
    det = MahalanobisDetector().fit(H, y)
    moved = np.c_[H[:5, :3], np.full(5, 100.0)]  # off along the dead unit only
    np.testing.assert_allclose(det.score_samples(moved), det.score_samples(H[:5]), rtol=1e-9)


def test_id_scores_higher_than_ood():
    H_train, y_train, H_id, H_ood, _, _ = id_ood_problem()
    det = get_detector("mahalanobis").fit(H_train, y_train)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95


def test_fit_leaves_the_callers_features_untouched():
    rng = np.random.default_rng(4)
    H = rng.normal(size=(50, 3))
    before = H.copy()
    MahalanobisDetector().fit(H, rng.integers(0, 2, size=50))
    np.testing.assert_array_equal(H, before)
