"""Relation: the total weight of an input's strong relation-graph edges to the training features."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import softmax
from scipy.stats import spearmanr

from skdice import get_detector
from skdice.detectors.relation import RelationDetector


def _official(H_train, H, W, b, pow, thres=0.03):
    """The authors' get_relation with kernel 'cos_p' (OpenOOD's RelationPostprocessor) in
    float64: normalise(x) = x / sqrt(||x||^2 + 1e-10), rel = clamp(z z_t^T, 0) * (p p_t^T),
    sum of sign(rel) |rel|^pow over |rel| > thres."""
    def unit(X):
        X = X.astype(np.float64)
        return X / np.sqrt((X**2).sum(-1) + 1e-10)[:, None]

    rel = np.maximum(unit(H) @ unit(H_train).T, 0.0)
    rel *= softmax(H.astype(np.float64) @ W + b, axis=1) @ softmax(H_train.astype(np.float64) @ W + b, axis=1).T
    rel_mask = (np.abs(rel) > thres) * rel
    return (np.sign(rel_mask) * np.abs(rel_mask) ** pow).sum(-1)


@pytest.mark.parametrize("pow", [1, 2, 6])
def test_scores_equal_the_authors_relation_graph(pow):
    H, W, b = random_problem(n=300, m=24, C=7)
    queries = np.r_[H[:60], np.abs(np.random.default_rng(1).normal(size=(40, 24)))]
    det = RelationDetector(pow=pow).fit(H, W, b)
    reference = _official(H, queries, W, b, pow)
    # the bank is float32: compare to float32 rounding (an edge within rounding of the
    # threshold could flip; none does here)
    scores = det.score_samples(queries.astype(np.float64))
    assert spearmanr(scores, reference).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(scores, reference, rtol=1e-5)
    np.testing.assert_allclose(det.score_samples(queries), reference, rtol=1e-5)


def test_offset_is_calibrated_without_each_rows_edge_to_itself():
    H, W, b = random_problem(n=200, m=16, C=5)
    det = RelationDetector(tpr=0.9).fit(H, W, b)
    loo = np.array([_official(np.delete(H, i, axis=0), H[i : i + 1], W, b, 1)[0] for i in range(len(H))])
    np.testing.assert_allclose(det.offset_, np.quantile(loo, 0.1), rtol=1e-5)


def test_hand_case_threshold_cuts_weak_edges():
    # orthogonal bank rows: an input along row 0 has one edge, cos 1 times p . p_0
    H = np.array([[5.0, 0.0], [0.0, 5.0]])
    det = RelationDetector(threshold=0.03).fit(H, np.eye(2), np.zeros(2))
    p0 = softmax([5.0, 0.0])
    p = softmax([2.0, 0.0])
    np.testing.assert_allclose(det.score_samples([[2.0, 0.0]]), [p @ p0], rtol=1e-6)
    cut = RelationDetector(threshold=float(p @ p0) + 1e-3).fit(H, np.eye(2), np.zeros(2))
    np.testing.assert_array_equal(cut.score_samples([[2.0, 0.0]]), [0.0])


def test_id_scores_higher_than_ood():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("relation").fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9
