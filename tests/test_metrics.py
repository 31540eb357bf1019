"""Metrics against independent references written from their definitions."""

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from skdice.metrics import (
    Report,
    auroc,
    aupr_in,
    aupr_out,
    detection_error,
    fpr95_score,
    fpr_at_tpr,
    ood_report,
)


def _reference_fpr_id_positive(id_s, ood_s, tpr):
    """Brute force over every candidate threshold t: accept x as ID iff score >= t."""
    best = 1.0
    for t in np.unique(np.r_[id_s, ood_s]):
        if np.mean(id_s >= t) >= tpr:
            best = min(best, np.mean(ood_s >= t))
    return best


def _reference_auroc(id_s, ood_s):
    """Mann-Whitney: P(id > ood) + 0.5 P(id == ood)."""
    diff = id_s[:, None] - ood_s[None, :]
    return np.mean(diff > 0) + 0.5 * np.mean(diff == 0)


def test_fpr_at_tpr_hand_example():
    # keeping 3 of 4 ID scores needs threshold 4; OOD score 7 alone passes it
    assert fpr_at_tpr([3, 4, 5, 6], [1, 2, 3.5, 7], tpr=0.75) == 0.25


@pytest.mark.parametrize("seed", range(5))
def test_fpr95_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    id_s = rng.integers(0, 12, size=97).astype(float)  # discrete: many ties
    ood_s = rng.integers(-4, 8, size=113).astype(float)
    assert fpr_at_tpr(id_s, ood_s) == pytest.approx(_reference_fpr_id_positive(id_s, ood_s, 0.95))


@pytest.mark.parametrize("seed", range(3))
def test_fpr95_ood_positive_is_id_rejected_when_ood_caught(seed):
    rng = np.random.default_rng(seed)
    id_s = rng.normal(2, 1, 300)
    ood_s = rng.normal(0, 3, 200)
    # OOD positive: flag x as OOD iff -score >= t, i.e. the same brute force with roles swapped
    expected = _reference_fpr_id_positive(-ood_s, -id_s, 0.95)
    assert fpr_at_tpr(id_s, ood_s, positive="ood") == pytest.approx(expected)
    # the two conventions really differ when the spreads differ
    assert abs(fpr_at_tpr(id_s, ood_s) - expected) > 0.05


def test_auroc_matches_mann_whitney_with_ties():
    rng = np.random.default_rng(1)
    id_s = rng.integers(0, 5, 50).astype(float)
    ood_s = rng.integers(0, 4, 60).astype(float)
    assert auroc(id_s, ood_s) == pytest.approx(_reference_auroc(id_s, ood_s))


def test_aupr_in_and_out_use_the_right_positive_class():
    rng = np.random.default_rng(2)
    id_s, ood_s = rng.normal(1, 1, 80), rng.normal(0, 1, 40)
    y_id = np.r_[np.ones(80), np.zeros(40)]
    s = np.r_[id_s, ood_s]
    assert aupr_in(id_s, ood_s) == pytest.approx(average_precision_score(y_id, s))
    assert aupr_out(id_s, ood_s) == pytest.approx(average_precision_score(1 - y_id, -s))
    # with unequal class sizes the two differ: a swapped implementation would fail
    assert aupr_in(id_s, ood_s) != pytest.approx(aupr_out(id_s, ood_s))


def test_detection_error_brute_force():
    rng = np.random.default_rng(3)
    id_s, ood_s = rng.normal(1, 1, 40), rng.normal(0, 1, 50)
    ts = np.r_[np.unique(np.r_[id_s, ood_s]), np.inf]
    ref = min(0.5 * (1 - np.mean(id_s >= t)) + 0.5 * np.mean(ood_s >= t) for t in ts)
    assert detection_error(id_s, ood_s) == pytest.approx(ref)


def test_perfect_separation():
    assert fpr_at_tpr([5, 6, 7], [0, 1]) == 0.0
    assert auroc([5, 6, 7], [0, 1]) == 1.0


@pytest.mark.parametrize(
    "id_s, ood_s, match",
    [
        ([], [1.0], "id_scores is empty"),
        ([1.0, np.nan], [1.0], "id_scores contains NaN or infinity"),
        ([1.0], [np.inf], "ood_scores contains NaN or infinity"),
        (["a"], [1.0], "must be numeric"),
        ([[1.0, 2.0]], [1.0], "must be 1-D"),
    ],
)
def test_bad_scores_raise_clear_errors(id_s, ood_s, match):
    with pytest.raises(ValueError, match=match):
        auroc(id_s, ood_s)


def test_bad_positive_and_tpr():
    with pytest.raises(ValueError, match="positive must be 'id' or 'ood'"):
        fpr_at_tpr([1.0], [0.0], positive="in")
    with pytest.raises(ValueError, match=r"tpr must be in \(0, 1\]"):
        fpr_at_tpr([1.0], [0.0], tpr=0)


