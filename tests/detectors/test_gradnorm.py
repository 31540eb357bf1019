"""GradNorm in closed form, against the authors' autograd loop (torch)."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import softmax
from scipy.stats import spearmanr

from skdice import get_detector


def _official_gradnorm(H, W, b):
    """iterate_data_gradnorm / OpenOOD's GradNormPostprocessor.gradnorm: autograd, one row at a time."""
    torch = pytest.importorskip("torch")
    C = W.shape[1]
    fc = torch.nn.Linear(W.shape[0], C).double()
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(W.T.astype(np.float64)))
        fc.bias.copy_(torch.from_numpy(b.astype(np.float64)))
    logsoftmax = torch.nn.LogSoftmax(dim=-1)
    confs = []
    for row in torch.from_numpy(H.astype(np.float64)):
        targets = torch.ones((1, C), dtype=torch.float64)
        fc.zero_grad()
        loss = torch.mean(torch.sum(-targets * logsoftmax(fc(row[None])), dim=-1))
        loss.backward()
        confs.append(torch.sum(torch.abs(fc.weight.grad.data)).item())
    return np.array(confs)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradnorm_matches_the_authors_autograd(seed):
    H, W, b = random_problem(n=150, m=24, C=7, seed=seed)
    det = get_detector("gradnorm").fit(H, W, b)
    ref = _official_gradnorm(H, W, b)
    scores = det.score_samples(H)
    np.testing.assert_allclose(scores, ref, rtol=1e-5)
    assert spearmanr(scores, ref).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(det.score_samples(H.astype(np.float64)), ref, rtol=1e-10)


def test_closed_form_hand_case():
    # h = (1, -2): ||h||_1 = 3; logits (0, 0) give p = (1/2, 1/2), C p - 1 = 0: score 0
    det = get_detector("gradnorm").fit(np.ones((2, 2)), np.zeros((2, 2)))
    assert det.score_samples([[1.0, -2.0]])[0] == pytest.approx(0.0)
    # logits (log 3, 0): p = (3/4, 1/4), |2 p - 1| = (1/2, 1/2): score 3 * 1
    W = np.array([[np.log(3.0), 0.0], [0.0, 0.0]])
    det = get_detector("gradnorm").fit(np.ones((2, 2)), W)
    np.testing.assert_allclose(det.score_samples([[1.0, -2.0]]), [3.0], rtol=1e-6)


def test_many_classes_keep_float32_precision():
    H, W, b = random_problem(n=200, m=64, C=1000, seed=3)
    det = get_detector("gradnorm").fit(H, W, b)
    Z = H.astype(np.float64) @ W + b
    ref = np.abs(H).sum(1) * np.abs(1000 * softmax(Z, axis=1) - 1).sum(1)
    np.testing.assert_allclose(det.score_samples(H), ref, rtol=1e-5)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("gradnorm").fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9
