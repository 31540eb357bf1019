"""Writing a feature store: :func:`create_store`, :class:`StoreWriter` and :class:`SplitWriter`."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np

from .._head import Head
from .._version import __version__
from ..exceptions import IncompleteSplitError, StoreError
from ._blocks import iter_blocks
from ._integrity import SCAN_CHUNKS, checksummed_compressors, flag_compressors, stored_chunks
from ._lock import SplitLock
from ._reader import open_store
from ._schema import (
    CHECKSUM,
    CHECKSUM_ATTR,
    CREATE_WAIT_S,
    HEAD,
    MARKER_ATTR,
    RERUN,
    SPLIT_ARRAYS,
    SCHEMA_VERSION,
    split_schema,
    validate_split_name,
    import_zarr,
)

# --------------------------------------------------------------------------- writers

#: Store every chunk, even one equal to the fill value (see docs/store.md, "Integrity").
_WRITE_ALL = {"write_empty_chunks": True}

#: Flags read per block when looking for the chunks still to write. Each flag is
#: its own Zarr chunk and a read costs about 2 KiB per chunk while it lasts, so
#: a split declaring 10**12 rows (about 10**9 flags) read in one go would need
#: terabytes; a block of 4096 flags takes about 9 MiB, whatever the split's size.
_FLAG_BLOCK = SCAN_CHUNKS


def _head_arrays(head) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(head, Head):
        head = Head(*head) if isinstance(head, tuple) else Head(head)
    return head.weight, head.bias


def create_store(
    path,
    *,
    model: str,
    head,
    preprocessing: dict | None = None,
    weights_sha256: str | None = None,
    feature_layer: str | None = None,
) -> "StoreWriter":
    """Create a feature store, or open an existing one of the same model to add splits.

    Parameters
    ----------
    path : str or os.PathLike
        Folder of the store.
    model : str
        Model name recorded in the root attributes.
    head : Head or tuple (weight (m, C), bias (C,))
        The classifier head, in the paper's orientation.
    preprocessing : dict, default=None
        JSON-able description of the input preprocessing.
    weights_sha256 : str, default=None
        SHA-256 of the weights file, when there is one.
    feature_layer : str, default=None
        Name of the layer whose input is the penultimate feature.

    Returns
    -------
    StoreWriter

    Raises
    ------
    StoreError
        When ``path`` exists and is not a skdice store, or holds another model or head.
    """
    path = Path(path)
    weight, bias = _head_arrays(head)
    if path.parent.exists() and not path.parent.is_dir():
        raise StoreError(f"cannot create the store {path}: {path.parent} is a file, not a folder.")
    path.parent.mkdir(parents=True, exist_ok=True)  # the lock files live beside the store
    # Two extractions starting on a new store at once (say `test` and `noise`) must
    # not both create it (the second would wipe the first's split), nor see it half made.
    creation = SplitLock(path, "", path=path.parent / f"{path.name}.create.lock", what=f"store {path}")
    deadline = time.monotonic() + CREATE_WAIT_S
    while True:
        try:
            creation.acquire()
            break
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        found = _reopen_store(path, model, weights_sha256, weight, bias, preprocessing)
        if found is not None:
            return found
        return _new_store(path, model, weight, bias, preprocessing, weights_sha256, feature_layer)
    finally:
        creation.release()


def _reopen_store(path, model, weights_sha256, weight, bias, preprocessing=None) -> "StoreWriter | None":
    """A writer on the existing store at ``path`` if it holds this model; None if there is none."""
    zarr = import_zarr()
    if path.exists():
        if path.is_dir() and not any(path.iterdir()):
            return None  # an empty folder is as good as none
        else:
            store = open_store(path)
            if store.model != model or store.attrs.get("weights_sha256") != weights_sha256:
                raise StoreError(
                    f"{path} holds features of model {store.model!r} (weights sha256 "
                    f"{store.attrs.get('weights_sha256')}), not {model!r} (weights sha256 "
                    f"{weights_sha256}): write to another --out."
                )
            recorded = store.attrs.get("preprocessing")
            wanted = json.loads(json.dumps(preprocessing)) if preprocessing is not None else None
            if recorded is not None and wanted is not None and recorded != wanted:
                # the same network fed differently gives other features: never mix them
                raise StoreError(
                    f"{path} holds features of {store.model!r} made with another preprocessing "
                    f"({json.dumps(recorded)}) than this run's ({json.dumps(wanted)}): "
                    "write to another --out."
                )
            old = store.head
            if old.weight.shape != weight.shape or not (
                np.array_equal(old.weight, weight) and np.array_equal(old.bias, bias)
            ):
                raise StoreError(
                    f"{path} holds a head of shape {old.weight.shape} with other values than this "
                    f"model's head {weight.shape}: write to another --out."
                )
            return StoreWriter(path, zarr.open_group(str(path), mode="r+"))
    return None


def _new_store(path, model, weight, bias, preprocessing, weights_sha256, feature_layer) -> "StoreWriter":
    zarr = import_zarr()
    group = zarr.open_group(str(path), mode="w")
    m, c = weight.shape
    head_group = group.create_group(HEAD)
    # Every chunk carries a crc32c and is written even when it equals the fill
    # value (an all-zero bias), so readers can tell a missing chunk from zeros.
    w_arr = head_group.create_array(
        "weight", shape=(m, c), chunks=(m, min(c, max(1, 2**22 // max(m, 1)))), dtype="float32",
        compressors=checksummed_compressors(), config=_WRITE_ALL,
    )
    w_arr[...] = weight
    b_arr = head_group.create_array(
        "bias", shape=(c,), chunks=(c,), dtype="float32",
        compressors=checksummed_compressors(), config=_WRITE_ALL,
    )
    b_arr[...] = bias
    # The marker attribute goes last: a store interrupted before it is not a store.
    group.attrs.update(
        {
            "skdice_version": __version__,
            "model": str(model),
            "weights_sha256": weights_sha256,
            "preprocessing": json.loads(json.dumps(preprocessing)) if preprocessing is not None else None,
            "feature_layer": feature_layer,
            "n_features": int(m),
            "n_classes": int(c),
            CHECKSUM_ATTR: CHECKSUM,
            MARKER_ATTR: SCHEMA_VERSION,
        }
    )
    return StoreWriter(path, group)


class StoreWriter:
    """Writable handle on a store; made by :func:`create_store`, used by the extraction stage.

    Parameters
    ----------
    path : pathlib.Path
    group : zarr.Group
        The root group opened for writing.
    """

    def __init__(self, path: Path, group):
        self.path = Path(path)
        self._group = group
        attrs = group.attrs.asdict()
        self.n_features = int(attrs["n_features"])
        self.n_classes = int(attrs["n_classes"])

    @classmethod
    def open(cls, path) -> "StoreWriter":
        """Open an existing store for writing (for ranks other than the one that created it).

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        StoreWriter
        """
        open_store(path)  # validates
        return cls(Path(path), import_zarr().open_group(str(path), mode="r+"))

    def prepare_split(
        self,
        split: str,
        n_rows: int,
        *,
        source: str,
        chunk_rows: int,
        lock: bool = True,
        settings: dict | None = None,
        extra_attrs: dict | None = None,
    ) -> "SplitWriter":
        """Pre-size a split's arrays, or reopen a started split to resume it.

        A split already present with the same row count, source and chunking
        is resumed: its flagged chunks are kept and only the others are
        pending. A complete split has nothing pending.

        Parameters
        ----------
        split : str
            Split name.
        n_rows : int
            Number of rows the split will hold.
        source : str
            Description of the data source (recorded; must match on resume).
        chunk_rows : int
            Rows per chunk of every array of the split.
        lock : bool, default=True
            Take the split's lock file; a second writer is refused.
        settings : dict, default=None
            JSON-able settings that change the values written (for example
            whether autocast was on); recorded, and a resume must match them.
        extra_attrs : dict, default=None
            More JSON-able split attributes to record when the split is created.

        Returns
        -------
        SplitWriter

        Raises
        ------
        StoreError
            When another process holds the split's lock, or the split exists
            with a different row count, source or chunking.
        """
        validate_split_name(split)
        n_rows, chunk_rows = int(n_rows), int(chunk_rows)
        if n_rows < 0 or chunk_rows < 1:
            raise ValueError(f"n_rows must be >= 0 and chunk_rows >= 1, got {n_rows} and {chunk_rows}.")
        split_lock = SplitLock(self.path, split) if lock else None
        if split_lock is not None:
            split_lock.acquire()
        try:
            group = self._prepare_group(split, n_rows, source, chunk_rows, settings or {}, extra_attrs or {})
        except BaseException:
            if split_lock is not None:
                split_lock.release()
            raise
        return SplitWriter(self, split, group, split_lock)

    def _prepare_group(self, split, n_rows, source, chunk_rows, settings, extra_attrs):
        import_zarr()  # without the store extra: its one-line error, before anything is written
        n_chunks = -(-n_rows // chunk_rows)
        wanted = {
            "source": str(source),
            "count": n_rows,
            "chunk_rows": chunk_rows,
            "n_chunks": n_chunks,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            **json.loads(json.dumps(settings)),
        }
        try:
            existing = self._group[split]
        except KeyError:
            existing = None
        if existing is not None:
            attrs = existing.attrs.asdict()
            if "count" in attrs:  # fully prepared before: resume or refuse
                diff = [
                    f"{key} {attrs.get(key)!r} vs {value!r}"
                    for key, value in wanted.items()
                    if attrs.get(key) != value
                ]
                if diff:
                    raise StoreError(
                        f"split {split!r} of {self.path} was started with other settings "
                        f"({'; '.join(diff)} in this run): use another --split, or delete the "
                        f"folder {self.path / split} to start it again."
                    )
                return existing
            # created but never prepared to the end: start it again
        group = self._group.create_group(split, overwrite=True)
        schema = split_schema(n_rows, chunk_rows, n_chunks, self.n_features, self.n_classes)
        # Every array carries a crc32c after its compressor (Zarr checks it on each
        # decode) and every chunk of it is stored, so readers can tell a missing
        # chunk from one equal to the fill value.
        for name in SPLIT_ARRAYS:
            group.create_array(
                name, shape=schema[name]["shape"], chunks=schema[name]["chunks"],
                dtype=str if name == "paths" else schema[name]["data_type"],
                fill_value=-1 if name == "labels" else None,
                compressors=checksummed_compressors(), config=_WRITE_ALL,
            )
        # One byte per chunk, each its own object: flags of different chunks never
        # share a storage object, so concurrent ranks cannot clobber them. Only
        # flags set to 1 are stored, so counting the files counts the flags.
        group.create_array(
            "written", shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0,
            compressors=flag_compressors(),
        )
        group.attrs.update({**json.loads(json.dumps(extra_attrs)), **wanted,
                            CHECKSUM_ATTR: CHECKSUM, "complete": False})
        return group

    def open_split(self, split: str) -> "SplitWriter":
        """Open a prepared split without locking it (for the other ranks of a multi-process run).

        Parameters
        ----------
        split : str

        Returns
        -------
        SplitWriter
        """
        try:
            group = self._group[split]
        except KeyError:
            raise StoreError(f"split {split!r} of {self.path} has not been prepared.") from None
        if "count" not in group.attrs.asdict():
            raise StoreError(f"split {split!r} of {self.path} has not been prepared.")
        return SplitWriter(self, split, group, None)


class SplitWriter:
    """Chunk-aligned writer of one split; made by :meth:`StoreWriter.prepare_split`.

    Each :meth:`write_chunk` writes one whole row chunk of every array, then
    that chunk's flag. :meth:`finalize` checks every flag and then writes the
    completion marker. A context manager: leaving it releases the lock
    (without finalizing), so an interrupted run can be resumed.
    """

    def __init__(self, store: StoreWriter, split: str, group, lock: SplitLock | None):
        self.store = store
        self.split = split
        self._group = group
        self._lock = lock
        attrs = group.attrs.asdict()
        self.n_rows = int(attrs["count"])
        self.chunk_rows = int(attrs["chunk_rows"])
        self.n_chunks = int(attrs["n_chunks"])
        self._arrays = {name: group[name] for name in (*SPLIT_ARRAYS, "written")}
        # Zarr skips chunks equal to the fill value; writing every chunk lets
        # readers tell a chunk missing on disk from zeros (or labels of -1).
        for name in SPLIT_ARRAYS:
            self._arrays[name] = self._arrays[name].with_config(_WRITE_ALL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def complete(self) -> bool:
        """Whether the completion marker is set."""
        return self._group.attrs.get("complete") is True

    def chunk_bounds(self, index: int) -> tuple[int, int]:
        """Rows ``[start, stop)`` of chunk ``index``."""
        if not 0 <= index < self.n_chunks:
            raise IndexError(f"chunk {index} out of range for {self.n_chunks} chunks.")
        start = index * self.chunk_rows
        return start, min(start + self.chunk_rows, self.n_rows)

    def written_flags(self) -> np.ndarray:
        """Boolean array of shape (n_chunks,): which chunks are fully written.

        One entry per chunk, so it grows with the split (the flags are read in
        blocks, though): :meth:`written_chunks` counts the written chunks and
        :meth:`iter_pending` lists the others in constant memory.
        """
        flags = np.zeros(self.n_chunks, dtype=bool)
        for start, block in iter_blocks(self._arrays["written"], _FLAG_BLOCK, prefetch=False):
            flags[start : start + block.shape[0]] = block != 0
        return flags

    def written_chunks(self) -> int:
        """How many chunks are flagged as written, counted from the flag files in constant memory.

        Only flags set to 1 are stored, so this is the count ``skdice info``
        shows, without reading any flag.
        """
        return stored_chunks(self._arrays["written"])

    def iter_pending(self):
        """Iterate over the indices of the chunks still to write, in order.

        The flags are read block by block (4096 chunks at a time), so memory
        stays constant however many chunks the split declares, and a caller
        that stops early (only the first missing chunk, say) reads only the
        first blocks.

        Yields
        ------
        int
            Index of a chunk whose flag is not set.

        Raises
        ------
        StoreError
            When a flag fails its checksum or cannot be decoded.
        """
        for start, block in iter_blocks(self._arrays["written"], _FLAG_BLOCK, prefetch=False):
            for i in np.flatnonzero(block == 0):
                yield start + int(i)

    def pending(self) -> list[int]:
        """Indices of the chunks still to write, in order.

        The flags are read in blocks (see :meth:`iter_pending`): beyond the
        list returned, one int per pending chunk, memory stays constant.
        """
        return list(self.iter_pending())

    def write_chunk(self, index: int, features, logits, labels, paths) -> None:
        """Write one whole row chunk of every array, then flag it as written.

        Parameters
        ----------
        index : int
            Chunk index.
        features : ndarray of shape (rows, n_features)
        logits : ndarray of shape (rows, n_classes)
        labels : ndarray of shape (rows,)
        paths : sequence of str of length rows
            ``rows`` must equal the chunk's row count (chunk-aligned writes only).
        """
        start, stop = self.chunk_bounds(index)
        rows = stop - start
        features = np.ascontiguousarray(features, dtype=np.float32)
        logits = np.ascontiguousarray(logits, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        paths = np.asarray([str(p) for p in paths], dtype=str)
        expected = {
            "features": (rows, self.store.n_features),
            "logits": (rows, self.store.n_classes),
            "labels": (rows,),
            "paths": (rows,),
        }
        for name, value in zip(SPLIT_ARRAYS, (features, logits, labels, paths)):
            if value.shape != expected[name]:
                raise ValueError(
                    f"chunk {index} of split {self.split!r} needs {name} of shape "
                    f"{expected[name]}, got {value.shape} (writes must cover whole chunks)."
                )
        self._arrays["features"][start:stop] = features
        self._arrays["logits"][start:stop] = logits
        self._arrays["labels"][start:stop] = labels
        self._arrays["paths"][start:stop] = paths
        self._arrays["written"][index] = 1  # only after the data, never before

    def finalize(self) -> None:
        """Write the completion marker, after checking that every chunk is flagged.

        Raises
        ------
        IncompleteSplitError
            When a chunk has not been written.
        """
        # Only the first missing chunks are named: the flags are read no further
        # than the block holding the eleventh, and the total comes from the flag files.
        missing = list(itertools.islice(self.iter_pending(), 11))
        if missing:
            total = max(self.n_chunks - self.written_chunks(), len(missing))
            more = f" ... ({total} in all)" if len(missing) > 10 else ""
            raise IncompleteSplitError(
                f"split {self.split!r} of {self.store.path} still misses chunks {missing[:10]}{more}; {RERUN}."
            )
        self._group.attrs.update({"complete": True})

    def close(self) -> None:
        """Release the split's lock (the data written so far stays for a resume)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