def test_report_rows_average_and_renderings():
    rng = np.random.default_rng(4)
    id_s = rng.normal(1, 1, 100)
    ood = {"a": rng.normal(0, 1, 100), "b": rng.normal(-1, 1, 100)}
    report = ood_report(id_s, ood, method="dice", p=0.9)
    assert [r.ood for r in report.rows] == ["a", "b", "average"]
    avg = report.rows[-1]
    assert avg.auroc == pytest.approx((report.rows[0].auroc + report.rows[1].auroc) / 2)
    assert report.rows[0].fpr95 == pytest.approx(100 * fpr_at_tpr(id_s, ood["a"]))
    data = json.loads(report.to_json())
    assert set(data["results"][0]) == {"method", "p", "ood", "fpr95", "auroc", "aupr_in", "aupr_out"}
    assert report.to_csv().splitlines()[0] == "method,p,ood,fpr95,auroc,aupr_in,aupr_out"
    assert "| dice | 0.9 | average |" in report.to_markdown()
    assert report.to_table().splitlines()[0].split()[:3] == ["method", "p", "ood"]
    both = Report.concat([report, ood_report(id_s, ood, method="energy")])
    assert len(both.rows) == 6


def test_report_needs_an_ood_set():
    with pytest.raises(ValueError, match="ood_scores is empty"):
        ood_report([1.0], {})


def test_report_says_the_ood_scores_must_be_named():
    with pytest.raises(TypeError, match=r"ood_scores must map each OOD set's name to its scores, "
                                        r"e.g. \{'svhn': scores\}; got ndarray"):
        ood_report(np.array([1.0, 2.0]), np.array([0.0, 1.0]))


def test_fpr95_score_needs_both_classes():
    with pytest.raises(ValueError, match="needs both ID"):
        fpr95_score([1, 1], [0.3, 0.4])


def _reference_average_precision(pos, neg):
    """Step-wise AP from its definition: sum over distinct thresholds of dRecall * precision."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(np.r_[pos, neg])[::-1]:  # each distinct score, highest first
        tp, fp = np.sum(pos >= t), np.sum(neg >= t)
        recall = tp / pos.size
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed", range(3))
def test_aupr_in_and_out_match_step_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    id_s = rng.integers(0, 9, 70).astype(float)  # discrete: many ties across the classes
    ood_s = rng.integers(-3, 6, 45).astype(float)
    assert aupr_in(id_s, ood_s) == pytest.approx(_reference_average_precision(id_s, ood_s))
    assert aupr_out(id_s, ood_s) == pytest.approx(_reference_average_precision(-ood_s, -id_s))


def test_scorers_use_y_one_for_id_and_the_higher_is_better_sign():
    from skdice import EnergyDetector
    from skdice.metrics import auroc_scorer, fpr95_scorer

    rng = np.random.default_rng(5)
    W, b = np.abs(rng.normal(size=(6, 3))), np.zeros(3)  # larger features, larger energy
    H_id = np.abs(rng.normal(1.0, 1.0, (80, 6)))
    H_ood = np.abs(rng.normal(0.0, 0.7, (60, 6)))
    det = EnergyDetector().fit(H_id, W, b)
    X, y = np.r_[H_id, H_ood], np.r_[np.ones(80, int), np.zeros(60, int)]
    s_id, s_ood = det.score_samples(H_id), det.score_samples(H_ood)
    # lower FPR is better, so the scorer returns its negation; a shift by offset_ changes nothing
    fpr = _reference_fpr_id_positive(s_id, s_ood, 0.95)
    assert 0 < fpr < 1
    assert fpr95_scorer(det, X, y) == pytest.approx(-fpr)
    assert auroc_scorer(det, X, y) == pytest.approx(_reference_auroc(s_id, s_ood))


def test_report_at_another_tpr_says_so_in_headers_and_json():
    rng = np.random.default_rng(6)
    id_s, ood = rng.normal(1, 1, 50), {"a": rng.normal(0, 1, 50)}
    report = ood_report(id_s, ood, tpr=0.9)
    assert report.rows[0].fpr95 == pytest.approx(100 * fpr_at_tpr(id_s, ood["a"], tpr=0.9))
    assert report.to_table().splitlines()[0].split()[3] == "FPR@90TPR"
    assert "| FPR@90TPR |" in report.to_markdown()
    assert json.loads(report.to_json())["fpr_at_tpr"] == 0.9
    default = ood_report(id_s, ood)
    assert default.extra == {"fpr_at_tpr": 0.95, "fpr_positive": "id"}
    assert "FPR95" in default.to_table().splitlines()[0]
    # the FPR convention travels with the numbers, so a JSON file says which it holds
    assert json.loads(ood_report(id_s, ood, positive="ood").to_json())["fpr_positive"] == "ood"
