"""LINe: class-wise Shapley importance, clip, activation and weight pruning, energy."""

import warnings

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import logsumexp
from scipy.stats import spearmanr
from tolerances import score_atol

from skdice import get_detector
from skdice.exceptions import DegenerateFitWarning


def _official_line(H_train, y, W, b, H, p_w, p_a, clip):
    """LINe as the authors' code computes it, step by step, in torch's (C, m) layout.

    get_LINE_info: per-sample first-order Taylor scores at the pooled feature,
    ``h * d f_y / d h = h * fc.weight[y]`` (float32, as torch), averaged per
    class in float64. RouteLUNCH.calculate_shap_value: for each class a
    (C, m) masked weight and a unit mask. RouteLUNCH.forward on the clipped
    feature (forward_LINE): the dense prediction, then the predicted class's
    unit mask and masked weight; iterate_data_LINE: logsumexp.
    """
    weight = np.ascontiguousarray(W.T)  # torch's fc.weight, (C, m), float32
    C, m = weight.shape
    shap_log = H_train * weight[y]  # float32 products, one row per training image
    info = np.zeros((m, C))
    for c in range(C):
        mask = np.array(y == c)
        info[:, c] = (mask[:, None] * shap_log).sum(0) / mask.sum()
    contrib = info.T  # (C, m)
    masked_w = np.zeros((C, C, m))
    mask_f = np.zeros((C, m))
    for c in range(C):
        matrix = abs(contrib[c, :]) * weight
        mask_w = matrix > np.percentile(matrix, p_w)
        masked_w[c] = weight * mask_w
        mask_f[c] = contrib[c, :] > np.percentile(contrib[c, :], p_a)
    x = np.minimum(H, clip)
    preds = np.argmax(x @ weight.T + b, axis=1)
    cp = x * mask_f[preds]
    out = np.einsum("nm,ncm->nc", cp, masked_w[preds]) + b
    return logsumexp(out, axis=1)


def _labelled_problem(seed=0):
    H, W, b = random_problem(n=400, m=24, C=6, seed=seed)
    y = np.argmax(H @ W + b, axis=1)  # every class has rows
    return H, y, W, b


@pytest.mark.parametrize(("p_w", "p_a"), [(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.5, 0.3)])
def test_line_matches_the_authors_code(p_w, p_a):
    H, y, W, b = _labelled_problem()
    H_test, _, _ = random_problem(n=200, m=24, C=6, seed=1)
    det = get_detector("line", p_w=p_w, p_a=p_a, threshold=1.2).fit(H, y, W=W, b=b)
    ref = _official_line(H, y, W, b, H_test, 100 * p_w, 100 * p_a, 1.2)
    scores = det.score_samples(H_test)
    np.testing.assert_allclose(scores, ref, rtol=1e-5, atol=1e-5)
    assert spearmanr(scores, ref).statistic == pytest.approx(1.0)


def test_line_percentile_clip_is_reacts_rule():
    H, y, W, b = _labelled_problem()
    det = get_detector("line", percentile=80).fit(H, y, W=W, b=b)
    c = np.percentile(H, 80)
    assert det.threshold_ == pytest.approx(c)
    np.testing.assert_allclose(
        det.score_samples(H), _official_line(H, y, W, b, H, 10, 10, c), rtol=1e-5, atol=1e-5
    )


def test_importance_is_class_mean_times_weight():
    H, y, W, b = _labelled_problem()
    det = get_detector("line").fit(H, y, W=W, b=b)
    for c in range(W.shape[1]):
        mu = H[y == c].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(det.contribution_[:, c], mu * W[:, c], rtol=1e-12)


def test_scores_the_same_in_chunks_and_whole():
    # _score_all groups rows over the whole input, score_block within a chunk
    H, y, W, b = _labelled_problem()
    det = get_detector("line", p_w=0.5, p_a=0.5).fit(H, y, W=W, b=b)
    whole = det.score_samples(H)
    blocks = np.concatenate([det.score_block(H[i:i + 37]) for i in range(0, len(H), 37)])
    np.testing.assert_allclose(whole, blocks, rtol=1e-6)


def test_predict_class_is_the_pruned_heads_argmax():
    H, y, W, b = _labelled_problem()
    det = get_detector("line", p_w=0.9, p_a=0.9, threshold=1.0).fit(H, y, W=W, b=b)
    weight = W.T
    C = W.shape[1]
    x = np.minimum(H, 1.0)
    preds = np.argmax(x @ W + b, axis=1)
    logits = np.stack([
        (x[i] * det.activation_mask_[:, c]) @ np.where(
            np.abs(det.contribution_[:, c])[:, None] * W > det.weight_thresholds_[c], W, 0)
        + b
        for i, c in enumerate(preds)
    ])
    np.testing.assert_array_equal(det.predict_class(H), logits.argmax(axis=1))
    assert weight.shape == (C, H.shape[1])


