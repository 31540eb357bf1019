"""Degenerate fits of the masked-head detectors warn, naming the cause (skdice/_masked.py)."""

import re
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from scipy.special import logsumexp

import skdice.exceptions
from skdice import DICEDetector, Head, get_detector
from skdice.exceptions import DegenerateFitWarning

#: every detector whose mask ranks the contribution V = mean * W (fits from a mean)
MEAN_RANKED = ["dice", "dice-msp", "dice-react", "dice-bottom-k", "dice-top-bottom-k"]
#: every detector that scores with a masked head
MASKED = MEAN_RANKED + [
    "dice-random-k",
    "weight-dropout",
    "unit-dropout",
    "weight-pruning",
    "unit-pruning",
]
PATHS = ["fit", "train_mean", "fit_from_mean", "partial_fit"]


def _detector(name, **params):
    if name == "dice-react":
        params.setdefault("p", 0.9)
        params.setdefault("threshold", 1.0)  # an absolute clip fits from a mean alone
    if name in {"dice-random-k", "weight-dropout", "unit-dropout"}:
        params.setdefault("random_state", 0)
    return get_detector(name, **params)


def _fit(det, path, H, W, b=None):
    if path == "fit":
        return det.fit(H, W, b)
    if path == "train_mean":
        return det.fit(W=W, b=b, train_mean=H.mean(axis=0))
    if path == "fit_from_mean":
        return det.fit_from_mean(Head(W, b), H.mean(axis=0), n_samples=H.shape[0])
    half = H.shape[0] // 2
    det.partial_fit(H[:half], W, b)
    return det.partial_fit(H[half:])


def _normal_problem(n=200, m=12, C=5, seed=0):
    rng = np.random.default_rng(seed)
    H = np.maximum(rng.normal(0.5, 1.0, size=(n, m)), 0).astype(np.float32)
    return H, rng.normal(size=(m, C)).astype(np.float32), rng.normal(size=C).astype(np.float32)


@contextmanager
def _no_degenerate_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        yield


# ------------------------------------------------------------- the causes
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", MEAN_RANKED)
def test_all_zero_training_features_warn_that_the_mean_is_zero(name, path):
    _, W, b = _normal_problem()
    H = np.zeros((40, W.shape[0]), dtype=np.float32)
    det = _detector(name)
    with pytest.warns(
        DegenerateFitWarning,
        match=rf"^{type(det).__name__} kept no weight of the head \(p=0\.9\): the training mean "
        r"feature is all zero, so every contribution V = mean \* W ties at 0 and no weight "
        r"ranks above the threshold; the masked logits equal the bias for every input, so "
        r"every input gets the same score\. Check the training features",
    ):
        _fit(det, path, H, W, b)
    assert not det.mask_.any()


def test_dice_with_an_all_zero_mean_scores_every_input_with_the_bias():
    H, W, b = _normal_problem()
    with pytest.warns(DegenerateFitWarning, match="training mean feature is all zero"):
        det = DICEDetector().fit(W=W, b=b, train_mean=np.zeros(W.shape[0]))
    np.testing.assert_allclose(det.score_samples(H), logsumexp(b), rtol=1e-5)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", MEAN_RANKED)
def test_contributions_that_all_tie_warn_with_their_common_value(name, path):
    m, C = 6, 3
    H = np.full((20, m), 2.0, dtype=np.float32)  # a constant mean ...
    W = np.ones((m, C), dtype=np.float32)  # ... times a constant weight: V == 2 everywhere
    det = _detector(name)
    with pytest.warns(
        DegenerateFitWarning,
        match=r"kept no weight of the head \(p=0\.9\): every contribution V = mean \* W "
        r"equals 2, so all of them tie at the threshold and none ranks above it; .* "
        r"Check the training features and the head\.$",
    ):
        _fit(det, path, H, W)


def test_contributions_all_zero_without_a_zero_mean_or_head_are_named():
    # the mean is zero on the unit whose weights are not, and W is zero on the other
    W = np.array([[0.0, 0.0], [1.0, -1.0]], dtype=np.float32)
    with pytest.warns(
        DegenerateFitWarning,
        match=r"every contribution V = mean \* W is 0 \(the mean feature is zero on every "
        r"unit whose weights are not\)",
    ):
        DICEDetector(p=0.5).fit(W=W, train_mean=np.array([3.0, 0.0]))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["dice", "dice-msp", "dice-react"])
