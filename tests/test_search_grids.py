"""Every detector's declared search grid, and HyperparameterSearch against GridSearchCV."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, PredefinedSplit

from skdice import Head, available_detectors
from skdice.metrics import auroc_scorer, fpr95_scorer
from skdice.tuning import DEFAULT_GRID, HyperparameterSearch, SparsitySearch, default_grid

#: registered detectors with nothing to tune, and why (the rest must declare a grid)
NOTHING_TO_TUNE = {
    "energy": "T = 1, untuned in the energy paper and the DICE paper's Appendix B",
    "msp": "no hyperparameter",
    "maxlogit": "no hyperparameter",
    "mahalanobis": "reg is a numerical ridge; the paper's epsilon needs input gradients",
    "rmds": "no hyperparameter (Ren et al., 2021)",
    "klm": "no hyperparameter (Hendrycks et al., 2022)",
    "gradnorm": "no hyperparameter: temperature 1 in the authors' code and OpenOOD (Huang et al., 2021)",
}


def _data(seed=0, m=16, C=4, n_train=120, n_id=60, n_noise=60):
    rng = np.random.default_rng(seed)
    centres = np.maximum(rng.normal(0, 1, (C, m)), 0) * 2
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = (0.1 * rng.normal(size=C)).astype(np.float32)

    def rows(n):
        return np.maximum(centres[rng.integers(0, C, n)] + rng.normal(0, 0.7, (n, m)), 0).astype(np.float32)

    X_train, X_id = rows(n_train), rows(n_id)
    X_noise = np.abs(rng.normal(0.5, 1.0, (n_noise, m))).astype(np.float32)
    return X_train, X_id, X_noise, Head(W, b)


# ------------------------------------------------------------ declarations
@pytest.mark.parametrize("name", sorted(available_detectors()))
def test_every_detector_declares_its_grid_with_its_defaults_in_it(name):
    cls = available_detectors()[name]
    assert isinstance(getattr(cls, "search_grid", None), dict), f"{name} declares no search_grid"
    grid = default_grid(name)
    if name in NOTHING_TO_TUNE:
        assert grid == {}
        return
    assert grid, f"{name} declares an empty grid but has hyperparameters"
    defaults = cls().get_params()
    for param, values in grid.items():
        assert param in defaults and param != "tpr"
        assert defaults[param] in values, f"{name}: default {param}={defaults[param]!r} not in its grid"
        for value in values:  # every declared value is within the parameter's constraint
            clone(cls()).set_params(**{param: value})._validate_params()


#: each method's official settings, read from its authors' code and OpenOOD's
#: configs (docs/detectors.md, "Official settings", gives the sources); every grid
#: must contain them, for the CIFAR and the ImageNet model families alike
OFFICIAL_SETTINGS = {
    "dice": {"p": [0.7, 0.9]},  # demo-imagenet.sh --p 70; the paper's CIFAR p = 0.9
    "dice-react": {"p": [0.1, 0.15]},  # demo-imagenet.sh (with an absolute clip)
    "knn": {"n_neighbors": [50, 100, 200, 500, 1000]},  # run_cifar.py 50, run_imagenet.py 1000, OpenOOD
    "vim": {"dim": [None, 256, 512, 1000]},  # benchmark.py rule; OpenOOD's 256 / 1000
    "react": {"percentile": [85, 90, 95, 99]},  # the paper's 90; OpenOOD's sweep
    "ash-p": {"percentile": [60, 65, 70, 75, 80, 85, 90, 95, 99]},  # paper P@60; authors' run.py
    "ash-b": {"percentile": [65, 70, 75, 80, 85, 90, 95, 99]},  # paper B@65; authors' run.py
    "ash-s": {"percentile": [90, 95, 99]},  # imagenet, cifar10/100, densenet configs
    "scale": {"percentile": [50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 97, 99]},  # scale.yml + 97, 99
    "gen": {"gamma": [0.01, 0.1, 0.5, 1, 2, 5, 10], "M": [10, 50, 100, 200, 500, 1000]},  # gen.yml
    "odin": {"temperature": [1, 10, 100, 1000]},  # odin.yml
    "nci": {"alpha": [1e-4, 1e-3, 1e-2, 1e-1]},  # nci.yml alpha_list (the authors' code)
    "nnguide": {"n_neighbors": [10, 100]},  # the authors' nnguide.yaml; OpenOOD's nnguide.yml
    "relation": {"pow": [1, 2, 4, 6, 8]},  # relation.yml
    "neco": {"dim": [100]},  # the authors' test_all_ood.py --neco_dim
    "she": {"metric": ["inner_product", "euclidean", "cosine"]},  # the paper's ablation
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_SETTINGS))
def test_every_grid_covers_its_methods_official_settings(name):
    grid = default_grid(name)
    for param, values in OFFICIAL_SETTINGS[name].items():
        missing = set(values) - set(grid[param])
        assert not missing, f"{name}: the official {param} values {sorted(missing, key=str)} are not in its grid"


def test_default_grid_is_the_class_declaration_read_one_way():
    assert default_grid("dice") == {"p": DEFAULT_GRID}
    assert default_grid(available_detectors()["react"]) == default_grid("react") == default_grid(
        available_detectors()["react"]())
    copy = default_grid("dice")
    copy["p"] = ()
    assert default_grid("dice")["p"] == DEFAULT_GRID
    assert set(default_grid("dice-react")) == {"p", "percentile"}  # the 2-D grid
    assert set(default_grid("gen")) == {"gamma", "M"}
    # the registry's one message for an unknown name
    with pytest.raises(ValueError, match="unknown detector 'nope'; choose one of: .*dice"):
        default_grid("nope")


# ------------------------------------------------- GridSearchCV agreement
#: one case per detector family: (method, grid); small grids, every value valid on _data()
FAMILIES = {
    "dice (mean-fitted masked head)": ("dice", {"p": [0.1, 0.5, 0.9]}),
    "dice-msp (masked head, MSP)": ("dice-msp", {"p": [0.1, 0.5, 0.9]}),
    "dice variant": ("dice-bottom-k", {"p": [0.1, 0.5, 0.9]}),
    "ablation": ("weight-pruning", {"p": [0.1, 0.5, 0.9]}),
    "dice-react (2-D)": ("dice-react", {"p": [0.1, 0.5], "percentile": [50, 90]}),
    "react (feature clipping)": ("react", {"percentile": [50, 80, 95]}),
    "activation shaping": ("ash-b", {"percentile": [60, 80, 90]}),
    "scale": ("scale", {"percentile": [65, 85, 95]}),
    "knn": ("knn", {"n_neighbors": [1, 10, 50]}),
    "vim": ("vim", {"dim": [None, 2, 4]}),
    "gen (2-D)": ("gen", {"gamma": [0.01, 0.1, 1.0], "M": [2, 4]}),
    "odin": ("odin", {"temperature": [1, 10, 1000]}),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("metric, scorer", [("fpr95", fpr95_scorer), ("auroc", auroc_scorer)])
def test_search_and_gridsearchcv_score_and_choose_alike(family, metric, scorer):
    name, grid = FAMILIES[family]
    X_train, X_id, X_noise, head = _data()
    X = np.vstack([X_train, X_id, X_noise])
    y = np.r_[np.ones(len(X_train) + len(X_id)), np.zeros(len(X_noise))].astype(int)
    fold = np.r_[-np.ones(len(X_train)), np.zeros(len(X_id) + len(X_noise))].astype(int)
    est = available_detectors()[name]()
    gs = GridSearchCV(est, grid, scoring=scorer, cv=PredefinedSplit(fold), error_score="raise")
    gs.fit(X, y, head=head)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # fallback=False: the candidate the rule would rank first, whatever the verdict
        s = HyperparameterSearch(name, grid, metric=metric, fallback=False).fit(
            X_train, head=head, X_id=X_id, X_noise=X_noise)
    assert s.cv_results_["params"] == gs.cv_results_["params"]
    np.testing.assert_allclose(s.cv_results_["mean_test_score"], gs.cv_results_["mean_test_score"], atol=1e-9)
    np.testing.assert_array_equal(s.cv_results_["rank_test_score"], gs.cv_results_["rank_test_score"])
    assert s.best_params_ == gs.best_params_


def test_hyperparameter_search_of_dice_equals_sparsity_search():
    X_train, X_id, X_noise, head = _data(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = HyperparameterSearch("dice").fit(X_train, head=head, X_id=X_id, X_noise=X_noise)
        b = SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise=X_noise)
    for key in ("fpr95", "auroc", "aupr_in", "aupr_out", "n_kept", "fpr95_ci_low", "gap_ci_high", "worse"):
        np.testing.assert_allclose(a.cv_results_[key], b.cv_results_[key], rtol=1e-6)
    assert a.best_params_ == b.best_params_ and a.informative_ == b.informative_


def test_best_estimator_is_the_chosen_candidate_calibrated_on_id_validation():
    X_train, X_id, X_noise, head = _data(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = HyperparameterSearch("react", {"percentile": [50, 90]}).fit(X_train, head=head, X_id=X_id, X_noise=X_noise)
    est = s.best_estimator_
    assert type(est).name == "react" and est.get_params()["percentile"] == s.best_params_["percentile"]
    assert est.offset_ == pytest.approx(np.quantile(est.score_samples(X_id), 0.05))
    np.testing.assert_array_equal(s.score_samples(X_noise), est.score_samples(X_noise))


# ------------------------------------------------------------- bad grids
@pytest.mark.parametrize(
    "method, grid, words",
    [
        ("react", {"percentile": [50, 150]}, ["'percentile'", "[0.0, 100.0]", "150"]),
        ("knn", {"n_neighbors": [0, 5]}, ["'n_neighbors'", "[1, inf)", "0"]),
        ("gen", {"gamma": [0.1], "M": [10, -1]}, ["'M'", "[1, inf)"]),
        ("react", {"clip": [1, 2]}, ["no parameter 'clip'", "percentile"]),
        ("react", {"percentile": []}, ["'percentile' are empty"]),
        ("react", {"percentile": [90, 90]}, ["'percentile' are repeated"]),
        ("dice-react", [0.1, 0.2], ["must be a dict", "p, percentile"]),
        ("energy", None, ["declares no hyperparameter"]),
    ],
)
def test_a_bad_grid_names_the_parameter_and_its_range(method, grid, words):
    X_train, X_id, X_noise, head = _data()
    with pytest.raises(ValueError) as exc:
        HyperparameterSearch(method, grid).fit(X_train, head=head, X_id=X_id, X_noise=X_noise)
    message = str(exc.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_declared_values_the_data_cannot_take_are_left_out_and_listed():
    X_train, X_id, X_noise, head = _data(n_train=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = HyperparameterSearch("knn").fit(X_train, head=head, X_id=X_id, X_noise=X_noise)
    kept = [c["n_neighbors"] for c in s.cv_results_["params"]]
    assert kept == [1, 10, 20, 50]
    assert [p["n_neighbors"] for p, _ in s.dropped_params_] == [100, 200, 500, 1000]
    assert all("exceeds the 60 fitting rows" in why for _, why in s.dropped_params_)
    assert s.skipped_params_ == s.dropped_params_  # the former name
    # a given value is dropped the same way (evaluate --tune-id gives the declared grid)
    given = HyperparameterSearch("knn", {"n_neighbors": [10, 100]}).fit(
        X_train, head=head, X_id=X_id, X_noise=X_noise)
    assert [c["n_neighbors"] for c in given.cv_results_["params"]] == [10]
    assert given.dropped_params_ == [({"n_neighbors": 100}, "n_neighbors=100 exceeds the 60 fitting rows")]
    # nothing left: one error naming every candidate
    with pytest.raises(ValueError, match=r"^no candidate of the grid fits these data: n_neighbors=100: "
                       r"n_neighbors=100 exceeds the 60 fitting rows; n_neighbors=200: "):
        HyperparameterSearch("knn", {"n_neighbors": [100, 200]}).fit(
            X_train, head=head, X_id=X_id, X_noise=X_noise)


def test_training_features_are_required_where_a_mean_is_not_enough():
    X_train, X_id, X_noise, head = _data()
    mean = X_train.mean(axis=0)
    with pytest.raises(ValueError, match="method 'knn' is fitted on ID training features: pass X"):
        HyperparameterSearch("knn", {"n_neighbors": [1, 5]}).fit(head=head, train_mean=mean, X_id=X_id, X_noise=X_noise)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # mean-fitted masks need the mean only; head-only scores need nothing
        HyperparameterSearch("dice-bottom-k").fit(head=head, train_mean=mean, X_id=X_id, X_noise=X_noise)
        odin = HyperparameterSearch("odin", {"temperature": [1, 1000]}).fit(head=head, X_id=X_id, X_noise=X_noise)
    assert len(odin.cv_results_["params"]) == 2


def test_constructor_only_stores_parameters_and_clones():
    s = HyperparameterSearch("gen", {"gamma": [0.1]}, metric="auroc", guard=False)
    assert s.get_params()["method"] == "gen" and s.get_params()["grid"] == {"gamma": [0.1]}
    assert clone(s).get_params() == s.get_params()
    assert not hasattr(HyperparameterSearch("nonsense", grid="nonsense"), "cv_results_")
