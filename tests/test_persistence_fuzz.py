"""Hostile and damaged detector files: a clean DetectorFormatError, or the very same detector.

Every file here is built by hand from a real saved detector: bytes flipped,
the file truncated, the JSON header rewritten, members replaced by arrays of
other shapes or dtypes, ``.npy`` headers that lie about their size, zip
entries that claim gigabytes. Loading must either refuse with
:class:`~skdice.exceptions.DetectorFormatError` (a ValueError, so the CLI
prints one line) or give a detector identical to the one saved; never a
TypeError, RecursionError, AttributeError later on, or a huge allocation.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from skdice import DICEDetector, Head, MahalanobisDetector
from skdice.exceptions import DetectorFormatError
from skdice.persistence import load_detector, read_header, save_detector

M, C = 6, 3


def _fitted():
    rng = np.random.default_rng(0)
    H = np.maximum(rng.normal(size=(60, M)), 0).astype(np.float32)
    head = Head(rng.normal(size=(M, C)), rng.normal(size=C))
    return DICEDetector(p=0.5).fit(H, head=head), H


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    det, H = _fitted()
    path = save_detector(det, tmp_path_factory.mktemp("fuzz") / "dice.npz")
    return path.read_bytes(), det, H


def _members(blob: bytes) -> dict:
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _header(blob: bytes) -> dict:
    return json.loads(_members(blob)["__skdice__"].tobytes())


def _pack(members: dict, header: dict | None = None, raw_header: bytes | None = None) -> bytes:
    members = dict(members)
    if raw_header is not None or header is not None:
        text = raw_header if raw_header is not None else json.dumps(header).encode()
        members["__skdice__"] = np.frombuffer(text, dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **members)
    return out.getvalue()


def _same(loaded, det, H) -> None:
    assert type(loaded) is type(det)
    assert loaded.get_params() == det.get_params()
    assert sorted(vars(loaded)) == sorted(vars(det))
    for key, value in vars(det).items():
        got = getattr(loaded, key)
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype and np.array_equal(got, value), key
        else:
            assert type(got) is type(value) and (got == value or (got != got and value != value)), key
    np.testing.assert_array_equal(loaded.score_samples(H), det.score_samples(H))


def _outcome(path, blob, det, H) -> str:
    """'refused' or 'identical'; anything else fails the test."""
    path.write_bytes(blob)
    try:
        loaded = load_detector(path)
    except DetectorFormatError as exc:
        assert str(exc) and "\n" not in str(exc)
        return "refused"
    _same(loaded, det, H)
    return "identical"


# --------------------------------------------------------------------------- the fuzz loop


def _crafted_headers(header: dict, rng) -> list:
    """Mutations of the JSON header: wrong types, wrong kinds, missing or foreign names."""
    junk = [None, True, -1, 0, 2**70, 1e308, float("nan"), "", "x" * 50, [], {}, [1, [2, [3]]],
            {"kind": "array"}, {"kind": "array", "key": "nope"}, {"kind": "json", "value": [1, 2]},
            {"kind": "list", "items": {"a": 1}}, {"kind": "dict", "items": [1]},
            {"kind": "str_object_array", "shape": [10**12], "items": ["a"]},
            {"kind": "str_object_array", "shape": [True], "items": ["a"]},
            {"kind": "head", "weight": "a0000", "bias": "a0000"},
            {"kind": "numpy_scalar", "key": "a0000"}, {"kind": "lambda"}]
    keys = [None, "params", "attributes", "detector", "format_version", "format"]
    out = []
    for _ in range(160):
        h = copy.deepcopy(header)
        choice = int(rng.integers(7))
        if choice == 0:  # a top-level field replaced
            h[keys[int(rng.integers(1, len(keys)))]] = junk[int(rng.integers(len(junk)))]
        elif choice == 1:  # a parameter replaced
            name = list(h["params"])[int(rng.integers(len(h["params"])))]
            h["params"][name] = junk[int(rng.integers(len(junk)))]
        elif choice == 2:  # an attribute replaced
            name = list(h["attributes"])[int(rng.integers(len(h["attributes"])))]
            h["attributes"][name] = junk[int(rng.integers(len(junk)))]
        elif choice == 3:  # an attribute dropped
            h["attributes"].pop(list(h["attributes"])[int(rng.integers(len(h["attributes"])))])
        elif choice == 4:  # two attributes swapped (shapes and dtypes no longer fit)
            a, b = rng.choice(list(h["attributes"]), 2, replace=False)
            h["attributes"][a], h["attributes"][b] = h["attributes"][b], h["attributes"][a]
        elif choice == 5:  # a parameter out of its range, or of another type
            h["params"][str(rng.choice(["p", "tpr"]))] = {"kind": "json", "value": [5.0, 7, -1, "0.5", None][
                int(rng.integers(5))]}
        else:  # a foreign attribute
            h["attributes"][str(rng.choice(["fit", "_validate_params", "score_samples", "__dict__",
                                            "predict_", "_parameter_constraints", "block_width"]))] = {
                "kind": "json", "value": 1}
        out.append(h)
    return out


def test_fuzzed_files_are_refused_cleanly_or_load_identically(saved, tmp_path):
    blob, det, H = saved
    rng = np.random.default_rng(20240613)
    path = tmp_path / "fuzz.npz"
    outcomes = []
    for _ in range(250):  # single byte flips anywhere in the file
        data = bytearray(blob)
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        outcomes.append(_outcome(path, bytes(data), det, H))
    for _ in range(40):  # truncations
        outcomes.append(_outcome(path, blob[: int(rng.integers(len(blob)))], det, H))
    members, header = _members(blob), _header(blob)
    for h in _crafted_headers(header, rng):
        outcomes.append(_outcome(path, _pack(members, h), det, H))
    keys = [k for k in members if k != "__skdice__"]
    shapes = [(), (0,), (1,), (M,), (C,), (M, C), (C, M), (M, M), (2, M, C)]
    dtypes = [np.float32, np.float64, np.bool_, np.int64, np.uint8, "U3"]
    for _ in range(80):  # members replaced by arrays of other shapes and dtypes
        swapped = dict(members)
        key = keys[int(rng.integers(len(keys)))]
        swapped[key] = np.zeros(shapes[int(rng.integers(len(shapes)))], dtype=dtypes[int(rng.integers(len(dtypes)))])
        outcomes.append(_outcome(path, _pack(swapped), det, H))
    assert outcomes.count("refused") > len(outcomes) // 2
    assert "identical" in outcomes  # flips in fields zip ignores (times, versions) change nothing


# --------------------------------------------------------------------------- deterministic examples


def test_untouched_file_loads_identically(saved, tmp_path):
    blob, det, H = saved
    assert _outcome(tmp_path / "d.npz", blob, det, H) == "identical"


@pytest.mark.parametrize(("param", "value", "message"), [
    ("p", 5.0, r"parameters are invalid for DICEDetector \(The 'p' parameter"),
    ("tpr", 7, r"parameters are invalid for DICEDetector \(The 'tpr' parameter"),
    ("p", "0.9", r"parameters are invalid for DICEDetector"),
])
def test_parameters_outside_the_class_constraints_are_refused(saved, tmp_path, param, value, message):
    blob, *_ = saved
    header = _header(blob)
    header["params"][param] = {"kind": "json", "value": value}
    path = tmp_path / "d.npz"
    path.write_bytes(_pack(_members(blob), header))
    with pytest.raises(DetectorFormatError, match=message):
        load_detector(path)


def test_unknown_parameter_is_refused(saved, tmp_path):
    blob, *_ = saved
    header = _header(blob)
    header["params"]["n_jobs"] = {"kind": "json", "value": 2}
    path = tmp_path / "d.npz"
    path.write_bytes(_pack(_members(blob), header))
    with pytest.raises(DetectorFormatError, match=r"do not fit DICEDetector \(unknown parameter 'n_jobs'\)"):
        load_detector(path)


@pytest.mark.parametrize("name", ["_validate_params", "score_samples", "_parameter_constraints",
                                  "block_width", "_anything", "predict_"])
def test_attributes_the_class_does_not_define_are_refused(saved, tmp_path, name):
    # a "_" name set on the instance would shadow a method; an unknown one is not fitted state
    blob, *_ = saved
    header = _header(blob)
    header["attributes"][name] = {"kind": "json", "value": 1}
    path = tmp_path / "d.npz"
    path.write_bytes(_pack(_members(blob), header))
    with pytest.raises(DetectorFormatError, match=f"attribute '{name}' is not fitted state"):
        load_detector(path)


@pytest.mark.parametrize("name", ["mask_", "masked_weight_", "weight_", "n_features_in_", "offset_"])
def test_missing_attribute_is_refused_at_load_not_at_use(saved, tmp_path, name):
    blob, *_ = saved
    header = _header(blob)
    del header["attributes"][name]
    path = tmp_path / "d.npz"
    path.write_bytes(_pack(_members(blob), header))
    with pytest.raises(DetectorFormatError, match=f"DICEDetector needs the fitted attribute.* {name}"):
        load_detector(path)


def _member_of(blob, attribute):
    return _header(blob)["attributes"][attribute]["key"]


def test_mask_that_disagrees_with_the_masked_weight_is_refused(saved, tmp_path):
    blob, *_ = saved
    members = _members(blob)
    key = _member_of(blob, "mask_")
    members[key] = ~members[key]
    path = tmp_path / "d.npz"
    path.write_bytes(_pack(members))
    with pytest.raises(DetectorFormatError, match="masked_weight_ is not weight_ where mask_ is True"):
        load_detector(path)


@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("mean_feature_", np.zeros(M + 1), r"mean_feature_ has shape \(7,\): axis 0 is not n_features_in_ = 6"),
    ("weight_", np.zeros((M + 1, C), np.float32), r"weight_ has shape \(7, 3\): axis 0 is not n_features_in_"),
    ("mask_", np.ones((M, C), np.float32), r"mask_ has dtype float32, not bool"),
    ("bias_", np.zeros(C + 1, np.float32), r"bias_ has shape \(4,\) but weight_ \(6, 3\)"),
    ("weight_", np.full((M, C), np.nan, np.float32), r"holds NaN or infinity"),
])
def test_inconsistent_shapes_and_dtypes_are_refused(saved, tmp_path, attribute, value, message):
    blob, *_ = saved
    members = _members(blob)
    members[_member_of(blob, attribute)] = value
    path = tmp_path / "d.npz"
    path.write_bytes(_pack(members))
    with pytest.raises(DetectorFormatError, match=message):
        load_detector(path)


def test_feature_width_that_disagrees_with_the_arrays_is_refused(saved, tmp_path):
    blob, *_ = saved
    header = _header(blob)
    header["attributes"]["n_features_in_"] = {"kind": "json", "value": 10**9}
    path = tmp_path / "d.npz"
    path.write_bytes(_pack(_members(blob), header))
    with pytest.raises(DetectorFormatError, match=r"axis 0 is not n_features_in_ = 1000000000"):
        load_detector(path)


def test_deeply_nested_json_is_refused_without_recursion_error(saved, tmp_path):
    blob, *_ = saved
    raw = _header(blob)
    text = json.dumps(raw)
    deep = text.replace('"attributes": {', '"attributes": {"x_": ' + '{"kind": "list", "items": [' * 50_000
                        + "]}" * 50_000 + ", ", 1).encode()
    path = tmp_path / "d.npz"
    path.write_bytes(_pack(_members(blob), raw_header=deep))
    with pytest.raises(DetectorFormatError, match="nested too deeply|nested more than"):
        load_detector(path)
    shallow = json.loads(text)
    desc = {"kind": "json", "value": 1}
    for _ in range(40):  # parses as JSON, but is deeper than any saved value
        desc = {"kind": "list", "items": [desc]}
    shallow["attributes"]["nested_"] = desc
    path.write_bytes(_pack(_members(blob), shallow))
    with pytest.raises(DetectorFormatError, match="nested more than 16 levels"):
        load_detector(path)


def _npy_bytes(shape, dtype, payload: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return out.getvalue() + payload


def _zip(entries: dict, deflated=()) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED)
    return out.getvalue()


def _raw_entries(blob: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_member_whose_npy_header_claims_a_huge_shape_is_refused_before_allocating(saved, tmp_path):
    blob, *_ = saved
    entries = _raw_entries(blob)
    key = _member_of(blob, "contribution_") + ".npy"
    entries[key] = _npy_bytes((10**6, 10**6), np.float64, b"\0" * 64)  # 7.3 TiB declared
    path = tmp_path / "d.npz"
    path.write_bytes(_zip(entries))
    tracemalloc.start()
    try:
        with pytest.raises(DetectorFormatError, match=r"declares shape \(1000000, 1000000\) of float64"):
            load_detector(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_compressed_member_is_refused_without_being_inflated(saved, tmp_path):
    # 64 MiB of zeros deflate to 64 KiB: a small file, a big member (a zip bomb in small)
    blob, *_ = saved
    entries = _raw_entries(blob)
    key = _member_of(blob, "contribution_") + ".npy"
    entries[key] = _npy_bytes((2**23,), np.float64, bytes(2**26))
    path = tmp_path / "d.npz"
    path.write_bytes(_zip(entries, deflated={key}))
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(DetectorFormatError, match=rf"member '{key[:-4]}' is compressed, which save_detector never"):
            load_detector(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def _claim_size(blob: bytes, name: str, size: int) -> bytes:
    """Rewrite the zip's central directory so that member ``name`` claims ``size`` bytes."""
    data = bytearray(blob)
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46 : pos + 46 + name_len]).decode() == name:
            struct.pack_into("<II", data, pos + 20, size, size)
            return bytes(data)
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(name)


