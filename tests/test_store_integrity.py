"""A damaged store is refused with a message naming the split, the array and the remedy.

Each test builds the damage by hand, the way it happens: a chunk file deleted
(an interrupted copy), a byte flipped in a chunk (bad storage), a ``zarr.json``
edited (a dtype, a row count) or truncated, a store written before checksums
existed, a hostile split or score name, a split declaring 10**12 rows.
"""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from skdice import DICEDetector, Head  # noqa: E402
from skdice.exceptions import IncompleteSplitError, StoreError  # noqa: E402
from skdice.store import (  # noqa: E402
    create_store,
    iter_blocks,
    open_scores_writer,
    open_store,
    read_scores,
    scores_lock,
    verify_store,
)
from stores import write_store  # noqa: E402

M, C = 8, 3
ROWS, CHUNK = 100, 32  # 4 row chunks: rows 0-31, 32-63, 64-95, 96-99


@pytest.fixture
def head():
    rng = np.random.default_rng(0)
    return Head(rng.normal(size=(M, C)), np.zeros(C))  # an all-zero bias, as a fresh head has


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    return np.maximum(rng.normal(1, 1, (ROWS, M)), 0).astype(np.float32)


@pytest.fixture
def store(tmp_path, head, data):
    path = tmp_path / "s.zarr"
    # labels all -1 (unknown): chunks equal to the fill value must still be on disk
    write_store(path, head, {"test": data, "train": (data, np.arange(ROWS) % C)}, chunk_rows=CHUNK)
    return path


def _chunk(path: Path, array: str, index: int = 1) -> Path:
    """The file of row chunk ``index`` of ``array`` (``"test/features"``, ``"head/bias"``, ...)."""
    folder = path.joinpath(*array.split("/"), "c")
    two_d = any(p.is_dir() for p in folder.iterdir())
    return folder / str(index) / "0" if two_d else folder / str(index)


def _flip(file: Path, at: int | None = None) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x40
    file.write_bytes(bytes(data))


def _edit_json(file: Path, change) -> None:
    meta = json.loads(file.read_text())
    change(meta)
    file.write_text(json.dumps(meta))


READERS = {
    "features": lambda s: s.features("test"),
    "logits": lambda s: s.logits("test"),
    "labels": lambda s: s.labels("test"),
    "paths": lambda s: s.paths("test"),
}


# --------------------------------------------------------------------------- completeness


def test_deleted_head_weight_chunk_is_refused_not_read_as_zeros(store):
    _chunk(store, "head/weight", 0).unlink()
    with pytest.raises(StoreError, match=r"1 of the 1 chunks of the head's weight in .*s.zarr are missing on disk "
                                         r".*restore .*s.zarr from a copy"):
        open_store(store).head


def test_deleted_head_bias_chunk_is_refused_even_when_the_bias_is_zero(store):
    _chunk(store, "head/bias", 0).unlink()
    with pytest.raises(StoreError, match=r"chunks of the head's bias .* missing on disk"):
        open_store(store).head


@pytest.mark.parametrize("array", sorted(READERS))
def test_deleted_chunk_of_any_split_array_is_refused(store, array):
    _chunk(store, f"test/{array}").unlink()
    with pytest.raises(StoreError, match=rf"split 'test' in .* is marked complete but 1 of the 4 chunks of {array} "
                                         r"are missing on disk .*delete the folder .*test and re-run `skdice extract`"):
        READERS[array](open_store(store))


def test_chunks_equal_to_the_fill_value_are_on_disk(store):
    # labels of -1 everywhere and a zero bias: Zarr would skip them; the writer stores them
    assert _chunk(store, "test/labels", 3).is_file()
    assert _chunk(store, "head/bias", 0).is_file()
    assert (open_store(store).labels("test") == -1).all()


def test_evaluate_with_a_deleted_head_chunk_fails_in_one_line(store):
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from skdice.cli.app import main

    _chunk(store, "head/weight", 0).unlink()
    with CliRunner().isolation() as (out, err, _):
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", str(store), "--id", "train", "--ood", "test", "--method", "dice"])
        code, out, err = exit_info.value.code, out.getvalue().decode(), err.getvalue().decode()
    assert code == 1 and "FPR95" not in out
    assert err.startswith("skdice: error: 1 of the 1 chunks of the head's weight") and err.count("\n") == 1


