"""The workflow layer's resolver, method specs and the tag-driven choice of how to fit."""

from __future__ import annotations

import errno

import numpy as np
import pytest

pytest.importorskip("zarr")

from skdice import DICEDetector, DICEReActDetector, Head, MahalanobisDetector
from skdice.exceptions import StoreError
from skdice.workflows.fit import fit_detector
from skdice.workflows.methods import MethodSpec, build_detector
from skdice.workflows.resolve import (
    TrainingData,
    check_split_lists,
    class_labels,
    damaged_store_error,
    open_feature_store,
    read_features,
    resolve_train_mean,
)
from stores import write_store

M, C = 8, 3


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    head = Head(rng.normal(size=(M, C)), rng.normal(size=C))
    y = np.arange(120) % C
    X = np.maximum(rng.normal(1, 1, (120, M)), 0)
    path = tmp_path_factory.mktemp("wf") / "s.zarr"
    write_store(path, head, {"train": (X, y), "id": (X[:40], y[:40]), "noise": rng.normal(size=(30, M))})
    return path, head, X, y


def test_open_feature_store_takes_a_path_or_an_open_store(store):
    path, *_ = store
    fs = open_feature_store(path)
    assert open_feature_store(fs) is fs
    with pytest.raises(StoreError, match="does not exist"):
        open_feature_store(path.parent / "missing.zarr")


def test_resolve_train_mean_reads_a_path_checks_an_array_and_passes_none(store, tmp_path):
    mean = np.arange(M, dtype=np.float32)
    np.save(tmp_path / "m.npy", mean)
    np.testing.assert_array_equal(resolve_train_mean(tmp_path / "m.npy", M), mean)
    np.testing.assert_array_equal(resolve_train_mean(str(tmp_path / "m.npy"), M), mean)
    np.testing.assert_array_equal(resolve_train_mean(mean, M), mean)
    assert resolve_train_mean(None, M) is None
    with pytest.raises(ValueError, match="holds a mean of 8 features but the store's head has 9"):
        resolve_train_mean(tmp_path / "m.npy", 9)
    with pytest.raises(ValueError, match=r"train_mean must have shape \(9,\)"):
        resolve_train_mean(mean, 9)


def test_check_split_lists_refuses_none_repeats_and_overlap():
    assert check_split_lists("id", ("a", "b")) == ["a", "b"]
    with pytest.raises(ValueError, match="at least one OOD split"):
        check_split_lists("id", [])
    with pytest.raises(ValueError, match="'a' is given more than once"):
        check_split_lists("id", ["a", "a"])
    with pytest.raises(ValueError, match="both as the ID split and as an OOD split"):
        check_split_lists("id", ["id"])


def test_class_labels_refuse_a_split_with_unknown_labels(store):
    path, _, _, y = store
    fs = open_feature_store(path)
    np.testing.assert_array_equal(class_labels(fs, "train"), y)
    with pytest.raises(ValueError, match="'noise' has 30 rows without a class label"):
        class_labels(fs, "noise")


def test_damaged_store_error_keeps_file_system_refusals_apart_from_damage(store):
    path, *_ = store
    fs = open_feature_store(path)
    full = damaged_store_error(fs, "id", OSError(errno.ENOSPC, "No space left on device", "x"))
    assert isinstance(full, OSError) and not isinstance(full, StoreError)
    assert full.errno == errno.ENOSPC and "(split 'id' of" in str(full)
    damaged = damaged_store_error(fs, "id", RuntimeError("zstd: bad frame"))
    assert isinstance(damaged, StoreError) and "the store is damaged" in str(damaged)


