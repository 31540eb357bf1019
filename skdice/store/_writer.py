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
from ._integrity import SCAN_CHUNKS, checksummed_compressors, flag_compressors, read_checked, stored_chunks
from ._lock import SplitLock
from ._manifest import (
    DIGEST,
    DIGEST_KEYS,
    DIGEST_SIZE,
    DIGESTS,
    LEGACY_ROW_STRIDE,
    MANIFEST_ATTR,
    ROW_STRIDE,
    STRIDE_ATTR,
    chunk_digests,
    head_fingerprint,
    read_manifest,
    split_record,
    store_record,
    write_manifest,
)
from ._reader import open_store
from ._schema import (
    CHECKSUM,
    CHECKSUM_ATTR,
    CREATE_WAIT_S,
    HEAD,
    MANIFEST,
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
    parameters_sha256: str | None = None,
) -> "StoreWriter":
    """Create a feature store, or open an existing one of the same model to add splits.

    An existing store is the same model's when its recorded parameters
    fingerprint, preprocessing and feature layer equal this call's (the
    ``model`` name and ``weights_sha256`` are then recorded for information
    only); a store without a fingerprint, or a call without one, falls back to
    comparing the model name, weights hash and preprocessing. The head must
    be equal in both cases.

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
    parameters_sha256 : str, default=None
        Fingerprint of the model's parameters and buffers
        (``skdice.extract`` computes it from the state dict).

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
        identity = {"model": model, "weights_sha256": weights_sha256, "preprocessing": preprocessing,
                    "feature_layer": feature_layer, "parameters_sha256": parameters_sha256}
        found = _reopen_store(path, model, weights_sha256, weight, bias, preprocessing, identity)
        if found is not None:
            return found
        return _new_store(path, model, weight, bias, preprocessing, weights_sha256, feature_layer,
                          parameters_sha256)
    finally:
        creation.release()


def _reopen_store(path, model, weights_sha256, weight, bias, preprocessing=None,
                  identity=None) -> "StoreWriter | None":
    """A writer on the existing store at ``path`` if it holds this model; None if there is none."""
    zarr = import_zarr()
    if path.exists():
        if path.is_dir() and not any(path.iterdir()):
            return None  # an empty folder is as good as none
        if _half_created(path):
            return None  # a creation killed before its marker: made again from the start
        else:
            store = open_store(path)
            _check_identity(path, store.attrs, identity or {"model": model, "weights_sha256": weights_sha256,
                                                            "preprocessing": preprocessing})
            old = store.head
            if old.weight.shape != weight.shape or not (
                np.array_equal(old.weight, weight) and np.array_equal(old.bias, bias)
            ):
                raise StoreError(
                    f"{path} holds a head of shape {old.weight.shape} with other values than this "
                    f"model's head {weight.shape}: write to another store path."
                )
            if read_manifest(path / MANIFEST, "the store's manifest", f"restore {path} from a copy") is None:
                # a store made before manifests: its head was just found equal to this model's
                write_manifest(path / MANIFEST, store_record(model, weight, bias, weights_sha256))
            return StoreWriter(path, zarr.open_group(str(path), mode="r+"))
    return None


def _half_created(path) -> bool:
    """Whether ``path`` is a store whose creation was killed before its marker (only what ``_new_store`` writes)."""
    try:
        names = {child.name for child in path.iterdir()}
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return (names <= {"zarr.json", HEAD, MANIFEST} and isinstance(meta, dict) and meta.get("node_type") == "group"
            and MARKER_ATTR not in (meta.get("attributes") or {}))


def _check_identity(path, recorded, wanted) -> None:
    """Refuse to extend the store at ``path`` with another model than the one its ``recorded`` attributes name.

    With a parameters fingerprint on both sides the content decides (fingerprint,
    preprocessing, feature layer); the name and weights hash are information.
    Otherwise (a store or a call without one) the name, weights hash and
    preprocessing are compared, as before fingerprints.
    """
    def canon(value):
        return json.loads(json.dumps(value)) if value is not None else None

    old_pre, new_pre = recorded.get("preprocessing"), canon(wanted.get("preprocessing"))
    same_pre = _comparable_preprocessing(old_pre, new_pre) == _comparable_preprocessing(new_pre, old_pre)
    if recorded.get("parameters_sha256") and wanted.get("parameters_sha256"):
        diff = [f"{what} ({json.dumps(recorded.get(key))} in the store, {json.dumps(new)} in this run)"
                for what, key, new in (
                    ("parameters fingerprint", "parameters_sha256", wanted["parameters_sha256"]),
                    ("preprocessing", "preprocessing", new_pre),
                    ("feature layer", "feature_layer", wanted.get("feature_layer")))
                if (recorded.get(key) != new if key != "preprocessing" else not same_pre)]
        if diff:
            raise StoreError(
                f"{path} holds features of model {recorded.get('model')!r} that this run ({wanted['model']!r}) "
                f"would not reproduce; what differs: {'; '.join(diff)}: write to another store path."
            )
        return
    note = ("" if recorded.get("parameters_sha256") or not wanted.get("parameters_sha256") else
            " (the store was written before skdice recorded a fingerprint of the model's parameters, so its "
            "model is known by its name and weights file only)")
    if recorded.get("model") != wanted["model"] or recorded.get("weights_sha256") != wanted.get("weights_sha256"):
        raise StoreError(
            f"{path} holds features of model {recorded.get('model')!r} (weights sha256 "
            f"{recorded.get('weights_sha256')}), not {wanted['model']!r} (weights sha256 "
            f"{wanted.get('weights_sha256')}){note}: write to another store path."
        )
    if old_pre is not None and new_pre is not None and not same_pre:
        # the same network fed differently gives other features: never mix them
        raise StoreError(
            f"{path} holds features of {recorded.get('model')!r} made with another preprocessing "
            f"({json.dumps(old_pre)}) than this run's ({json.dumps(new_pre)}){note}: write to another store path."
        )


#: preprocessing steps that act on each pixel alone: a resize before only these one is the identity
#: on images already at the recorded input size
_PIXELWISE = {"ConvertRGB", "ToTensor", "Normalize"}


def _comparable_preprocessing(pre, other):
    """The preprocessing record ``pre`` as compared with ``other`` (a store's and a run's, JSON-able).

    The ``input_size`` (the shape the network saw, recorded by extraction) is
    compared only when both records have one; where they agree, a resize to
    that size followed by pixel-wise steps only is left out: it does nothing
    to images already of that size, so it is not another preprocessing.
    """
    if not isinstance(pre, dict):
        return pre
    size = pre.get("input_size") if isinstance(other, dict) and "input_size" in other else None
    out = {k: v for k, v in pre.items() if k != "input_size" or size is not None}
    steps = out.get("steps")
    if isinstance(size, list) and len(size) >= 2 and isinstance(steps, list):
        names = [step.get("name") if isinstance(step, dict) else None for step in steps]
        resizes = [i for i, name in enumerate(names) if name == "Resize"]
        if (len(resizes) == 1 and steps[resizes[0]].get("size") == size[-2:]
                and set(names) - {"Resize"} <= _PIXELWISE):
            out["steps"] = steps[:resizes[0]] + steps[resizes[0] + 1:]
    return out


def _new_store(path, model, weight, bias, preprocessing, weights_sha256, feature_layer,
               parameters_sha256=None) -> "StoreWriter":
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
    write_manifest(path / MANIFEST, store_record(model, weight, bias, weights_sha256))
    # The marker attribute goes last: a store interrupted before it is not a store.
    group.attrs.update(
        {
            "skdice_version": __version__,
            "model": str(model),
            "weights_sha256": weights_sha256,
            "preprocessing": json.loads(json.dumps(preprocessing)) if preprocessing is not None else None,
            "feature_layer": feature_layer,
            "parameters_sha256": parameters_sha256,
            "n_features": int(m),
            "n_classes": int(c),
            CHECKSUM_ATTR: CHECKSUM,
            MARKER_ATTR: SCHEMA_VERSION,
        }
    )
    return StoreWriter(path, group)


def _create_digests(group, n_chunks: int) -> None:
    """The per-chunk digests of a split being written: one chunk of it per row chunk."""
    group.create_array(
        DIGESTS, shape=(n_chunks, len(DIGEST_KEYS), DIGEST_SIZE), chunks=(1, len(DIGEST_KEYS), DIGEST_SIZE),
        dtype="uint8", fill_value=0, compressors=flag_compressors(),
    )


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
                        f"({'; '.join(diff)} in this run): use another split name, or delete the "
                        f"folder {self.path / split} to start it again."
                    )
                if DIGESTS not in existing and attrs.get("complete") is not True:
                    _create_digests(existing, n_chunks)  # started by a skdice without manifests
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
        _create_digests(group, n_chunks)
        group.attrs.update({**json.loads(json.dumps(extra_attrs)), **wanted,
                            CHECKSUM_ATTR: CHECKSUM, STRIDE_ATTR: ROW_STRIDE, "complete": False})
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
        self._digests = group[DIGESTS] if DIGESTS in group else None
        # a split keeps the stride it was started with (one begun by an older skdice: 32)
        self._stride = int(attrs.get(STRIDE_ATTR, LEGACY_ROW_STRIDE))

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
        if self._digests is not None:  # for the manifest, kept across a resume
            self._digests[index] = chunk_digests(index, dict(zip(SPLIT_ARRAYS, (features, logits, labels, paths))),
                                                 self._stride)
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
        if self.complete:
            return  # a split finished before (with its manifest, or by a skdice without them)
        self._write_manifest()
        self._group.attrs.update({MANIFEST_ATTR: DIGEST, "complete": True})

    def _write_manifest(self) -> None:
        """Assemble the split's manifest from the per-chunk digests and write it, atomically.

        A chunk without a digest (written by a skdice without manifests before
        a resume) is digested from its stored values.
        """
        digests = np.zeros((self.n_chunks, len(DIGEST_KEYS), DIGEST_SIZE), dtype=np.uint8)
        if self._digests is not None:
            for start, block in iter_blocks(self._digests, _FLAG_BLOCK, prefetch=False):
                digests[start : start + block.shape[0]] = block
        for k in np.flatnonzero(~digests.any(axis=(1, 2))):
            start, stop = self.chunk_bounds(int(k))
            values = {name: read_checked(self._arrays[name], slice(start, stop)) for name in SPLIT_ARRAYS}
            digests[k] = chunk_digests(int(k), values, self._stride)
        path = self.store.path
        root = read_manifest(path / MANIFEST, "the store's manifest", f"restore {path} from a copy")
        if root is not None and isinstance(root.get("head"), str):
            head = root["head"]
        else:  # a store made before manifests
            fs = open_store(path)
            head = head_fingerprint(fs.head.weight, fs.head.bias)
        model = str(self.store._group.attrs.get("model", ""))
        layout = {"count": self.n_rows, "chunk_rows": self.chunk_rows, "n_chunks": self.n_chunks,
                  "n_features": self.store.n_features, "n_classes": self.store.n_classes}
        write_manifest(path / self.split / MANIFEST, split_record(self.split, layout, model, head, digests,
                                                                      self._stride))

    def close(self) -> None:
        """Release the split's lock (the data written so far stays for a resume)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