def test_zero_sparsity_is_react():
    H, y, W, b = _labelled_problem()
    det = get_detector("line", p_w=0, p_a=0, threshold=1.0).fit(H, y, W=W, b=b)
    react = get_detector("react", threshold=1.0).fit(H, W, b)
    expected = react.score_samples(H)
    # two float32 code paths (a full-width head with nothing pruned, ReAct's clipped product): they
    # agree within the bound of two summation orders, which a tolerance tuned on one BLAS kernel did not
    atol = score_atol(H.dtype, np.minimum(H, 1.0), W, expected)
    np.testing.assert_allclose(det.score_samples(H), expected, rtol=0, atol=atol)


def test_id_scores_higher_than_ood():
    H_train, y_train, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("line", p_w=0.5, p_a=0.5).fit(H_train, y_train, W=W, b=b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.95


def test_class_without_rows_is_scored_by_the_clipped_dense_head():
    H, y, W, b = _labelled_problem()
    keep = y != 2
    with pytest.warns(DegenerateFitWarning, match=r"class\(es\) \[2\] have no fitting rows, so there"):
        det = get_detector("line", threshold=1.0).fit(H[keep], y[keep], W=W, b=b)
    assert det.activation_mask_[:, 2].all() and det.weight_thresholds_[2] == -np.inf
    react = get_detector("react", threshold=1.0).fit(H, W, b)
    rows = np.argmax(np.minimum(H, 1.0) @ W + b, axis=1) == 2
    assert rows.any()
    np.testing.assert_allclose(det.score_samples(H[rows]), react.score_samples(H[rows]), rtol=1e-6)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.full(400, 0.5), "needs integer class labels y .*non-integral"),
        (np.array(["a"] * 400), "needs integer class labels y .*dtype <U1"),
        (np.array(["a"] * 400, dtype=object), "needs integer class labels y .*dtype object"),
    ],
)
def test_bad_class_labels_are_refused(labels, message):
    H, _, W, b = _labelled_problem()
    with pytest.raises(ValueError, match=message):
        get_detector("line").fit(H, labels, W=W, b=b)


@pytest.mark.filterwarnings("ignore::skdice.exceptions.DegenerateFitWarning")
def test_labels_outside_the_heads_columns_are_left_out_with_a_warning():
    H, y, W, b = _labelled_problem()
    shifted = np.where(y == 5, 6, y)  # a label the 6-class head has no column for
    with pytest.warns(UserWarning, match=r"\d+ fitting row\(s\) have class labels outside 0\.\.5"):
        det = get_detector("line").fit(H, shifted, W=W, b=b)
    assert np.all(det.class_means_[5] == 0)
    np.testing.assert_allclose(det.class_means_[:5], get_detector("line").fit(H, y, W=W, b=b).class_means_[:5])


def test_needs_class_labels():
    H, _, W, b = _labelled_problem()
    with pytest.raises(ValueError, match="needs class labels y"):
        get_detector("line").fit(H, W, b)


def test_non_finite_row_is_reported_by_its_index():
    H, y, W, b = _labelled_problem()
    det = get_detector("line").fit(H, y, W=W, b=b)
    bad = H[:10].copy()
    bad[7, 3] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="first at row 7"):
            det.score_samples(bad)


@pytest.mark.parametrize(("p_w", "p_a"), [(0.1, 0.3), (0.5, 0.7), (0.9, 0.3)])
def test_pruned_heads_equal_the_direct_rule_with_tied_weights(p_w, p_a):
    # weights rounded to one decimal: many ties, some at the threshold itself
    H, y, W, b = _labelled_problem()
    W = np.round(W, 1).astype(np.float32)
    W[3] = 0.0  # a unit whose weights all tie
    det = get_detector("line", p_w=p_w, p_a=p_a).fit(H, y, W=W, b=b)
    for c in range(W.shape[1]):
        head = det._class_head(c, W.astype(np.float64))
        product = np.abs(det.contribution_[:, c])[:, None] * W.astype(np.float64)
        expected = np.where(product > det.weight_thresholds_[c], W, 0)
        expected[~det.activation_mask_[:, c]] = 0  # the full-width head zeroes pruned units
        np.testing.assert_array_equal(head, expected)
