"""Property tests of the ablation masks and of identities between detectors."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    contributions_with_ties,
    distinct_contributions,
    heads_and_features,
    sparsities,
)

from skdice import get_detector
from skdice.sparsify import bottom_k_mask, dice_mask, random_k_mask, top_bottom_k_mask


# Within ~1e-16 of p = 1 the interpolated percentile rounds onto the largest
# entry for some rankings and not others, so "DICE's count" is a rounding
# artefact there; the property is about the counting rule, so p stays below it.
@given(distinct_contributions(), sparsities().filter(lambda p: p < 1 - 1e-9))
def test_exact_k_masks_keep_dices_count_without_ties(V, p):
    k = int(dice_mask(V, p)[0].sum())
    assert bottom_k_mask(V, p).sum() == k
    assert random_k_mask(V.shape, p, random_state=0).sum() == k
    assert top_bottom_k_mask(V, p).sum() in (k, k - 1)


@given(distinct_contributions(), st.floats(0.5, 0.99))
def test_bottom_k_and_top_k_are_disjoint_from_half_sparsity_on(V, p):
    assert not (bottom_k_mask(V, p) & dice_mask(V, p)[0]).any()


@given(contributions_with_ties(), sparsities())
def test_masks_with_ties_never_keep_more_than_dice_count_plus_ties(V, p):
    # the strict rule drops whole tie blocks: never more than the untied count
    n_kept = V.size if p == 0 else V.size - int(np.floor(p * (V.size - 1))) - 1
    for mask in (bottom_k_mask(V, p), top_bottom_k_mask(V, p)):
        assert mask.shape == V.shape and mask.dtype == bool
        assert mask.sum() <= n_kept


@given(heads_and_features())
def test_identities_between_detectors(problem):
    H, W, b = problem
    energy = get_detector("energy").fit(H, W, b).score_samples(H)
    # no pruning: ASH-P keeps every unit (k = m), ReAct at the 100th percentile clips nothing seen
    ash_p = get_detector("ash-p", percentile=0).fit(H, W, b).score_samples(H)
    react = get_detector("react", percentile=100).fit(H, W, b).score_samples(H)
    np.testing.assert_allclose(ash_p, energy, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(react, energy, rtol=1e-5, atol=1e-5)
    # with k = m, ASH-S and SCALE apply the same factor exp(s1 / s2) to the same units
    ash_s = get_detector("ash-s", percentile=0).fit(H, W, b).score_samples(H)
    scale = get_detector("scale", percentile=0).fit(H, W, b).score_samples(H)
    np.testing.assert_allclose(ash_s, scale, rtol=1e-5, atol=1e-5)