# --------------------------------------------------------------------------- checksums


def test_every_array_the_writers_create_carries_a_crc32c(store, data):
    det = DICEDetector(p=0.5).fit(data, head=open_store(store).head)
    from skdice.workflows.score import score_to_store

    score_to_store(store, "test", det)
    group = zarr.open_group(str(store), mode="r")
    arrays = ["head/weight", "head/bias", "test/scores/dice"] + [
        f"test/{name}" for name in ("features", "logits", "labels", "paths", "written")]
    for name in arrays:
        codecs = group[name].metadata.codecs
        assert isinstance(codecs[-1], zarr.codecs.Crc32cCodec), name
    assert open_store(store).split_info("test")["checksums"] is True


@pytest.mark.parametrize("array", sorted(READERS))
def test_flipped_byte_in_a_chunk_is_a_store_error_naming_split_array_and_remedy(store, array):
    _flip(_chunk(store, f"test/{array}"))
    with pytest.raises(StoreError, match=rf"split 'test' of .*s.zarr could not be read \(chunk 1 \(rows 32 to 63\) "
                                         rf"of {array} failed its crc32c checksum\): the store is damaged; delete "
                                         r"the folder .*test and re-run `skdice extract` for it\."):
        READERS[array](open_store(store))


def test_flipped_byte_in_the_head_is_a_store_error(store):
    _flip(_chunk(store, "head/weight", 0))
    with pytest.raises(StoreError, match=r"the head of .* could not be read \(chunk 0 .*of weight failed its crc32c"):
        open_store(store).head


def test_streamed_reads_report_a_damaged_chunk(store):
    # fit and score read through iter_blocks (read-ahead threads): the same StoreError, not a codec traceback
    _flip(_chunk(store, "test/features", 2))
    array = open_store(store).array("test", "features")
    with pytest.raises(StoreError, match=r"chunk 2 \(rows 64 to 95\) of features failed its crc32c checksum"):
        for _ in iter_blocks(array, CHUNK):
            pass
    from skdice.streaming import fit_store

    with pytest.raises(StoreError, match=r"split 'test' .*could not be read"):
        fit_store(DICEDetector(p=0.5), store, "test")


def test_dask_reads_report_a_damaged_chunk(store):
    pytest.importorskip("dask")
    _flip(_chunk(store, "test/features", 0))
    lazy = open_store(store).features("test", dask=True)
    with pytest.raises(StoreError, match=r"chunk 0 \(rows 0 to 31\) of features failed its crc32c checksum"):
        lazy.sum().compute()


def test_damaged_chunk_of_a_store_without_checksums_is_still_a_store_error(store):
    _strip_checksums(store)
    _chunk(store, "test/features").write_bytes(b"garbage")  # no zstd frame: the bounded codec refuses it
    with pytest.raises(StoreError, match=r"chunk 1 .*of features could not be decoded: ValueError: not a zstd frame"):
        open_store(store).features("test")


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(("array", "dtype"), [("features", "float64"), ("logits", "float16"),
                                              ("labels", "int32"), ("paths", "float32")])
def test_dtype_edited_in_zarr_json_is_refused_naming_the_file(store, array, dtype):
    _edit_json(store / "test" / array / "zarr.json", lambda m: m.update(data_type=dtype))
    # a float dtype under the paths' "" fill value does not even parse: named as damaged
    expected = (rf"declares data type {dtype} but the store's schema gives {array} of split 'test' data type "
                r"\w+: the metadata was edited" if array != "paths" else r"is damaged \(TypeError: ")
    with pytest.raises(StoreError, match=rf"{array}/zarr.json {expected}.*delete the folder"):
        READERS[array](open_store(store))


def test_head_dtype_edited_is_refused(store):
    _edit_json(store / "head" / "weight" / "zarr.json", lambda m: m.update(data_type="float64"))
    with pytest.raises(StoreError, match=r"head/weight/zarr.json declares data type float64"):
        open_store(store).head


