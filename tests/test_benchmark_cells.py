"""The cells of a benchmark (skdice/workflows/_cells.py): metrics from draw counts, resamples, summaries."""

from __future__ import annotations

import numpy as np
import pytest

import skdice.workflows._cells as cells
from skdice.metrics import aupr_in, aupr_out, auroc, fpr_at_tpr
from skdice.workflows._cells import Pair, draw_batch, resample_rows, summary


def _reference(s_id, s_ood, tpr, positive):
    return 100 * np.array([fpr_at_tpr(s_id, s_ood, tpr=tpr, positive=positive), auroc(s_id, s_ood),
                           aupr_in(s_id, s_ood), aupr_out(s_id, s_ood)])


@pytest.mark.parametrize("positive", ["id", "ood"])
@pytest.mark.parametrize("tpr", [0.95, 0.8])
def test_pair_metrics_equal_skdice_metrics_with_ties(positive, tpr):
    rng = np.random.default_rng(3)
    s_id = np.round(rng.normal(1.0, 1.0, 157), 1)  # rounded: many ties, across the two sets too
    s_ood = np.round(rng.normal(0.0, 1.5, 91), 1)
    pair = Pair(s_id, s_ood)
    sample = pair.metrics(np.ones((157, 1)), np.ones((91, 1)), tpr=tpr, positive=positive)[:, 0]
    np.testing.assert_allclose(sample, _reference(s_id, s_ood, tpr, positive), rtol=1e-12, atol=1e-12)
    c_id, c_ood = draw_batch(5, 1, 0, range(6), 157), draw_batch(5, 1, 2, range(6), 91)
    resampled = pair.metrics(c_id, c_ood, tpr=tpr, positive=positive)
    for b in range(6):
        ref = _reference(s_id[resample_rows(5, 1, 0, b, 157)], s_ood[resample_rows(5, 1, 2, b, 91)], tpr, positive)
        np.testing.assert_allclose(resampled[:, b], ref, rtol=1e-12, atol=1e-12)


def test_draw_counts_sum_to_the_set_size_and_follow_the_rows():
    counts = draw_batch(0, 0, 1, range(3, 7), 50)
    assert counts.shape == (50, 4) and np.all(counts.sum(axis=0) == 50)
    np.testing.assert_array_equal(counts[:, 1], np.bincount(resample_rows(0, 0, 1, 4, 50), minlength=50))


def test_a_resample_does_not_depend_on_the_batch_it_is_drawn_in():
    whole = draw_batch(1, 0, 0, range(0, 10), 30)
    parts = np.hstack([draw_batch(1, 0, 0, range(a, min(a + 3, 10)), 30) for a in range(0, 10, 3)])
    np.testing.assert_array_equal(whole, parts)


def test_other_seeds_stores_and_sets_draw_other_rows():
    rows = [resample_rows(*key, 0, 100) for key in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1))]
    assert all(not np.array_equal(rows[0], other) for other in rows[1:])


def test_batch_size_keeps_the_count_matrix_within_the_budget(monkeypatch):
    monkeypatch.setattr(cells, "_BUDGET", 1000)
    assert cells.batch_size(300, 50) == 3 and cells.batch_size(5000, 50) == 1 and cells.batch_size(10, 50) == 50


def test_summary_is_numpys_mean_std_and_percentiles():
    rng = np.random.default_rng(0)
    per_store, reps = rng.normal(size=(4, 3)), rng.normal(size=(4, 500))
    out = summary(per_store, reps, confidence=0.9)
    for i, key in enumerate(cells.METRICS):
        assert out[key] == np.mean(per_store[i]) and out[f"{key}_std"] == np.std(per_store[i])
        assert [out[f"{key}_ci_low"], out[f"{key}_ci_high"]] == pytest.approx(np.quantile(reps[i], [0.05, 0.95]))
    assert summary(per_store)["auroc_ci_low"] is None
