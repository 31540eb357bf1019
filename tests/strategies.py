"""Hypothesis strategies shared by the property tests (bounded floats, small shapes).

Add new strategies here rather than in test modules, so that every property
test draws from the same, documented distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# ------------------------------------------ Section 6: populations of units
#: Families of a unit's feature ``h_i`` for the Lemma 2 properties. All have a
#: finite fourth moment (Student-t with ``df >= 5``), which the statistical
#: bounds of the tests need.
UNIT_FAMILIES = ("gaussian", "laplace", "rectified-gaussian", "student-t")


@dataclass(frozen=True)
class UnitLaw:
    """The law of one unit's feature ``h_i``, independent of every other unit.

    ``gaussian``: ``N(loc, scale^2)``; ``laplace``: Laplace with location
    ``loc`` and scale ``scale`` (variance ``2 scale^2``); ``rectified-gaussian``:
    ``max(0, N(loc, scale^2))``, a post-ReLU feature; ``student-t``: ``loc +
    scale T`` with ``T`` Student-t with ``df`` degrees of freedom.
    """

    family: str
    loc: float
    scale: float
    df: int = 0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent float64 draws of ``h_i`` from ``rng``."""
        if self.family == "gaussian":
            return rng.normal(self.loc, self.scale, n)
        if self.family == "laplace":
            return rng.laplace(self.loc, self.scale, n)
        if self.family == "rectified-gaussian":
            return np.maximum(rng.normal(self.loc, self.scale, n), 0.0)
        if self.family == "student-t":
            return self.loc + self.scale * rng.standard_t(self.df, n)
        raise ValueError(f"unknown family {self.family!r}")


@st.composite
def unit_feature_laws(draw):
    """The law of one unit's feature: a family of :data:`UNIT_FAMILIES`, a drawn
    location in ``[-3, 3]`` and scale in ``[0.05, 3]`` (for the rectified
    Gaussian the location is ``alpha * scale`` with ``alpha`` in ``[-3, 3]``,
    from nearly dead to nearly always active), ``df`` in ``[5, 30]``."""
    family = draw(st.sampled_from(UNIT_FAMILIES))
    scale = draw(st.floats(0.05, 3.0, allow_subnormal=False))
    if family == "rectified-gaussian":
        loc = draw(st.floats(-3.0, 3.0, allow_subnormal=False)) * scale
    else:
        loc = draw(bounded_floats(-3.0, 3.0))
    df = draw(st.integers(5, 30)) if family == "student-t" else 0
    return UnitLaw(family, loc, scale, df)


@dataclass(frozen=True)
class IndependentUnitsUnderDICEHead:
    """A head, its ID training mean and the OOD law of every unit, independent units.

    The ID contribution ordering of class ``class_index`` is the order of
    ``V[:, c] = train_mean * weight[:, c]``; DICE at sparsity ``p`` keeps the
    units whose ``V[i, c]`` lies above the percentile of all of ``V``.
    ``centre_dropped`` asks the test to centre the units that DICE drops, so
    that the kept units carry the whole mean (Lemma 2's premise). ``seed``
    seeds the NumPy generator of the samples, so a failing draw replays.
    """

    laws: tuple
    weight: np.ndarray
    train_mean: np.ndarray
    class_index: int
    p: float
    centre_dropped: bool
    seed: int


