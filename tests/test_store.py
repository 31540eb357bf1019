"""The feature store: schema, completeness marker, refusals, lock and chunk-aligned writes."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("zarr")

from skdice import Head
from skdice.exceptions import IncompleteSplitError, StoreError
from skdice.store import SCHEMA_VERSION, create_store, default_chunk_rows, open_store

M, C = 6, 3


@pytest.fixture
def head():
    rng = np.random.default_rng(0)
    return Head(rng.normal(size=(M, C)), rng.normal(size=C))


def _rows(n, seed=1):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, M)).astype(np.float32)
    logits = rng.normal(size=(n, C)).astype(np.float32)
    labels = rng.integers(0, C, size=n)
    paths = [f"img/{i:04d}.png" for i in range(n)]
    return feats, logits, labels, paths


def _write_split(writer, split, n, chunk_rows, *, finalize=True, only=None):
    feats, logits, labels, paths = _rows(n)
    with writer.prepare_split(split, n, source="unit-test", chunk_rows=chunk_rows) as sw:
        for i in sw.pending() if only is None else only:
            a, b = sw.chunk_bounds(i)
            sw.write_chunk(i, feats[a:b], logits[a:b], labels[a:b], paths[a:b])
        if finalize:
            sw.finalize()
    return feats, logits, labels, paths


def test_round_trip_returns_written_arrays_and_head(tmp_path, head):
    writer = create_store(
        tmp_path / "s.zarr", model="toy", head=head, preprocessing={"mean": [0.5]},
        weights_sha256="ab" * 32, feature_layer="fc",
    )
    feats, logits, labels, paths = _write_split(writer, "test", 10, 4)
    store = open_store(tmp_path / "s.zarr")
    assert store.model == "toy"
    assert store.attrs["skdice_store"] == SCHEMA_VERSION
    assert store.attrs["preprocessing"] == {"mean": [0.5]}
    assert store.attrs["feature_layer"] == "fc"
    assert store.splits == ["test"]
    np.testing.assert_array_equal(store.head.weight, head.weight)
    np.testing.assert_array_equal(store.head.bias, head.bias)
    np.testing.assert_array_equal(store.features("test"), feats)
    np.testing.assert_array_equal(store.logits("test"), logits)
    assert store.labels("test").dtype == np.int64
    np.testing.assert_array_equal(store.labels("test"), labels)
    assert store.paths("test") == paths
    info = store.split_info("test")
    assert info["count"] == 10 and info["complete"] and info["source"] == "unit-test"
    assert info["n_chunks"] == 3 and info["written_chunks"] == 3
    assert store.array("test", "features").chunks == (4, M)


def test_iter_features_follows_store_chunks(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    feats, *_ = _write_split(writer, "test", 10, 4)
    pieces = list(open_store(tmp_path / "s.zarr").iter_features("test"))
    assert [start for start, _ in pieces] == [0, 4, 8]
    np.testing.assert_array_equal(np.concatenate([p for _, p in pieces]), feats)


def test_dask_features_equal_numpy(tmp_path, head):
    pytest.importorskip("dask.array")
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    feats, *_ = _write_split(writer, "test", 10, 4)
    lazy = open_store(tmp_path / "s.zarr").features("test", dask=True)
    # row blocks of ~8 MiB made of whole store chunks: this tiny split is one block
    assert lazy.chunks == ((10,), (feats.shape[1],))
    np.testing.assert_array_equal(lazy.compute(), feats)


def test_readers_refuse_split_without_completion_marker(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    _write_split(writer, "test", 10, 4, finalize=False)  # every chunk, but no marker
    store = open_store(tmp_path / "s.zarr")
    assert store.split_info("test")["complete"] is False
    for read in (store.features, store.logits, store.labels, store.paths, store.iter_features):
        with pytest.raises(IncompleteSplitError, match=r"incomplete .*re-run the same `skdice extract`"):
            list(read("test")) if read == store.iter_features else read("test")


def test_partially_written_split_reports_progress_and_cannot_finalize(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    _write_split(writer, "test", 10, 4, finalize=False, only=[0])
    store = open_store(tmp_path / "s.zarr")
    assert store.split_info("test")["written_chunks"] == 1
    with pytest.raises(IncompleteSplitError, match=r"1 of 3 chunks written"):
        store.features("test")
    sw = writer.prepare_split("test", 10, source="unit-test", chunk_rows=4)
    assert sw.pending() == [1, 2]
    with pytest.raises(IncompleteSplitError, match=r"misses chunks \[1, 2\]"):
        sw.finalize()
    sw.close()


def test_resume_keeps_written_chunks_and_completes(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    _write_split(writer, "test", 10, 4, finalize=False, only=[0, 2])
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    feats, *_ = _write_split(writer, "test", 10, 4)  # writes the pending chunk 1 only
    np.testing.assert_array_equal(open_store(tmp_path / "s.zarr").features("test"), feats)


def test_resume_with_other_settings_is_refused(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    _write_split(writer, "test", 10, 4, finalize=False, only=[0])
    with pytest.raises(StoreError, match=r"started with other settings \(count 10 vs 12"):
        writer.prepare_split("test", 12, source="unit-test", chunk_rows=4)


# --------------------------------------------------------------------------- pending chunks

N_FLAGS = 13  # with blocks of 4 flags: [0, 4), [4, 8), [8, 12) and a last block of one

PENDING_CASES = {
    "none pending": [],
    "all pending": list(range(N_FLAGS)),
    "at block boundaries": [3, 4, 7, 8, 11, 12],
    "one whole block": [4, 5, 6, 7],
    "scattered": [0, 2, 9],
}


@pytest.mark.parametrize("wanted", PENDING_CASES.values(), ids=PENDING_CASES.keys())
def test_pending_read_in_blocks_equals_the_unwritten_flags(tmp_path, head, monkeypatch, wanted):
    import zarr

    import skdice.store._writer as writer_module

    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    feats, logits, labels, paths = _rows(N_FLAGS)
    with writer.prepare_split("test", N_FLAGS, source="unit-test", chunk_rows=1) as sw:
        for i in sorted(set(range(N_FLAGS)) - set(wanted)):
            sw.write_chunk(i, feats[i : i + 1], logits[i : i + 1], labels[i : i + 1], paths[i : i + 1])
        # the reference: every flag read at once, straight from Zarr
        flags = np.asarray(zarr.open_array(str(tmp_path / "s.zarr" / "test" / "written"), mode="r")[...])
        reference = [int(i) for i in np.flatnonzero(flags == 0)]
        assert reference == wanted
        for block in (1, 4, 5, N_FLAGS, 4096):
            monkeypatch.setattr(writer_module, "_FLAG_BLOCK", block)
            assert sw.pending() == reference, block
            assert list(sw.iter_pending()) == reference, block
            np.testing.assert_array_equal(sw.written_flags(), flags != 0)
        assert sw.written_chunks() == N_FLAGS - len(reference)
        if reference:
            more = f" ... ({len(reference)} in all)" if len(reference) > 10 else ""
            with pytest.raises(IncompleteSplitError, match=re.escape(f"misses chunks {reference[:10]}{more};")):
                sw.finalize()
        else:
            sw.finalize()
    assert sw.complete is not bool(reference)


def test_finalize_names_the_first_ten_missing_chunks_and_counts_them_all(tmp_path, head, monkeypatch):
    import skdice.store._writer as writer_module

    monkeypatch.setattr(writer_module, "_FLAG_BLOCK", 4)
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    feats, logits, labels, paths = _rows(30)
    with writer.prepare_split("test", 30, source="unit-test", chunk_rows=2) as sw:
        for i in (0, 5, 14):
            a, b = sw.chunk_bounds(i)
            sw.write_chunk(i, feats[a:b], logits[a:b], labels[a:b], paths[a:b])
        with pytest.raises(IncompleteSplitError,
                           match=r"misses chunks \[1, 2, 3, 4, 6, 7, 8, 9, 10, 11\] \.\.\. \(12 in all\);"):
            sw.finalize()


def test_pending_of_a_split_declaring_10_to_the_12_rows_reads_only_the_first_blocks(tmp_path, head, monkeypatch):
    import skdice.store._writer as writer_module

    monkeypatch.setattr(writer_module, "_FLAG_BLOCK", 256)  # a small block keeps the traced reads quick
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    with writer.prepare_split("huge", 10**12, source="noise", chunk_rows=1024) as sw:
        tracemalloc.start()
        try:
            first = list(itertools.islice(sw.iter_pending(), 3))
            with pytest.raises(IncompleteSplitError, match=r"misses chunks \[0, 1, .*, 9\] \.\.\. \(976562500 in all\)"):
                sw.finalize()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert first == [0, 1, 2]
    assert peak < 8 * 2**20  # reading all 976,562,500 flags at once would take terabytes


def test_writes_must_cover_whole_chunks(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    feats, logits, labels, paths = _rows(10)
    with writer.prepare_split("test", 10, source="x", chunk_rows=4) as sw:
        with pytest.raises(ValueError, match=r"features of shape \(4, 6\), got \(3, 6\).*whole chunks"):
            sw.write_chunk(0, feats[:3], logits[:3], labels[:3], paths[:3])
        assert sw.chunk_bounds(2) == (8, 10)  # the last chunk is short
        sw.write_chunk(2, feats[8:], logits[8:], labels[8:], paths[8:])


def test_second_writer_on_same_split_is_refused(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    first = writer.prepare_split("test", 10, source="x", chunk_rows=4)
    with pytest.raises(StoreError, match=rf"being written by pid {os.getpid()} on .*second writer is refused"):
        writer.prepare_split("test", 10, source="x", chunk_rows=4)
    other = writer.prepare_split("other", 10, source="x", chunk_rows=4)  # other splits are free
    other.close()
    first.close()
    writer.prepare_split("test", 10, source="x", chunk_rows=4).close()  # released


def test_stale_lock_of_dead_process_is_taken_over(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / "s.zarr.test.lock"
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with writer.prepare_split("test", 10, source="x", chunk_rows=4):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_lock_of_other_host_is_refused(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    (tmp_path / "s.zarr.test.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(StoreError, match=r"pid 1 on elsewhere .*delete the lock file"):
        writer.prepare_split("test", 10, source="x", chunk_rows=4)


def test_store_in_a_folder_not_yet_made_is_created_with_it(tmp_path, head):
    writer = create_store(tmp_path / "a" / "b" / "s.zarr", model="m", head=head)
    _write_split(writer, "test", 5, 4)
    assert open_store(tmp_path / "a" / "b" / "s.zarr").features("test").shape == (5, M)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["s.zarr"]  # no lock left


def test_store_below_a_file_is_refused(tmp_path, head):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match=r"cannot create the store .*: .*f is a file, not a folder"):
        create_store(tmp_path / "f" / "s.zarr", model="m", head=head)


def test_complete_split_with_a_chunk_missing_on_disk_is_refused(tmp_path, head):
    # An interrupted copy of a finished store: the marker says complete, a chunk
    # file is gone, and Zarr would read its rows back as zeros.
    writer = create_store(tmp_path / "s.zarr", model="m", head=head)
    _write_split(writer, "test", 10, 4)
    (tmp_path / "s.zarr" / "test" / "features" / "c" / "1" / "0").unlink()
    store = open_store(tmp_path / "s.zarr")
    with pytest.raises(StoreError, match=r"split 'test' .* is marked complete but 1 of the 3 chunks of features "
                                         r"are missing on disk .*re-run `skdice extract`"):
        store.features("test")
    assert store.logits("test").shape == (10, C)


def test_stored_chunk_count_agrees_with_zarr_and_ignores_stray_files(tmp_path, head, monkeypatch):
    import zarr

    from skdice.store._reader import stored_chunks

    writer = create_store(tmp_path / "s.zarr", model="m", head=head)
    _write_split(writer, "test", 10, 4)
    chunks = tmp_path / "s.zarr" / "test" / "features" / "c"
    (chunks / "1" / "0").unlink()
    (chunks / ".DS_Store").write_text("x")  # a copy tool's litter is not a chunk
    (chunks / "0" / "notes.txt").write_text("x")
    (chunks / "9").mkdir()  # outside the 3-chunk grid
    (chunks / "9" / "0").write_bytes(b"")
    arr = open_store(tmp_path / "s.zarr")._complete_group("test")["features"]
    assert arr.nchunks_initialized == 2
    with monkeypatch.context() as patch:  # a local store is counted without Zarr's key listing
        patch.setattr(zarr.Array, "nchunks_initialized", property(lambda self: pytest.fail("listed keys")))
        assert stored_chunks(arr) == 2
    # the fallback for stores that are not local folders is Zarr's own count
    mem = zarr.create_array(zarr.storage.MemoryStore(), shape=(10, M), chunks=(4, M), dtype="f4")
    mem[:4] = 1.0
    assert stored_chunks(mem) == mem.nchunks_initialized == 1


def test_all_zero_chunks_are_written_so_they_are_not_taken_for_missing_ones(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="m", head=head)
    with writer.prepare_split("z", 8, source="zeros", chunk_rows=4) as sw:
        for i in sw.pending():
            sw.write_chunk(i, np.zeros((4, M)), np.zeros((4, C)), np.full(4, -1), ["p"] * 4)
        sw.finalize()
    store = open_store(tmp_path / "s.zarr")
    assert not store.features("z").any() and not store.logits("z").any()


def test_missing_store_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match=r"does not exist; create it by extracting features into it \(`skdice extract`"):
        open_store(tmp_path / "nope.zarr")


def test_folder_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("hi")
    with pytest.raises(StoreError, match=r"not a feature store \(no zarr.json\)"):
        open_store(tmp_path / "plain")
    import zarr

    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(StoreError, match=r"Zarr group but not a skdice feature store"):
        open_store(tmp_path / "other.zarr")


def test_missing_split_names_available_splits(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    _write_split(writer, "test", 4, 4)
    with pytest.raises(StoreError, match=r"no split 'ood' \(splits: test\)"):
        open_store(tmp_path / "s.zarr").features("ood")


def test_store_of_another_model_is_not_reused(tmp_path, head):
    create_store(tmp_path / "s.zarr", model="toy", head=head)
    with pytest.raises(StoreError, match=r"holds features of model 'toy'.*not 'other'"):
        create_store(tmp_path / "s.zarr", model="other", head=head)
    with pytest.raises(StoreError, match=r"other values than this model's head"):
        create_store(tmp_path / "s.zarr", model="toy", head=Head(np.ones((M, C))))


@pytest.mark.parametrize("name", ["", "head", "a/b", ".hidden"])
def test_invalid_split_names_are_refused(tmp_path, head, name):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    with pytest.raises(StoreError, match="invalid split name"):
        writer.prepare_split(name, 4, source="x", chunk_rows=4)


def test_default_chunk_rows_is_a_multiple_of_the_batch():
    for m, c, b in [(342, 10, 64), (2048, 1000, 32), (2048, 21843, 7), (4, 2, 3000)]:
        rows = default_chunk_rows(m, c, b)
        assert rows % b == 0 and rows >= b
    assert default_chunk_rows(342, 10, 1) == 2**20 // (4 * (342 + 10))  # about 1 MiB
    assert default_chunk_rows(4, 2, 1) == 1024  # capped


def test_empty_split_is_complete_after_finalize(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    with writer.prepare_split("empty", 0, source="x", chunk_rows=4) as sw:
        assert sw.pending() == []
        sw.finalize()
    assert open_store(tmp_path / "s.zarr").features("empty").shape == (0, M)


def test_resume_with_other_recorded_settings_is_refused(tmp_path, head):
    writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
    writer.prepare_split("test", 8, source="x", chunk_rows=4, settings={"amp": False}).close()
    with pytest.raises(StoreError, match=r"amp False vs True"):
        writer.prepare_split("test", 8, source="x", chunk_rows=4, settings={"amp": True})


def test_concurrent_creation_of_one_store_keeps_both_splits(tmp_path, head):
    import threading

    errors = []

    def extract(split):
        try:
            writer = create_store(tmp_path / "s.zarr", model="toy", head=head)
            _write_split(writer, split, 6, 3)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=extract, args=(name,)) for name in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = open_store(tmp_path / "s.zarr")
    assert store.splits == ["a", "b", "c"]
    for split in store.splits:
        assert store.split_info(split)["complete"]
    assert not (tmp_path / "s.zarr.create.lock").exists()


def test_store_creation_waits_for_then_reports_a_held_creation_lock(tmp_path, head, monkeypatch):
    import skdice.store._writer as store_module

    monkeypatch.setattr(store_module, "CREATE_WAIT_S", 0.2)
    (tmp_path / "s.zarr.create.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(StoreError, match=r"store .*s.zarr is being written by pid 1 on elsewhere"):
        create_store(tmp_path / "s.zarr", model="toy", head=head)
