"""The one streamed mean (skdice._numeric.RunningMean) and the paths that take it."""

import numpy as np

from skdice._numeric import RunningMean, column_mean


def _rows(n=1000, m=7, seed=0):
    # large values with a small spread: a float32 running sum would lose the spread
    rng = np.random.default_rng(seed)
    return (1e4 + rng.normal(size=(n, m))).astype(np.float32)


def test_streamed_mean_sums_each_block_in_float64():
    X = _rows()
    stream = RunningMean(X.shape[1])
    for start in range(0, len(X), 128):
        stream.update(X[start:start + 128])
    exact = X.astype(np.float64).mean(axis=0)
    assert stream.n == len(X) and stream.total.dtype == np.float64
    np.testing.assert_allclose(stream.mean, exact, rtol=1e-12)
    np.testing.assert_allclose(column_mean(X), exact, rtol=1e-12)


def test_a_given_total_is_continued_in_place():
    X = _rows(10, 3)
    total = X[:4].sum(axis=0, dtype=np.float64)
    stream = RunningMean(3, total, 4)
    stream.update(X[4:])
    assert stream.total is total and stream.n == 10
    np.testing.assert_allclose(stream.mean, X.astype(np.float64).mean(axis=0), rtol=1e-12)


def test_a_sum_computed_elsewhere_is_added_with_its_rows():
    X = _rows(10, 3)
    stream = RunningMean(3)
    stream.add_sum(X[:6].sum(axis=0, dtype=np.float64), 6)
    stream.update(X[6:])
    assert stream.n == 10
    np.testing.assert_allclose(stream.mean, X.astype(np.float64).mean(axis=0), rtol=1e-12)


def test_partial_fit_keeps_its_stream_in_the_saved_sum():
    from skdice import DICEDetector, Head

    X = _rows(60, 5)
    rng = np.random.default_rng(1)
    head = Head(rng.normal(size=(5, 3)).astype(np.float32), np.zeros(3, np.float32))
    det = DICEDetector(p=0.5)
    for start in range(0, 60, 25):
        det.partial_fit(X[start:start + 25], head=head if start == 0 else None)
    assert det.n_samples_seen_ == 60
    expected = np.zeros(5)
    for start in (0, 25, 50):
        expected += X[start:start + 25].sum(axis=0, dtype=np.float64)
    np.testing.assert_array_equal(det._feature_sum, expected)
    np.testing.assert_allclose(det.mean_feature_, X.astype(np.float64).mean(axis=0), rtol=1e-12)