def test_member_claiming_gigabytes_beyond_a_small_file_is_refused_unread(saved, tmp_path):
    blob, *_ = saved
    name = _member_of(blob, "contribution_") + ".npy"
    path = tmp_path / "d.npz"
    path.write_bytes(_claim_size(blob, name, 3 * 2**30))
    with pytest.raises(DetectorFormatError, match="claims 3221225472 bytes beyond the end of the file"):
        load_detector(path)


def test_unnamed_members_are_never_read(saved, tmp_path):
    # a member the header does not name is ignored, however it is made
    blob, det, H = saved
    entries = _raw_entries(blob)
    entries["hidden.npy"] = _npy_bytes((10**9,), np.float64, b"")
    path = tmp_path / "d.npz"
    path.write_bytes(_zip(entries))
    _same(load_detector(path), det, H)


def test_member_named_twice_is_read_once_and_object_members_are_refused(saved, tmp_path):
    blob, *_ = saved
    entries = _raw_entries(blob)
    key = _member_of(blob, "contribution_") + ".npy"
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    entries[key] = buffer.getvalue()
    path = tmp_path / "d.npz"
    path.write_bytes(_zip(entries))
    with pytest.raises(DetectorFormatError, match="dtype object, which a saved detector never holds"):
        load_detector(path)


def test_flipped_data_byte_fails_the_zip_checksum(saved, tmp_path):
    blob, *_ = saved
    data = bytearray(blob)
    end = data.find(b"PK\x03\x04", 4)  # the first member's data ends before the second header
    data[end - 3] ^= 0x10
    path = tmp_path / "d.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(DetectorFormatError, match="Bad CRC-32"):
        load_detector(path)


def test_read_header_reads_only_the_header(saved, tmp_path):
    blob, *_ = saved
    entries = _raw_entries(blob)
    key = _member_of(blob, "contribution_") + ".npy"
    entries[key] = _npy_bytes((10**6, 10**6), np.float64, b"")
    path = tmp_path / "d.npz"
    path.write_bytes(_zip(entries))
    assert read_header(path)["detector"] == "dice"


def test_class_conditional_detector_round_trips_with_its_private_caches(tmp_path):
    rng = np.random.default_rng(1)
    H = rng.normal(size=(80, M)).astype(np.float32)
    det = MahalanobisDetector().fit(H, np.arange(80) % C)
    again = load_detector(save_detector(det, tmp_path / "m.npz"))
    _same(again, det, H)
