"""SHE: similarity with the stored pattern (mean correctly classified feature) of the predicted class."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem
from scipy.stats import spearmanr

from skdice import get_detector
from skdice.detectors.she import SHEDetector


def _official(H_train, y, H, W, b, metric):
    """The authors' generate_stored_pattern.py + simple_compute_score_HE (and OpenOOD's
    SHEPostprocessor) in float64: per class the mean feature of the training rows with
    label == prediction == c; the metric between h and the pattern of its prediction."""
    H_train, H = H_train.astype(np.float64), H.astype(np.float64)
    pred_train = (H_train @ W + b).argmax(axis=1)
    patterns = np.stack([H_train[(y == c) & (pred_train == c)].mean(axis=0) for c in range(W.shape[1])])
    target = patterns[(H @ W + b).argmax(axis=1)]
    if metric == "inner_product":
        return np.sum(H * target, axis=1)
    if metric == "euclidean":
        return -np.sqrt(np.sum((H - target) ** 2, axis=1))
    return np.sum(H * target, axis=1) / (np.linalg.norm(H, axis=1) * np.linalg.norm(target, axis=1))


@pytest.mark.parametrize("metric", ["inner_product", "euclidean", "cosine"])
def test_scores_equal_the_authors_she(metric):
    H, y, H_id, H_ood, W, b = id_ood_problem()
    y = y.copy()
    y[::4] = (y[::4] + 1) % 4  # a quarter mislabelled: left out of the patterns
    queries = np.r_[H_id[:100], H_ood[:40]]
    det = SHEDetector(metric=metric).fit(H, W, b, y)
    reference = _official(H, y, queries, W, b, metric)
    exact = det.score_samples(queries.astype(np.float64))
    assert spearmanr(exact, reference).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(exact, reference, rtol=1e-10)
    np.testing.assert_allclose(det.score_samples(queries), reference, rtol=1e-5)


def test_a_class_never_classified_correctly_falls_back_to_its_predicted_rows():
    # class 1 is predicted for row 2 but labelled 0 there; class 2 is never predicted
    H = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    W, b = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.array([0.0, 0.0, -10.0])
    with pytest.warns(UserWarning, match=r"no fitting row of class\(es\) \[1, 2\] is classified correctly"):
        det = SHEDetector().fit(H, W, b, [0, 0, 0])
    np.testing.assert_array_equal(det.patterns_, [[3.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    np.testing.assert_array_equal(det.class_counts_, [2, 0, 0])
    np.testing.assert_allclose(det.score_samples([[0.0, 5.0], [1.0, 0.0]]), [15.0, 3.0])


def test_labels_must_index_the_heads_columns():
    H = np.ones((3, 2))
    with pytest.raises(ValueError, match="Unknown label type: SHEDetector needs class labels y that index"):
        SHEDetector().fit(H, np.eye(2), None, ["cat", "dog", "cat"])
    with pytest.raises(ValueError, match="needs class labels y that index the head's columns"):
        SHEDetector().fit(H, np.eye(2), None, [0.5, 1.0, 0.0])
    with pytest.raises(ValueError, match="SHEDetector.fit needs class labels y"):
        SHEDetector().fit(H, np.eye(2))


def test_id_scores_higher_than_ood():
    H_train, y_train, H_id, H_ood, W, b = id_ood_problem()
    det = get_detector("she").fit(H_train, y_train, W=W, b=b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9
