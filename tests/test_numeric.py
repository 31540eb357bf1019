"""The sparse-head scoring kernel: dropping all-zero units from the GEMM changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from skdice import DICEDetector
from skdice._numeric import Moments, active_units, masked_energy


def _skewed_problem(n=400, m=64, C=10, seed=0):
    """Unit means spread over two orders of magnitude, so high p zeroes whole units."""
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 1.5, size=m)
    H = (rng.random((n, m)) * scale).astype(np.float32)
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    return H, W, b


def _reference_energy(H, weight, b):
    Z = H.astype(np.float64) @ weight.astype(np.float64) + b
    top = Z.max(axis=1)
    return top + np.log(np.exp(Z - top[:, None]).sum(axis=1))


def test_active_units_are_the_rows_with_a_kept_weight():
    weight = np.zeros((6, 3), np.float32)
    weight[[1, 4], 0] = 1.0
    units, packed = active_units(weight, limit=0.5)
    np.testing.assert_array_equal(units, [1, 4])
    np.testing.assert_array_equal(packed, weight[[1, 4]])
    assert active_units(weight, limit=0.2) == (None, weight)  # too many active to pay off
    again = active_units(weight, limit=0.5)  # cached for the same array
    assert again[1] is packed


@pytest.mark.parametrize("p", [0.9, 0.99])
def test_scores_with_dropped_units_equal_the_dense_formula(p):
    H, W, b = _skewed_problem()
    det = DICEDetector(p=p).fit(H, W, b)
    units, _ = active_units(det.masked_weight_)
    assert units is not None and units.size < W.shape[0]  # the case under test
    np.testing.assert_allclose(
        det.score_samples(H), _reference_energy(H, det.masked_weight_, b), rtol=1e-5
    )


def test_dense_and_packed_kernels_agree():
    H, W, b = _skewed_problem()
    masked = DICEDetector(p=0.99).fit(H, W, b).masked_weight_
    dense = masked_energy(H, None, masked, b)
    packed = masked_energy(H, *active_units(masked, limit=1.0), b)
    np.testing.assert_allclose(packed, dense, rtol=1e-6)


def test_nan_in_a_dropped_unit_is_still_reported():
    H, W, b = _skewed_problem()
    det = DICEDetector(p=0.99).fit(H, W, b)
    units, _ = active_units(det.masked_weight_)
    dropped = np.setdiff1d(np.arange(W.shape[0]), units)[0]
    bad = H.copy()
    bad[7, dropped] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 7\)"):
        det.score_samples(bad)


def test_energy_scores_equals_the_detector_and_reports_bad_rows():
    from skdice._numeric import energy_scores

    H, W, b = _skewed_problem()
    det = DICEDetector(p=0.9).fit(H, W, b)
    np.testing.assert_allclose(energy_scores(H, det.masked_weight_, b), det.score_samples(H), rtol=1e-12)
    bad = H.astype(np.float64)
    bad[11, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 11\)"):
        energy_scores(bad, det.masked_weight_, b)


# ------------------------------------------------------------------ Moments
@pytest.mark.parametrize("cuts", [(), (1,), (7, 8, 50), tuple(range(1, 97, 13))])
def test_moments_merged_over_blocks_equal_the_whole_array_statistics(cuts):
    rng = np.random.default_rng(3)
    # a large common offset: sum(x^2) - n mean^2 would lose every digit of the variance
    X = (1e4 + rng.normal(0.0, 1.0, size=(97, 6))).astype(np.float64)
    acc = Moments(6, cross=True)
    for block in np.split(X, cuts):
        acc.update(block)
    assert acc.n == 97
    np.testing.assert_allclose(acc.mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.variance(), X.var(axis=0, ddof=1), rtol=1e-9)
    np.testing.assert_allclose(acc.covariance(), np.cov(X, rowvar=False), rtol=1e-9, atol=1e-12)


def test_moments_example_and_empty_blocks():
    acc = Moments(2)
    acc.update(np.zeros((0, 2)))
    acc.update(np.array([[1.0, 0.0]], dtype=np.float32))
    acc.update(np.array([[3.0, 2.0]], dtype=np.float32))
    assert acc.n == 2 and acc.comoment is None
    assert acc.mean.tolist() == [2.0, 1.0]
    assert acc.variance().tolist() == [2.0, 2.0]
    assert acc.variance(ddof=0).tolist() == [1.0, 1.0]


def test_predicted_classes_equal_the_argmax_of_the_whole_logits_whatever_the_chunking():
    from sklearn import config_context

    from skdice._numeric import predicted_classes

    rng = np.random.default_rng(7)
    X = rng.normal(size=(3000, 40)).astype(np.float32)
    W = rng.normal(size=(40, 9)).astype(np.float32)
    b = rng.normal(size=9).astype(np.float32)
    expected = (X.astype(np.float64) @ W + b).argmax(axis=1)
    with config_context(working_memory=1):  # many 1 MiB chunks
        got = predicted_classes(X, W, b)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