def test_row_count_lowered_in_the_split_is_refused_naming_the_file(store):
    _edit_json(store / "test" / "zarr.json", lambda m: m["attributes"].update(count=60))
    with pytest.raises(StoreError, match=r"test/zarr.json records count 60, chunk_rows 32 and n_chunks 4, which "
                                         r"disagree \(60 rows make 2 chunks\)"):
        open_store(store).features("test")
    _edit_json(store / "test" / "zarr.json", lambda m: m["attributes"].update(count=97))
    with pytest.raises(StoreError, match=r"features/zarr.json declares shape \(100, 8\) but the store's schema "
                                         r"gives features of split 'test' shape \(97, 8\)"):
        open_store(store).features("test")


def test_array_shape_lowered_is_refused_naming_the_file(store):
    _edit_json(store / "test" / "labels" / "zarr.json", lambda m: m.update(shape=[64]))
    with pytest.raises(StoreError, match=r"labels/zarr.json declares shape \(64,\) but .*shape \(100,\)"):
        open_store(store).labels("test")


def test_checksum_codec_removed_by_hand_is_refused(store):
    _edit_json(store / "test" / "features" / "zarr.json", lambda m: m.update(codecs=m["codecs"][:-1]))
    with pytest.raises(StoreError, match=r"features/zarr.json has no crc32c codec although features of split "
                                         r"'test' was written with checksums"):
        open_store(store).features("test")


def test_labels_outside_the_classes_are_refused(store):
    _strip_manifests(store)  # with a manifest, the chunk's digest refuses it first (tests/test_manifest.py)
    labels = zarr.open_array(str(store / "train" / "labels"), mode="r+")
    labels[5] = 99  # a valid chunk (its crc recomputed) holding a label no class has
    with pytest.raises(StoreError, match=r"split 'train' of .* has labels outside \[-1, 3\) \(row 5 holds 99\)"):
        open_store(store).labels("train")


