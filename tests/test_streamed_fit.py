"""``fit`` on a block source (skdice._streamed_fit): statistics over passes, equal to the in-memory fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from skdice import Head, KNNDetector, detector_tags
from skdice._registry import available_detectors, get_detector
from skdice._streamed_fit import CheckedBlocks
from strategies import RowBlocks
from tolerances import score_atol


def _problem(seed=0, n=420, m=24, C=5):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, C)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    X = np.maximum(rng.standard_normal((n, m)), 0).astype(np.float32)
    y = (X @ W + b).argmax(axis=1)
    y[::9] = rng.integers(0, C, y[::9].size)  # some misclassified rows
    T = np.maximum(rng.standard_normal((150, m)), 0).astype(np.float32)
    return Head(W, b), X, y, T


def _streamed_names():
    return [n for n in available_detectors() if detector_tags(get_detector(n)).streamed_fit]


def _seeded(name):
    det = get_detector(name)
    return det.set_params(random_state=0) if "random_state" in det.get_params() else det


@pytest.mark.parametrize("name", _streamed_names())
def test_fit_on_a_block_source_scores_as_the_fit_on_the_array(name):
    head, X, y, T = _problem()
    args = (y,) if detector_tags(get_detector(name)).requires_class_labels else ()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate-fit warnings are the same either way
        in_memory = _seeded(name).fit(X, *args, head=head)
        streamed = _seeded(name).fit(RowBlocks(X, 37), *args, head=head)
    expected = in_memory.score_samples(T)
    # the statistics are float64 sums cut at other rows: equal up to their rounding,
    # far inside what float32 scoring itself can move
    atol = float(score_atol(np.float32, T, head.weight, expected))
    np.testing.assert_allclose(streamed.score_samples(T), expected, rtol=0, atol=atol)
    assert streamed.offset_ == pytest.approx(in_memory.offset_, abs=atol)
    assert streamed.n_features_in_ == X.shape[1]


def test_every_detector_but_the_banks_fits_from_blocks():
    # the list: what keeps training rows cannot stream, the rest does
    assert sorted(set(available_detectors()) - set(_streamed_names())) == ["knn", "nnguide", "relation"]


def test_a_bank_of_training_rows_refuses_a_block_source():
    head, X, _, _ = _problem()
    with pytest.raises(ValueError, match="KNNDetector cannot be fitted block by block: its statistics hold"):
        KNNDetector().fit(RowBlocks(X, 50), head=head)


def test_a_non_finite_row_is_named_in_the_whole_source():
    head, X, _, _ = _problem()
    X = X.copy()
    X[123, 4] = np.nan
    with pytest.raises(ValueError, match=r"split 'rows' contains NaN or infinity \(first at row 123\)"):
        get_detector("react").fit(RowBlocks(X, 50), head=head)


def test_an_id_mask_is_refused_on_a_block_source():
    head, X, _, _ = _problem()
    with pytest.raises(ValueError, match="takes no ID mask y: every row is fitted on"):
        get_detector("react").fit(RowBlocks(X, 50), np.ones(len(X)), head=head)


def test_class_labels_must_cover_every_row():
    head, X, y, _ = _problem()
    with pytest.raises(ValueError, match=r"one entry per row of X \(420\), got shape \(419,\)"):
        get_detector("mahalanobis").fit(RowBlocks(X, 50), y[:-1])
    with pytest.raises(ValueError, match="MahalanobisDetector.fit needs class labels y"):
        get_detector("mahalanobis").fit(RowBlocks(X, 50))


def test_an_empty_source_and_a_missing_head_are_refused():
    head, X, _, _ = _problem()
    with pytest.raises(ValueError, match="split 'rows' has no rows to fit on"):
        get_detector("react").fit(RowBlocks(X[:0], 5), head=head)
    with pytest.raises(ValueError, match="ReActDetector.fit needs the classifier head"):
        get_detector("react").fit(RowBlocks(X, 50))


def test_a_block_of_another_width_is_refused():
    class Ragged(RowBlocks):
        def iter_blocks(self):
            yield 0, self.X[:10]
            yield 10, self.X[10:20, :-1]

    head, X, _, _ = _problem()
    with pytest.raises(ValueError, match=r"the block at row 10 has shape \(10, 23\), not \(rows, 24\)"):
        get_detector("bats").fit(Ragged(X, 10), head=head)


def test_checked_blocks_reads_integers_as_float32_and_concatenates_in_order():
    source = CheckedBlocks(RowBlocks(np.arange(12).reshape(6, 2), 4))
    assert source.dtype == np.float32
    np.testing.assert_array_equal(source.concatenate(), np.arange(12, dtype=np.float32).reshape(6, 2))


def test_without_calibration_offset_is_nan_and_the_rows_are_read_for_the_statistics_only():
    head, X, _, _ = _problem()
    source = RowBlocks(X, 64)
    det = get_detector("bats").fit(source, head=head, calibrate=False)
    assert np.isnan(det.offset_)
    assert source.passes == 2  # the mean, then the centred squares; no scoring pass


@pytest.mark.parametrize("method", ["vra", "knn", "ash-s"])
def test_a_search_on_a_block_source_chooses_as_on_the_array(method):
    # VRA's candidates read the source in passes; KNN's bank gets it loaded once;
    # ASH's, fitted from the head alone, take one row of the first block
    from skdice.tuning import HyperparameterSearch

    head, X, _, T = _problem(seed=3)
    rng = np.random.default_rng(4)
    X_ood = rng.random((120, X.shape[1])).astype(np.float32) * 3
    X_noise = rng.standard_normal((120, X.shape[1])).astype(np.float32)
    grid = {"vra": {"percentile_high": [80, 95], "percentile_low": [5]}, "knn": {"n_neighbors": [1, 5]},
            "ash-s": {"percentile": [65, 90]}}[method]
    kwargs = dict(head=head, X_id=T, X_noise=X_noise, X_ood=X_ood)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_array = HyperparameterSearch(method, grid=grid, random_state=0).fit(X, **kwargs)
        source = RowBlocks(X, 41)
        on_source = HyperparameterSearch(method, grid=grid, random_state=0).fit(source, **kwargs)
    assert on_source.best_params_ == on_array.best_params_
    np.testing.assert_allclose(on_source.cv_results_["mean_test_score"], on_array.cv_results_["mean_test_score"])
    np.testing.assert_allclose(on_source.cv_results_["auroc"], on_array.cv_results_["auroc"])
    assert source.passes >= 1
