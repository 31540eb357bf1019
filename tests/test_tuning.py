"""SparsitySearch: scores equal DICEDetector's, masks follow p, and GridSearchCV agrees."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import config_context
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.utils._param_validation import InvalidParameterError

import skdice.tuning as tuning
from skdice import DICEDetector, Head
from skdice._numeric import column_mean, energy_scores  # what DICEDetector.fit and score use
from skdice._search import masked_heads
from skdice.metrics import aupr_in, aupr_out, auroc, auroc_scorer, fpr95_scorer, fpr_at_tpr
from skdice.sparsify import contribution_matrix, dice_mask
from skdice.tuning import DEFAULT_GRID, SparsitySearch
from stores import write_store
from strategies import heads_and_features, sparsities


def _make_data(seed=0, m=32, C=6, n_train=300, n_id=150, n_noise=150):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = (0.1 * rng.normal(size=C)).astype(np.float32)
    # ID features: a few strong units per class plus weak background
    centres = np.maximum(rng.normal(0.0, 1.0, size=(C, m)), 0) * 2
    labels_tr, labels_id = rng.integers(0, C, n_train), rng.integers(0, C, n_id)
    X_train = np.maximum(centres[labels_tr] + rng.normal(0, 0.7, size=(n_train, m)), 0)
    X_id = np.maximum(centres[labels_id] + rng.normal(0, 0.7, size=(n_id, m)), 0)
    X_noise = np.abs(rng.normal(0.5, 1.0, size=(n_noise, m)))
    return [a.astype(np.float32) for a in (X_train, X_id, X_noise)] + [W, b]


@pytest.fixture(scope="module")
def data():
    return _make_data()


@pytest.fixture(scope="module")
def search(data):
    X_train, X_id, X_noise, W, b = data
    return SparsitySearch().fit(X_train, W, b, X_id=X_id, X_noise=X_noise)


def _gridsearch_inputs(X_train, X_id, X_noise):
    X = np.vstack([X_train, X_id, X_noise])
    y = np.r_[np.ones(len(X_train) + len(X_id)), np.zeros(len(X_noise))].astype(int)
    fold = np.r_[-np.ones(len(X_train)), np.zeros(len(X_id) + len(X_noise))].astype(int)
    return X, y, PredefinedSplit(fold)


# ------------------------------------------------------------- scores
def test_every_candidate_scores_equal_dice_detector_score_samples(data):
    X_train, X_id, X_noise, W, b = data
    head = Head(W, b)
    mean = column_mean(X_train)
    for p, (_, mask, masked_weight) in zip(DEFAULT_GRID, masked_heads(mean, head, DEFAULT_GRID)):
        det = DICEDetector(p=p).fit(X_train, W, b)
        np.testing.assert_array_equal(mask, det.mask_)
        for X in (X_id, X_noise):
            np.testing.assert_allclose(
                energy_scores(X, masked_weight, head.bias), det.score_samples(X), rtol=1e-6
            )


# any head includes degenerate ones (an all-zero W is Hypothesis's first draw):
# the property holds for them too; tests/test_masked.py checks their warning
@pytest.mark.filterwarnings("ignore::skdice.exceptions.DegenerateFitWarning")
@given(heads_and_features(), st.lists(sparsities(), min_size=1, max_size=4, unique=True))
def test_every_candidate_mask_and_scores_equal_dice_detector_for_any_head(case, grid):
    H, W, b = case
    head = Head(W, b)
    mean = column_mean(H)
    for p, (_, mask, masked_weight) in zip(grid, masked_heads(mean, head, grid)):
        det = DICEDetector(p=p).fit(H, W, b)
        np.testing.assert_array_equal(mask, det.mask_)
        np.testing.assert_allclose(
            energy_scores(H, masked_weight, head.bias), det.score_samples(H), rtol=1e-6, atol=1e-6
        )


def test_cv_results_metrics_equal_metrics_of_dice_detector_scores(data, search):
    X_train, X_id, X_noise, W, b = data
    res = search.cv_results_
    for i, p in enumerate(DEFAULT_GRID):
        det = DICEDetector(p=p).fit(X_train, W, b)
        s_id, s_noise = det.score_samples(X_id), det.score_samples(X_noise)
        assert res["fpr95"][i] == pytest.approx(fpr_at_tpr(s_id, s_noise), abs=1e-12)
        assert res["auroc"][i] == pytest.approx(auroc(s_id, s_noise), abs=1e-9)
        assert res["aupr_in"][i] == pytest.approx(aupr_in(s_id, s_noise), abs=1e-9)
        assert res["aupr_out"][i] == pytest.approx(aupr_out(s_id, s_noise), abs=1e-9)
        assert res["n_kept"][i] == det.mask_.sum()
        assert res["threshold"][i] == det.threshold_
    assert np.array_equal(res["mean_test_score"], -res["fpr95"])


def test_scores_invariant_to_chunk_size(data):
    X_train, X_id, _, W, b = data
    head = Head(W, b)
    _, _, masked_weight = next(masked_heads(column_mean(X_train), head, [0.7]))
    whole = energy_scores(X_id, masked_weight, head.bias)
    row_bytes = 4 * (X_id.shape[1] + 2 * max(X_id.shape[1], head.n_classes))
    # scikit-learn's working_memory bounds the chunks: a few rows each
    with config_context(working_memory=7 * row_bytes / 2**20):
        chunked = energy_scores(X_id, masked_weight, head.bias)
        search = SparsitySearch(grid=[0.7]).fit(X_train, head=head, X_id=X_id, X_noise=X_id[:10])
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    assert search.cv_results_["n_kept"][0] == int((masked_weight != 0).sum())


def test_changing_p_changes_the_mask(data, search):
    # OpenOOD's DICE sweep reused its first mask for every p: here each p has its own.
    X_train, _, _, W, b = data
    head = Head(W, b)
    mean = column_mean(X_train)
    masks = [mask for _, mask, _ in masked_heads(mean, head, DEFAULT_GRID)]
    counts = [int(mk.sum()) for mk in masks]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts)
    for small, large in zip(masks, masks[1:]):
        assert not (large & ~small).any() and (small & ~large).any()
    np.testing.assert_array_equal(search.cv_results_["n_kept"], counts)
    assert len(set(search.cv_results_["auroc"])) > 1


def test_best_estimator_is_dice_at_the_best_p_calibrated_on_id_validation(data, search):
    X_train, X_id, _, W, b = data
    est = search.best_estimator_
    assert isinstance(est, DICEDetector)
    assert est.p == search.best_params_["p"]
    V = contribution_matrix(column_mean(X_train), Head(W).weight)
    np.testing.assert_array_equal(est.mask_, dice_mask(V, est.p)[0])
    assert est.offset_ == pytest.approx(np.quantile(est.score_samples(X_id), 0.05))
    # np.quantile interpolates: the kept fraction is tpr to within one row
    assert abs((est.predict(X_id) == 1).mean() - 0.95) <= 1 / len(X_id)
    np.testing.assert_array_equal(search.score_samples(X_id), est.score_samples(X_id))


def test_search_uses_only_the_training_mean(data):
    """Given the features or only their mean, the search is the same: nothing else is learnt."""
    X_train, X_id, X_noise, W, b = data
    from_rows = SparsitySearch().fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    from_mean = SparsitySearch().fit(W=W, b=b, train_mean=column_mean(X_train), X_id=X_id, X_noise=X_noise)
    for key in ("fpr95", "auroc", "aupr_in", "aupr_out", "threshold", "n_kept"):
        np.testing.assert_array_equal(from_rows.cv_results_[key], from_mean.cv_results_[key])
    assert from_rows.best_params_ == from_mean.best_params_
    # best_estimator_ comes from the same mean, calibrated on the ID validation scores
    np.testing.assert_array_equal(from_rows.best_estimator_.mean_feature_, from_rows.mean_feature_)
    assert from_rows.best_estimator_.offset_ == from_mean.best_estimator_.offset_


# ---------------------------------------------------- cv_results_ format
def test_cv_results_has_scikit_learn_format(search):
    res = search.cv_results_
    k = len(DEFAULT_GRID)
    assert res["params"] == [{"p": p} for p in DEFAULT_GRID]
    assert isinstance(res["param_p"], np.ma.MaskedArray) and not res["param_p"].mask.any()
    np.testing.assert_array_equal(res["param_p"].data, DEFAULT_GRID)
    for key in ("mean_test_score", "std_test_score", "split0_test_score", "rank_test_score",
                "fpr95", "auroc", "aupr_in", "aupr_out", "threshold", "n_kept"):
        assert res[key].shape == (k,), key
    assert res["rank_test_score"].dtype == np.int32
    assert res["rank_test_score"][search.best_index_] == 1
    assert search.best_score_ == res["mean_test_score"].max()
    assert search.best_params_ == res["params"][search.best_index_]
    assert (res["mean_fit_time"] >= 0).all() and (res["mean_score_time"] > 0).all()
    assert not res["std_fit_time"].any() and not res["std_score_time"].any()


def test_cv_results_has_every_key_of_gridsearchcv_cv_results(data, search):
    # the same layout as GridSearchCV's single-metric cv_results_, so code written
    # for one (pandas.DataFrame(cv_results_), best-row lookups) reads the other
    X_train, X_id, X_noise, W, b = data
    X, y, cv = _gridsearch_inputs(X_train, X_id, X_noise)
    gs = GridSearchCV(DICEDetector(), {"p": list(DEFAULT_GRID)}, scoring=fpr95_scorer, cv=cv)
    gs.fit(X, y, head=Head(W, b))
    ours, theirs = search.cv_results_, gs.cv_results_
    assert set(theirs) <= set(ours), set(theirs) - set(ours)
    for key, value in theirs.items():
        if key == "params":
            assert ours[key] == value
            continue
        assert type(ours[key]) is type(value), key
        assert ours[key].shape == value.shape and ours[key].dtype == value.dtype, key
    np.testing.assert_array_equal(ours["param_p"], theirs["param_p"])
    np.testing.assert_array_equal(ours["param_p"].mask, theirs["param_p"].mask)
    np.testing.assert_array_equal(ours["rank_test_score"], theirs["rank_test_score"])
    np.testing.assert_allclose(ours["split0_test_score"], theirs["split0_test_score"], atol=1e-9)
    assert search.best_index_ == gs.best_index_


def test_tpr_sets_the_fpr_operating_point_and_the_best_estimators_threshold(data):
    X_train, X_id, X_noise, W, b = data
    s = SparsitySearch(tpr=0.8).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    for i, p in enumerate(DEFAULT_GRID):
        det = DICEDetector(p=p).fit(X_train, W, b)
        expected = fpr_at_tpr(det.score_samples(X_id), det.score_samples(X_noise), tpr=0.8)
        assert s.cv_results_["fpr95"][i] == pytest.approx(expected, abs=1e-12)
    est = s.best_estimator_
    assert est.tpr == 0.8
    assert est.offset_ == pytest.approx(np.quantile(est.score_samples(X_id), 0.2))


def test_auroc_metric_ranks_by_auroc(data):
    X_train, X_id, X_noise, W, b = data
    s = SparsitySearch(metric="auroc").fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    np.testing.assert_array_equal(s.cv_results_["mean_test_score"], s.cv_results_["auroc"])
    assert s.best_score_ == s.cv_results_["auroc"].max()


# ----------------------------------------------------------- tie rule
def _separable_data():
    rng = np.random.default_rng(1)
    m, C = 6, 3
    W = np.abs(rng.normal(size=(m, C))) + 0.1
    X_train = rng.random((40, m)) + 1.0
    X_id = rng.random((30, m)) + 5.0  # large positive logits
    X_noise = np.zeros((30, m))  # logits = b: far below every ID score
    return X_train, X_id, X_noise, W, np.zeros(C)


def test_ties_break_toward_the_smaller_p_whatever_the_grid_order():
    X_train, X_id, X_noise, W, b = _separable_data()
    for grid in (DEFAULT_GRID, DEFAULT_GRID[::-1], (0.5, 0.1, 0.9)):
        s = SparsitySearch(grid=grid, fallback=False).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
        assert np.all(s.cv_results_["fpr95"] == 0)
        assert np.all(s.cv_results_["rank_test_score"] == 1)
        assert s.best_params_ == {"p": min(grid)}


@given(st.permutations(DEFAULT_GRID), st.integers(0, 2**16))
def test_choice_is_the_smallest_best_p_whatever_the_grid_order(grid, seed):
    # small validation sets: FPR95 moves in steps of 1/40, so ties are common
    X_train, X_id, X_noise, W, b = _make_data(seed, m=12, C=4, n_train=60, n_id=40, n_noise=40)
    s = SparsitySearch(grid=grid, fallback=False).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    ascending = SparsitySearch(fallback=False).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    assert [d["p"] for d in s.cv_results_["params"]] == list(grid)
    best = [p for p, r in zip(grid, s.cv_results_["rank_test_score"]) if r == 1]
    assert s.best_params_ == ascending.best_params_ == {"p": min(best)}


def test_tie_rule_agrees_with_gridsearchcv_on_an_ascending_grid():
    X_train, X_id, X_noise, W, b = _separable_data()
    X, y, cv = _gridsearch_inputs(X_train, X_id, X_noise)
    gs = GridSearchCV(DICEDetector(), {"p": list(DEFAULT_GRID)}, scoring=fpr95_scorer, cv=cv)
    gs.fit(X, y, W=W, b=b)
    s = SparsitySearch(fallback=False).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    assert gs.best_params_ == s.best_params_ == {"p": 0.1}


# ------------------------------------------------- the GridSearchCV route
@pytest.mark.parametrize("metric, scorer", [("fpr95", fpr95_scorer), ("auroc", auroc_scorer)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparsity_search_and_gridsearchcv_choose_the_same_p(metric, scorer, seed):
    X_train, X_id, X_noise, W, b = _make_data(seed)
    X, y, cv = _gridsearch_inputs(X_train, X_id, X_noise)
    gs = GridSearchCV(DICEDetector(), {"p": list(DEFAULT_GRID)}, scoring=scorer, cv=cv)
    gs.fit(X, y, W=W, b=b)
    # fallback=False: the best p by the metric, as GridSearchCV (noise alone never moves the defaults)
    s = SparsitySearch(metric=metric, fallback=False).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)
    assert s.best_params_ == gs.best_params_
    assert s.best_score_ == pytest.approx(gs.best_score_, abs=1e-9)
    np.testing.assert_allclose(s.cv_results_["mean_test_score"], gs.cv_results_["mean_test_score"], atol=1e-9)
    np.testing.assert_array_equal(s.cv_results_["rank_test_score"], gs.cv_results_["rank_test_score"])


def test_gridsearchcv_needs_head_when_width_equals_n_samples():
    # m == n_samples: GridSearchCV slices W= like a per-sample array; Head arrives whole.
    X_train, X_id, X_noise, W, b = _make_data(3, m=60, n_train=30, n_id=15, n_noise=15)
    X, y, cv = _gridsearch_inputs(X_train, X_id, X_noise)
    assert X.shape[0] == W.shape[0]
    gs = GridSearchCV(DICEDetector(), {"p": list(DEFAULT_GRID)}, scoring=fpr95_scorer, cv=cv,
                      error_score="raise")
    with pytest.raises(ValueError, match="GridSearchCV slices it: pass head=Head"):
        gs.fit(X, y, W=W, b=b)
    gs.fit(X, y, head=Head(W, b))
    s = SparsitySearch().fit(X_train, head=Head(W, b), X_id=X_id, X_noise=X_noise)
    assert s.best_params_ == gs.best_params_
    np.testing.assert_allclose(s.cv_results_["mean_test_score"], gs.cv_results_["mean_test_score"], atol=1e-9)


# ------------------------------------------------------------ spellings
def test_fit_spellings_give_the_same_results(data, search):
    X_train, X_id, X_noise, W, b = data
    mean = column_mean(X_train)
    others = [
        SparsitySearch().fit(X_train, head=Head(W, b), X_id=X_id, X_noise=X_noise),
        SparsitySearch().fit(X_train, Head(W, b), X_id=X_id, X_noise=X_noise),
        SparsitySearch().fit(W=W, b=b, train_mean=mean, X_id=X_id, X_noise=X_noise),
    ]
    for other in others:
        assert other.best_params_ == search.best_params_
        for key in ("fpr95", "auroc", "n_kept"):
            np.testing.assert_allclose(other.cv_results_[key], search.cv_results_[key], atol=1e-12)


def test_constructor_only_stores_parameters_and_clones():
    s = SparsitySearch(grid=[0.2, 0.4], metric="auroc", tpr=0.9)
    assert s.get_params() == {"grid": [0.2, 0.4], "metric": "auroc", "tpr": 0.9, "guard": True,
                              "max_accuracy_drop": 0.05, "n_bootstrap": 200, "confidence": 0.95,
                              "fallback": True, "random_state": 0}
    assert clone(s).get_params() == s.get_params()
    assert not hasattr(SparsitySearch(grid="nonsense"), "cv_results_")


# --------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "grid, match",
    [
        ([0.5, 1.0], r"every p must be in \[0, 1\), got 1.0"),
        ([0.1, 0.1], "repeated values"),
        ([], "empty"),
    ],
)
def test_bad_grid_is_rejected_with_its_value(data, grid, match):
    X_train, X_id, X_noise, W, b = data
    with pytest.raises(ValueError, match=match):
        SparsitySearch(grid=grid).fit(X_train, W, b, X_id=X_id, X_noise=X_noise)


def test_bad_metric_is_rejected(data):
    X_train, X_id, X_noise, W, b = data
    with pytest.raises(InvalidParameterError, match="metric"):
        SparsitySearch(metric="fpr").fit(X_train, W, b, X_id=X_id, X_noise=X_noise)


def test_fit_needs_a_head(data):
    X_train, X_id, X_noise, _, _ = data
    with pytest.raises(ValueError, match="SparsitySearch.fit needs the classifier head"):
        SparsitySearch().fit(X_train, X_id=X_id, X_noise=X_noise)


def test_fit_needs_exactly_one_training_statistic(data):
    X_train, X_id, X_noise, W, b = data
    with pytest.raises(ValueError, match="needs the ID training statistic"):
        SparsitySearch().fit(W=W, b=b, X_id=X_id, X_noise=X_noise)
    with pytest.raises(ValueError, match="training features or train_mean, not both"):
        SparsitySearch().fit(X_train, W, b, train_mean=X_train.mean(0), X_id=X_id, X_noise=X_noise)


def test_head_given_twice_is_rejected(data):
    X_train, X_id, X_noise, W, b = data
    with pytest.raises(TypeError, match="either head=Head"):
        SparsitySearch().fit(X_train, W, b, head=Head(W, b), X_id=X_id, X_noise=X_noise)


def test_validation_features_of_the_wrong_width_are_named(data):
    X_train, X_id, X_noise, W, b = data
    with pytest.raises(ValueError, match="X_noise has 5 features but the head W has 32 rows"):
        SparsitySearch().fit(X_train, W, b, X_id=X_id, X_noise=X_noise[:, :5])


def test_torch_layout_weight_is_caught(data):
    X_train, X_id, X_noise, W, b = data
    with pytest.raises(ValueError, match="b has 6 entries but W of shape"):
        SparsitySearch().fit(X_train, W.T, b, X_id=X_id, X_noise=X_noise)


# ------------------------------------------------------------ tune_store
@pytest.fixture(scope="module")
def small_store(tmp_path_factory, data):
    pytest.importorskip("zarr")
    X_train, X_id, X_noise, W, b = data
    path = tmp_path_factory.mktemp("tune") / "s.zarr"
    write_store(path, Head(W, b), {"train": X_train, "val": X_id, "noise": X_noise}, chunk_rows=64)
    return path


def test_tune_store_equals_sparsity_search_on_the_arrays(small_store, data, search, tmp_path):
    X_train = data[0]
    s = tuning.tune_store(small_store, train="train", id_split="val", noise_split="noise")
    assert s.best_params_ == search.best_params_
    np.testing.assert_allclose(s.cv_results_["fpr95"], search.cv_results_["fpr95"], atol=1e-12)
    np.testing.assert_allclose(s.mean_feature_, X_train.astype(np.float64).mean(axis=0), rtol=1e-12)
    mean_file = tmp_path / "mean.npy"
    np.save(mean_file, s.mean_feature_)
    t = tuning.tune_store(small_store, train_mean=mean_file, id_split="val", noise_split="noise")
    np.testing.assert_array_equal(t.cv_results_["n_kept"], s.cv_results_["n_kept"])


def test_tune_store_needs_exactly_one_training_statistic(small_store):
    with pytest.raises(ValueError, match="exactly one of train"):
        tuning.tune_store(small_store, id_split="val", noise_split="noise")


# ------------------------------------------------------------- examples
def test_docstring_examples_run():
    import doctest

    import skdice._hyperparameter_search
    import skdice._search_grid
    import skdice._sparsity_search

    for module in (skdice._hyperparameter_search, skdice._sparsity_search, skdice._search_grid):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
