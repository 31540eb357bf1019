"""Bounded decoding: a chunk never decodes to more than its array's schema allows (issue 19, item 4).

Each test writes a chunk by hand with a valid crc32c, so that only the
decoder can refuse it: a tiny frame whose header declares 64 GiB, and frames
that really inflate far beyond the chunk.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
numcodecs = pytest.importorskip("numcodecs")

from numcodecs import zstd  # noqa: E402

from skdice import Head  # noqa: E402
from skdice.exceptions import StoreError  # noqa: E402
from skdice.store import open_store, verify_store  # noqa: E402
from skdice.store._codecs import declared_content_size  # noqa: E402
from stores import write_store  # noqa: E402

M, C, ROWS, CHUNK = 8, 3, 100, 32
CHUNK_BYTES = CHUNK * M * 4  # a features chunk: 32 rows x 8 float32


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    data = np.maximum(rng.normal(1, 1, (ROWS, M)), 0).astype(np.float32)
    path = tmp_path / "s.zarr"
    write_store(path, Head(rng.normal(size=(M, C)), np.zeros(C)), {"test": data}, chunk_rows=CHUNK)
    return path


def _with_crc(frame: bytes) -> bytes:
    """The stored bytes of a chunk: the zstd frame, then its crc32c (zarr's Crc32cCodec)."""
    from zarr.codecs import Crc32cCodec
    from zarr.core.array_spec import ArrayConfig, ArraySpec
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.dtype import parse_data_type

    spec = ArraySpec(shape=(len(frame),), dtype=parse_data_type("uint8", zarr_format=3),
                     fill_value=0, config=ArrayConfig.from_dict({}),
                     prototype=default_buffer_prototype())
    buf = default_buffer_prototype().buffer.from_bytes(frame)
    return Crc32cCodec()._encode_sync(buf, spec).to_bytes()


def _frame_declaring(size: int) -> bytes:
    """A 17-byte zstd frame header + empty raw last block that declares ``size`` decoded bytes."""
    magic = (0xFD2FB528).to_bytes(4, "little")
    descriptor = bytes([0xE0])  # Frame_Content_Size on 8 bytes, single segment
    last_empty_raw_block = bytes([0x01, 0x00, 0x00])
    return magic + descriptor + size.to_bytes(8, "little") + last_empty_raw_block


def _chunk_file(path, index=1):
    return path / "test" / "features" / "c" / str(index) / "0"


def test_declared_content_size_reads_the_frame_header():
    for n in (0, 1, 255, 256, 300, 65_791, 65_792, 4_000, 2**33):
        assert declared_content_size(zstd.compress(bytes(min(n, 4_000)), 1)) == min(n, 4_000)
    assert declared_content_size(_frame_declaring(2**36)) == 2**36
    with pytest.raises(ValueError, match="not a zstd frame"):
        declared_content_size(b"\x00" * 20)


def test_a_tiny_chunk_declaring_64_gib_is_damage_not_a_memory_error(store):
    stored = _with_crc(_frame_declaring(64 * 2**30))
    assert len(stored) == 20
    _chunk_file(store).write_bytes(stored)
    with pytest.raises(StoreError, match=(
        r"chunk 1 \(rows 32 to 63\) of features could not be decoded: ValueError: the chunk's zstd "
        r"frame declares 68,719,476,736 decoded bytes where its array's chunk holds 1,024: "
        r"refused before decoding\): the store is damaged")):
        open_store(store).features("test")
    report = verify_store(store)
    assert any("chunk 1 (rows 32 to 63) of features could not be decoded" in line
               for line in report.problems)


def test_chunks_that_inflate_beyond_the_chunk_are_refused_within_twice_the_chunk(store):
    bomb = zstd.compress(bytes(64 * 2**20), 19)  # 64 MiB of zeros in a few KiB
    assert len(bomb) < 32 * 2**10
    for index in range(3):
        _chunk_file(store, index).write_bytes(_with_crc(bomb))
    fs = open_store(store)
    tracemalloc.start()
    try:
        with pytest.raises(StoreError, match=r"chunk 0 \(rows 0 to 31\) of features could not be decoded"):
            fs.features("test")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the whole read: the result array (ROWS x M float32) and at most a few chunk buffers;
    # 64 MiB per chunk if the frame were trusted
    assert peak < 2 * 2**20, peak


def test_valid_chunks_decode_unchanged(store):
    fs = open_store(store)
    raw = zarr.open_array(str(store / "test" / "features"), mode="r")[:]
    np.testing.assert_array_equal(fs.features("test"), raw)
    assert type(raw).__module__ == "numpy"
    from zarr.registry import get_codec_class

    assert get_codec_class("zstd").__name__ == "BoundedZstdCodec"


def test_a_string_chunk_is_bounded_by_its_rows_times_the_longest_name(store):
    paths = store / "test" / "paths" / "c" / "1"
    paths.write_bytes(_with_crc(_frame_declaring(64 * 2**30)))
    with pytest.raises(StoreError, match=(
        r"chunk 1 \(rows 32 to 63\) of paths could not be decoded: ValueError: the chunk's zstd "
        r"frame declares 68,719,476,736 decoded bytes where its array's chunk of strings holds "
        r"at most 2,097,284: refused before decoding")):
        open_store(store).paths("test")


_WORKER = r"""
import pickle, sys
reads = pickle.loads(open(sys.argv[1], "rb").read())  # as a Dask worker receives its task
import zarr
print(zarr.config.get("codecs.zstd"))
try:
    reads[32:64]
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_worker_that_unpickles_a_store_reader_decodes_bounded(store, tmp_path):
    """A fresh process (no skdice imported) that unpickles a lazy reader refuses the 64 GiB frame, and then
    decodes every array it opens itself through the bounded codec too."""
    import pickle
    import subprocess
    import sys

    from skdice.store import lazy_rows

    graph = lazy_rows(open_store(store).array("test", "features"), CHUNK).dask
    source = next(v for v in graph.values() if hasattr(v, "array"))  # the reader in the graph
    (tmp_path / "task.pkl").write_bytes(pickle.dumps(source))
    _chunk_file(store).write_bytes(_with_crc(_frame_declaring(64 * 2**30)))
    run = subprocess.run([sys.executable, "-c", _WORKER, str(tmp_path / "task.pkl")], capture_output=True,
                         text=True, timeout=120)
    lines = run.stdout.splitlines()
    assert run.returncode == 0, run.stderr
    assert lines[0] == "skdice.store._codecs.BoundedZstdCodec"  # selected in the worker by the unpickling
    assert lines[1].startswith("StoreError ") and "refused before decoding" in lines[1], lines
