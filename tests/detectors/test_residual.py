"""Residual: ViM's residual norm alone, against OpenOOD's ResidualPostprocessor formula."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from numpy.linalg import norm, pinv
from scipy.stats import spearmanr
from sklearn.covariance import EmpiricalCovariance

from skdice import get_detector


def _openood_residual(H_train, W, b, H, dim):
    """OpenOOD's ResidualPostprocessor.setup / postprocess, in torch's (C, m) layout."""
    w = W.T.astype(np.float64)
    u = -np.matmul(pinv(w), b)
    ec = EmpiricalCovariance(assume_centered=True)
    ec.fit(H_train - u)
    eig_vals, eigen_vectors = np.linalg.eig(ec.covariance_)
    NS = np.ascontiguousarray((eigen_vectors.T[np.argsort(eig_vals * -1)[dim:]]).T)
    return -norm(np.matmul(H - u, NS), axis=-1)


@pytest.mark.parametrize("dim", [4, 12, 20])
def test_residual_matches_openood(dim):
    H, W, b = random_problem(n=400, m=24, C=7)
    H_test, _, _ = random_problem(n=200, m=24, C=7, seed=1)
    det = get_detector("residual", dim=dim).fit(H, W, b)
    ref = _openood_residual(H.astype(np.float64), W, b, H_test.astype(np.float64), dim)
    scores = det.score_samples(H_test)
    np.testing.assert_allclose(scores, ref, rtol=1e-5)
    assert spearmanr(scores, ref).statistic == pytest.approx(1.0)


def test_residual_is_vims_virtual_logit_unscaled():
    H, W, b = random_problem()
    vim = get_detector("vim", dim=8).fit(H, W, b)
    res = get_detector("residual", dim=8).fit(H, W, b)
    energy = get_detector("energy").fit(H, W, b)
    np.testing.assert_allclose(
        vim.score_samples(H), energy.score_samples(H) + vim.alpha_ * res.score_samples(H),
        rtol=1e-5, atol=1e-5,
    )


def test_default_dim_is_vims_rule():
    H, W, b = random_problem(m=24)
    assert get_detector("residual").fit(H, W, b).dim_ == 12


def test_dim_not_below_width_is_refused():
    H, W, b = random_problem(m=24)
    with pytest.raises(ValueError, match="dim=24 must be smaller than the feature width 24"):
        get_detector("residual", dim=24).fit(H, W, b)
    with pytest.raises(ValueError, match="not below the feature width"):
        get_detector("residual", dim=24).effective_params(24, 7)


def test_float64_input_scores_in_float64():
    H, W, b = random_problem()
    det = get_detector("residual", dim=8).fit(H, W, b)
    s32 = det.score_samples(H)
    s64 = det.score_samples(H.astype(np.float64))
    np.testing.assert_allclose(s32, s64, rtol=1e-5)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("residual", dim=8).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9
