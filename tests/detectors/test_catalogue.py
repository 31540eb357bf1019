"""Properties every registered detector shares: fit spellings, chunking, persistence, docs."""

import doctest
import importlib
import pickle
import pkgutil
import re

import numpy as np
import pytest
from _detector_problems import random_problem
from tolerances import score_atol
from sklearn import config_context

import skdice.detectors
from skdice import Head, available_detectors, detector_tags, get_detector, load_detector, save_detector

#: small-data parameters (KNN's default k = 50 needs more rows than some tests use)
PARAMS = {
    "knn": {"n_neighbors": 5, "backend": "sklearn"},
    "weight-dropout": {"random_state": 0},
    "unit-dropout": {"random_state": 0},
    "dice-random-k": {"random_state": 0},
}
NAMES = sorted(available_detectors())


def _fit(name, H, W, b, y, spelling):
    det = get_detector(name, **PARAMS.get(name, {}))
    labels = detector_tags(det).requires_class_labels
    if spelling == "positional":
        return det.fit(H, W, b, y) if labels else det.fit(H, W, b)
    if spelling == "sklearn":
        return det.fit(H, y, W=W, b=b) if labels else det.fit(H, np.ones(len(H)), W=W, b=b)
    return det.fit(H, y, head=Head(W, b)) if labels else det.fit(H, head=Head(W, b))


def _labels(n):
    return np.arange(n) % 3


def test_catalogue_lists_the_issue_methods():
    expected = {
        "msp", "maxlogit", "energy", "odin", "mahalanobis", "dice", "dice-msp",
        "weight-dropout", "unit-dropout", "weight-pruning", "unit-pruning",
        "dice-bottom-k", "dice-random-k", "dice-top-bottom-k",
        "react", "dice-react", "knn", "vim", "ash-p", "ash-b", "ash-s", "gen", "scale",
    }  # fmt: skip
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fit_spellings_agree(name):
    H, W, b = random_problem(n=120, m=16, C=5)
    y = _labels(len(H))
    scores = [
        _fit(name, H, W, b, y, spelling).score_samples(H[:30])
        for spelling in ("positional", "sklearn", "head")
    ]
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_array_equal(scores[0], scores[2])


@pytest.mark.parametrize("name", NAMES)
def test_scores_invariant_to_chunk_size(name):
    H, W, b = random_problem(n=400, m=16, C=5)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    whole = det.score_samples(H)
    with config_context(working_memory=0.001):  # about 1 KiB: chunks of a few rows
        chunked = det.score_samples(H)
    # float32 rows in other batches: the float32 reordering bound (tests/tolerances.py)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=score_atol(np.float32, H, W, whole))


@pytest.mark.parametrize("name", NAMES)
def test_input_dtypes_agree(name):
    H, W, b = random_problem(n=120, m=16, C=5)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    ref = det.score_samples(H)
    exact = det.score_samples(H.astype(np.float64))  # the float64 path: no float32 rounding
    np.testing.assert_allclose(ref, exact, rtol=0, atol=score_atol(np.float32, H, W, exact))
    assert ref.dtype == exact.dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
def test_a_rows_score_does_not_depend_on_its_batch(name):
    """float64 rows score the same alone, in a subset or whole (to float64 rounding),
    float32 rows within the float32 reordering bound (tests/tolerances.py)."""
    H, W, b = random_problem(n=120, m=16, C=5)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    for dtype in (np.float64, np.float32):
        X = H.astype(dtype)
        whole = det.score_samples(X)
        alone = np.array([det.score_samples(X[i : i + 1])[0] for i in range(0, len(X), 7)])
        subset = det.score_samples(X[1::3])
        atol = score_atol(dtype, H, W, whole)
        np.testing.assert_allclose(alone, whole[::7], rtol=0, atol=atol)
        np.testing.assert_allclose(subset, whole[1::3], rtol=0, atol=atol)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    H, W, b = random_problem(n=120, m=16, C=5)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    again = load_detector(save_detector(det, tmp_path / f"{name}.npz"))
    assert type(again) is type(det)
    np.testing.assert_array_equal(again.score_samples(H), det.score_samples(H))
    assert again.offset_ == det.offset_


@pytest.mark.parametrize("name", NAMES)
def test_offset_keeps_tpr_and_predict_labels(name):
    H, W, b = random_problem(n=400, m=16, C=5)
    det = get_detector(name, **PARAMS.get(name, {}), tpr=0.9)
    det = det.fit(H, W, b, _labels(len(H))) if detector_tags(det).requires_class_labels else det.fit(H, W, b)
    assert set(np.unique(det.predict(H))) <= {-1, 1}
    if name not in ("knn", "nnguide", "relation"):  # calibrated leave-one-out, see their tests
        assert np.mean(det.predict(H) == 1) == pytest.approx(0.9, abs=0.01)


def test_get_detector_unknown_name():
    with pytest.raises(ValueError, match="unknown detector 'nope'; choose one of: .*ash-b"):
        get_detector("nope")


@pytest.mark.parametrize(
    "module",
    [m.name for m in pkgutil.iter_modules(skdice.detectors.__path__)],
)
def test_docstring_examples_run(module):
    mod = importlib.import_module(f"skdice.detectors.{module}")
    failures, _ = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0