def test_a_threshold_at_the_tied_largest_contribution_warns_to_lower_p(name, path):
    # V = [0, 1, 1, 1]: the 50th percentile is 1, the largest value, shared by three
    H = np.ones((10, 1), dtype=np.float32)
    W = np.array([[0.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    det = _detector(name, p=0.5)
    with pytest.warns(
        DegenerateFitWarning,
        match=r"kept no weight of the head \(p=0\.5\): the threshold numpy\.percentile\(V, 50\) "
        r"= 1 reaches the largest contribution, which 3 of the 4 weights share, so no weight "
        r"ranks strictly above it; .* Lower p\.$",
    ):
        _fit(det, path, H, W)


@pytest.mark.parametrize("path", ["fit", "train_mean", "fit_from_mean"])
def test_an_all_zero_head_warns_even_at_p_zero(path):
    H, W, b = _normal_problem()
    det = DICEDetector(p=0)
    with pytest.warns(
        DegenerateFitWarning,
        match=r"^DICEDetector kept 60 of the 60 weights of the head \(p=0\.0\), none of them "
        r"non-zero: the head's weight W is all zero, so even the dense head scores every "
        r"input alike; .* Check the head: an untrained or wrong final layer\.$",
    ):
        _fit(det, path, H, np.zeros_like(W), b)


def test_a_mask_that_keeps_only_zero_weights_warns():
    rng = np.random.default_rng(0)
    m, C = 6, 3
    H = (1.0 + rng.random((50, m))).astype(np.float32)
    W = -(1.0 + rng.random((m, C))).astype(np.float32)
    W[0] = 0  # V < 0 everywhere but on unit 0, whose weights are zero
    # 18 entries: the 85th percentile falls between the largest negative V and
    # the three zeros, so exactly the three zero weights are kept
    with pytest.warns(
        DegenerateFitWarning,
        match=r"^DICEDetector kept 3 of the 18 weights of the head \(p=0\.85\), none of them "
        r"non-zero: the head's weight is zero wherever the mask keeps it; .* Check the head, "
        r"or lower p\.$",
    ):
        det = DICEDetector(p=0.85).fit(H, W)
    assert det.mask_.sum() == 3 and det.mask_[0].all()


def test_a_head_of_a_single_weight_warns():
    H = np.abs(np.random.default_rng(0).normal(size=(20, 1)))
    with pytest.warns(
        DegenerateFitWarning,
        match=r"the head has a single weight \(one feature, one class\), and the mask dropped it",
    ):
        DICEDetector(p=0.5).fit(H, np.ones((1, 1)))


@pytest.mark.parametrize("name", ["weight-pruning", "unit-pruning"])
def test_ablations_whose_rule_keeps_nothing_warn_to_lower_p(name):
    # |W| and the unit norms all tie: the percentile rule drops them together
    H = np.random.default_rng(0).random((20, 2))
    with pytest.warns(
        DegenerateFitWarning,
        match=rf"^{type(_detector(name)).__name__} kept no weight of the head \(p=0\.9\): the "
        r"mask rule keeps none of the 6 weights at this p .* Lower p\.$",
    ):
        _detector(name).fit(H, np.ones((2, 3)))


# ------------------------------------------------- constant calibration scores
def test_kept_weights_on_dead_units_warn_of_constant_fitting_scores():
    rng = np.random.default_rng(0)
    H = np.c_[1.0 + rng.random((30, 1)), np.zeros((30, 1))]  # unit 1 is dead
    W = np.array([[-1.0, -1.0], [1.0, 1.0]])
    # V = [[-mean, -mean], [0, 0]]: at p = 0.5 the mask keeps the dead unit's weights
    with pytest.warns(
        DegenerateFitWarning,
        match=r"^DICEDetector gives all 30 fitting rows the same score \(0\.693147, p=0\.5\) "
        r"although the rows differ: the 1 units its non-zero weights read are constant over "
        r"these rows .* Check the training features \(dead or constant units\), or lower p\.$",
    ):
        det = DICEDetector(p=0.5).fit(H, W)
    np.testing.assert_array_equal(det.mask_, [[False, False], [True, True]])


def test_saturated_fitting_scores_warn_with_the_scale_as_cause():
    rng = np.random.default_rng(0)
    H = rng.normal(loc=100.0, size=(40, 2))
    W = np.array([[5.0, -5.0], [1.0, 0.0]])
    # DICE+MSP keeps W[0, 0]: a logit gap near 500, a softmax of exactly 1
    with pytest.warns(
        DegenerateFitWarning,
        match=r"^DICEMSPDetector gives all 40 fitting rows the same score \(1, p=0\.5\) although "
        r"the rows differ: the units its kept weights read do vary, so the scores saturate "
        r"in floating point .* Check the scale of the features and of the head, or lower p\.$",
    ):
        get_detector("dice-msp", p=0.5).fit(H, W)


def test_a_mask_warning_is_not_repeated_for_the_constant_fitting_scores():
    _, W, b = _normal_problem()
    H = np.zeros((40, W.shape[0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DICEDetector().fit(H, W, b)
    degenerate = [w for w in caught if issubclass(w.category, DegenerateFitWarning)]
    assert len(degenerate) == 1 and "kept no weight" in str(degenerate[0].message)


def test_identical_fitting_rows_do_not_warn():
    H, W, b = _normal_problem()
    with _no_degenerate_warning():
        DICEDetector().fit(np.repeat(H[:1], 20, axis=0), W, b)


# ---------------------------------------------------------- healthy fits
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", MEAN_RANKED)
def test_a_normal_fit_of_a_mean_ranked_detector_emits_no_degenerate_warning(name, path):
    H, W, b = _normal_problem()
    with _no_degenerate_warning():
        det = _fit(_detector(name), path, H, W, b)
    assert det.masked_weight_.any()


@pytest.mark.parametrize("name", MASKED)
def test_a_normal_fit_of_every_masked_detector_emits_no_degenerate_warning(name):
    H, W, b = _normal_problem()
    with _no_degenerate_warning():
        _detector(name).fit(H, W, b)


def test_p_zero_with_an_all_zero_mean_keeps_the_dense_head_and_does_not_warn():
    _, W, b = _normal_problem()
    with _no_degenerate_warning():
        det = DICEDetector(p=0).fit(W=W, b=b, train_mean=np.zeros(W.shape[0]))
    assert det.mask_.all()


# ------------------------------------------------------------ the warning
@pytest.mark.parametrize("path", PATHS)
def test_the_warning_points_at_the_callers_line(path):
    _, W, b = _normal_problem()
    with pytest.warns(DegenerateFitWarning) as record:
        _fit(DICEDetector(), path, np.zeros((40, W.shape[0])), W, b)
    assert {w.filename for w in record} == {__file__}


def test_a_dask_fit_warns_too():
    da = pytest.importorskip("dask.array")
    _, W, b = _normal_problem()
    H = da.zeros((40, W.shape[0]), chunks=10)
    with pytest.warns(DegenerateFitWarning, match="training mean feature is all zero"):
        DICEDetector().fit(H, W, b)


def test_the_warning_can_be_made_an_error():
    _, W, b = _normal_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        with pytest.raises(DegenerateFitWarning, match=re.escape("kept no weight")):
            DICEDetector().fit(np.zeros((10, W.shape[0])), W, b)


def test_the_warning_class_is_exported_as_a_user_warning():
    assert "DegenerateFitWarning" in skdice.exceptions.__all__
    assert issubclass(DegenerateFitWarning, UserWarning)


# ------------------------------------------------ the masked-head kernel
@pytest.mark.parametrize("name", ["dice", "dice-msp", "dice-react", "unit-pruning", "dice-bottom-k"])
def test_masked_head_kernel_gives_the_scores_and_the_masked_logits_argmax(name):
    from skdice import available_detectors, detector_tags
    from skdice._masked import masked_head_scores

    rng = np.random.default_rng(3)
    X, W, b = rng.random((80, 12)), rng.normal(size=(12, 5)), rng.normal(size=5)
    det = available_detectors()[name]().fit(X, W, b)
    assert detector_tags(det).masked_head
    scores, classes = masked_head_scores(det, X, classes=True)
    np.testing.assert_array_equal(scores, det.score_samples(X))
    source = det.masked_head_transform(X)
    np.testing.assert_array_equal(classes, (source @ det.masked_weight_ + det.bias_).argmax(axis=1))


def test_only_masked_head_detectors_declare_the_tag():
    from skdice import available_detectors, detector_tags
    from skdice._masked import MaskedHeadMixin

    for name, cls in available_detectors().items():
        assert detector_tags(cls()).masked_head == issubclass(cls, MaskedHeadMixin), name
