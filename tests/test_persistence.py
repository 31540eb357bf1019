"""Save/load of fitted detectors: pickle-free round trips and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import skdice
from skdice import DICEDetector, Head, available_detectors, detector_tags, get_detector
from skdice.exceptions import DetectorFormatError
from skdice.persistence import FORMAT_VERSION, load_detector, read_header, save_detector


def _data(seed=0, n=120, m=12, c=4):
    rng = np.random.default_rng(seed)
    H = np.maximum(rng.normal(size=(n, m)), 0).astype(np.float32)
    head = Head(rng.normal(size=(m, c)), rng.normal(size=c))
    labels = np.arange(n) % c
    return H, head, labels


def _fit_generic(name, H, head, labels):
    det = get_detector(name)
    if detector_tags(det).requires_class_labels:
        return det.fit(H, labels, head=head)
    return det.fit(H, head=head)


@pytest.mark.parametrize("name", sorted(available_detectors()))
def test_every_registered_detector_scores_identically_after_round_trip(name, tmp_path):
    H, head, labels = _data()
    det = _fit_generic(name, H, head, labels)
    path = save_detector(det, tmp_path / f"{name}.npz")
    again = load_detector(path)
    assert type(again) is type(det)
    assert again.get_params() == det.get_params()
    np.testing.assert_array_equal(again.score_samples(H), det.score_samples(H))
    assert again.offset_ == det.offset_ or (np.isnan(again.offset_) and np.isnan(det.offset_))


def test_round_trip_keeps_every_fitted_attribute_and_its_dtype(tmp_path):
    H, head, _ = _data()
    det = DICEDetector(p=0.7, tpr=0.9).fit(H, head=head)
    again = load_detector(save_detector(det, tmp_path / "d.npz"))
    for key, value in vars(det).items():
        loaded = getattr(again, key)
        if isinstance(value, np.ndarray):
            assert loaded.dtype == value.dtype, key
            np.testing.assert_array_equal(loaded, value)
        else:
            assert type(loaded) is type(value), key
            assert loaded == value or (np.isnan(loaded) and np.isnan(value)), key


def test_array_memory_order_is_preserved(tmp_path):
    H, head, _ = _data()
    det = DICEDetector().fit(H, head=head)
    det.masked_weight_ = np.asfortranarray(det.masked_weight_)
    again = load_detector(save_detector(det, tmp_path / "d.npz"))
    assert again.masked_weight_.flags.f_contiguous and not again.masked_weight_.flags.c_contiguous
    np.testing.assert_array_equal(again.score_samples(H), det.score_samples(H))


def test_detector_fitted_from_train_mean_round_trips_with_nan_offset(tmp_path):
    H, head, _ = _data()
    det = DICEDetector(p=0.9).fit(head=head, train_mean=H.mean(axis=0))
    again = load_detector(save_detector(det, tmp_path / "d.npz"))
    assert np.isnan(again.offset_)
    np.testing.assert_array_equal(again.score_samples(H), det.score_samples(H))
    with pytest.raises(ValueError, match="offset_ is not calibrated"):
        again.predict(H)


def test_numpy_scalar_attribute_keeps_its_exact_type(tmp_path):
    from skdice._registry import _REGISTRY

    class Encodings(DICEDetector):
        """DICE documenting two more attributes (loading sets only documented ones).

        Attributes
        ----------
        extra_names_ : ndarray of shape (2,)
        nested_ : dict
        """

        name = "test-encodings"

    try:
        H, head, _ = _data()
        det = Encodings().fit(H, head=head)
        det.threshold_ = np.float32(0.25)
        det.extra_names_ = np.array(["a", "bc"], dtype=object)
        det.nested_ = {"k": (1, 2.5, None, "s"), "arr": [np.arange(3)]}
        again = load_detector(save_detector(det, tmp_path / "d.npz"))
        assert type(again.threshold_) is np.float32 and again.threshold_ == np.float32(0.25)
        assert again.extra_names_.dtype == object and list(again.extra_names_) == ["a", "bc"]
        assert again.nested_["k"] == (1, 2.5, None, "s")
        np.testing.assert_array_equal(again.nested_["arr"][0], np.arange(3))
    finally:
        _REGISTRY.pop("test-encodings", None)


def test_saved_file_is_plain_npz_readable_without_pickle(tmp_path):
    H, head, _ = _data()
    path = save_detector(DICEDetector().fit(H, head=head), tmp_path / "plain.npz")
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[k].dtype != object for k in archive.files)
    header = read_header(path)
    assert header["detector"] == "dice"
    assert header["format_version"] == FORMAT_VERSION
    assert header["skdice_version"] == skdice.__version__
    assert header["params"]["p"] == {"kind": "json", "value": 0.9}


def test_save_writes_exactly_the_given_path_without_adding_a_suffix(tmp_path):
    H, head, _ = _data()
    path = save_detector(DICEDetector().fit(H, head=head), tmp_path / "detector.bin")
    assert path == tmp_path / "detector.bin" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.bin"]


def test_top_level_aliases_are_the_persistence_functions():
    assert skdice.save_detector is save_detector
    assert skdice.load_detector is load_detector


# ------------------------------------------------------------------ refusals
def test_save_to_a_folder_is_refused_with_a_file_name_hint(tmp_path):
    H, head, _ = _data()
    with pytest.raises(ValueError, match="it is a folder; give a file name such as .*detector.npz"):
        save_detector(DICEDetector().fit(H, head=head), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    H, head, _ = _data()
    with pytest.raises(FileNotFoundError, match=r"the folder .*absent does not exist"):
        save_detector(DICEDetector().fit(H, head=head), tmp_path / "absent" / "d.npz")


def test_save_refuses_an_unfitted_detector(tmp_path):
    with pytest.raises(NotFittedError):
        save_detector(DICEDetector(), tmp_path / "x.npz")


def test_save_refuses_something_that_is_not_a_detector(tmp_path):
    with pytest.raises(DetectorFormatError, match="saves skdice detectors, got dict"):
        save_detector({}, tmp_path / "x.npz")


def test_save_refuses_an_attribute_without_pickle_free_form(tmp_path):
    H, head, _ = _data()
    det = DICEDetector().fit(H, head=head)
    det.callback_ = lambda x: x
    with pytest.raises(DetectorFormatError, match="attribute 'callback_'.*function"):
        save_detector(det, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_load_missing_file_says_it_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved detector at .*nope.npz"):
        load_detector(tmp_path / "nope.npz")


def test_load_text_file_says_not_an_npz(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DetectorFormatError, match="not a saved skdice detector: it is not an .npz"):
        load_detector(path)


def test_load_directory_is_refused(tmp_path):
    with pytest.raises(DetectorFormatError, match="is a directory"):
        load_detector(tmp_path)


def test_load_foreign_npz_says_no_skdice_header(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, x=np.arange(3))
    with pytest.raises(DetectorFormatError, match="npz archive but not a saved skdice detector"):
        load_detector(path)


def test_load_npz_with_pickled_member_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __skdice__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DetectorFormatError, match="not a readable saved skdice detector"):
        load_detector(path)


def _rewrite_header(path, mutate):
    with np.load(path, allow_pickle=False) as archive:
        members = {k: archive[k] for k in archive.files}
    header = json.loads(members["__skdice__"].tobytes())
    mutate(header)
    members["__skdice__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **members)


def test_load_other_format_version_is_refused_with_both_versions(tmp_path):
    H, head, _ = _data()
    path = save_detector(DICEDetector().fit(H, head=head), tmp_path / "d.npz")
    _rewrite_header(path, lambda h: h.update(format_version=99, skdice_version="9.0"))
    with pytest.raises(
        DetectorFormatError, match=r"format version 99 \(by skdice 9.0\).*reads format version 1"
    ):
        load_detector(path)


def test_load_unknown_detector_name_is_refused(tmp_path):
    H, head, _ = _data()
    path = save_detector(DICEDetector().fit(H, head=head), tmp_path / "d.npz")
    _rewrite_header(path, lambda h: h.update(detector="mystery"))
    with pytest.raises(DetectorFormatError, match="'mystery' detector, which this skdice"):
        load_detector(path)


@pytest.mark.parametrize("name", ["__class__", "p", "not an identifier_"])
def test_load_refuses_attributes_that_are_not_fitted_state(tmp_path, name):
    H, head, _ = _data()
    path = save_detector(DICEDetector().fit(H, head=head), tmp_path / "d.npz")
    _rewrite_header(path, lambda h: h["attributes"].update({name: {"kind": "json", "value": "x"}}))
    with pytest.raises(DetectorFormatError, match="is not fitted state"):
        load_detector(path)


def test_load_corrupt_header_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, __skdice__=np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(DetectorFormatError, match="corrupt skdice detector header"):
        load_detector(path)


def test_load_truncated_archive_is_refused(tmp_path):
    H, head, _ = _data()
    path = save_detector(DICEDetector().fit(H, head=head), tmp_path / "d.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DetectorFormatError, match="not a saved skdice detector: it is not an .npz"):
        load_detector(path)


def test_docstring_examples_run():
    import doctest

    import skdice.persistence

    result = doctest.testmod(skdice.persistence)
    assert result.attempted > 0 and result.failed == 0


def test_short_aliases_still_work_with_a_deprecation_warning():
    import skdice.persistence as persistence

    with pytest.warns(DeprecationWarning, match="use skdice.save_detector"):
        assert persistence.save is save_detector
    with pytest.warns(DeprecationWarning, match="use skdice.load_detector"):
        assert persistence.load is load_detector
    with pytest.raises(AttributeError):
        persistence.no_such_name  # noqa: B018


def _dead_pid() -> int:
    """The id of a process that has exited."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    H, head, _ = _data()
    det = DICEDetector().fit(H, head=head)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_detector(det, tmp_path / "d.npz")
    assert list(tmp_path.iterdir()) == []


def test_the_next_save_removes_the_temporaries_of_killed_saves_only(tmp_path):
    """kill -9 during a save leaves `.<name>.skdice-save-<pid>`: the next save removes it if its pid is gone."""
    import os

    H, head, _ = _data()
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".other.npz.skdice-save-{dead}"
    running = tmp_path / f".d.npz.skdice-save-{alive}"  # a save in progress in a live process
    unrelated = tmp_path / f".d.npz.tmp-{dead}"  # not a name save_detector writes
    for leftover in (stale, running, unrelated):
        leftover.write_bytes(b"x" * 100)
    save_detector(DICEDetector().fit(H, head=head), tmp_path / "d.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["d.npz", running.name, unrelated.name])
