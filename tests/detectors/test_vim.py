"""ViM: energy minus the scaled residual off the principal subspace."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import logsumexp

from skdice import get_detector
from skdice.detectors.vim import ViMDetector, _default_dim, residual_space


def _reference(H_train, H, W, b, dim):
    """The ViM paper's recipe in float64 with pinv and a full eigen-decomposition."""
    W = W.astype(np.float64)
    u = -np.linalg.pinv(W.T) @ b
    Xc = H_train.astype(np.float64) - u
    vals, vecs = np.linalg.eigh(Xc.T @ Xc / len(Xc))
    NS = vecs[:, np.argsort(-vals)[dim:]]
    logits_train = H_train.astype(np.float64) @ W + b
    alpha = logits_train.max(axis=1).mean() / np.linalg.norm(Xc @ NS, axis=1).mean()
    vlogit = alpha * np.linalg.norm((H.astype(np.float64) - u) @ NS, axis=1)
    return logsumexp(H.astype(np.float64) @ W + b, axis=1) - vlogit


@pytest.mark.parametrize("dim", [0, 4, 12])
def test_matches_numpy_reference(dim):
    H, W, b = random_problem(m=24, C=7)
    det = ViMDetector(dim=dim).fit(H, W, b)
    scores, reference = det.score_samples(H[:80]), _reference(H, H[:80], W, b, dim)
    # the score is a difference of two terms of order 10: compare on that scale
    scale = np.abs(reference).max()
    np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-6 * scale)


def test_hand_case_origin_and_residual():
    # W = I (2 classes, 2 features), b = (-1, -1): the origin is (1, 1)
    H = np.array([[3.0, 1.0], [5.0, 1.0], [-1.0, 1.0]])  # h - o varies only along axis 0
    det = ViMDetector(dim=1).fit(H, np.eye(2), [-1.0, -1.0])
    np.testing.assert_allclose(det.origin_, [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(det.residual_basis_[:, 0]), [0.0, 1.0], atol=1e-6)
    assert det.alpha_ == 0.0  # no residual on the training rows
    # a row off the principal axis: residual 3, but alpha 0 leaves the energy
    np.testing.assert_allclose(
        det.score_samples([[2.0, 4.0]]), logsumexp([1.0, 3.0]), rtol=1e-6
    )


def _official_dim(m):
    # the ViM authors' benchmark.py: DIM = 1000 if width >= 2048 else 512
    return 1000 if m >= 2048 else 512


@pytest.mark.parametrize("m", [4096, 2048, 2047, 1500, 1024, 768, 767, 513])
def test_default_dim_is_the_official_rule_wherever_it_leaves_a_residual(m):
    assert _default_dim(m) == _official_dim(m)


@pytest.mark.parametrize(("m", "dim"), [(512, 256), (342, 171), (3, 1)])
def test_default_dim_is_half_the_width_where_the_official_rule_cannot_apply(m, dim):
    assert _official_dim(m) >= m  # the official 512 would leave no residual
    assert _default_dim(m) == dim


def test_dim_must_leave_a_residual():
    H, W, b = random_problem(m=8)
    with pytest.raises(ValueError, match="dim=8 must be smaller than the feature width 8"):
        ViMDetector(dim=8).fit(H, W, b)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("vim", dim=8).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95


def test_residual_space_spans_the_scatters_smallest_directions():
    # against pinv and a full eigen-decomposition in the test (the ViM paper's recipe)
    from skdice import Head

    H, W, b = random_problem(m=24, C=7)
    origin, dim, basis = residual_space(H, Head(W, b), 10)
    u = -np.linalg.pinv(W.T.astype(np.float64)) @ b.astype(np.float64)
    np.testing.assert_allclose(origin, u, rtol=1e-6, atol=1e-9)
    Xc = H.astype(np.float64) - u
    vals, vecs = np.linalg.eigh(Xc.T @ Xc / len(Xc))
    expected = vecs[:, np.argsort(-vals)[10:]]
    assert dim == 10 and basis.shape == (24, 14)
    # the same subspace: the projectors agree (each basis is determined up to rotation)
    np.testing.assert_allclose(basis @ basis.T, expected @ expected.T, atol=1e-5)
