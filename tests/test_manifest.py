"""Misplaced but valid data is damage: the manifest binds each chunk's content to its place.

Each test builds the damage by hand, with valid chunks (their crc32c
recomputed by Zarr): two feature chunks swapped, a split's features copied
over another's, the head replaced by another of the same shape, a chunk rolled
back to one of another store, the row count shrunk consistently in the
``zarr.json`` files, the model renamed; and asserts that ``verify_store`` and
the readers name the split, the array, the chunk and the remedy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from skdice import Head  # noqa: E402
from skdice.exceptions import StoreError  # noqa: E402
from skdice.store import create_store, iter_blocks, open_store, verify_store  # noqa: E402
from stores import write_store  # noqa: E402

M, C = 8, 3
ROWS, CHUNK = 100, 32  # 4 row chunks: rows 0-31, 32-63, 64-95, 96-99


def _head(seed=0):
    rng = np.random.default_rng(seed)
    return Head(rng.normal(size=(M, C)), rng.normal(size=C))


def _features(seed, rows=ROWS):
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(1, 1, (rows, M)), 0).astype(np.float32)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(path, _head(), {"test": _features(1), "svhn": (_features(2), np.arange(ROWS) % C)},
                chunk_rows=CHUNK)
    return path


def _chunk(path: Path, array: str, index: int) -> Path:
    file = path.joinpath(*array.split("/"), "c", str(index))
    while file.is_dir():  # the other axes have one chunk each
        file = file / "0"
    return file


def _edit_json(file: Path, change) -> None:
    meta = json.loads(file.read_text())
    change(meta)
    file.write_text(json.dumps(meta))


def _problems(store) -> list[str]:
    report = verify_store(store)
    assert not report.ok
    return report.problems


# --------------------------------------------------------------------------- what is written


def test_sound_store_has_manifests_and_verifies(store):
    report = verify_store(store)
    assert report.ok and report.unmanifested == []
    fs = open_store(store)
    root, split = fs.manifest(), fs.manifest("test")
    assert root["model"] == "toy" and root["head"].startswith("blake2b:")
    assert split["count"] == ROWS and split["n_chunks"] == 4 and split["head"] == root["head"]
    assert [len(split["chunks"][name]) for name in ("features", "logits", "labels", "paths")] == [4] * 4
    # plain JSON in a Zarr group's attributes, no temporary file left behind
    assert json.loads((store / "test" / "manifest" / "zarr.json").read_text())["node_type"] == "group"
    assert sorted(p.name for p in (store / "test" / "manifest").iterdir()) == ["zarr.json"]
    assert "manifest" not in fs.splits


def test_resumed_split_keeps_the_digests_of_chunks_written_before(tmp_path):
    path, X = tmp_path / "r.zarr", _features(3)
    head = _head()
    writer = create_store(path, model="toy", head=head)
    with writer.prepare_split("test", ROWS, source="x", chunk_rows=CHUNK) as split:
        a, z = split.chunk_bounds(0)
        split.write_chunk(0, X[a:z], head.logits(X[a:z]), np.full(z - a, -1), [f"r{i}" for i in range(a, z)])
    with writer.prepare_split("test", ROWS, source="x", chunk_rows=CHUNK) as split:
        assert split.pending() == [1, 2, 3]
        for k in split.pending():
            a, z = split.chunk_bounds(k)
            split.write_chunk(k, X[a:z], head.logits(X[a:z]), np.full(z - a, -1), [f"r{i}" for i in range(a, z)])
        split.finalize()
    assert verify_store(path).ok
    assert np.array_equal(open_store(path).features("test"), X)


def test_a_split_without_its_manifest_file_is_refused(store):
    shutil.rmtree(store / "test" / "manifest")
    with pytest.raises(StoreError, match=r"split 'test' of .* records a manifest but .*manifest/zarr.json is "
                                         r"missing .*delete the folder .*test and re-run `skdice extract`"):
        open_store(store).features("test")


def _strip_manifests(store):
    shutil.rmtree(store / "manifest")
    for split in ("test", "svhn"):
        shutil.rmtree(store / split / "manifest")
        _edit_json(store / split / "zarr.json", lambda meta: meta["attributes"].pop("manifest"))


def test_store_without_manifests_reads_and_is_reported_unmanifested(store):
    _strip_manifests(store)
    assert np.array_equal(open_store(store).features("test"), _features(1))
    report = verify_store(store)
    assert report.ok and report.unmanifested == ["split 'svhn'", "split 'test'", "the store"]


def test_rerun_over_a_split_finished_before_manifests_keeps_it_readable(store):
    _strip_manifests(store)
    writer = create_store(store, model="toy", head=_head())  # the same model: the store's manifest is added
    with writer.prepare_split("test", ROWS, source="test", chunk_rows=CHUNK) as split:
        assert split.pending() == []
        split.finalize()  # nothing to write; no manifest claimed for a split that has none
    assert np.array_equal(open_store(store).features("test"), _features(1))
    report = verify_store(store)
    assert report.ok and report.unmanifested == ["split 'svhn'", "split 'test'"]


# --------------------------------------------------------------------------- misplaced chunks


def test_two_feature_chunks_swapped_are_damage(store):
    one, two = _chunk(store, "test/features", 1), _chunk(store, "test/features", 2)
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b), two.write_bytes(a)  # both valid chunks, crc and all
    problems = _problems(store)
    assert problems[:2] == [
        f"split 'test': chunk 1 (rows 32 to 63) of features {_mismatch()}",
        f"split 'test': chunk 2 (rows 64 to 95) of features {_mismatch()}",
    ]
    # and the rows no longer match their logits (the sample check, which needs no manifest)
    assert problems[2].startswith("split 'test': chunk 1 (rows 32 to 63) of logits differs from the features "
                                  "times the head by up to ")
    assert problems[2].endswith("the split's features or logits were replaced or moved")
    assert verify_store(store).remedies == [f"delete the folder {store / 'test'} and re-run `skdice extract` for it"]
    with pytest.raises(StoreError, match=r"split 'test' of .* could not be read \(chunk 1 \(rows 32 to 63\) of "
                                         r"features does not match its digest in the split's manifest .*\): the "
                                         r"store is damaged; delete the folder .*test and re-run `skdice extract`"):
        open_store(store).features("test")


def _mismatch():
    from skdice.store._manifest import DIGEST_MISMATCH

    return DIGEST_MISMATCH


def test_chunks_swapped_with_their_manifest_entries_are_still_damage(store):
    one, two = _chunk(store, "test/features", 1), _chunk(store, "test/features", 2)
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b), two.write_bytes(a)

    def swap(meta):  # the manifest edited to agree: its digests hold each chunk's index
        for digests in meta["attributes"]["chunks"].values():
            digests[1], digests[2] = digests[2], digests[1]

    _edit_json(store / "test" / "manifest" / "zarr.json", swap)
    assert _problems(store)[:2] == [
        f"split 'test': chunk 1 (rows 32 to 63) of features {_mismatch()}",
        f"split 'test': chunk 2 (rows 64 to 95) of features {_mismatch()}",
    ]


@pytest.mark.parametrize("reader", ["features", "iter_features", "block_source", "logits", "iter_blocks"])
def test_every_reader_refuses_a_swapped_chunk(store, reader):
    name = "logits" if reader == "logits" else "features"
    one, two = _chunk(store, f"test/{name}", 0), _chunk(store, f"test/{name}", 3)
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b), two.write_bytes(a)
    fs = open_store(store)
    read = {
        "features": lambda: fs.features("test"),
        "iter_features": lambda: list(fs.iter_features("test")),
        "block_source": lambda: list(fs.block_source("test").iter_blocks()),
        "logits": lambda: fs.logits("test"),
        "iter_blocks": lambda: list(iter_blocks(fs.array("test", "features"))),  # what fit_store reads
    }[reader]
    # the last chunk holds 4 rows: swapped into place 0 it fails to decode to 32 rows, or its digest
    with pytest.raises(StoreError, match=rf"split 'test' of .* could not be read \(chunk 0 \(rows 0 to 31\) of {name}"):
        read()


def test_one_splits_features_copied_over_another_are_damage(store):
    shutil.rmtree(store / "svhn" / "features")
    shutil.copytree(store / "test" / "features", store / "svhn" / "features")
    problems = _problems(store)
    assert problems == [f"split 'svhn': chunk {k}{rows} of features {_mismatch()}"
                        for k, rows in enumerate([" (rows 0 to 31)", " (rows 32 to 63)", " (rows 64 to 95)",
                                                  " (rows 96 to 99)"])][:1] + problems[1:]
    assert len(problems) == 4 + 1  # every chunk, and the logits no longer match the features x head
    assert problems[-1].startswith("split 'svhn': chunk 0 (rows 0 to 31) of logits differs from the features "
                                   "times the head by up to")
    with pytest.raises(StoreError, match=r"split 'svhn' .*chunk 0 \(rows 0 to 31\) of features does not match"):
        open_store(store).features("svhn")


def test_chunk_rolled_back_to_a_foreign_valid_chunk_is_damage(store, tmp_path):
    other = tmp_path / "other.zarr"
    write_store(other, _head(), {"test": _features(9)}, chunk_rows=CHUNK)  # another extraction, same model
    shutil.copyfile(_chunk(other, "test/features", 1), _chunk(store, "test/features", 1))
    assert _problems(store)[0] == f"split 'test': chunk 1 (rows 32 to 63) of features {_mismatch()}"
    # with its digests chunk too: the manifest still records the original's
    shutil.copyfile(_chunk(other, "test/digests", 1), _chunk(store, "test/digests", 1))
    assert _problems(store)[0] == f"split 'test': chunk 1 (rows 32 to 63) of features {_mismatch()}"
    with pytest.raises(StoreError, match=r"chunk 1 \(rows 32 to 63\) of features does not match its digest"):
        open_store(store).features("test")


def test_readers_sample_rows_and_verify_checks_every_row(store):
    arr = zarr.open_array(str(store / "test" / "features"), mode="r+")
    arr[40] = arr[40] + 1  # one row of chunk 1 that the readers' sample (rows 32, 64, ...) skips
    assert np.array_equal(open_store(store).features("test")[[32, 64]], _features(1)[[32, 64]])
    assert _problems(store)[0] == f"split 'test': chunk 1 (rows 32 to 63) of features {_mismatch()}"
    arr[32] = arr[32] + 1  # a sampled row
    with pytest.raises(StoreError, match=r"chunk 1 \(rows 32 to 63\) of features does not match its digest"):
        open_store(store).features("test")


def test_chunk_rewritten_with_a_valid_crc_is_damage(store):
    arr = zarr.open_array(str(store / "test" / "labels"), mode="r+")
    arr[70] = 2  # a valid label, in a valid chunk
    assert _problems(store) == [f"split 'test': chunk 2 (rows 64 to 95) of labels {_mismatch()}"]
    with pytest.raises(StoreError, match=r"chunk 2 \(rows 64 to 95\) of labels does not match its digest"):
        open_store(store).labels("test")


# --------------------------------------------------------------------------- the head


def test_head_replaced_by_another_of_the_same_shape_is_damage(store):
    other = _head(seed=7)
    zarr.open_array(str(store / "head" / "weight"), mode="r+")[...] = other.weight
    zarr.open_array(str(store / "head" / "bias"), mode="r+")[...] = other.bias
    problems = _problems(store)
    assert problems[0].startswith(f"head: the head of {store} does not match the fingerprint its manifest "
                                  "recorded when the store was created (blake2b:")
    assert "restore" in problems[0] and "from a copy" in problems[0]
    logits = [p for p in problems[1:] if "of logits differs from the features times the head" in p]
    assert [p.split(":")[0] for p in logits] == ["split 'svhn'", "split 'test'"]
    with pytest.raises(StoreError, match=r"the head of .* does not match the fingerprint its manifest recorded"):
        open_store(store).head


def test_split_copied_from_another_stores_head_is_refused(store, tmp_path):
    other = tmp_path / "other.zarr"
    write_store(other, _head(seed=5), {"test": _features(1)}, chunk_rows=CHUNK)
    shutil.rmtree(store / "test")
    shutil.copytree(other / "test", store / "test")
    with pytest.raises(StoreError, match=r"split 'test' of .* was written with another head \(fingerprint "
                                         r"blake2b:\w+\) than the store's \(blake2b:\w+\): it was copied from "
                                         r"another store, or the head was replaced; delete the folder"):
        open_store(store).features("test")
    assert any(p.startswith("split 'test': split 'test' of") and "another head" in p for p in _problems(store))


# --------------------------------------------------------------------------- metadata edited consistently


def test_row_count_shrunk_consistently_is_damage(tmp_path):
    path = tmp_path / "big.zarr"
    write_store(path, _head(), {"test": _features(4, rows=3000)}, chunk_rows=1024)
    # 3,000 rows -> 2,048 in the split's attributes and in every array's shape: the schema agrees
    _edit_json(path / "test" / "zarr.json", lambda m: m["attributes"].update(count=2048, n_chunks=2))
    for name in ("features", "logits", "labels", "paths"):
        _edit_json(path / "test" / name / "zarr.json", lambda m: m.update(shape=[2048, *m["shape"][1:]]))
    _edit_json(path / "test" / "written" / "zarr.json", lambda m: m.update(shape=[2]))
    _edit_json(path / "test" / "digests" / "zarr.json", lambda m: m.update(shape=[2, *m["shape"][1:]]))
    message = (rf"{path / 'test' / 'zarr.json'} records count 2048 where its manifest records 3000; n_chunks 2 "
               r"where its manifest records 3: the metadata was edited or damaged; delete the folder .*test and "
               r"re-run `skdice extract` for it")
    assert any(__import__("re").search(message, p) for p in _problems(path))
    with pytest.raises(StoreError, match=message):
        open_store(path).features("test")


def test_model_renamed_in_the_root_attributes_is_damage(store):
    _edit_json(store / "zarr.json", lambda m: m["attributes"].update(model="resnet50"))
    message = (f"{store / 'zarr.json'} records model 'resnet50' but the store's manifest records 'toy': the "
               f"metadata was edited; restore {store} from a copy (or set model back to 'toy').")
    assert message in _problems(store)
    with pytest.raises(StoreError, match=__import__("re").escape(message)):
        open_store(store).features("test")


# --------------------------------------------------------------------------- the readers' cost (issue 19)


def test_new_splits_sample_one_row_in_128_and_record_it(store):
    record = open_store(store).manifest("test")
    assert record["row_stride"] == 128 and {"features[::128]", "logits[::128]"} <= set(record["chunks"])
    assert open_store(store).split_info("test")["row_stride"] == 128


def test_a_split_begun_with_the_old_stride_keeps_it_when_resumed(tmp_path):
    """A split started by a skdice sampling every 32nd row is finished with the same stride, and checked by it."""
    path, X = tmp_path / "r.zarr", _features(3, rows=200)
    head = _head()
    writer = create_store(path, model="toy", head=head)
    writer.prepare_split("test", 200, source="x", chunk_rows=64).close()
    _edit_json(path / "test" / "zarr.json", lambda meta: meta["attributes"].pop("row_stride"))  # the old writer's
    with writer.prepare_split("test", 200, source="x", chunk_rows=64) as split:
        a, z = split.chunk_bounds(0)
        split.write_chunk(0, X[a:z], head.logits(X[a:z]), np.full(z - a, -1), [""] * (z - a))
    with writer.prepare_split("test", 200, source="x", chunk_rows=64) as split:
        for k in split.pending():
            a, z = split.chunk_bounds(k)
            split.write_chunk(k, X[a:z], head.logits(X[a:z]), np.full(z - a, -1), [""] * (z - a))
        split.finalize()
    record = open_store(path).manifest("test")
    assert record["row_stride"] == 32 and "features[::32]" in record["chunks"]
    assert np.array_equal(open_store(path).features("test"), X) and verify_store(path).ok
    arr = zarr.open_array(str(path / "test" / "features"), mode="r+")
    arr[32] = arr[32] + 1  # the second sampled row of chunk 0 at stride 32 (not sampled at 128)
    with pytest.raises(StoreError, match=r"chunk 0 \(rows 0 to 63\) of features does not match its digest"):
        open_store(path).features("test")


def test_a_manifest_is_parsed_once_and_read_again_when_its_file_changes(store, monkeypatch):
    from skdice.store import _manifest

    assert open_store(store).features("test") is not None
    loads = []
    counting = SimpleNamespace(dumps=json.dumps, loads=lambda text: loads.append(1) or json.loads(text))
    monkeypatch.setattr(_manifest, "json", counting)  # the manifest module's json only, not zarr's
    for _ in range(3):
        list(iter_blocks(open_store(store).array("test", "features")))
    assert loads == []  # parsed before, file unchanged
    record = json.loads((store / "test" / "manifest" / "zarr.json").read_text())
    record["attributes"]["chunks"]["features[::128]"][1] = "00" * 16  # a valid manifest, edited
    _manifest.write_manifest(store / "test" / "manifest", record["attributes"])
    with pytest.raises(StoreError, match=r"chunk 1 \(rows 32 to 63\) of features does not match its digest"):
        list(iter_blocks(open_store(store).array("test", "features")))
    assert loads  # read again


# --------------------------------------------------------------------------- scores written back (issue 19)


def _score(store, split="test", name=None, p=0.5):
    from skdice import DICEDetector
    from skdice.workflows.score import score_to_store

    fs = open_store(store)
    det = DICEDetector(p=p).fit(fs.features(split), head=fs.head)
    return det, score_to_store(store, split, det, method=name, block_rows=CHUNK)


def _score_mismatch():
    from skdice.store._manifest import SCORE_DIGEST_MISMATCH

    return SCORE_DIGEST_MISMATCH


def test_scores_carry_a_manifest_and_swapped_score_chunks_are_damage_then_recomputed(store):
    from skdice.store import read_scores
    from skdice.workflows.score import score_to_store

    det, _ = _score(store)
    reference = read_scores(store, "test", "dice")
    assert zarr.open_array(str(store / "test" / "scores" / "dice")).attrs["manifest"]["chunks"]
    one, two = _chunk(store, "test/scores/dice", 1), _chunk(store, "test/scores/dice", 2)
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b), two.write_bytes(a)
    assert _problems(store) == [
        f"scores test/scores/dice: chunk 1 (rows 32 to 63) {_score_mismatch()}",
        f"scores test/scores/dice: chunk 2 (rows 64 to 95) {_score_mismatch()}",
    ]
    assert verify_store(store).remedies == [
        "re-run the same `skdice score` command (it recomputes the missing or damaged chunks)"]
    with pytest.raises(StoreError, match=r"scores test/scores/dice of .* could not be read \(chunk 1 \(rows 32 to "
                                         r"63\) does not match its digest in the scores' manifest .*re-run the same "
                                         r"`skdice score`"):
        read_scores(store, "test", "dice")
    again = score_to_store(store, "test", det, block_rows=CHUNK)
    assert again["resumed_from"] == 32  # from the first chunk its manifest disowns, not "nothing to do"
    np.testing.assert_array_equal(read_scores(store, "test", "dice"), reference)
    assert verify_store(store).ok


@pytest.mark.parametrize("source", ["svhn/scores/dice", "test/scores/other"])
def test_scores_copied_from_another_split_or_score_array_are_damage(store, source):
    from skdice.store import read_scores

    _score(store)
    _score(store, *source.split("/scores/"), p=0.5)  # the same detector: only the place differs
    shutil.rmtree(store / "test" / "scores" / "dice")
    shutil.copytree(store.joinpath(*source.split("/")), store / "test" / "scores" / "dice")
    problems = _problems(store)
    assert f"scores test/scores/dice: chunk 0 (rows 0 to 31) {_score_mismatch()}" in problems
    with pytest.raises(StoreError, match="does not match its digest in the scores' manifest"):
        read_scores(store, "test", "dice")


def test_scores_written_before_their_manifest_read_and_are_reported_unmanifested(store):
    from skdice.store import read_scores

    _score(store)
    arr = zarr.open_array(str(store / "test" / "scores" / "dice"), mode="r+")
    del arr.attrs["manifest"]
    assert read_scores(store, "test", "dice").shape == (ROWS,)
    report = verify_store(store)
    assert report.ok and report.unmanifested == ["scores test/scores/dice"]


# --------------------------------------------------------------------------- lazy and unaligned reads (issue 19)


def _swap_1_2(store, name="features", split="test"):
    one, two = _chunk(store, f"{split}/{name}", 1), _chunk(store, f"{split}/{name}", 2)
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b), two.write_bytes(a)  # both whole valid chunks: only the digests tell


@pytest.mark.parametrize("read", [
    lambda fs: fs.features("test", dask=True).compute(scheduler="sync"),
    lambda fs: fs.features("test", dask=True).rechunk((20, M)).sum(axis=1).compute(scheduler="threads"),
    lambda fs: list(iter_blocks(fs.array("test", "features"), 20)),  # blocks cutting chunks
    lambda fs: list(iter_blocks(fs.array("test", "features"), 48, start=40)),  # a resume inside a chunk
    lambda fs: list(iter_blocks(fs.array("svhn", "labels"), 7)),
])
def test_lazy_and_unaligned_reads_refuse_a_swapped_chunk(store, read):
    pytest.importorskip("dask")
    _swap_1_2(store)
    _swap_1_2(store, "labels", "svhn")  # labels 0, 1, 2, ...: the two chunks differ
    with pytest.raises(StoreError, match=r"split '(test|svhn)' of .* could not be read \(chunk [12] \(rows \d+ to \d+\) of "
                                         r"(features|labels) does not match its digest"):
        read(open_store(store))


def test_lazy_and_unaligned_reads_of_a_sound_split_give_its_rows(store):
    da = pytest.importorskip("dask.array")
    fs = open_store(store)
    X = _features(1)
    np.testing.assert_array_equal(fs.features("test", dask=True).compute(scheduler="sync"), X)
    for step, start in ((20, 0), (48, 40), (7, 99), (1000, 3)):
        blocks = list(iter_blocks(fs.array("test", "features"), step, start=start))
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), X[start:])
    assert isinstance(fs.features("test", dask=True), da.Array)


def test_a_pickled_lazy_read_checks_where_it_is_unpickled(store):
    """A Dask worker gets the reader pickled: the check is made again there, from the manifest."""
    import pickle

    pytest.importorskip("dask")
    from skdice.store import lazy_rows

    reads = lazy_rows(open_store(store).array("test", "features"), 16)
    source = next(iter(reads.dask.values()))  # the CheckedReads in the graph
    source[0:16]  # builds its check here
    _swap_1_2(store)
    again = pickle.loads(pickle.dumps(source))
    with pytest.raises(StoreError, match=r"chunk 1 \(rows 32 to 63\) of features does not match its digest"):
        again[32:48]
    assert again[32:48, 0:2].shape == (16, 2)  # some columns only: the crc32c alone (docs/store.md)
