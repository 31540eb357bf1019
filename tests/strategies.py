"""Hypothesis strategies shared by the property tests (bounded floats, small shapes).

Add new strategies here rather than in test modules, so that every property
test draws from the same, documented distributions.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

#: bound of the sample values: large enough to stress cancellation, small
#: enough that squares and sums stay far from overflow in float64
BOUND = 1e3


def bounded_floats(low=-BOUND, high=BOUND):
    """Finite float64 values in ``[low, high]`` without subnormals."""
    return st.floats(
        min_value=low,
        max_value=high,
        allow_nan=False,
        allow_infinity=False,
        allow_subnormal=False,
    )


def sparsities(allow_zero=True):
    """A sparsity ``p`` in ``[0, 1)`` (or ``(0, 1)``)."""
    return st.floats(
        min_value=0.0,
        max_value=1.0,
        exclude_min=not allow_zero,
        exclude_max=True,
        allow_nan=False,
        allow_subnormal=False,
    )


@st.composite
def sample_matrices(draw, min_rows=2, max_rows=30, min_cols=1, max_cols=10):
    """An arbitrary ``(n_samples, n_units)`` float64 sample matrix of bounded values."""
    n = draw(st.integers(min_rows, max_rows))
    m = draw(st.integers(min_cols, max_cols))
    return draw(hnp.arrays(np.float64, (n, m), elements=bounded_floats()))


@st.composite
def kept_masks(draw, m):
    """Any boolean mask of ``m`` units (empty and full sets included)."""
    return draw(hnp.arrays(np.bool_, (m,), elements=st.booleans()))


@st.composite
def samples_and_kept(draw, **kwargs):
    """A sample matrix and an arbitrary kept set of its columns."""
    X = draw(sample_matrices(**kwargs))
    return X, draw(kept_masks(X.shape[1]))


@st.composite
def orthogonal_centred_columns(draw, min_rows=3, max_rows=40, max_cols=8):
    """A sample matrix whose columns have zero sample covariance with each other.

    Built from the cosine (DCT-II) basis vectors ``cos(pi k (t + 1/2) / n)``,
    ``k = 1 .. n-1``: they are pairwise orthogonal and each sums to zero, so
    any distinct subset, scaled column by column, shifted by a constant per
    column and with its rows permuted, has an exactly diagonal sample
    covariance matrix (up to rounding). Scales include 0 (a constant unit).
    """
    n = draw(st.integers(min_rows, max_rows))
    m = draw(st.integers(1, min(max_cols, n - 1)))
    freqs = draw(
        st.lists(st.integers(1, n - 1), min_size=m, max_size=m, unique=True)
    )
    scales = np.array(draw(st.lists(bounded_floats(-100, 100), min_size=m, max_size=m)))
    offsets = np.array(draw(st.lists(bounded_floats(), min_size=m, max_size=m)))
    perm = np.array(draw(st.permutations(range(n))))
    t = np.arange(n)[:, None] + 0.5
    basis = np.cos(np.pi * np.asarray(freqs)[None, :] * t / n)
    return (basis * scales + offsets)[perm]


@st.composite
def distinct_contributions(draw, max_rows=12, max_cols=6):
    """A contribution matrix ``V`` of shape (m, C) whose entries are all distinct.

    Entries are distinct integers divided by 997, so neighbouring values are
    at least about 1e-3 apart: no two can meet at an interpolated percentile
    through rounding.
    """
    m = draw(st.integers(1, max_rows))
    c = draw(st.integers(1, max_cols))
    ints = draw(
        hnp.arrays(np.int64, (m, c), elements=st.integers(-10**6, 10**6), unique=True)
    )
    return ints / 997.0


@st.composite
def contributions_with_ties(draw, max_rows=12, max_cols=6):
    """A contribution matrix ``V`` of shape (m, C), ties and zeros (dead units) likely."""
    m = draw(st.integers(1, max_rows))
    c = draw(st.integers(1, max_cols))
    elements = st.one_of(st.sampled_from([-1.0, 0.0, 0.5, 2.0]), bounded_floats(-10, 10))
    return draw(hnp.arrays(np.float64, (m, c), elements=elements))


@st.composite
def heads_and_features(draw, max_rows=20, max_features=8, max_classes=5):
    """Features ``H >= 0`` (post-ReLU), a head ``W`` and a bias ``b`` of matching shapes.

    Bounded so that logits stay within a few hundred: float32 logsumexp cannot
    overflow, and float32 vs float64 references agree to about 1e-6.
    """
    n = draw(st.integers(1, max_rows))
    m = draw(st.integers(1, max_features))
    c = draw(st.integers(1, max_classes))
    H = draw(hnp.arrays(np.float64, (n, m), elements=bounded_floats(0, 10)))
    W = draw(hnp.arrays(np.float64, (m, c), elements=bounded_floats(-2, 2)))
    b = draw(hnp.arrays(np.float64, (c,), elements=bounded_floats(-2, 2)))
    return H, W, b
