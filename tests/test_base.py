"""BaseDetector's declared capabilities, the mean-streaming protocol and the extension points."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.utils import Tags, get_tags

from skdice import (
    BaseDetector,
    DetectorTags,
    DICEDetector,
    DICEReActDetector,
    EnergyDetector,
    Head,
    KNNDetector,
    MahalanobisDetector,
    ReActDetector,
    available_detectors,
    detector_tags,
    get_detector,
)


def _problem(n=300, m=12, C=4, seed=0):
    rng = np.random.default_rng(seed)
    H = np.maximum(rng.normal(0.5, 1.0, (n, m)), 0).astype(np.float32)
    return H, Head(rng.normal(size=(m, C)), rng.normal(size=C))


# ---------------------------------------------------------------- tags
def test_tags_are_scikit_learn_tags_with_the_detector_tags_added():
    tags = get_tags(DICEDetector())
    assert isinstance(tags, Tags) and tags.input_tags.allow_nan is False
    assert isinstance(tags.detector_tags, DetectorTags)
    assert detector_tags(DICEDetector()) == tags.detector_tags


@pytest.mark.parametrize(
    "detector, expected",
    [
        (DICEDetector(), dict(requires_head=True, accepts_train_mean=True, fits_from_mean=True, uses_features=True)),
        (EnergyDetector(), dict(requires_head=True, accepts_train_mean=False, fits_from_mean=False, uses_features=False)),
        (KNNDetector(), dict(requires_head=False, fits_from_mean=False, uses_features=True)),
        (MahalanobisDetector(), dict(requires_head=False, requires_class_labels=True)),
        (ReActDetector(), dict(uses_features=True)),
        (ReActDetector(threshold=1.0), dict(uses_features=False)),
        (DICEReActDetector(), dict(accepts_train_mean=True, fits_from_mean=False)),
        (DICEReActDetector(threshold=1.0), dict(accepts_train_mean=True, fits_from_mean=True)),
    ],
    ids=lambda value: repr(value) if isinstance(value, BaseDetector) else "",
)
def test_tags_declare_what_each_detector_needs_and_depend_on_parameters(detector, expected):
    tags = detector_tags(detector)
    for key, value in expected.items():
        assert getattr(tags, key) is value, key
    assert tags.partial_fit is tags.fits_from_mean and tags.dask_fit is tags.fits_from_mean
    assert hasattr(detector, "partial_fit") is tags.partial_fit


@pytest.mark.parametrize("name", sorted(available_detectors()))
def test_a_detector_declared_fits_from_mean_is_fitted_by_its_mean_exactly_as_by_its_rows(name):
    det = get_detector(name, **({"threshold": 1.0} if name == "dice-react" else {}))
    if "random_state" in det.get_params():
        det.set_params(random_state=0)  # the same random mask for both fits
    H, head = _problem()
    if not detector_tags(det).fits_from_mean:
        with pytest.raises(ValueError, match="cannot be fitted from a mean feature alone"):
            det.fit_from_mean(head, H.mean(axis=0))
        return
    from sklearn.base import clone

    dense = clone(det).fit(H, head=head)
    streamed = det.fit_from_mean(head, H.astype(np.float64).mean(axis=0), n_samples=len(H))
    assert streamed.n_samples_seen_ == len(H) and np.isnan(streamed.offset_)
    np.testing.assert_allclose(streamed.score_samples(H), dense.score_samples(H), rtol=1e-5, atol=1e-6)


def test_detector_tags_refuses_a_class_and_a_foreign_estimator():
    with pytest.raises(TypeError, match=r"needs an instance \(DICEDetector\(\)\)"):
        detector_tags(DICEDetector)
    from sklearn.ensemble import IsolationForest

    with pytest.raises(TypeError, match="IsolationForest is not a skdice detector"):
        detector_tags(IsolationForest())


# ------------------------------------------------------- fit_from_mean
def test_fit_from_mean_checks_its_inputs():
    H, head = _problem()
    det = DICEDetector()
    with pytest.raises(ValueError, match="train_mean contains NaN or infinity"):
        det.fit_from_mean(head, np.full(head.n_features, np.nan))
    with pytest.raises(ValueError, match=r"looks like PyTorch's fc.weight layout"):
        det.fit_from_mean(Head(head.weight.T.copy(), np.zeros(head.n_features)), H.mean(axis=0))
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        det.fit_from_mean(head, H.mean(axis=0), n_samples=0)


def test_fit_from_mean_forgets_a_previous_stream_and_feature_names():
    H, head = _problem()
    det = DICEDetector().partial_fit(H[:50], head=head)
    det.feature_names_in_ = np.array([f"f{i}" for i in range(H.shape[1])], dtype=object)
    det.fit_from_mean(head, H.mean(axis=0))
    assert "n_samples_seen_" not in vars(det) and "feature_names_in_" not in vars(det)
    # the next partial_fit starts a new stream, which needs the head again
    with pytest.raises(ValueError, match="first DICEDetector.partial_fit call needs the classifier head"):
        det.partial_fit(H[:10])


def test_partial_fit_equals_a_fit_on_the_rows_seen_so_far():
    H, head = _problem(n=500)
    stream = DICEDetector(p=0.7)
    for i, chunk in enumerate(np.array_split(H, 7)):
        stream.partial_fit(chunk, head=head) if i == 0 else stream.partial_fit(chunk)
    whole = DICEDetector(p=0.7).fit(H, head=head)
    assert stream.n_samples_seen_ == len(H)
    np.testing.assert_allclose(stream.mean_feature_, whole.mean_feature_, rtol=1e-12)
    np.testing.assert_array_equal(stream.mask_, whole.mask_)


# ---------------------------------------------------- extension points
def test_the_extension_points_of_a_new_detector_are_all_it_needs():
    class Centred(BaseDetector):
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.detector_tags.requires_head = False
            return tags

        def __init__(self, *, tpr=0.95):
            self.tpr = tpr

        def fit_statistics(self, X, y, head, train_mean):
            self.centre_ = X.mean(axis=0)

        def score_block(self, X):
            return -np.linalg.norm(X - self.centre_, axis=1)

    H, _ = _problem()
    det = Centred().fit(H)
    np.testing.assert_allclose(det.score_samples(H), -np.linalg.norm(H - H.mean(axis=0), axis=1), rtol=1e-5)
    assert det.offset_ == pytest.approx(np.quantile(det.score_samples(H), 0.05))
    assert not hasattr(det, "partial_fit")


def test_a_detector_without_hooks_says_which_one_is_missing():
    class Empty(BaseDetector):
        def __init__(self, *, tpr=0.95):
            self.tpr = tpr

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.detector_tags.requires_head = False
            return tags

    with pytest.raises(NotImplementedError, match="Empty must implement fit_statistics"):
        Empty().fit(np.ones((3, 2)))


def test_the_old_private_hook_names_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning) as caught:

        class Old(BaseDetector):
            def __init__(self, *, tpr=0.95):
                self.tpr = tpr

            def __sklearn_tags__(self):
                tags = super().__sklearn_tags__()
                tags.detector_tags.requires_head = False
                return tags

            def _fit_statistics(self, X, y, head, train_mean):
                self.centre_ = X.mean(axis=0)

            def _score_block(self, X):
                return -np.abs(X - self.centre_).sum(axis=1)

    messages = sorted(str(w.message) for w in caught)
    assert [m.split(" is deprecated")[0].rsplit(".", 1)[1] for m in messages] == ["_fit_statistics", "_score_block"]
    assert "name the hook score_block" in messages[1]
    H, _ = _problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = Old().fit(H).score_samples(H)
    np.testing.assert_allclose(scores, -np.abs(H - H.mean(axis=0)).sum(axis=1), rtol=1e-5)


def test_a_dask_array_is_refused_by_a_detector_that_needs_its_features():
    da = pytest.importorskip("dask.array")
    H, head = _problem()
    with pytest.raises(ValueError, match=r"KNNDetector cannot be fitted out of core .*X.compute\(\)"):
        KNNDetector(n_neighbors=3).fit(da.from_array(H, chunks=100))