@pytest.mark.parametrize("name", NAMES)
def test_dask_scores_equal_numpy_scores(name):
    da = pytest.importorskip("dask.array")
    H, W, b = random_problem(n=200, m=16, C=5)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    lazy = det.score_samples(da.from_array(H, chunks=(64, 16)))
    whole = det.score_samples(H)
    np.testing.assert_allclose(lazy.compute(), whole, rtol=0, atol=score_atol(H.dtype, H, W, whole))


@pytest.mark.parametrize("name", ["dice-bottom-k", "dice-top-bottom-k", "dice-msp"])
def test_partial_fit_equals_fit_from_the_mean(name):
    H, W, b = random_problem(n=300, m=16, C=5)
    streamed = get_detector(name, p=0.7)
    for start in range(0, 300, 70):
        streamed.partial_fit(H[start : start + 70], **({"W": W, "b": b} if start == 0 else {}))
    whole = get_detector(name, p=0.7).fit(H, W, b)
    np.testing.assert_array_equal(streamed.mask_, whole.mask_)
    np.testing.assert_allclose(streamed.score_samples(H), whole.score_samples(H), rtol=1e-6)


def test_grid_search_tunes_a_catalogue_parameter():
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    from skdice.metrics import fpr95_scorer
    from _detector_problems import id_ood_problem

    H_train, _, H_id, H_ood, W, b = id_ood_problem()
    X = np.r_[H_train, H_id, H_ood]
    y = np.r_[np.ones(len(H_train) + len(H_id)), np.zeros(len(H_ood))].astype(int)
    fold = np.r_[-np.ones(len(H_train)), np.zeros(len(H_id) + len(H_ood))]
    search = GridSearchCV(
        get_detector("ash-s"),
        {"percentile": [50, 70, 90]},
        scoring=fpr95_scorer,
        cv=PredefinedSplit(fold),
    ).fit(X, y, head=Head(W, b))
    # each candidate refitted by hand on the training fold, FPR95 on the test fold
    from skdice.metrics import fpr_at_tpr

    expected = []
    for q in (50, 70, 90):
        det = get_detector("ash-s", percentile=q).fit(H_train, W, b)
        expected.append(-fpr_at_tpr(det.score_samples(H_id), det.score_samples(H_ood)))
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], expected)
    assert len(set(expected)) > 1  # the grid really discriminates
    assert search.best_params_["percentile"] == (50, 70, 90)[int(np.argmax(expected))]
    assert search.best_estimator_.n_features_in_ == X.shape[1]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_input_is_refused_with_its_row(name, value):
    # pruning (ASH), clipping (ReAct) or dropped units (DICE) must not hide a bad entry
    H, W, b = random_problem(n=120, m=16, C=5)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    X = H[:6].copy()
    X[4, 3] = value
    with pytest.raises(ValueError, match=r"Input X contains NaN or infinity \(first at row 4\)"):
        det.score_samples(X)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if "masked_weight_" in (available_detectors()[n].__doc__ or "")]
)
def test_masked_weight_is_read_only(name, tmp_path):
    # scoring caches the active rows of masked_weight_: an in-place edit would be ignored
    from skdice import load_detector, save_detector

    H, W, b = random_problem(n=120, m=16, C=5)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    with pytest.raises(ValueError, match="read-only"):
        det.masked_weight_[0, 0] = 1.0
    again = pickle.loads(pickle.dumps(det))
    with pytest.raises(ValueError, match="read-only"):
        again.masked_weight_[0, 0] = 1.0
    save_detector(det, tmp_path / "det.npz")
    loaded = load_detector(tmp_path / "det.npz")
    with pytest.raises(ValueError, match="read-only"):
        loaded.masked_weight_[0, 0] = 1.0


@pytest.mark.parametrize("name", NAMES)
def test_scoring_memory_stays_within_the_chunk_budget(name):
    # with a 1 MiB working memory, the scratch of score_samples beyond its (n,) output
    # stays near 1 MiB, while the dense (n, C) float32 logits alone would take 7.6 MiB
    import tracemalloc

    H, W, b = random_problem(n=300, m=32, C=100)
    X = np.abs(np.random.default_rng(1).normal(size=(20_000, 32))).astype(np.float32)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    det.score_samples(X[:10])  # caches (active units) outside the measurement
    with config_context(working_memory=1):
        tracemalloc.start()
        try:
            det.score_samples(X)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak - X.shape[0] * 8 < 2 * 2**20


@pytest.mark.parametrize("name", NAMES)
def test_every_fitted_attribute_is_documented(name):
    # fitted state lives only in documented attributes ending in "_"
    H, W, b = random_problem(n=120, m=16, C=5)
    cls = available_detectors()[name]
    params = {**PARAMS.get(name, {}), **({"threshold": 1.0} if name == "dice-react" else {})}
    fitted = [_fit(name, H, W, b, _labels(len(H)), "positional")]
    streamer = get_detector(name, **params)
    if detector_tags(streamer).partial_fit:
        fitted.append(streamer.partial_fit(H, W=W, b=b))
    for det in fitted:
        public = [k for k in vars(det) if k.endswith("_") and not k.startswith("_")]
        assert public
        for key in public:
            assert re.search(rf"\b{key}\b", cls.__doc__), f"{name}: {key} is not documented"
