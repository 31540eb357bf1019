"""Reading an array's rows in blocks of about 8 MiB, with reads kept ahead of the caller."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..exceptions import require
from ._integrity import array_data_type, array_root, read_checked
from ._manifest import array_check

#: Bytes of features read per block by the streaming paths. Reading a store in
#: blocks of 4-8 MiB measured faster than in 32 MiB blocks (and than one store
#: chunk per call): the block is still in cache when it is summed or scored.
_BLOCK_BYTES = 8 * 2**20

#: Blocks being read ahead while the caller consumes one: Zarr decodes each
#: block's chunks in parallel but leaves the cores idle between two reads;
#: two reads in flight keep them busy (measured on 2 cores: the fit's pass at
#: 0.95-0.97x a plain read, against 0.91-0.93x with one read at a time).
_READS_IN_FLIGHT = 2


def block_rows_for(array, target_bytes: int = _BLOCK_BYTES) -> int:
    """Rows per read block: about ``target_bytes`` of rows, a whole number of store chunks.

    Parameters
    ----------
    array : zarr.Array or ndarray of shape (n_rows, n_features)
        The array to read; for a Zarr array the block is a multiple of its row chunk.
    target_bytes : int, default=8 MiB
        Memory one block may take.

    Returns
    -------
    int
        At least one row chunk (one row for an unchunked array).
    """
    row_bytes = max(int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize, 1)
    chunk = int(getattr(array, "chunks", (1,))[0] or 1)
    return max(chunk, int(target_bytes // row_bytes) // chunk * chunk)


def iter_blocks(array, block_rows: int | None = None, *, start: int = 0, prefetch: bool = True, check=None):
    """Read an array's rows block by block, reading the next blocks while the caller works.

    Parameters
    ----------
    array : zarr.Array or ndarray of shape (n_rows, n_features)
    block_rows : int, default=None
        Rows per block; :func:`block_rows_for` by default.
    start : int, default=0
        First row to read (a block boundary when resuming).
    prefetch : bool, default=True
        Keep :data:`_READS_IN_FLIGHT` reads going in background threads while
        the caller works on the current block; at most
        ``_READS_IN_FLIGHT + 1`` blocks are in memory. Closing the generator
        early cancels the reads not yet started.
    check : callable or False, default=None
        Called as ``check(start, block)`` on each block as soon as it is read
        (in the reading thread, so it overlaps the caller's work); it raises
        to refuse the block. By default, for an array of a store's split
        that has a manifest, the manifest's digests of each chunk
        (docs/store.md, "The manifest"), also of the chunks a block cuts when
        ``block_rows`` is not a multiple of the array's chunk (their other
        rows are read for the check); False checks nothing more than the
        crc32c.

    Yields
    ------
    start : int
        Index of the block's first row.
    block : ndarray of shape (rows, n_features)

    Raises
    ------
    StoreError
        When a chunk of a Zarr array fails its checksum or cannot be decoded,
        naming the split, the array, the chunk and the remedy.
    """
    n = int(array.shape[0])
    step = int(block_rows or block_rows_for(array))
    starts = range(int(start), n, step)
    zarr_array = hasattr(array, "metadata") and hasattr(array, "store")
    if check is None and zarr_array:
        # blocks that cut a chunk read the rest of it for the check (docs/store.md, "The manifest")
        check = array_check(array, lambda rows: read_checked(array, rows))
    check = check or None

    def read(s):
        if zarr_array:
            block = read_checked(array, slice(s, min(s + step, n)))
        else:
            block = np.asarray(array[s : min(s + step, n)])
        if check is not None:
            check(s, block)
        return block

    if not prefetch or len(starts) < 2:
        for s in starts:
            yield s, read(s)
        return
    with ThreadPoolExecutor(_READS_IN_FLIGHT, thread_name_prefix="skdice-read") as readers:
        ahead = {i: readers.submit(read, starts[i]) for i in range(min(_READS_IN_FLIGHT, len(starts)))}
        try:
            for i, s in enumerate(starts):
                block = ahead.pop(i).result()
                if i + _READS_IN_FLIGHT < len(starts):
                    ahead[i + _READS_IN_FLIGHT] = readers.submit(read, starts[i + _READS_IN_FLIGHT])
                yield s, block
                del block
        finally:
            for future in ahead.values():
                future.cancel()


class CheckedReads:
    """A Zarr array for ``dask.array.from_array`` whose reads report damage as StoreError.

    Each read of whole rows of a split's array is checked like a block read
    (:func:`iter_blocks`): its chunks' crc32c, and their digests against the
    split's manifest (the rows of a chunk the read cuts are read for the
    check). The check is made in the process that reads (a Dask worker
    included), from the manifest there; a read of some columns only is
    checked for its crc32c alone.
    """

    def __init__(self, arr):
        self.array = arr
        self.shape = tuple(arr.shape)
        self.dtype = arr.dtype
        self.ndim = arr.ndim
        self._check = None

    def __getstate__(self):
        return {**self.__dict__, "_check": None}  # made again where it is read

    def __getitem__(self, selection):
        block = read_checked(self.array, selection)
        rows = _whole_rows(selection, self.shape)
        if rows is not None:
            if self._check is None:
                self._check = array_check(self.array, lambda r: read_checked(self.array, r)) or False
            if self._check:
                self._check(rows.start, block)
        return block

    def __dask_tokenize__(self):
        return ("skdice-store-read", str(array_root(self.array)), self.array.path,
                self.shape, tuple(self.array.chunks), array_data_type(self.array))


def _whole_rows(selection, shape):
    """The rows ``slice(start, stop)`` when ``selection`` takes whole rows in order; None otherwise."""
    selection = selection if isinstance(selection, tuple) else (selection,)
    if not selection or len(selection) > len(shape) or not all(isinstance(s, slice) for s in selection):
        return None
    for s, n in zip(selection[1:], shape[1:]):
        if s.indices(n) != (0, n, 1):
            return None
    start, stop, step = selection[0].indices(shape[0])
    return slice(start, stop) if step == 1 and stop > start else None


def lazy_rows(array, block_rows: int | None = None):
    """A split's Zarr array as a lazy dask array of row blocks, every read checked (:class:`CheckedReads`).

    Parameters
    ----------
    array : zarr.Array of shape (n_rows, n_columns)
        From :meth:`FeatureStore.array`.
    block_rows : int, default=None
        Rows per dask block; :func:`block_rows_for` by default (whole store chunks).

    Returns
    -------
    dask.array.Array
        One block across the columns.
    """
    da = require("dask.array", "dask")
    chunks = (int(block_rows or block_rows_for(array)), *array.shape[1:])
    return da.from_array(CheckedReads(array), chunks=chunks, asarray=True, lock=False,
                         meta=np.empty((0,) * array.ndim, dtype=array.dtype))
