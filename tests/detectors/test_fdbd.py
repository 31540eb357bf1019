"""fDBD: distance to the decision boundaries, against OpenOOD's fDBDPostprocessor."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.stats import spearmanr

from skdice import get_detector


def _openood_fdbd(H_train, W, b, H, distance_as_normalizer):
    """OpenOOD's fDBDPostprocessor.setup / postprocess, with its loops, in torch's (C, m) layout."""
    train_mean = np.mean(H_train.astype(np.float64), axis=0)
    H = H.astype(np.float64)
    w = W.T.astype(np.float64)
    num_classes = b.shape[0]
    denominator_matrix = np.zeros((num_classes, num_classes))
    for p in range(num_classes):
        w_p = w - w[p, :]
        denominator = np.linalg.norm(w_p, axis=1)
        denominator[p] = 1
        denominator_matrix[p, :] = denominator
    output = H @ w.T + b
    values, nn_idx = output.max(1), output.argmax(1)
    logits_sub = np.abs(output - np.tile(values, (num_classes, 1)).T)
    norm = (np.linalg.norm(H - train_mean, axis=1) if distance_as_normalizer
            else np.linalg.norm(H, axis=1))
    return np.sum(logits_sub / denominator_matrix[nn_idx], axis=1) / norm


@pytest.mark.parametrize("distance_as_normalizer", [True, False])
def test_fdbd_matches_openood(distance_as_normalizer):
    H, W, b = random_problem(n=400)
    H_test, _, _ = random_problem(n=200, seed=1)
    det = get_detector("fdbd", distance_as_normalizer=distance_as_normalizer).fit(H, W, b)
    ref = _openood_fdbd(H, W, b, H_test, distance_as_normalizer)
    np.testing.assert_allclose(det.score_samples(H_test), ref, rtol=1e-5)
    # ranks compared in float64: float32 rounding may swap two scores within 1e-7
    scores = det.score_samples(H_test.astype(np.float64))
    np.testing.assert_allclose(scores, ref, rtol=1e-9)
    assert spearmanr(scores, ref).statistic == pytest.approx(1.0)


def test_two_class_hand_case():
    # W's columns (1, 0) and (0, 1): the boundary is the diagonal, ||w_1 - w_0|| = sqrt(2);
    # h = (3, 1), training mean (0, 1): |z_1 - z_0| / sqrt(2) = 2 / sqrt(2), over ||h - mu|| = 3
    det = get_detector("fdbd").fit(np.array([[0.0, 0.0], [0.0, 2.0]]), np.eye(2))
    np.testing.assert_allclose(det.score_samples([[3.0, 1.0]]), [np.sqrt(2.0) / 3.0], rtol=1e-6)
    np.testing.assert_allclose(det.boundary_norms_, [[1.0, np.sqrt(2.0)], [np.sqrt(2.0), 1.0]])


def test_fits_from_the_mean_alone():
    H, W, b = random_problem()
    full = get_detector("fdbd").fit(H, W, b)
    from_mean = get_detector("fdbd").fit(W=W, b=b, train_mean=H.astype(np.float64).mean(axis=0))
    streamed = get_detector("fdbd")
    for start in range(0, len(H), 70):
        streamed.partial_fit(H[start:start + 70], W=W, b=b) if start == 0 else streamed.partial_fit(H[start:start + 70])
    for det in (from_mean, streamed):
        np.testing.assert_allclose(det.score_samples(H), full.score_samples(H), rtol=1e-6)


def test_row_at_the_training_mean_is_reported():
    H, W, b = random_problem()
    det = get_detector("fdbd").fit(W=W, b=b, train_mean=np.ones(24))
    X = H[:4].copy()
    X[2] = 1.0
    with pytest.raises(ValueError, match="score of row 2 is not finite"):
        det.score_samples(X)


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("fdbd").fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9


def test_one_fitting_row_is_refused():
    H, W, b = random_problem()
    with pytest.raises(ValueError, match="needs more than one fitting row: got 1 sample"):
        get_detector("fdbd").fit(H[:1], W, b)
    get_detector("fdbd", distance_as_normalizer=False).fit(H[:1], W, b)  # the norm needs no mean
