"""DICEDetector: the formula, the scikit-learn contract and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, PredefinedSplit

from skdice import DICEDetector, Head
from skdice.metrics import fpr95_scorer
from strategies import heads_and_features, sparsities


def _problem(n=300, m=24, C=7, seed=0):
    rng = np.random.default_rng(seed)
    H = np.maximum(rng.normal(0.5, 1.0, size=(n, m)), 0).astype(np.float32)  # post-ReLU
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    return H, W, b


def _reference_scores(H_train, H, W, b, p):
    """The official code's recipe in torch's (C, m) layout, float64 throughout."""
    w_cm = W.T.astype(np.float64)
    mean = H_train.astype(np.float64).mean(axis=0)
    contrib = mean[None, :] * w_cm
    if p == 0:
        mask = np.ones_like(contrib, dtype=bool)
    else:
        mask = contrib > np.percentile(contrib, p * 100)
    logits = H.astype(np.float64) @ (w_cm * mask).T + b
    return logsumexp(logits, axis=1)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_scores_match_official_recipe(p):
    H, W, b = _problem()
    det = DICEDetector(p=p).fit(H, W, b)
    np.testing.assert_allclose(
        det.score_samples(H[:50]), _reference_scores(H, H[:50], W, b, p), rtol=1e-5
    )


def test_p_zero_equals_dense_energy():
    H, W, b = _problem()
    det = DICEDetector(p=0).fit(H, W, b)
    assert det.mask_.all() and det.threshold_ == -np.inf
    dense = logsumexp(H.astype(np.float64) @ W + b, axis=1)
    np.testing.assert_allclose(det.score_samples(H), dense, rtol=1e-5)


def test_mask_keeps_entries_above_percentile_and_bias_unmasked():
    H, W, b = _problem()
    det = DICEDetector(p=0.7).fit(H, W, b)
    V = H.astype(np.float64).mean(0)[:, None] * W
    np.testing.assert_array_equal(det.mask_, V > np.percentile(V, 70))
    np.testing.assert_allclose(det.contribution_, V)
    np.testing.assert_array_equal(det.masked_weight_, np.where(det.mask_, W, 0))
    np.testing.assert_array_equal(det.bias_, b)
    assert det.mean_feature_.dtype == np.float64
    # no ties in V: exactly the entries strictly above the interpolated percentile
    assert det.mask_.sum() == np.sum(V > np.percentile(V, 70))


def test_dead_units_tie_at_zero_drop_more_than_p():
    H, W, b = _problem(m=20)
    H[:, :12] = 0  # 12 of 20 units never fire: 60% of V is exactly zero
    det = DICEDetector(p=0.5).fit(H, W, b)
    assert det.threshold_ == 0.0
    # every zero ties at the threshold and is dropped, so fewer than half are kept
    assert det.mask_.mean() < 0.5
    assert not det.mask_[:12].any()


def test_offset_keeps_tpr_of_fitting_samples():
    H, W, b = _problem(n=1000)
    det = DICEDetector(p=0.9, tpr=0.9).fit(H, W, b)
    scores = det.score_samples(H)
    assert det.offset_ == pytest.approx(np.quantile(scores, 0.1))
    pred = det.predict(H)
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {-1, 1}
    assert np.mean(pred == 1) == pytest.approx(0.9, abs=0.002)
    np.testing.assert_allclose(det.decision_function(H), scores - det.offset_)


def test_scores_invariant_to_chunk_size_and_row_order():
    H, W, b = _problem(n=500, m=64, C=50)
    det = DICEDetector(p=0.9).fit(H, W, b)
    full = det.score_samples(H)
    with config_context(working_memory=0.001):  # ~one row per chunk
        np.testing.assert_allclose(det.score_samples(H), full, rtol=1e-6)
    perm = np.random.default_rng(0).permutation(len(H))
    np.testing.assert_allclose(det.score_samples(H[perm]), full[perm], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_accepts_float_dtypes(dtype):
    H, W, b = _problem()
    det = DICEDetector().fit(H.astype(dtype), W, b)
    ref = _reference_scores(H.astype(dtype).astype(np.float64), H.astype(dtype), W, b, 0.9)
    np.testing.assert_allclose(det.score_samples(H.astype(dtype)), ref, rtol=1e-4)


def test_fit_spellings_agree():
    H, W, b = _problem()
    ref = DICEDetector().fit(H, W, b).score_samples(H)
    for det in (
        DICEDetector().fit(H, W=W, b=b),
        DICEDetector().fit(H, head=Head(W, b)),
        DICEDetector().fit(H, Head(W, b)),
        DICEDetector().fit(H, np.ones(len(H)), W=W, b=b),
    ):
        np.testing.assert_array_equal(det.score_samples(H), ref)


def test_y_zero_rows_are_left_out_of_the_mean():
    H, W, b = _problem()
    y = np.r_[np.ones(200), np.zeros(100)]
    det = DICEDetector().fit(H, y, W=W, b=b)
    np.testing.assert_allclose(det.mean_feature_, H[:200].astype(np.float64).mean(0))
    # booleans and numbers held in an object array mean the same
    for mask in (y.astype(bool), y.astype(int).astype(object)):
        again = DICEDetector().fit(H, mask, W=W, b=b)
        np.testing.assert_array_equal(again.mean_feature_, det.mean_feature_)


def test_fit_without_calibration_skips_the_scoring_pass_and_leaves_offset_nan(monkeypatch):
    H, W, b = _problem()
    calibrated = DICEDetector(p=0.9).fit(H, W, b)
    scored = []
    monkeypatch.setattr(DICEDetector, "calibration_scores",
                        lambda self, X: scored.append(len(X)) or np.zeros(len(X)))
    det = DICEDetector(p=0.9).fit(H, W, b, calibrate=False)
    assert scored == [] and np.isnan(det.offset_)
    np.testing.assert_array_equal(det.mask_, calibrated.mask_)
    np.testing.assert_array_equal(det.score_samples(H), calibrated.score_samples(H))
    with pytest.raises(ValueError, match="with calibrate=False, so offset_ is not calibrated"):
        det.decision_function(H)
    DICEDetector(p=0.9).fit(H, W, b)
    assert scored == [len(H)]  # the default calibrates, through the same hook


def test_fit_from_train_mean_without_features():
    H, W, b = _problem()
    mean = H.astype(np.float64).mean(0)
    det = DICEDetector(p=0.9).fit(W=W, b=b, train_mean=mean)
    ref = DICEDetector(p=0.9).fit(H, W, b)
    np.testing.assert_array_equal(det.mask_, ref.mask_)
    np.testing.assert_allclose(det.score_samples(H), ref.score_samples(H))
    assert np.isnan(det.offset_)
    with pytest.raises(ValueError, match="train_mean only or with calibrate=False, so offset_ is not calibrated: call fit"):
        det.predict(H)
    streamed = DICEDetector(p=0.9).partial_fit(H, W, b)
    with pytest.raises(ValueError, match="partial_fit, so offset_ is not calibrated: run .*calibrate_offset"):
        streamed.decision_function(H)
    # with ID features alongside the mean, the mask comes from the mean and offset_ from H
    calibrated = DICEDetector(p=0.9).fit(H[:50], W, b, train_mean=mean)
    np.testing.assert_array_equal(calibrated.mask_, ref.mask_)
    assert calibrated.offset_ == pytest.approx(np.quantile(ref.score_samples(H[:50]), 0.05))


def test_torch_layout_weight_is_refused_with_hint():
    H, W, b = _problem()
    with pytest.raises(ValueError, match=r"W has shape \(7, 24\).*pass W.T"):
        DICEDetector().fit(H, W.T, b)
    det = DICEDetector().fit(H, head=Head.from_torch(W.T, b))
    np.testing.assert_array_equal(det.weight_, W)


def test_train_mean_fit_with_torch_layout_weight_gets_the_transpose_hint():
    H, W, b = _problem()
    mean = H.astype(np.float64).mean(0)
    with pytest.raises(
        ValueError, match=r"W has shape \(7, 24\) but train_mean has 24 entries.*pass W.T"
    ):
        DICEDetector().fit(W=W.T, b=b, train_mean=mean)
    with pytest.raises(ValueError, match=r"train_mean must have shape \(24,\), got \(3,\)"):
        DICEDetector().fit(W=W, b=b, train_mean=mean[:3])
    det = DICEDetector().fit(head=Head.from_torch(W.T, b), train_mean=mean)
    assert det.n_features_in_ == 24


def test_set_params_and_refit_gives_new_mask():
    H, W, b = _problem()
    det = DICEDetector(p=0.1).fit(H, W, b)
    kept_01 = det.mask_.sum()
    det.set_params(p=0.9).fit(H, W, b)
    assert det.mask_.sum() < kept_01
    np.testing.assert_array_equal(det.mask_, DICEDetector(p=0.9).fit(H, W, b).mask_)
    assert clone(det).get_params() == {"p": 0.9, "tpr": 0.95}


def test_logits_and_class_predictions_with_and_without_mask():
    H, W, b = _problem()
    det = DICEDetector(p=0.9).fit(H, W, b)
    np.testing.assert_allclose(det.logits(H, masked=False), H @ W + b, rtol=1e-5)
    np.testing.assert_allclose(det.logits(H), H @ (W * det.mask_) + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(det.predict_class(H, masked=False), (H @ W + b).argmax(1))
    np.testing.assert_allclose(
        logsumexp(det.logits(H).astype(np.float64), axis=1), det.score_samples(H), rtol=1e-5
    )


def _grid_problem(n_train=200, n_val=100, n_ood=100, m=16, C=5, seed=0):
    rng = np.random.default_rng(seed)
    H, W, b = _problem(n=n_train + n_val, m=m, C=C, seed=seed)
    noise = np.abs(rng.normal(0, 1.5, size=(n_ood, m))).astype(np.float32)
    X = np.vstack([H, noise])
    y = np.r_[np.ones(n_train + n_val), np.zeros(n_ood)].astype(int)
    test_fold = np.r_[-np.ones(n_train), np.zeros(n_val + n_ood)]
    return X, y, W, b, test_fold


def test_gridsearchcv_exact_spelling():
    X, y, W, b, test_fold = _grid_problem()
    grid = [0.1, 0.5, 0.9]
    search = GridSearchCV(
        DICEDetector(), {"p": grid}, scoring=fpr95_scorer, cv=PredefinedSplit(test_fold)
    ).fit(X, y, W=W, b=b)
    # independent check: refit each p on the train fold, FPR95 on the test fold
    from skdice.metrics import fpr_at_tpr

    train, test = test_fold == -1, test_fold == 0
    expected = []
    for p in grid:
        s = _reference_scores(X[train], X[test], W, b, p)
        expected.append(-fpr_at_tpr(s[y[test] == 1], s[y[test] == 0]))
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], expected)
    assert search.best_params_["p"] == grid[int(np.argmax(expected))]


def test_gridsearchcv_slicing_trap_is_caught_and_head_is_immune():
    # m == n_samples: GridSearchCV slices W along its rows like a sample-aligned array
    X, y, W, b, test_fold = _grid_problem(n_train=20, n_val=10, n_ood=10, m=40, C=3)
    assert W.shape[0] == X.shape[0]
    search = GridSearchCV(
        DICEDetector(), {"p": [0.5, 0.9]}, scoring=fpr95_scorer,
        cv=PredefinedSplit(test_fold), error_score="raise",
    )
    with pytest.raises(ValueError, match="GridSearchCV slices it: pass head=Head"):
        search.fit(X, y, W=W, b=b)
    search.fit(X, y, head=Head(W, b))
    assert search.best_params_["p"] in (0.5, 0.9)


def test_sliced_bias_is_caught():
    X, y, W, b, test_fold = _grid_problem(n_train=20, n_val=5, n_ood=5, m=8, C=30)
    search = GridSearchCV(
        DICEDetector(), {"p": [0.5]}, scoring=fpr95_scorer,
        cv=PredefinedSplit(test_fold), error_score="raise",
    )
    with pytest.raises(ValueError, match="b has 20 entries.*pass head=Head"):
        search.fit(X, y, W=W, b=b)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        DICEDetector().score_samples(np.ones((2, 3)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"p": 1.0}, r"The 'p' parameter of DICEDetector must be a float in the range \[0.0, 1.0\)"),
        ({"p": -0.1}, "'p' parameter"),
        ({"tpr": 1.0}, r"'tpr' parameter of DICEDetector must be a float in the range \(0.0, 1.0\)"),
        ({"tpr": 0}, "'tpr' parameter"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    H, W, b = _problem()
    with pytest.raises(ValueError, match=match):
        DICEDetector(**kwargs).fit(H, W, b)


def test_bad_inputs_get_clear_errors():
    H, W, b = _problem()
    bad_H = H.copy()
    bad_H[3, 2] = np.nan
    cases = [
        (lambda: DICEDetector().fit(bad_H, W, b), "Input X contains NaN"),
        (lambda: DICEDetector().fit(H, np.where(W > 1, np.inf, W), b), r"W contains NaN or infinity \(first at index"),
        (lambda: DICEDetector().fit(H, W, np.full(7, np.nan)), "b contains NaN or infinity"),
        (lambda: DICEDetector().fit(H[0], W, b), "Expected 2D array, got 1D array"),
        (lambda: DICEDetector().fit(H, W[:, :, None], b), "W must be 2-dimensional"),
        (lambda: DICEDetector().fit(H, W, b[:3]), r"b has 3 entries but W of shape \(24, 7\) has 7 classes"),
        (lambda: DICEDetector().fit(H[:, :10], W, b), r"W has shape \(24, 7\) but X has 10 features"),
        (lambda: DICEDetector().fit(H[:0], W, b), "0 sample"),
        (lambda: DICEDetector().fit(H, W.astype(str), b), "W must be numeric"),
        (lambda: DICEDetector().fit(np.full(H.shape, "a", dtype=object), W, b), "could not convert|Unable to convert"),
        (lambda: DICEDetector().fit(H), "needs the classifier head"),
        (lambda: DICEDetector().fit(W=W, b=b), "needs the training features X"),
        (lambda: DICEDetector().fit(H, W, b, train_mean=np.ones(3)), r"train_mean must have shape \(24,\)"),
        (lambda: DICEDetector().fit(H, W, b, train_mean=np.full(24, np.nan)), "train_mean contains NaN"),
        (lambda: DICEDetector().fit(H, np.zeros(len(H)), W=W, b=b), "every row of X is marked y == 0"),
        (lambda: DICEDetector().fit(H, W, b, W=W), "W was given both positionally and by keyword"),
        (lambda: DICEDetector().fit(H, head=Head(W, b), W=W), "either head=Head"),
    ]
    for call, match in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            call()


def test_bad_score_inputs_get_clear_errors():
    H, W, b = _problem()
    det = DICEDetector().fit(H, W, b)
    bad = H[:5].copy()
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 2\)"):
        det.score_samples(bad)
    with pytest.raises(ValueError, match="X has 3 features, but DICEDetector is expecting 24"):
        det.score_samples(H[:, :3])
    huge = np.full((2, H.shape[1]), np.finfo(np.float64).max)  # its logits overflow float64
    assert (np.abs(W) > 1).any()
    with pytest.raises(ValueError, match="row 0 is not finite: its features overflow float64"):
        det.score_samples(huge)


# ------------------------------------------------------------- properties
# any head includes degenerate ones (an all-zero W is Hypothesis's first draw):
# the property holds for them too; tests/test_masked.py checks their warning
@pytest.mark.filterwarnings("ignore::skdice.exceptions.DegenerateFitWarning")
@given(heads_and_features(max_rows=30), sparsities(), st.data())
def test_scores_match_numpy_reference_invariant_to_row_order_and_chunks(case, p, data):
    H, W, b = case
    det = DICEDetector(p=p).fit(H, W, b)
    full = det.score_samples(H)
    # the formula in float64 from the float32 head the detector holds
    W32, b32 = W.astype(np.float32), b.astype(np.float32)
    np.testing.assert_allclose(
        full, _reference_scores(H, H, W32, b32, p), rtol=1e-5, atol=1e-4
    )
    perm = np.array(data.draw(st.permutations(range(len(H)))))
    np.testing.assert_allclose(det.score_samples(H[perm]), full[perm], rtol=1e-6, atol=1e-6)
    with config_context(working_memory=0.0001):  # a few rows per chunk
        np.testing.assert_allclose(det.score_samples(H), full, rtol=1e-6, atol=1e-6)


def test_argument_mistakes_get_clear_errors():
    H, W, b = _problem()
    y = np.ones(len(H))
    cases = [
        (lambda: DICEDetector().fit(H, y, W, b), TypeError, "after a 1-D y, pass the head by keyword"),
        (lambda: DICEDetector().fit(H, W, b, y, 1), TypeError, "fit takes at most X, W, b, y positionally"),
        (lambda: DICEDetector().fit(H, b=b), ValueError, "b was given without W"),
        (lambda: DICEDetector().fit(H, head=(W, b)), TypeError, "head must be a skdice.Head, got tuple"),
        (lambda: DICEDetector().fit(H, y[:5], W=W, b=b), ValueError,
         r"y must be 1-D with one entry per row of X \(300\), got shape \(5,\)"),
        (lambda: DICEDetector().partial_fit(H, y[:5], W=W, b=b), ValueError,
         r"y must be 1-D with one entry per row of X \(300\)"),
        # an ID mask, not labels: "ood" would compare != 0 and silently count as ID
        (lambda: DICEDetector().fit(H, np.array(["id", "ood"] * 150), W=W, b=b), ValueError,
         r"y is the ID mask of DICEDetector \(1 = ID, 0 = OOD, left out\); got non-numeric values such as 'id'"),
        (lambda: DICEDetector().partial_fit(H, np.r_[np.nan, y[1:]], W=W, b=b), ValueError,
         r"y, the ID mask of DICEDetector .* contains NaN \(first at row 0\)"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()


def test_detector_names_are_unique_in_the_registry():
    with pytest.raises(RuntimeError, match="detector name 'dice' is taken by DICEDetector"):

        class Impostor(DICEDetector):
            name = "dice"