@pytest.mark.parametrize("node", ["", "test", "test/features", "head/weight"])
def test_truncated_zarr_json_is_reported_naming_the_file(store, node):
    file = store.joinpath(*[p for p in node.split("/") if p], "zarr.json")
    text = file.read_text()
    file.write_text(text[: len(text) // 2])
    with pytest.raises(StoreError, match=rf"{file} is damaged \(not valid JSON, truncated or overwritten: "):
        s = open_store(store)
        s.head
        s.features("test")


def test_info_lists_a_split_whose_zarr_json_is_truncated(store):
    file = store / "test" / "zarr.json"
    file.write_text(file.read_text()[:40])
    s = open_store(store)
    assert s.splits == ["test", "train"]
    problems = s.check_split("test")
    assert len(problems) == 1 and problems[0].startswith(f"{file} is damaged (not valid JSON")


# --------------------------------------------------------------------------- stores without checksums


def _strip_manifests(path: Path) -> None:
    """Remove what skdice writes since manifests: the manifest nodes, the digests, the split attribute."""
    shutil.rmtree(path / "manifest")
    for folder in path.iterdir():
        if (folder / "manifest").is_dir():
            shutil.rmtree(folder / "manifest")
            shutil.rmtree(folder / "digests")
            _edit_json(folder / "zarr.json", lambda meta: meta["attributes"].pop("manifest"))


def _strip_checksums(path: Path) -> None:
    """Rewrite every array as skdice wrote them before checksums: zstd only, no checksum attribute."""
    _strip_manifests(path)  # checksums came first
    root = zarr.open_group(str(path), mode="r+")

    def rewrite(group, name):
        old = group[name]
        values, attrs = old[...], old.attrs.asdict()
        kwargs = {"compressors": None} if name == "written" else {}
        new = group.create_array(name, shape=old.shape, chunks=old.chunks,
                                 dtype=str if old.metadata.data_type.to_json(zarr_format=3) == "string"
                                 else old.dtype, fill_value=old.fill_value, overwrite=True, **kwargs)
        new[...] = values
        new.attrs.update(attrs)

    for name in ("weight", "bias"):
        rewrite(root["head"], name)
    del root.attrs["checksum"]
    for split, group in root.groups():
        if split == "head":
            continue
        for name in ("features", "logits", "labels", "paths", "written"):
            rewrite(group, name)
        del group.attrs["checksum"]


def test_store_written_before_checksums_reads_and_is_reported_unchecked(store, data):
    _strip_checksums(store)
    s = open_store(store)
    assert np.array_equal(s.features("test"), data) and s.split_info("test")["checksums"] is False
    assert s.checksums is False
    report = verify_store(store)
    assert report.ok and report.unchecked == ["head", "split 'test'", "split 'train'"]
    pytest.importorskip("typer")
    from skdice.cli.info import describe_store

    text = describe_store(store)
    assert "complete, unchecked" in text and "unchecked (written without checksums)" in text


def test_store_written_before_checksums_still_refuses_missing_feature_chunks(store):
    _strip_checksums(store)
    _chunk(store, "test/features").unlink()
    with pytest.raises(StoreError, match="1 of the 4 chunks of features are missing on disk"):
        open_store(store).features("test")


# --------------------------------------------------------------------------- scores


def _scored(store, data):
    from skdice.workflows.score import score_to_store

    det = DICEDetector(p=0.5).fit(data, head=open_store(store).head)
    done = score_to_store(store, "test", det, block_rows=CHUNK)
    return det, done, read_scores(store, "test", "dice")


@pytest.mark.parametrize("damage", ["deleted", "flipped"])
def test_missing_or_damaged_score_chunk_is_refused_then_recomputed(store, data, damage):
    from skdice.workflows.score import score_to_store

    det, done, reference = _scored(store, data)
    assert done["computed"] == ROWS
    chunk = _chunk(store, "test/scores/dice", 2)
    chunk.unlink() if damage == "deleted" else _flip(chunk)
    message = "missing on disk" if damage == "deleted" else r"chunk 2 \(rows 64 to 95\) failed its crc32c"
    with pytest.raises(StoreError, match=rf"scores test/scores/dice .*{message}.*re-run the same `skdice score`"):
        read_scores(store, "test", "dice")
    again = score_to_store(store, "test", det, block_rows=CHUNK)
    assert again["resumed_from"] == 64 and again["computed"] == ROWS - 64  # not "nothing recomputed"
    np.testing.assert_array_equal(read_scores(store, "test", "dice"), reference)


def test_scores_of_exactly_zero_are_stored(store):
    writer = open_scores_writer(store, "test", "zeros", chunk_rows=CHUNK, fingerprint="f")
    writer.write(0, np.zeros(ROWS))
    writer.finalize()
    assert _chunk(store, "test/scores/zeros", 0).is_file()
    assert not read_scores(store, "test", "zeros").any()


def test_score_dtype_edited_is_refused(store, data):
    _scored(store, data)
    _edit_json(store / "test" / "scores" / "dice" / "zarr.json", lambda m: m.update(data_type="float32"))
    with pytest.raises(StoreError, match=r"dice/zarr.json declares data type float32"):
        read_scores(store, "test", "dice")


# --------------------------------------------------------------------------- names and paths


BAD_NAMES = ["../x", "..", ".", "zarr.json", "a\0b", "a/b", "a\\b", "/abs", " x", "x\n", "", "é" * 150]


def _tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_split_names_are_refused_before_any_path_is_built(tmp_path, head, name):
    inner = tmp_path / "inner"
    writer = create_store(inner / "s.zarr", model="toy", head=head)
    before = _tree(tmp_path)
    with pytest.raises(StoreError, match="invalid split name"):
        writer.prepare_split(name, 4, source="x", chunk_rows=4)
    with pytest.raises(StoreError, match="invalid split name"):
        open_store(inner / "s.zarr").features(name)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_score_names_are_refused_before_any_path_is_built(store, data, name):
    from skdice.workflows.score import score_to_store

    det = DICEDetector(p=0.5).fit(data, head=open_store(store).head)
    before = _tree(store.parent.parent)
    if name:  # an empty --name means the method's own name
        with pytest.raises(StoreError, match="invalid score name"):
            score_to_store(store, "test", det, method=name)
    with pytest.raises(StoreError, match="invalid score name"):
        scores_lock(store, "test", name)
    with pytest.raises(StoreError, match="invalid score name"):
        read_scores(store, "test", name)
    assert _tree(store.parent.parent) == before


# --------------------------------------------------------------------------- sizes


def test_info_of_a_split_declaring_10_to_the_12_rows_stays_small(tmp_path, head):
    pytest.importorskip("typer")
    from skdice.cli.info import describe_store

    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    with writer.prepare_split("huge", 10**12, source="noise", chunk_rows=1024):
        pass  # created, nothing written: 976,562,500 flags declared
    tracemalloc.start()
    try:
        info = open_store(tmp_path / "s.zarr").split_info("huge")
        text = describe_store(tmp_path / "s.zarr")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info["written_chunks"] == 0 and info["n_chunks"] == 976_562_500
    assert "INCOMPLETE (0 of 976562500 chunks)" in text
    assert peak < 16 * 2**20
    with pytest.raises(IncompleteSplitError, match=r"\(0 of 976562500 chunks written\)"):
        open_store(tmp_path / "s.zarr").features("huge")


def test_written_chunks_are_counted_from_the_flag_files(store):
    info = open_store(store).split_info("test")
    assert info["written_chunks"] == 4 == len(os.listdir(store / "test" / "written" / "c"))


# --------------------------------------------------------------------------- verify


def test_verify_decodes_every_chunk_of_a_sound_store(store):
    calls = []
    report = verify_store(store, progress=lambda done, total: calls.append((done, total)))
    # head 2 chunks; per split 4 chunks x 4 arrays + 4 flags
    assert report.ok and report.chunks == 2 + 2 * (4 * 4 + 4) and report.arrays == 2 + 2 * 5
    assert calls[-1] == (report.chunks, report.chunks) and calls[0] == (0, report.chunks)


def test_verify_lists_every_damage_one_line_each(store):
    _chunk(store, "test/features", 1).unlink()
    _flip(_chunk(store, "train/logits", 3))
    _flip(_chunk(store, "head/bias", 0))
    _edit_json(store / "train" / "labels" / "zarr.json", lambda m: m.update(data_type="int8"))
    report = verify_store(store)
    assert not report.ok
    assert len(report.problems) == 4 and all("\n" not in p for p in report.problems)
    assert report.problems[0].startswith(f"{store / 'train' / 'labels' / 'zarr.json'} declares data type int8")
    assert report.problems[1:] == [
        "head: chunk 0 (rows 0 to 2) of bias failed its crc32c checksum",
        "split 'test': chunk 1 (rows 32 to 63) of features missing on disk",
        "split 'train': chunk 3 (rows 96 to 99) of logits failed its crc32c checksum",
    ]
    assert len(report.remedies) == 3  # one per repair: the train folder, the head, the test folder
    assert [r for r in report.remedies if r.startswith("delete")] == [
        f"delete the folder {store / name} and re-run `skdice extract` for it" for name in ("train", "test")]


def test_truncated_score_metadata_is_named_and_overwrite_writes_it_again(store, data):
    from skdice.workflows.score import score_to_store

    det, _, reference = _scored(store, data)
    meta = store / "test" / "scores" / "dice" / "zarr.json"
    meta.write_text(meta.read_text()[:25])
    with pytest.raises(StoreError, match=rf"{meta} is damaged \(not valid JSON.*with overwrite=True"):
        read_scores(store, "test", "dice")
    with pytest.raises(StoreError, match=rf"{meta} is damaged"):
        score_to_store(store, "test", det, block_rows=CHUNK)
    score_to_store(store, "test", det, block_rows=CHUNK, overwrite=True)
    np.testing.assert_array_equal(read_scores(store, "test", "dice"), reference)


def test_truncated_scores_group_metadata_is_reported_not_a_traceback(store, data):
    _scored(store, data)
    meta = store / "test" / "scores" / "zarr.json"
    meta.write_text(meta.read_text()[:10])
    s = open_store(store)
    assert s.score_names("test") == {"dice": False}
    problems = s.check_split("test")
    assert len(problems) == 1 and problems[0].startswith(f"{meta} is damaged (not valid JSON")
    assert problems[0].endswith(f"delete the folder {store / 'test' / 'scores'} and re-run `skdice score` for "
                                "each score array.")
    with pytest.raises(StoreError, match=rf"{meta} is damaged"):
        read_scores(store, "test", "dice")
    assert not verify_store(store).ok