def test_read_features_explains_a_chunk_that_cannot_be_decoded(store, tmp_path):
    import shutil

    path, *_ = store
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    chunk = next((copy / "id" / "features" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.write_bytes(b"not zstd at all")
    with pytest.raises(StoreError, match=r"split 'id' of .* could not be read .* the store is damaged"):
        read_features(open_feature_store(copy), "id")


def test_build_detector_gives_a_run_wide_p_only_where_the_spec_leaves_it():
    assert build_detector("dice", 0.5).p == 0.5
    assert build_detector(MethodSpec("dice", {"p": 0.7}), 0.5).p == 0.7
    assert "p" not in build_detector("energy", 0.5).get_params()
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 90 \(p is a fraction"):
        build_detector("dice", 90)


def test_fit_detector_streams_a_mean_detector_and_loads_the_rows_for_the_others(store, monkeypatch):
    """The choice comes from the declared tags: a mean or block statistics stream, a bank loads."""
    path, head, X, y = store
    from skdice import KNNDetector
    from skdice.store import FeatureStore

    loaded = []
    real = FeatureStore.features

    def spy(self, split, **kwargs):
        loaded.append(split)
        return real(self, split, **kwargs)

    monkeypatch.setattr(FeatureStore, "features", spy)
    train = TrainingData(open_feature_store(path), "train")
    dice = fit_detector(DICEDetector(p=0.5), train)
    assert loaded == [] and dice.n_samples_seen_ == len(X)
    np.testing.assert_allclose(dice.mean_feature_, X.astype(np.float32).mean(axis=0, dtype=np.float64), rtol=1e-6)
    # an exact second pass calibrates offset_ as the in-memory fit does
    reference = DICEDetector(p=0.5).fit(X.astype(np.float32), head=head)
    assert dice.offset_ == pytest.approx(reference.offset_, rel=1e-6)
    # DICE+ReAct's percentile clip and Mahalanobis's class statistics are read block
    # by block (tag fits_from_blocks), equal to the in-memory fits
    clipped = fit_detector(DICEReActDetector(), train)
    assert clipped.threshold_ == DICEReActDetector().fit(X.astype(np.float32), head=head).threshold_
    maha = fit_detector(MahalanobisDetector(), train)
    in_memory = MahalanobisDetector().fit(X.astype(np.float32), y)
    np.testing.assert_allclose(maha.precision_, in_memory.precision_, rtol=1e-9, atol=1e-12)
    assert loaded == [] and maha.classes_.tolist() == [0, 1, 2]
    # KNN keeps its training rows: the split is loaded
    fit_detector(KNNDetector(n_neighbors=3), train, calibrate=False)
    assert loaded == ["train"]


def test_fit_detector_without_training_data_says_which_parameter_to_pass(store):
    path, *_ = store
    train = TrainingData(open_feature_store(path), None)
    with pytest.raises(ValueError, match=r"'mahalanobis' is fitted on in-distribution training features: pass train=SPLIT\.$"):
        fit_detector(MahalanobisDetector(), train)
    with pytest.raises(ValueError, match=r"'dice' is fitted .*train=SPLIT or train_mean=PATH"):
        fit_detector(DICEDetector(), train)


def test_a_damaged_chunk_during_a_streamed_fit_is_one_store_error(store, tmp_path):
    import shutil

    from skdice.workflows.fit import fit_store

    path, *_ = store
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    chunks = sorted(p for p in (copy / "train" / "features" / "c").rglob("*") if p.is_file())
    chunks[1].write_bytes(b"\x28\xb5\x2f\xfd garbage that is not a zstd frame")
    with pytest.raises(StoreError, match=r"split 'train' of .* could not be read .* the store is damaged"):
        fit_store(DICEDetector(), copy, "train")


def test_a_split_and_a_mean_together_give_each_detector_what_it_needs(store, monkeypatch):
    from skdice import KNNDetector
    from skdice.store import FeatureStore

    path, head, X, y = store
    loaded = []
    real = FeatureStore.features

    def spy(self, split, **kwargs):
        loaded.append(split)
        return real(self, split, **kwargs)

    monkeypatch.setattr(FeatureStore, "features", spy)
    official = np.linspace(0.1, 2.0, M)  # a cached mean that is not the split's
    train = TrainingData(open_feature_store(path), "train", official)
    dice = fit_detector(DICEDetector(p=0.5), train, calibrate=False)
    np.testing.assert_array_equal(dice.mean_feature_, official)
    assert np.isnan(dice.offset_) and loaded == []
    # with offset_ wanted, the split is streamed to calibrate it (never loaded whole)
    calibrated = fit_detector(DICEDetector(p=0.5), train, calibrate=True)
    expected = np.quantile(calibrated.score_samples(X.astype(np.float32)), 0.05)
    assert calibrated.offset_ == pytest.approx(expected) and loaded == []
    knn = fit_detector(KNNDetector(n_neighbors=3), train, calibrate=False)
    assert loaded == ["train"] and knn.n_features_in_ == M


def test_expand_methods_replaces_all_by_every_registered_method_once():
    from skdice import available_detectors
    from skdice.workflows.methods import expand_methods

    names = list(available_detectors())
    assert expand_methods(["all"]) == names
    assert expand_methods(["knn:n_neighbors=5", "all", "dice"]) == ["knn:n_neighbors=5", *names]
    assert expand_methods(["dice", "energy"]) == ["dice", "energy"]


def test_tuning_lines_say_whether_the_defaults_or_a_stand_in_stayed():
    from skdice.workflows.evaluate import Evaluation

    def item(method, params, informative, moved, at_defaults):
        return {"method": method, "params": params, "informative": informative, "reason": "",
                "decided_by": "tin", "moved": moved, "at_defaults": at_defaults}

    tuning = {"id": "val", "noise": ["jig"], "ood": ["tin"], "methods": [
        item("knn", {"n_neighbors": 10}, True, True, False),
        item("dice", {"p": 0.9}, True, False, True),
        item("scale", {"percentile": 85}, False, False, True),
        item("ash-b", {"percentile": 90}, False, False, False),  # the guard flags ASH-B's 65
    ]}
    lines = Evaluation(None, None, {}, {}, tuning=tuning).tuning_lines()
    assert lines == [
        "tuned on 'val' vs 'jig', 'tin' before the evaluation:",
        "  knn: n_neighbors = 10 (chosen; decided by 'tin')",
        "  dice: p = 0.9 (the defaults: validation agrees with them; decided by 'tin')",
        "  scale: percentile = 85 (defaults kept: validation cannot move them; decided by 'tin')",
        "  ash-b: percentile = 90 (the candidate nearest the defaults, which the guard flags or the grid lacks;"
        " decided by 'tin')",
    ]


def test_a_fit_from_blocks_reports_every_pass(store, monkeypatch):
    """``skdice fit``'s bar: ReAct's exact percentile reads the split twice, then calibrates."""
    path, head, X, y = store
    import skdice._selection
    from skdice import ReActDetector

    monkeypatch.setattr(skdice._selection, "COLLECT_LIMIT", 0)  # count both digits, as at scale

    calls = []
    train = TrainingData(open_feature_store(path), "train")
    det = fit_detector(ReActDetector(), train, progress=lambda done, total: calls.append((done, total)))
    n = len(X)
    assert [c for c in calls if c[0] == n] == [(n, n)] * 3  # two counts, then the scoring pass
    assert det.threshold_ == np.percentile(X.astype(np.float32), 90)
