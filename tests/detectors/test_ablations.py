"""Sparsification ablations (Tables 2, 5, 10): the masks and their energy scores."""

import numpy as np
import pytest
from _detector_problems import auroc, id_ood_problem, random_problem
from scipy.special import logsumexp

from skdice import DICEDetector, get_detector
from skdice.sparsify import (
    bottom_k_mask,
    dice_mask,
    random_k_mask,
    top_bottom_k_mask,
    unit_dropout_mask,
    unit_pruning_mask,
    weight_dropout_mask,
    weight_pruning_mask,
)

ABLATIONS = [
    "weight-dropout",
    "unit-dropout",
    "weight-pruning",
    "unit-pruning",
    "dice-bottom-k",
    "dice-random-k",
    "dice-top-bottom-k",
]
RANDOM = {"weight-dropout", "unit-dropout", "dice-random-k"}


def _energy(H, W, mask, b):
    return logsumexp(H.astype(np.float64) @ np.where(mask, W, 0).astype(np.float64) + b, axis=1)


# --------------------------------------------------------------- mask builders
def test_weight_pruning_keeps_largest_magnitudes_hand_case():
    W = np.array([[3.0, -0.5], [-4.0, 0.1], [0.2, 1.0]])
    # |W| sorted: 0.1 0.2 0.5 1 3 4; 50th percentile = 0.75: keep 1, 3, -4
    np.testing.assert_array_equal(
        weight_pruning_mask(W, 0.5), [[True, False], [True, False], [False, True]]
    )


def test_unit_pruning_drops_rows_with_smallest_l2_norm_hand_case():
    W = np.array([[3.0, 4.0], [1.0, 1.0], [0.0, 6.0], [0.5, 0.0]])  # norms 5, 1.41, 6, 0.5
    mask = unit_pruning_mask(W, 0.5)
    np.testing.assert_array_equal(mask[:, 0], [True, False, True, False])
    assert (mask[:, 0] == mask[:, 1]).all()


