"""NECO: the share of the standardised feature's norm in the top principal subspace."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from skdice import get_detector
from skdice.detectors.neco import NECODetector, _default_dim


def _official(H_train, H, dim, logits=None):
    """The authors' neco(): StandardScaler and a full PCA fitted on the training
    features, ||PCA(ss(h))[:, :dim]|| / ||ss(h)||, times the max logit for non-ResNets."""
    ss = StandardScaler()
    train = ss.fit_transform(H_train.astype(np.float64))
    test = ss.transform(H.astype(np.float64))
    reduced = PCA(H_train.shape[1]).fit(train).transform(test)[:, :dim]
    score = np.linalg.norm(reduced, axis=1) / np.linalg.norm(test, axis=1)
    return score if logits is None else score * logits.max(axis=1)


def _problem(seed=0, n=400, m=20):
    rng = np.random.default_rng(seed)
    H = (rng.normal(size=(n, m)) @ rng.normal(size=(m, m)) * rng.uniform(0.1, 5, m) + 3).astype(np.float32)
    return H, np.r_[H[:100], rng.normal(3, 4, size=(50, m)).astype(np.float32)]


@pytest.mark.parametrize("dim", [1, 5, 12])
def test_scores_equal_the_authors_neco(dim):
    H, queries = _problem()
    det = NECODetector(dim=dim).fit(H)
    reference = _official(H, queries, dim)
    exact = det.score_samples(queries.astype(np.float64))
    assert spearmanr(exact, reference).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(exact, reference, rtol=1e-9)
    np.testing.assert_allclose(det.score_samples(queries), reference, rtol=2e-5)


def test_maxlogit_multiplies_by_the_largest_logit():
    H, queries = _problem(seed=1)
    _, W, b = random_problem(m=20, C=6)
    det = NECODetector(dim=4, maxlogit=True).fit(H, W, b)
    logits = queries.astype(np.float64) @ W + b
    np.testing.assert_allclose(det.score_samples(queries.astype(np.float64)), _official(H, queries, 4, logits), rtol=1e-9)
    with pytest.raises(ValueError, match="NECODetector.fit needs the classifier head"):
        NECODetector(maxlogit=True).fit(H)


def test_dead_units_are_left_unscaled_like_standard_scaler():
    H, queries = _problem(seed=2)
    H[:, 3] = 2.0  # a constant unit: scale 1, as StandardScaler
    det = NECODetector(dim=5).fit(H)
    assert det.scale_[3] == 1.0
    np.testing.assert_allclose(det.scale_, StandardScaler().fit(H.astype(np.float64)).scale_, rtol=1e-12)
    np.testing.assert_allclose(det.score_samples(queries.astype(np.float64)), _official(H, queries, 5), rtol=1e-9)


def test_hand_case_and_a_row_at_the_mean():
    # standardised training features (+-1, +-1) with correlation: the top direction is (1, 1)/sqrt(2)
    H = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, 0.8], [-1.0, -0.8]])
    det = NECODetector(dim=1).fit(H)
    s = np.array([1.0, -1.0]) / det.scale_
    assert det.score_samples([[1.0, -1.0]])[0] == pytest.approx(abs(s @ det.components_[0]) / np.linalg.norm(s))
    assert det.score_samples([det.mean_])[0] == 0.0


@pytest.mark.parametrize(("m", "dim"), [(2048, 100), (101, 100), (100, 50), (16, 8), (1, 0)])
def test_default_dim_is_the_authors_100_where_it_leaves_a_complement(m, dim):
    assert _default_dim(m) == dim


def test_dim_must_leave_a_complement():
    H, _ = _problem()
    with pytest.raises(ValueError, match="dim=20 must be smaller than the feature width 20"):
        NECODetector(dim=20).fit(H)
    with pytest.raises(ValueError, match="dim=30 is not below the feature width 20"):
        NECODetector(dim=30).effective_params(20)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("neco", dim=4).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9
