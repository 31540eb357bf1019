"""The searches' guard for every detector that changes the classifier, dropped candidates, and seeds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from skdice import Head, available_detectors, detector_tags
from skdice._masked import masked_head_scores
from skdice.detectors import GENDetector, ReActDetector
from skdice.tuning import HyperparameterSearch


def _clip_data(seed=0):
    """ID rows whose class lies in a large unit, noise large on every class unit.

    A low clip (ReAct at the 70th percentile) separates the noise perfectly
    and leaves every class unit at the clip (the classifier guesses); the
    high clip keeps the classifier and fails on the noise.
    """
    rng = np.random.default_rng(seed)
    m, C = 16, 4

    def id_rows(n):
        y = rng.integers(0, C, n)
        X = rng.uniform(0, 0.5, (n, m))
        X[:, :C] = rng.uniform(1, 3, (n, C))
        X[np.arange(n), y] = 4.5
        X[:, C] = 0.5
        return X, y

    W = np.zeros((m, C))
    W[:C] = np.eye(C) * 2
    W[C] = 1
    (X_train, y_train), (X_id, y_id) = id_rows(400), id_rows(300)
    _TRAIN_LABELS[id(X_train)] = y_train
    X_noise = rng.uniform(0, 0.5, (300, m))
    X_noise[:, :C] = rng.uniform(5, 8, (300, C))
    X_noise[:, C] = 0
    return X_train, X_id, y_id, X_noise, Head(W, np.zeros(C))


#: the class labels of each training array _clip_data made (detectors fitted per class need them)
_TRAIN_LABELS: dict = {}


def _search(method, grid, data, **options):
    X_train, X_id, y_id, X_noise, head = data
    # the real OOD validation set: another draw of the same outliers (a move needs both kinds)
    X_ood = _clip_data(seed=99)[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HyperparameterSearch(method, grid, **options).fit(
            X_train, head=head, y=_TRAIN_LABELS.get(id(X_train)), X_id=X_id, X_noise=X_noise,
            X_ood=X_ood, y_id=y_id)


def test_the_guard_drops_a_react_clip_that_breaks_the_classifier():
    data = _clip_data()
    free = _search("react", {"percentile": [70, 99]}, data, guard=False)
    # without the guard the clip that destroys the classifier wins, informatively
    assert free.best_params_ == {"percentile": 70} and free.informative_
    assert free.cv_results_["id_accuracy"][0] < 0.5 and free.dense_accuracy_ == 1.0
    guarded = _search("react", {"percentile": [70, 99]}, data)
    assert list(guarded.cv_results_["flagged"]) == [True, False]
    assert guarded.best_params_ == {"percentile": 99}
    # the accuracy is the one of the detector's own classifier: the head on clipped features
    X_train, X_id, y_id, _, head = data
    clipped = ReActDetector(percentile=70).fit(X_train, head=head)
    expected = np.argmax(np.minimum(X_id, clipped.threshold_) @ head.weight, axis=1)
    assert np.array_equal(clipped.predict_class(X_id), expected)
    assert guarded.cv_results_["id_accuracy"][0] == pytest.approx(np.mean(expected == y_id))


def test_the_guard_drops_an_ash_pruning_that_breaks_the_classifier():
    X_train, X_id, y_id, X_noise, head = _clip_data()
    # three units the head ignores carry the largest activations: pruning to the top two keeps
    # only them and the logits tie
    for X in (X_train, X_id, X_noise):
        X[:, 5:8] = 6.0
    search = _search("ash-p", {"percentile": [60, 90]}, (X_train, X_id, y_id, X_noise, head))
    res = search.cv_results_
    assert res["id_accuracy"][1] < 0.5 and res["id_accuracy"][0] == 1.0
    assert list(res["flagged"]) == [False, True]
    assert search.best_params_ == {"percentile": 60}
    assert search.dense_accuracy_ == 1.0


def test_the_guard_drops_an_ablation_that_breaks_the_classifier():
    data = _clip_data()
    search = _search("weight-pruning", {"p": [0.1, 0.99]}, data)
    res = search.cv_results_
    assert res["flagged"][1] and not res["flagged"][0]
    assert search.best_params_ == {"p": 0.1}
    assert res["id_accuracy"][1] < search.dense_accuracy_ - 0.05


@pytest.mark.parametrize("name", sorted(available_detectors()))
def test_predict_class_is_the_classifier_the_detector_scores_with(name):
    X_train, X_id, _, _, head = _clip_data()
    det = available_detectors()[name]()
    tags = detector_tags(det)
    if tags.masked_head:
        assert tags.changes_classifier  # every masked head changes the classifier
    if tags.requires_class_labels or not tags.requires_head:
        return  # Mahalanobis, KNN: no classifier of their own
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det.fit(X_train, head=head)
    classes = det.predict_class(X_id)
    assert classes.dtype == np.int64 and classes.shape == (X_id.shape[0],)
    if tags.masked_head:
        assert np.array_equal(classes, masked_head_scores(det, X_id, classes=True)[1])
    elif not tags.changes_classifier:
        assert np.array_equal(classes, np.argmax(X_id @ head.weight + head.bias, axis=1))
    else:
        assert np.array_equal(classes, np.argmax(det.classifier_block(X_id), axis=1))


def test_every_classifier_changing_detector_is_guarded():
    data = _clip_data()
    for name, cls in available_detectors().items():
        det = cls()
        if not detector_tags(det).changes_classifier or not cls.search_grid:
            continue
        key, values = next(iter(cls.search_grid.items()))
        search = _search(name, {key: list(values[:2])}, data)
        assert search.dense_accuracy_ == 1.0, name
        assert np.isfinite(search.cv_results_["id_accuracy"]).all(), name


# ------------------------------------------------------------ dropped candidates
def test_candidates_that_cannot_apply_or_act_alike_are_dropped_before_the_search():
    X_train, X_id, y_id, X_noise, head = _clip_data()
    gen = _search("gen", None, (X_train, X_id, y_id, X_noise, head))
    kept = {c["M"] for c in gen.cv_results_["params"]}
    assert kept == {100}  # M >= 4 classes all act as M = 4: the default's M stands for them
    assert len(gen.cv_results_["params"]) == len(GENDetector.search_grid["gamma"])
    assert all(why.startswith("acts as M=100, gamma=") for _, why in gen.dropped_params_)
    vim = _search("vim", None, (X_train, X_id, y_id, X_noise, head))
    assert [c["dim"] for c in vim.cv_results_["params"]] == [None]
    assert [p["dim"] for p, _ in vim.dropped_params_] == [32, 64, 128, 256, 512, 1000]
    assert vim.dropped_params_[0][1] == "dim=32 is not below the feature width 16"


# ------------------------------------------------------------ seeds
@pytest.mark.parametrize("name", ["weight-dropout", "unit-dropout", "dice-random-k"])
def test_random_candidates_are_seeded_by_the_search(name):
    data = _clip_data()
    a, b = _search(name, None, data), _search(name, None, data)
    assert a.best_estimator_.random_state == 0
    assert np.array_equal(a.cv_results_["fpr95"], b.cv_results_["fpr95"])
    assert np.array_equal(a.best_estimator_.mask_, b.best_estimator_.mask_)
    other = _search(name, None, data, random_state=3)
    assert other.best_estimator_.random_state == 3
    # a seed the detector is given is kept
    cls = available_detectors()[name]
    given = _search(cls(random_state=7), None, data)
    assert given.best_estimator_.random_state == 7
