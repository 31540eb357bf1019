"""Exact quantiles of every entry over passes of blocks (skdice._selection).

The reference is numpy itself on the whole matrix: the selection must give
the same number, of the same dtype, for every rank, every dtype and every
way of cutting the rows into blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import skdice._selection as selection
from skdice._selection import entry_percentile, entry_quantile
from strategies import RowBlocks, matrices_in_blocks


def _same(got, expected):
    assert np.asarray(got).dtype == np.asarray(expected).dtype
    assert np.shape(got) == np.shape(expected)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("collect_limit", [0, 1 << 22])
def test_entry_quantile_equals_numpy_on_relu_features(monkeypatch, dtype, collect_limit):
    # collect_limit 0 finds every bit by counting; the default collects the last bucket
    monkeypatch.setattr(selection, "COLLECT_LIMIT", collect_limit)
    rng = np.random.default_rng(0)
    X = np.maximum(rng.standard_normal((301, 17)), 0).astype(dtype)
    X[5, :] = -2.5  # a few negatives
    source = RowBlocks(X, 29)
    for q in (0.0, 1e-3, 0.1, 0.5, 0.9, 0.99, 1 - 1e-3, 1.0):
        _same(entry_quantile(source, q), np.quantile(X, q))
    _same(entry_quantile(source, [0.1, 0.9]), np.quantile(X, [0.1, 0.9]))


@pytest.mark.parametrize("q", [90, 90.0, 85.5, [10, 90], [99.0], np.float64(95), 0, 100])
def test_entry_percentile_keeps_numpys_result_type(q):
    # a Python scalar keeps the features' precision, a sequence or numpy scalar gives float64
    X = np.random.default_rng(1).random((50, 7)).astype(np.float32)
    _same(entry_percentile(RowBlocks(X, 8), q), np.percentile(X, q))


@settings(max_examples=200)
@given(data=matrices_in_blocks(), q=st.floats(0, 1), count_every_bit=st.booleans())
def test_entry_quantile_equals_numpy_for_any_blocks(data, q, count_every_bit):
    X, block_rows = data
    old = selection.COLLECT_LIMIT
    selection.COLLECT_LIMIT = 0 if count_every_bit else old
    try:
        _same(entry_quantile(RowBlocks(X, block_rows), q), np.quantile(X, q))
        _same(entry_quantile(RowBlocks(X, block_rows), [q, 1 - q]), np.quantile(X, [q, 1 - q]))
    finally:
        selection.COLLECT_LIMIT = old


def test_float32_selection_takes_two_passes(monkeypatch):
    # the count of the top 16 bits, then of the low 16 bits, and the value is known
    monkeypatch.setattr(selection, "COLLECT_LIMIT", 0)
    X = np.random.default_rng(2).standard_normal((100, 10)).astype(np.float32)
    source = RowBlocks(X, 7)
    entry_quantile(source, [0.1, 0.9])
    assert source.passes == 2


def test_an_array_is_numpys_own_quantile():
    X = np.arange(12, dtype=np.float64).reshape(3, 4)
    _same(entry_quantile(X, 0.25), np.quantile(X, 0.25))


@pytest.mark.parametrize("q", [-0.1, 1.5, [0.5, 2.0], float("nan")])
def test_quantiles_outside_the_unit_interval_are_refused(q):
    with pytest.raises(ValueError, match=r"quantiles must lie in \[0, 1\]"):
        entry_quantile(RowBlocks(np.ones((3, 2), np.float32), 2), q)


def test_an_empty_source_has_no_quantile():
    with pytest.raises(ValueError, match="no entries to take a quantile of"):
        entry_quantile(RowBlocks(np.ones((0, 3), np.float32), 1), 0.5)


def test_a_memo_keeps_the_first_count_and_the_entries_found(monkeypatch):
    # a search's candidates read one source: after the first selection, a new
    # percentile costs the second pass alone and a repeated one no pass
    from skdice._streamed_fit import CheckedBlocks

    monkeypatch.setattr(selection, "COLLECT_LIMIT", 0)
    X = np.random.default_rng(5).standard_normal((120, 9)).astype(np.float32)
    rows = RowBlocks(X, 11)
    source = CheckedBlocks(rows, memo=True)
    _same(entry_percentile(source, [10, 90]), np.percentile(X, [10, 90]))
    assert rows.passes == 2
    _same(entry_percentile(source, [5, 95]), np.percentile(X, [5, 95]))
    assert rows.passes == 3
    _same(entry_percentile(source, 90.0), np.percentile(X, 90.0))
    assert rows.passes == 3
    # without a memo every selection starts again
    fresh = RowBlocks(X, 11)
    entry_percentile(CheckedBlocks(fresh), [10, 90])
    entry_percentile(CheckedBlocks(fresh), [10, 90])
    assert fresh.passes == 4
