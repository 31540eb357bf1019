"""Properties every registered detector shares: fit spellings, chunking, persistence, docs."""

import doctest
import importlib
import pkgutil

import numpy as np
import pytest
from _detector_problems import random_problem
from sklearn import config_context

import skdice.detectors
from skdice import Head, available_detectors, get_detector, load_detector, save_detector

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
    labels = available_detectors()[name]._requires_class_labels
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
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_input_dtypes_agree(name):
    H, W, b = random_problem(n=120, m=16, C=5)
    det = _fit(name, H, W, b, _labels(len(H)), "positional")
    ref = det.score_samples(H)
    np.testing.assert_allclose(det.score_samples(H.astype(np.float64)), ref, rtol=1e-6)
    assert det.score_samples(H).dtype == np.float64


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
    det = det.fit(H, W, b, _labels(len(H))) if det._requires_class_labels else det.fit(H, W, b)
    assert set(np.unique(det.predict(H))) <= {-1, 1}
    if name != "knn":  # KNN calibrates leave-one-out, see test_knn
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
