"""What a reader checks before it uses an array, and what a damaged chunk becomes.

An array of a store is used only after three checks (docs/store.md, "Integrity"):

- **schema**: the data type, shape and chunking its ``zarr.json`` declares are
  the ones the store's schema gives it (a dtype edited by hand or a row count
  lowered is refused, naming the file);
- **completeness**: every chunk is on disk, since Zarr reads a missing chunk
  as the fill value (zeros, or -1 for labels);
- **checksums**: arrays written since schema checksums carry a crc32c codec
  after the compressor, so Zarr verifies every chunk it decodes; :func:`read_checked`
  turns a mismatch (or any codec failure) into a
  :class:`~skdice.exceptions.StoreError` naming the split, the array, the
  chunk and the remedy.

Arrays written before checksums have no crc32c codec: they stay readable and
are reported as unchecked. Of those, the arrays whose chunks cannot
legitimately equal the fill value (features, logits, paths, the head weight,
scores) are still checked for completeness; labels (all -1 in a flat folder)
and the head bias (zeros) were not always written to disk, so a missing chunk
of theirs cannot be told from a legitimate one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..exceptions import StoreError
from ._schema import HEAD, SCORES, import_zarr

#: Arrays that were always fully on disk, even before every chunk was written on purpose.
_LEGACY_DENSE = {"features", "logits", "paths", "weight"}

#: Bytes read per block while verifying or scanning chunks (whole chunks, bounded memory).
_SCAN_BYTES = 8 * 2**20
SCAN_CHUNKS = 4096  # and at most this many chunks (the one-byte written flags)

_CHECKSUM_ERROR = "Stored and computed checksum do not match"


# --------------------------------------------------------------------------- codecs


def checksummed_compressors() -> list:
    """zstd (Zarr's default, same level) then crc32c: the checksum covers the stored bytes."""
    codecs = import_zarr().codecs
    return [codecs.ZstdCodec(level=0), codecs.Crc32cCodec()]


def flag_compressors() -> list:
    """The ``written`` flags: one byte per chunk, not worth compressing, checksummed."""
    return [import_zarr().codecs.Crc32cCodec()]


def has_checksum(arr) -> bool:
    """Whether every chunk of ``arr`` carries a crc32c that Zarr checks on decode."""
    crc = import_zarr().codecs.Crc32cCodec
    return any(isinstance(codec, crc) for codec in getattr(arr.metadata, "codecs", ()))


def array_data_type(arr) -> str:
    """The Zarr 3 name of an array's data type (``float32``, ``string``, ...)."""
    try:
        name = arr.metadata.data_type.to_json(zarr_format=3)
    except (AttributeError, TypeError, ValueError):
        name = None
    return name if isinstance(name, str) else str(arr.dtype)


# --------------------------------------------------------------------------- where


def array_root(arr) -> Path | None:
    root = getattr(arr.store, "root", None)
    return None if root is None else Path(os.fspath(root))


def metadata_file(root: Path, node: str) -> Path:
    return root.joinpath(*[part for part in node.split("/") if part], "zarr.json")


class _Described(NamedTuple):
    label: str  # "features of split 'test'": the array in words
    subject: str  # "split 'test' of STORE": what could not be read
    part: str  # "features": the array within the subject ("" when the subject is the array)
    remedy: str  # how to repair it


def describe_node(root, node: str) -> _Described:
    """The array at ``node`` in words, and how to repair it."""
    parts = node.split("/")
    store = root if root is not None else "the store"
    if parts[0] == HEAD:
        return _Described(
            f"the head's {parts[-1]}", f"the head of {store}", parts[-1],
            f"the head is written once, when the store is created: restore {store} from a copy, "
            "or extract into a new store",
        )
    if len(parts) == 3 and parts[1] == SCORES:
        return _Described(
            f"scores {node}", f"scores {node} of {store}", "",
            "re-run the same `skdice score` command (it recomputes the missing or damaged chunks)",
        )
    folder = Path(root, parts[0]) if root is not None else parts[0]
    if len(parts) == 2 and parts[1] == SCORES:
        return _Described(
            f"the scores of split {parts[0]!r}", f"the scores of split {parts[0]!r} of {store}", "",
            f"delete the folder {Path(folder, SCORES)} and re-run `skdice score` for each score array",
        )
    return _Described(
        f"{parts[-1]} of split {parts[0]!r}", f"split {parts[0]!r} of {store}", parts[-1],
        f"delete the folder {folder} and re-run `skdice extract` for it",
    )


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- metadata


def metadata_error(root: Path, node: str, exc: BaseException) -> StoreError:
    """A StoreError naming the ``zarr.json`` that could not be read, and why."""
    path = metadata_file(root, node)
    why = f"{type(exc).__name__}: {_one_line(exc)}"
    try:
        size = path.stat().st_size
        if size > 2**26:
            why = f"{size} bytes, far more than any metadata"
        else:
            text = path.read_text(encoding="utf-8")
            try:
                json.loads(text)
            except RecursionError:
                why = "nested too deeply to be metadata"
            except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
                why = f"not valid JSON, truncated or overwritten: {_one_line(err)}"
    except FileNotFoundError:
        why = "missing"
    except (OSError, UnicodeDecodeError) as err:
        why = f"unreadable: {_one_line(err)}"
    parts = node.split("/")
    if not node:
        remedy = f"restore {root} from a copy"
    elif len(parts) == 3 and parts[1] == SCORES:  # a rerun cannot read it: start the array again
        remedy = "write the scores again with overwrite=True"
    else:
        remedy = describe_node(root, node).remedy
    return StoreError(f"{path} is damaged ({why}): {remedy}.")


def open_node(parent, name: str, root: Path, node: str):
    """``parent[name]``; KeyError when absent, StoreError naming the file when it is damaged."""
    try:
        return parent[name]
    except KeyError:
        if metadata_file(root, node).exists():  # present but not a valid node
            raise metadata_error(root, node, KeyError("not a Zarr node")) from None
        raise
    except (ValueError, TypeError, RecursionError, AttributeError) as exc:
        # zarr raises JSONDecodeError, MetadataValidationError, TypeError (a shape
        # that is not a list), ... for a zarr.json truncated or edited by hand
        raise metadata_error(root, node, exc) from None


# --------------------------------------------------------------------------- chunks


def stored_chunks(arr) -> int:
    """How many of a Zarr array's chunks exist in its store.

    For a local store with the default ``c/i/j`` chunk keys the chunk files are
    counted with ``os.scandir``, several times faster than
    ``zarr.Array.nchunks_initialized`` (which lists and parses every key: 0.13 s
    for 3,125 chunks, a cost every streamed fit would pay per row), and in
    constant memory (the folders are iterated, never listed whole). Any other
    store or key encoding falls back to ``nchunks_initialized``.
    """
    root = array_root(arr)
    encoding = arr.metadata.chunk_key_encoding
    if root is None or getattr(encoding, "name", None) != "default" or encoding.separator != "/":
        return int(arr.nchunks_initialized)
    grid = tuple(int(n) for n in arr.cdata_shape)
    base = os.path.join(os.fspath(root), *arr.path.split("/"), "c")

    def count(path, depth):
        # a chunk is a file at depth len(grid) whose every path part is an index in the grid
        total = 0
        last = depth == len(grid) - 1
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if not entry.name.isdigit() or int(entry.name) >= grid[depth]:
                        continue
                    if last:
                        total += entry.is_file()
                    elif entry.is_dir():
                        total += count(entry.path, depth + 1)
        except (FileNotFoundError, NotADirectoryError):
            return 0
        return total

    return count(base, 0) if grid else int(arr.nchunks_initialized)


def _chunk_on_disk(arr, coords) -> bool | None:
    """Whether the chunk at ``coords`` is a file of a local store; None when that cannot be told."""
    root = array_root(arr)
    if root is None:
        return None
    key = arr.metadata.encode_chunk_key(tuple(int(c) for c in coords))
    return os.path.isfile(os.path.join(os.fspath(root), *arr.path.split("/"), *key.split("/")))


def _dense(arr) -> bool:
    """Whether every chunk of ``arr`` must be on disk (see the module's docstring)."""
    if has_checksum(arr):
        return True  # written with write_empty_chunks: a missing chunk is damage
    parts = arr.path.split("/")
    return parts[-1] in _LEGACY_DENSE or (len(parts) == 3 and parts[1] == SCORES)


def _missing_error(arr, missing: int) -> StoreError:
    root = array_root(arr)
    about = describe_node(root, arr.path)
    parts = arr.path.split("/")
    if len(parts) == 2 and parts[0] != HEAD:  # the wording users have seen since 0.1
        return StoreError(
            f"split {parts[0]!r} in {root} is marked complete but {missing} of the {arr.nchunks} "
            f"chunks of {parts[1]} are missing on disk (a partial copy or deleted files): {about.remedy}."
        )
    return StoreError(
        f"{missing} of the {arr.nchunks} chunks of {about.label} in {root} are missing on disk "
        f"(a partial copy or deleted files; they would read as zeros): {about.remedy}."
    )


# --------------------------------------------------------------------------- schema


def check_stored_array(arr, *, shape, data_type: str, chunks=None, checksum: bool = False,
                 dense: bool | None = None, remedy: str | None = None) -> None:
    """Refuse an array whose metadata disagrees with the schema, or whose chunks are missing.

    Parameters
    ----------
    arr : zarr.Array
    shape : tuple of int
        The shape the schema gives it (rows from the split's ``count``).
    data_type : str
        Zarr 3 data type name.
    chunks : tuple of int, default=None
        The chunk shape the schema gives it; not checked when None.
    checksum : bool, default=False
        The array must carry the crc32c codec (its split or store records checksums).
    dense : bool, default=None
        Every chunk must be on disk; :func:`_dense` decides when None.
    remedy : str, default=None
        How to repair a schema problem, when not the array's usual remedy.

    Raises
    ------
    StoreError
        Naming the ``zarr.json`` and what it declares, or the missing chunks.
    """
    root = array_root(arr)
    about = describe_node(root, arr.path)
    if remedy is not None:
        about = about._replace(remedy=remedy)
    where = metadata_file(root, arr.path) if root is not None else arr.path

    def refuse(what, got, want):
        raise StoreError(
            f"{where} declares {what} {got} but the store's schema gives {about.label} {what} "
            f"{want}: the metadata was edited or damaged; {about.remedy}."
        )

    declared = array_data_type(arr)
    if declared != data_type:
        refuse("data type", declared, data_type)
    if tuple(arr.shape) != tuple(shape):
        refuse("shape", tuple(arr.shape), tuple(shape))
    if chunks is not None and tuple(arr.chunks) != tuple(chunks):
        refuse("chunks", tuple(arr.chunks), tuple(chunks))
    if checksum and not has_checksum(arr):
        raise StoreError(
            f"{where} has no crc32c codec although {about.label} was written with checksums: "
            f"the metadata was edited or damaged; {about.remedy}."
        )
    if dense if dense is not None else _dense(arr):
        stored = stored_chunks(arr)
        if stored < arr.nchunks:
            # complete, yet chunks are gone: an interrupted copy or a deleted file
            # would otherwise read back as the fill value
            raise _missing_error(arr, arr.nchunks - stored)


# --------------------------------------------------------------------------- reads


def read_checked(arr, selection=Ellipsis) -> np.ndarray:
    """``arr[selection]`` with a damaged chunk reported as a StoreError (see :func:`_read_error`)."""
    try:
        return np.asarray(arr[selection])
    except OSError as exc:
        if exc.errno is not None:
            raise  # the file system refused (permissions, I/O): not damage, keep its errno
        raise _read_error(arr, exc, selection) from exc
    except (ValueError, RuntimeError, TypeError, IndexError, EOFError, OverflowError) as exc:
        # a chunk that fails its crc32c, or that zstd, the string codec or the
        # reshape to the chunk's shape cannot decode: the stored bytes are damaged
        raise _read_error(arr, exc, selection) from exc


def _read_error(arr, exc: BaseException, selection=Ellipsis) -> StoreError:
    """A StoreError naming the array, the first damaged chunk of ``selection`` and the remedy."""
    about = describe_node(array_root(arr), arr.path)
    chunk = _first_undecodable(arr, selection)
    where = "a chunk" if chunk is None else f"chunk {chunk}{rows_of(arr, chunk)}"
    if about.part:
        where += f" of {about.part}"
    if _CHECKSUM_ERROR in str(exc):
        what = f"{where} failed its crc32c checksum"
    else:
        what = f"{where} could not be decoded: {type(exc).__name__}: {_one_line(exc)}"
    return StoreError(f"{about.subject} could not be read ({what}): the store is damaged; {about.remedy}.")


def rows_of(arr, chunk: int) -> str:
    if not arr.ndim:
        return ""
    step = int(arr.chunks[0])
    start = chunk * step
    stop = min(start + step, int(arr.shape[0]))
    return f" (rows {start} to {stop - 1})"


def _first_undecodable(arr, selection) -> int | None:
    """Index of the first row chunk in a row selection that fails to decode (the error path only)."""
    if not arr.ndim or not arr.shape[0]:
        return None
    n = int(arr.shape[0])
    step = max(int(arr.chunks[0]), 1)
    rows = selection[0] if isinstance(selection, tuple) and selection else selection
    if isinstance(rows, slice):
        start, stop, _ = rows.indices(n)
    else:
        start, stop = 0, n
    for k in range(start // step, -(-stop // step)):
        try:
            arr[k * step : min((k + 1) * step, n)]
        except Exception:  # noqa: BLE001 - any failure marks this chunk
            return k
    return None


def scan_chunks(arr, *, rows=None, progress=None, on_block=None):
    """Yield ``(chunk_index, reason)`` for every missing or undecodable chunk of ``arr``.

    Reads whole chunks in blocks of about 8 MiB (one chunk at a time after a
    failure, to name the damaged ones), so memory stays bounded whatever the
    array's size. Row-chunked arrays (every split array) are scanned along
    their rows; other arrays (the head) chunk by chunk.

    Parameters
    ----------
    arr : zarr.Array
    rows : int, default=None
        Scan only the chunks holding rows ``[0, rows)`` (a split or score array
        still being written); all by default.
    progress : callable, default=None
        Called as ``progress(chunks_done)`` after each block.
    on_block : callable, default=None
        Called as ``on_block(start_row, block)`` with each block of a
        row-chunked array that decoded whole (to check the manifest's digests
        in the same pass).

    Yields
    ------
    index : int or tuple
        Row-chunk index (a tuple of chunk coordinates for a column-chunked array).
    reason : str
        ``"missing on disk"``, ``"failed its crc32c checksum"`` or ``"could not be decoded (...)"``.
    """
    dense = _dense(arr)
    grid = tuple(int(n) for n in arr.cdata_shape)
    if not grid or not all(grid):
        return
    if int(np.prod(grid[1:], dtype=np.int64)) > 1:  # chunked across columns too (the head)
        for i, coord in enumerate(np.ndindex(*grid)):
            reason = _chunk_problem(arr, coord, dense)
            if reason:
                yield coord, reason
            if progress is not None:
                progress(i + 1)
        return
    n = int(arr.shape[0])
    step = int(arr.chunks[0])
    n_chunks = grid[0] if rows is None else min(grid[0], -(-int(rows) // step))
    row_bytes = max(int(np.prod(arr.shape[1:], dtype=np.int64)) * max(arr.dtype.itemsize, 8), 1)
    per_block = min(max(1, _SCAN_BYTES // max(row_bytes * step, 1)), SCAN_CHUNKS)
    tail = (0,) * (len(grid) - 1)
    for first in range(0, n_chunks, per_block):
        last = min(first + per_block, n_chunks)
        absent = {k for k in range(first, last) if _chunk_on_disk(arr, (k, *tail)) is False}
        if dense:
            for k in sorted(absent):
                yield k, "missing on disk"
        try:
            block = arr[first * step : min(last * step, n)]
        except Exception:  # noqa: BLE001 - locate the damaged chunks one by one
            for k in range(first, last):
                if k in absent:
                    continue
                reason = _chunk_problem(arr, (k, *tail), dense=False)
                if reason:
                    yield k, reason
        else:
            if on_block is not None and not absent:
                on_block(first * step, block)
            del block
        if progress is not None:
            progress(last)


def _chunk_problem(arr, coord, dense: bool) -> str | None:
    if _chunk_on_disk(arr, coord) is False:
        return "missing on disk" if dense else None
    selection = tuple(
        slice(c * s, min((c + 1) * s, n)) for c, s, n in zip(coord, arr.chunks, arr.shape)
    )
    try:
        arr[selection]
    except OSError as exc:
        if exc.errno is not None:
            raise
        return f"could not be decoded ({type(exc).__name__}: {_one_line(exc)})"
    except Exception as exc:  # noqa: BLE001 - whatever the codecs raise marks damage
        if _CHECKSUM_ERROR in str(exc):
            return "failed its crc32c checksum"
        return f"could not be decoded ({type(exc).__name__}: {_one_line(exc)})"
    return None
