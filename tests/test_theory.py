"""Properties of the paper's variance analysis (Section 6, Appendix E) and of DICE's mask.

Every property test sits beside a deterministic example. References are
computed independently: explicit covariance matrices (numpy.cov), sample
variances of row sums (numpy.var), float64 logsumexp (scipy.special).
Exhaustive runs of the key properties are marked slow: ``pytest -m slow``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from sklearn import config_context

from skdice import DICEDetector, Head
from skdice.sparsify import dice_mask, dice_thresholds
from skdice.theory import (
    ood_score_std,
    output_mean_gap,
    sparsity_profile,
    unit_contributions,
    variance_decomposition,
)

from strategies import (
    contributions_with_ties,
    distinct_contributions,
    heads_and_features,
    orthogonal_centred_columns,
    samples_and_kept,
    sparsities,
)


TERMS = ("var_dense", "var_masked", "dropped_variance", "all_pairs_covariance", "kept_pairs_covariance")


def _skip_unless_slow(request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("exhaustive run: select it with pytest -m slow")


def _explicit_terms(X, kept, ddof=1):
    """Appendix E's terms from the explicit covariance matrix (the reference).

    Var[f_c] - Var[f_c^DICE] = sum_{dropped i} sigma_i^2
        + 2 sum_{all pairs i<j} Cov(v_i, v_j) - 2 sum_{kept pairs i<j} Cov(v_i, v_j)
    """
    C = np.atleast_2d(np.cov(X, rowvar=False, ddof=ddof))
    Ck = C[np.ix_(kept, kept)]
    return {
        "var_dense": np.var(X.sum(axis=1), ddof=ddof),
        "var_masked": np.var(X[:, kept].sum(axis=1), ddof=ddof),
        "dropped_variance": np.diag(C)[~kept].sum(),
        "all_pairs_covariance": 2 * np.triu(C, k=1).sum(),
        "kept_pairs_covariance": 2 * np.triu(Ck, k=1).sum(),
        "scale": np.abs(C).sum(),
    }


def _tolerance(X, scale):
    # float64 rounding of centred products: relative to the covariance scale,
    # plus the cancellation left by centring values as large as max|X|.
    return 1e-9 * scale + 1e-12 * float(np.max(np.abs(X))) ** 2 * X.shape[1] ** 2


# --------------------------------------------------------- Proposition 1
def test_variance_of_sum_is_sum_of_variances_example():
    X = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]) * [2.0, 3.0] + [5.0, -1.0]
    d = variance_decomposition(X, [True, True])
    expected = np.var(X[:, 0], ddof=1) + np.var(X[:, 1], ddof=1)
    assert d.var_dense == pytest.approx(expected, rel=1e-14)
    assert d.all_pairs_covariance == pytest.approx(0.0, abs=1e-12)


@given(orthogonal_centred_columns())
def test_variance_of_sum_is_sum_of_variances_for_orthogonal_centred_columns(X):
    unit_var = np.var(X, axis=0, ddof=1)
    var_sum = np.var(X.sum(axis=1), ddof=1)
    tol = _tolerance(X, unit_var.sum())
    assert abs(var_sum - unit_var.sum()) <= tol
    d = variance_decomposition(X, np.ones(X.shape[1], dtype=bool))
    assert abs(d.var_dense - unit_var.sum()) <= tol
    assert abs(d.all_pairs_covariance) <= tol


# -------------------------------------------------------------- Lemma 2
def test_dropping_uncorrelated_units_lowers_variance_by_dropped_variances_example():
    t = np.arange(8) + 0.5
    X = np.stack([np.cos(np.pi * k * t / 8) * s for k, s in [(1, 1.0), (2, 3.0), (3, 0.5)]], axis=1)
    d = variance_decomposition(X, [False, True, False])
    assert d.reduction == pytest.approx(np.var(X[:, 0], ddof=1) + np.var(X[:, 2], ddof=1), rel=1e-12)
    assert d.reduction == pytest.approx(d.dropped_variance, rel=1e-12)


@given(orthogonal_centred_columns(), st.data())
def test_dropping_uncorrelated_units_lowers_variance_by_dropped_variances(X, data):
    kept = data.draw(st.lists(st.booleans(), min_size=X.shape[1], max_size=X.shape[1]))
    kept = np.array(kept, dtype=bool)
    d = variance_decomposition(X, kept)
    unit_var = np.var(X, axis=0, ddof=1)
    tol = _tolerance(X, unit_var.sum())
    direct = np.var(X.sum(axis=1), ddof=1) - np.var(X[:, kept].sum(axis=1), ddof=1)
    assert abs(direct - unit_var[~kept].sum()) <= tol
    assert abs(d.reduction - d.dropped_variance) <= tol
    assert d.reduction >= -tol


# ---------------------------------------------------------- Appendix E
def test_appendix_e_identity_example():
    X = np.array([[1.0, 2.0, 0.0, 4.0], [3.0, 0.0, 1.0, 1.0], [2.0, 1.0, 5.0, 0.0], [0.0, 3.0, 2.0, 2.0]])
    kept = np.array([False, True, False, True])
    d = variance_decomposition(X, kept)
    ref = _explicit_terms(X, kept)
    for name in TERMS:
        assert getattr(d, name) == pytest.approx(ref[name], rel=1e-12, abs=1e-12), name
    assert d.reduction == pytest.approx(d.decomposed_reduction, abs=1e-12)


def _check_appendix_e(X, kept):
    d = variance_decomposition(X, kept)
    ref = _explicit_terms(X, kept)
    tol = _tolerance(X, ref["scale"])
    for name in TERMS:
        assert abs(getattr(d, name) - ref[name]) <= tol, name
    assert abs(ref["var_dense"] - ref["var_masked"] - (
        ref["dropped_variance"] + ref["all_pairs_covariance"] - ref["kept_pairs_covariance"]
    )) <= tol
    assert abs(d.reduction - d.decomposed_reduction) <= tol


@given(samples_and_kept())
def test_appendix_e_identity_holds_for_any_samples_and_kept_set(case):
    _check_appendix_e(*case)


@pytest.mark.slow
def test_appendix_e_identity_holds_for_any_samples_and_kept_set_exhaustive(request):
    _skip_unless_slow(request)

    @settings(max_examples=3000)
    @given(samples_and_kept(max_rows=200, max_cols=40))
    def run(case):
        _check_appendix_e(*case)

    run()


def test_variance_decomposition_from_features_equals_contribution_samples():
    rng = np.random.default_rng(3)
    H = rng.random((50, 6)).astype(np.float32)
    w = rng.normal(size=6)
    kept = np.array([0, 2, 5])
    a = variance_decomposition(H, kept, weight=w)
    b = variance_decomposition(H.astype(np.float64) * w, kept)
    for name in TERMS:
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-10), name
    assert a.kept.tolist() == [True, False, True, False, False, True]


def test_variance_decomposition_with_a_dice_mask_matches_the_masked_logit_variance():
    rng = np.random.default_rng(4)
    H, W = rng.random((200, 10)), rng.normal(size=(10, 3))
    det = DICEDetector(p=0.7).fit(H, W, np.zeros(3))
    c = 1
    d = variance_decomposition(H, det.mask_[:, c], weight=W[:, c])
    masked_logit = H @ (det.mask_ * W)[:, c]
    assert d.var_masked == pytest.approx(np.var(masked_logit, ddof=1), rel=1e-10)
    assert d.var_dense == pytest.approx(np.var(H @ W[:, c], ddof=1), rel=1e-10)


def test_theory_statistics_invariant_to_chunk_size(profile_data):
    # the module streams rows in chunks: 7-row chunks give what one chunk gives

    X_train, W, b, X_id, X_ood = profile_data
    kept = np.arange(W.shape[0]) % 3 == 0

    def run():
        d = variance_decomposition(X_ood, kept, weight=W[:, 1])
        uc = unit_contributions(X_ood, W, 1, id_mean=X_train.mean(axis=0))
        prof = sparsity_profile(X_train, W, b, X_id=X_id, X_ood=X_ood, ps=[0.0, 0.7])
        float64_stats = [getattr(d, t) for t in TERMS] + [uc.mean, uc.var]
        return float64_stats, [prof["ood_score_std"], prof["output_gap"]]

    whole = run()
    # scikit-learn's working_memory bounds the chunks: a few rows each
    with config_context(working_memory=7 * 8 * 3 * X_ood.shape[1] / 2**20):
        chunked = run()
    for a, c in zip(whole[0], chunked[0]):  # float64 sums in another order
        np.testing.assert_allclose(c, a, rtol=1e-10, atol=1e-10)
    for a, c in zip(whole[1], chunked[1]):  # float32 logits, BLAS blocking may differ
        np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kept, match",
    [
        (np.ones(3, dtype=bool), r"boolean mask of shape \(4,\)"),
        (np.array([0, 0]), "repeated unit indices"),
        (np.array([1, 4]), r"outside \[0, 4\)"),
        (np.array([0.5, 1.0]), "1-D array of unit indices"),
    ],
)
def test_variance_decomposition_rejects_bad_kept_sets(kept, match):
    with pytest.raises(ValueError, match=match):
        variance_decomposition(np.ones((5, 4)), kept)


def test_variance_decomposition_needs_more_rows_than_ddof():
    with pytest.raises(ValueError, match="X has 1 rows: a variance with ddof=1"):
        variance_decomposition(np.ones((1, 3)), [0])


def test_variance_decomposition_rejects_a_weight_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"weight must be the head column W\[:, c\] of shape \(3,\)"):
        variance_decomposition(np.ones((4, 3)), [0], weight=np.ones(4))


# ---------------------------------- variance reduction, independent units
def test_masked_variance_at_most_dense_for_independent_random_units():
    """Independent Gaussian units: dropping units lowers the output variance on average.

    With ``d`` the sum of the dropped units (variance S_d) and ``k`` the sum
    of the kept ones (S_k), independent and Gaussian, the per-trial reduction
    ``D = Var^(d + k) - Var^(k) = Var^(d) + 2 Cov^(d, k)`` has ``E[D] = S_d``
    and ``Var[D] = (2 S_d^2 + 4 S_d S_k) / (n - 1)`` (sample (co)variances with
    ddof=1; ``Var^(d)`` and ``Cov^(d, k)`` are uncorrelated since ``k -> -k``
    flips only the covariance). By Chebyshev's inequality the mean of R
    independent trials misses ``S_d`` by ``S_d / 2`` or more with probability
    at most ``4 Var[D] / (R S_d^2)``, computed below and asserted tiny: any
    seed would pass except with that probability, and the seed is fixed.
    """
    rng = np.random.default_rng(20221023)
    m, n, R = 10, 1001, 400
    sd = np.linspace(0.5, 2.0, m)
    mu = np.linspace(-1.0, 3.0, m)
    kept = np.arange(m) >= m // 2  # "top" units: the second half
    S_d, S_k = float((sd[~kept] ** 2).sum()), float((sd[kept] ** 2).sum())
    var_D = (2 * S_d**2 + 4 * S_d * S_k) / (n - 1)
    failure_bound = 4 * var_D / (R * S_d**2)
    assert failure_bound < 1e-3

    V = rng.normal(mu, sd, size=(R, n, m))
    dense = np.var(V.sum(axis=2), axis=1, ddof=1)
    masked = np.var(V[:, :, kept].sum(axis=2), axis=1, ddof=1)
    D = dense - masked
    assert abs(D.mean() - S_d) < S_d / 2
    assert masked.mean() <= dense.mean()
    # the library agrees with the direct computation on every trial
    for r in range(3):
        d = variance_decomposition(V[r], kept)
        assert d.reduction == pytest.approx(D[r], rel=1e-9, abs=1e-9)


# ------------------------------------------------------------ DICE mask
def _expected_kept(N, p):
    return N if p == 0 else N - math.floor(p * (N - 1)) - 1


def test_dice_mask_keeps_exactly_k_entries_example():
    V = np.arange(10.0).reshape(5, 2)
    mask, threshold = dice_mask(V, 0.5)  # virtual index 4.5: threshold 4.5
    assert threshold == 4.5
    assert mask.sum() == 5 == _expected_kept(10, 0.5)
    assert V[mask].min() == 5.0


@given(distinct_contributions(), sparsities())
def test_dice_mask_keeps_exactly_k_entries_when_v_has_no_ties(V, p):
    N = V.size
    q = p * (N - 1)  # numpy.percentile's virtual index
    mask, _ = dice_mask(V, p)
    kept = int(mask.sum())
    if p == 0 or abs(q - round(q)) > 1e-9 * max(N, 1):
        assert kept == _expected_kept(N, p)
    else:
        # the percentile lands on entry j itself: whether 100 p / 100 * (N - 1)
        # rounds just above or just below j decides if that one entry survives
        j = round(q)
        assert kept in (N - j - 1, N - j)
    if 0 < kept < N:  # the kept entries are the largest ones
        assert V[mask].min() > V[~mask].max()


def test_kept_set_shrinks_as_p_grows_example():
    V = np.array([[0.0, 0.0, 1.0], [2.0, 0.0, 3.0]])  # ties at 0 (dead unit)
    masks = [dice_mask(V, p)[0] for p in (0.0, 0.3, 0.5, 0.7, 0.9)]
    assert [int(mk.sum()) for mk in masks] == [6, 3, 3, 2, 1]
    for small, large in zip(masks, masks[1:]):
        assert not (large & ~small).any()


def _check_nested(V, p1, p2):
    lo, hi = sorted((p1, p2))
    small_p, _ = dice_mask(V, lo)
    large_p, _ = dice_mask(V, hi)
    assert not (large_p & ~small_p).any()
    t = dice_thresholds(V, [lo, hi])
    assert t[0] <= t[1]
    assert t[1] == dice_mask(V, hi)[1]


@given(contributions_with_ties(), sparsities(), sparsities())
def test_kept_set_for_larger_p_is_subset_of_kept_set_for_smaller_p(V, p1, p2):
    _check_nested(V, p1, p2)


@pytest.mark.slow
def test_kept_set_for_larger_p_is_subset_exhaustive(request):
    _skip_unless_slow(request)
    settings(max_examples=3000)(
        given(contributions_with_ties(max_rows=40, max_cols=20), sparsities(), sparsities())(_check_nested)
    )()


def _dense_energy(H, W, b):
    return logsumexp(np.asarray(H, np.float64) @ np.asarray(W, np.float64) + b, axis=1)


def test_p_zero_reproduces_dense_energy_example():
    H = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    W = np.array([[1.0, -1.0, 0.0], [0.5, 0.0, 2.0]])
    b = np.array([0.1, 0.0, -0.1])
    scores = DICEDetector(p=0).fit(H, W, b).score_samples(H)
    np.testing.assert_allclose(scores, _dense_energy(H, W, b), rtol=1e-6)


@given(heads_and_features())
def test_p_zero_reproduces_dense_energy(case):
    H, W, b = case
    det = DICEDetector(p=0).fit(H, W, b)
    assert det.mask_.all()
    # float32 products of values bounded by 10 * 2 * m: absolute error well below 1e-3
    np.testing.assert_allclose(det.score_samples(H), _dense_energy(H, W, b), rtol=1e-5, atol=1e-4)


# ---------------------------------------------------- unit contributions
def test_unit_contributions_example_sorted_by_id_mean():
    X = np.array([[1.0, 0.0, 2.0], [3.0, 2.0, 2.0]])
    W = np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, 0.0]])
    uc = unit_contributions(X, W, 0)
    assert uc.order.tolist() == [1, 2, 0]  # ID mean contributions -1, 1, 2
    assert uc.id_mean.tolist() == [-1.0, 1.0, 2.0]
    assert uc.mean.tolist() == [-1.0, 1.0, 2.0]
    assert uc.var.tolist() == [2.0, 0.0, 2.0]


@given(heads_and_features(), st.data())
def test_unit_contributions_match_columnwise_statistics_in_id_order(case, data):
    H, W, _ = case
    assume(H.shape[0] >= 2)
    c = data.draw(st.integers(0, W.shape[1] - 1))
    id_mean = data.draw(st.lists(st.floats(0, 5), min_size=H.shape[1], max_size=H.shape[1]))
    uc = unit_contributions(H, W, c, id_mean=np.array(id_mean))
    w = np.asarray(Head(W).weight[:, c], dtype=np.float64)
    v = H * w
    key = np.array(id_mean) * w
    order = np.argsort(key, kind="stable")
    np.testing.assert_array_equal(uc.order, order)
    np.testing.assert_allclose(uc.mean, v.mean(axis=0)[order], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(uc.var, v.var(axis=0, ddof=1)[order], rtol=1e-9, atol=1e-9)
    assert np.all(np.diff(uc.id_mean) >= 0)


def test_unit_contributions_accepts_a_head_and_negative_class_index():
    rng = np.random.default_rng(0)
    X, W = rng.random((10, 4)), rng.normal(size=(4, 3))
    a = unit_contributions(X, Head(W), -1)
    b = unit_contributions(X, W, 2)
    assert a.c == 2
    np.testing.assert_array_equal(a.order, b.order)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"c": 3}, "class index c=3 is out of range for 3 classes"),
        ({"c": 1.0}, "c must be a class index"),
        ({"c": 0, "ddof": 10}, "X has 10 rows: a variance with ddof=10"),
        ({"c": 0, "id_mean": np.ones(5)}, r"train_mean must have shape \(4,\)"),
    ],
)
def test_unit_contributions_rejects_bad_arguments(kwargs, match):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        unit_contributions(rng.random((10, 4)), rng.normal(size=(4, 3)), **kwargs)


def test_unit_contributions_rejects_features_of_the_wrong_width():
    with pytest.raises(ValueError, match="X has 5 features but the head W has 4 rows"):
        unit_contributions(np.ones((3, 5)), np.ones((4, 2)), 0)


# --------------------------------------------------- sparsity profile
def _reference_profile(X_train, W, b, X_id, X_ood, ps, c=None):
    """Independent float64 reference: numpy.percentile + scipy logsumexp."""
    mu = X_train.astype(np.float64).mean(axis=0)
    V = mu[:, None] * W
    rows = {"ood_std_normalised": [], "output_gap": [], "n_kept": []}
    for p in ps:
        mask = np.ones_like(V, bool) if p == 0 else V > np.percentile(V, 100 * p)
        Wm = np.where(mask, W, 0.0)
        Lid, Lood = X_id @ Wm + b, X_ood @ Wm + b
        s_id, s_ood = logsumexp(Lid, axis=1), logsumexp(Lood, axis=1)
        rows["ood_std_normalised"].append(s_ood.std() / s_id.mean())
        f = (lambda L: L.max(axis=1)) if c is None else (lambda L: L[:, c])
        rows["output_gap"].append(f(Lid).mean() - f(Lood).mean())
        rows["n_kept"].append(mask.sum())
    return {k: np.array(v) for k, v in rows.items()}


@pytest.fixture(scope="module")
def profile_data():
    rng = np.random.default_rng(7)
    m, C = 24, 5
    W = rng.normal(size=(m, C))
    b = rng.normal(size=C) * 0.1
    X_train = np.maximum(rng.normal(1.0, 1.0, size=(300, m)), 0)
    X_id = np.maximum(rng.normal(1.0, 1.0, size=(80, m)), 0)
    X_ood = np.abs(rng.normal(0.0, 2.0, size=(90, m)))
    return X_train, W, b, X_id, X_ood


@pytest.mark.parametrize("output", ["max", 2])
def test_sparsity_profile_matches_float64_reference(profile_data, output):
    X_train, W, b, X_id, X_ood = profile_data
    ps = [0.0, 0.1, 0.5, 0.9, 0.99]
    prof = sparsity_profile(X_train, W, b, X_id=X_id, X_ood=X_ood, ps=ps, output=output)
    ref = _reference_profile(X_train, W, b, X_id, X_ood, ps, None if output == "max" else output)
    np.testing.assert_allclose(prof["ood_std_normalised"], ref["ood_std_normalised"], rtol=1e-4)
    np.testing.assert_allclose(prof["output_gap"], ref["output_gap"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(prof["n_kept"], ref["n_kept"])
    np.testing.assert_array_equal(prof["p"], ps)


def test_sparsity_profile_from_train_mean_and_head_equals_from_features(profile_data):
    X_train, W, b, X_id, X_ood = profile_data
    a = sparsity_profile(X_train, W, b, X_id=X_id, X_ood=X_ood)
    b2 = sparsity_profile(head=Head(W, b), train_mean=X_train.mean(axis=0), X_id=X_id, X_ood=X_ood)
    for key in a:
        np.testing.assert_allclose(a[key], b2[key], rtol=1e-6)


def test_table_functions_return_the_profile_columns(profile_data):
    X_train, W, b, X_id, X_ood = profile_data
    kw = dict(X_id=X_id, X_ood=X_ood, ps=[0.0, 0.9])
    prof = sparsity_profile(X_train, W, b, **kw)
    np.testing.assert_array_equal(ood_score_std(X_train, W, b, **kw), prof["ood_std_normalised"])
    np.testing.assert_array_equal(output_mean_gap(X_train, W, b, **kw), prof["output_gap"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"output": "mean"}, "output must be 'max' or a class index"),
        ({"ps": [0.5, 1.0]}, r"every p must be in \[0, 1\)"),
        ({"ps": [0.5, 0.5]}, "repeated values"),
        ({"X_ood": np.ones((3, 7))}, "X_ood has 7 features but the head W has 24 rows"),
    ],
)
def test_sparsity_profile_rejects_bad_arguments(profile_data, kwargs, match):
    X_train, W, b, X_id, X_ood = profile_data
    args = {"X_id": X_id, "X_ood": X_ood, **kwargs}
    with pytest.raises(ValueError, match=match):
        sparsity_profile(X_train, W, b, **args)


def test_sparsity_profile_needs_a_training_statistic(profile_data):
    _, W, b, X_id, X_ood = profile_data
    with pytest.raises(ValueError, match="needs the ID training statistic"):
        sparsity_profile(W=W, b=b, X_id=X_id, X_ood=X_ood)


# ------------------------------------------------------------- examples
def test_docstring_examples_run():
    import doctest

    import skdice.theory

    result = doctest.testmod(skdice.theory)
    assert result.attempted > 0 and result.failed == 0