def test_bottom_and_top_bottom_k_hand_case():
    V = np.arange(8, dtype=np.float64).reshape(4, 2)  # 0..7
    # p = 0.5: DICE keeps 4..7; bottom-k keeps 0..3; top+bottom keeps 0, 1, 6, 7
    np.testing.assert_array_equal(dice_mask(V, 0.5)[0].ravel(), [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(bottom_k_mask(V, 0.5).ravel(), [1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(top_bottom_k_mask(V, 0.5).ravel(), [1, 1, 0, 0, 0, 0, 1, 1])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_exact_k_masks_keep_dices_count(p):
    rng = np.random.default_rng(0)
    V = rng.normal(size=(40, 10))
    k = dice_mask(V, p)[0].sum()
    assert bottom_k_mask(V, p).sum() == k
    assert random_k_mask(V.shape, p, random_state=0).sum() == k
    assert weight_pruning_mask(V, p).sum() == k
    assert top_bottom_k_mask(V, p).sum() in (k, k - 1)
    # top+bottom: half of the kept entries are among the largest, half among the smallest
    kept = np.sort(V[top_bottom_k_mask(V, p)])
    n_low = np.sum(kept < np.median(V))
    assert abs(n_low - (len(kept) - n_low)) <= 1


def test_dropout_masks_have_expected_density_and_unit_structure():
    mask = weight_dropout_mask((200, 50), 0.9, random_state=0)
    assert abs(mask.mean() - 0.1) < 0.01
    units = unit_dropout_mask((2000, 5), 0.7, random_state=0)
    assert (units == units[:, :1]).all()
    assert abs(units[:, 0].mean() - 0.3) < 0.04


@pytest.mark.parametrize("builder", [weight_dropout_mask, unit_dropout_mask, random_k_mask])
def test_random_masks_are_reproducible(builder):
    a = builder((30, 4), 0.5, random_state=3)
    assert (a == builder((30, 4), 0.5, random_state=3)).all()
    assert not (a == builder((30, 4), 0.5, random_state=4)).all()


def test_p_zero_keeps_everything():
    V = np.random.default_rng(0).normal(size=(6, 3))
    for mask in (
        weight_pruning_mask(V, 0.0),
        unit_pruning_mask(V, 0.0),
        bottom_k_mask(V, 0.0),
        top_bottom_k_mask(V, 0.0),
        random_k_mask(V.shape, 0.0, 0),
        weight_dropout_mask(V.shape, 0.0, 0),
        unit_dropout_mask(V.shape, 0.0, 0),
    ):
        assert mask.all()


def test_p_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        weight_dropout_mask((3, 2), 1.0)


# ------------------------------------------------------------------ detectors
def _reference_mask(name, H, W, p, seed):
    V = H.astype(np.float64).mean(axis=0)[:, None] * W
    m, C = W.shape
    if name == "weight-dropout":
        return np.random.RandomState(seed).random_sample((m, C)) >= p
    if name == "unit-dropout":
        keep = np.random.RandomState(seed).random_sample(m) >= p
        return np.repeat(keep[:, None], C, axis=1)
    if name == "weight-pruning":
        return np.abs(W) > np.percentile(np.abs(W), 100 * p)
    if name == "unit-pruning":
        norms = np.sqrt((W.astype(np.float64) ** 2).sum(axis=1))
        return np.repeat((norms > np.percentile(norms, 100 * p))[:, None], C, axis=1)
    if name == "dice-bottom-k":
        return V < np.percentile(V, 100 * (1 - p))
    if name == "dice-random-k":
        u = np.random.RandomState(seed).random_sample((m, C))
        return u > np.percentile(u, 100 * p)
    if name == "dice-top-bottom-k":
        order = np.argsort(V, axis=None)
        k = int(np.sum(V > np.percentile(V, 100 * p)))
        keep = np.zeros(V.size, dtype=bool)
        keep[order[: k // 2]] = True
        keep[order[V.size - k // 2 :]] = True
        return keep.reshape(V.shape)
    raise AssertionError(name)


@pytest.mark.parametrize("name", ABLATIONS)
@pytest.mark.parametrize("p", [0.5, 0.9])
def test_scores_match_numpy_reference(name, p):
    H, W, b = random_problem(m=40, C=10)
    params = {"p": p, **({"random_state": 7} if name in RANDOM else {})}
    det = get_detector(name, **params).fit(H, W, b)
    mask = _reference_mask(name, H, W, p, 7)
    np.testing.assert_array_equal(det.mask_, mask)
    np.testing.assert_allclose(det.score_samples(H), _energy(H, W, mask, b), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_detectors_are_reproducible(name):
    H, W, b = random_problem()
    a = get_detector(name, random_state=0).fit(H, W, b)
    again = get_detector(name, random_state=0).fit(H, W, b)
    np.testing.assert_array_equal(a.mask_, again.mask_)
    np.testing.assert_array_equal(a.score_samples(H), again.score_samples(H))


@pytest.mark.parametrize("name", ABLATIONS)
def test_p_zero_is_dense_energy(name):
    H, W, b = random_problem()
    params = {"p": 0.0, **({"random_state": 0} if name in RANDOM else {})}
    det = get_detector(name, **params).fit(H, W, b)
    np.testing.assert_allclose(det.score_samples(H), _energy(H, W, True, b), rtol=1e-5)


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablations_keep_the_score_sign(name):
    # mild sparsity: every rule still leaves an energy that ranks ID above OOD here
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    params = {"p": 0.1, **({"random_state": 0} if name in RANDOM else {})}
    det = get_detector(name, **params).fit(H_train, W, b)
    assert auroc(det.score_samples(H_id), det.score_samples(H_ood)) > 0.9


def test_dice_top_k_beats_bottom_k_on_aligned_head():
    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    top = DICEDetector(p=0.7).fit(H_train, W, b)
    bottom = get_detector("dice-bottom-k", p=0.7).fit(H_train, W, b)
    assert auroc(top.score_samples(H_id), top.score_samples(H_ood)) > auroc(
        bottom.score_samples(H_id), bottom.score_samples(H_ood)
    )


def test_contribution_variants_fit_from_train_mean():
    H, W, b = random_problem()
    det = get_detector("dice-bottom-k", p=0.5).fit(W=W, b=b, train_mean=H.mean(axis=0))
    again = get_detector("dice-bottom-k", p=0.5).fit(H, W, b)
    np.testing.assert_array_equal(det.mask_, again.mask_)
    assert np.isnan(det.offset_)