@st.composite
def independent_units_under_a_dice_head(draw, min_units=2, max_units=8, max_classes=4):
    """Independent units of drawn laws under a drawn head: the data of Lemma 2.

    ``weight`` has float32 entries in ``[-2, 2]`` (the precision a
    :class:`skdice.Head` stores), ``train_mean`` entries in ``[0, 3]`` (means
    of post-ReLU features); ties and zeros are allowed, so DICE may keep every
    unit of the class or none.
    """
    m = draw(st.integers(min_units, max_units))
    n_classes = draw(st.integers(1, max_classes))
    laws = tuple(draw(st.lists(unit_feature_laws(), min_size=m, max_size=m)))
    # every entry drawn on its own (no fill value): ties stay possible, not the rule
    weight = draw(
        hnp.arrays(
            np.float32, (m, n_classes), elements=st.floats(-2, 2, width=32, allow_subnormal=False),
            fill=st.nothing(),
        )
    )
    train_mean = draw(hnp.arrays(np.float64, (m,), elements=bounded_floats(0.0, 3.0), fill=st.nothing()))
    return IndependentUnitsUnderDICEHead(
        laws=laws,
        weight=weight,
        train_mean=train_mean,
        class_index=draw(st.integers(0, n_classes - 1)),
        p=draw(st.floats(0.1, 0.95)),
        centre_dropped=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclass(frozen=True)
class CorrelatedUnitSamples:
    """Samples of correlated units and a kept set (Remark 1 and Appendix E).

    ``X`` is ``Z @ factor.T + mean`` with ``Z`` standard normal from ``seed``,
    so the population covariance is ``factor @ factor.T``. With ``weight`` not
    None, ``X`` holds features and the contributions are ``X * weight``.
    """

    X: np.ndarray
    kept: np.ndarray
    weight: np.ndarray | None
    factor: np.ndarray
    seed: int


@st.composite
def correlated_unit_samples(draw, min_rows=3, max_rows=60, max_units=8, max_factors=4):
    """Correlated unit samples from a drawn covariance factor, and an arbitrary kept set.

    ``factor`` (units x factors) has entries in ``[-5, 5]`` (zeros and
    repeated columns likely, hence exactly dependent and constant units);
    unit means in ``[-100, 100]``; half the draws pass features with a head
    column ``weight`` in ``[-2, 2]``.
    """
    n = draw(st.integers(min_rows, max_rows))
    m = draw(st.integers(1, max_units))
    r = draw(st.integers(1, max_factors))
    factor = draw(hnp.arrays(np.float64, (m, r), elements=bounded_floats(-5.0, 5.0)))
    mean = draw(hnp.arrays(np.float64, (m,), elements=bounded_floats(-100.0, 100.0)))
    seed = draw(st.integers(0, 2**32 - 1))
    weight = draw(st.none() | hnp.arrays(np.float64, (m,), elements=bounded_floats(-2.0, 2.0)))
    Z = np.random.default_rng(seed).standard_normal((n, r))
    return CorrelatedUnitSamples(
        X=Z @ factor.T + mean, kept=draw(kept_masks(m)), weight=weight, factor=factor, seed=seed
    )


@st.composite
def anticorrelated_dropped_and_kept_units(draw, min_rows=3, max_rows=60, max_units=8):
    """Units whose dropped block is anti-correlated with the kept block, and that kept set.

    One shared factor ``z`` enters every kept unit with a loading ``a_i`` in
    ``[0, 3]`` and every dropped unit with ``-b_j``, ``b_j`` in ``[0, 3]``;
    each unit adds its own noise of scale in ``[0, 3]``. The population
    reduction ``B^2 + sum_dropped s_j^2 - 2 A B`` (``A = sum a_i``, ``B = sum
    b_j``) is negative for part of the draws: where the anti-correlation
    outweighs the dropped variance. At least one unit is kept and one dropped.
    """
    n = draw(st.integers(min_rows, max_rows))
    m = draw(st.integers(2, max_units))
    n_kept = draw(st.integers(1, m - 1))
    kept = np.zeros(m, dtype=bool)
    kept[np.array(draw(st.permutations(range(m))))[:n_kept]] = True
    loading = np.array(draw(st.lists(bounded_floats(0.0, 3.0), min_size=m, max_size=m)))
    noise = np.array(draw(st.lists(bounded_floats(0.0, 3.0), min_size=m, max_size=m)))
    factor = np.column_stack([np.where(kept, loading, -loading), np.diag(noise)])
    mean = draw(hnp.arrays(np.float64, (m,), elements=bounded_floats(-100.0, 100.0)))
    seed = draw(st.integers(0, 2**32 - 1))
    Z = np.random.default_rng(seed).standard_normal((n, m + 1))
    return CorrelatedUnitSamples(X=Z @ factor.T + mean, kept=kept, weight=None, factor=factor, seed=seed)


class RowBlocks:
    """A block source over an in-memory matrix: ``shape``, ``dtype`` and ``iter_blocks()``.

    The rows come in blocks of ``block_rows`` (the last one shorter), as a
    store split's :class:`~skdice.workflows.resolve.SplitFeatures` gives
    them; ``passes`` counts the calls of ``iter_blocks``.
    """

    def __init__(self, X, block_rows: int, name: str = "split 'rows'"):
        self.X = X
        self.shape = X.shape
        self.dtype = X.dtype
        self.block_rows = max(1, int(block_rows))
        self.name = name
        self.passes = 0

    def iter_blocks(self):
        self.passes += 1
        for start in range(0, self.X.shape[0], self.block_rows):
            yield start, self.X[start : start + self.block_rows]


@st.composite
def matrices_in_blocks(draw, max_rows=40, max_cols=6):
    """A float32 or float64 matrix with ties, zeros and signs, and a block size for it.

    The entries are drawn from a few values of each sign (ReLU zeros and
    ties, as penultimate features have) or from bounded floats, so that order
    statistics land on repeated values as often as on distinct ones.
    """
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, max_rows))
    m = draw(st.integers(1, max_cols))
    elements = draw(st.sampled_from(["ties", "floats"]))
    if elements == "ties":
        values = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -3.0, 1e-3])
    else:
        values = bounded_floats()
    X = draw(hnp.arrays(dtype, (n, m), elements=values))
    return X, draw(st.integers(1, n))
