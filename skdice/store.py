"""The feature store: one Zarr group per model, its schema, readers and writer.

Everything downstream of extraction (fit, tune, evaluate) reads penultimate
features through :func:`open_store`; the extraction stage writes them through
:func:`create_store` and :class:`SplitWriter`, so the schema lives in this one
module. The full layout is documented in ``docs/store.md``.

Layout (all arrays are Zarr format 3)::

    <store>/                      root attrs: skdice_store (schema version), skdice_version,
                                  model, weights_sha256, preprocessing, feature_layer,
                                  n_features, n_classes
    <store>/head/weight           (m, C) float32, the paper's orientation
    <store>/head/bias             (C,) float32
    <store>/<split>/              attrs: source, count, chunk_rows, n_chunks, complete, ...
    <store>/<split>/features      (N, m) float32, chunks (chunk_rows, m)
    <store>/<split>/logits        (N, C) float32, chunks (chunk_rows, C)
    <store>/<split>/labels        (N,) int64, -1 = unknown
    <store>/<split>/paths         (N,) variable-length UTF-8 strings
    <store>/<split>/written       (n_chunks,) uint8, one flag per row chunk

Integrity: Zarr returns the fill value for chunks that were never written, so
an interrupted extraction would read back as rows of zeros. A split counts as
complete only once every row chunk is flagged in ``written`` and the split's
``complete`` attribute (the completion marker) has been set, last. Every reader
refuses an incomplete split with :class:`~skdice.exceptions.IncompleteSplitError`.

zarr is imported inside the functions, so ``import skdice`` stays light.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

import numpy as np

from ._head import Head
from .exceptions import IncompleteSplitError, StoreError, require

__all__ = [
    "SCHEMA_VERSION",
    "FeatureStore",
    "StoreWriter",
    "SplitWriter",
    "open_store",
    "create_store",
    "default_chunk_rows",
    "ScoresWriter",
    "open_scores_writer",
    "read_scores",
]

#: Version of the layout above; bumped when readers of an older layout would misread it.
SCHEMA_VERSION = 1

#: Root attribute whose presence (holding the schema version) marks a skdice store.
_MARKER_ATTR = "skdice_store"
_HEAD = "head"
_SPLIT_ARRAYS = ("features", "logits", "labels", "paths")
_DENSE = ("features", "logits")  # every chunk is on disk once a split is complete
_RESERVED = {_HEAD}
_RERUN = "re-run the same `skdice extract` command (it resumes from the last written chunk)"
_CREATE_WAIT_S = 60.0  # how long a writer waits for another process creating the same store


def _zarr():
    return require("zarr", "store")


def _validate_split_name(split: str) -> str:
    if not isinstance(split, str) or not split or split in _RESERVED:
        raise StoreError(f"invalid split name {split!r}: use a non-empty name other than 'head'.")
    if "/" in split or "\\" in split or split.startswith(".") or split.strip() != split:
        raise StoreError(
            f"invalid split name {split!r}: no slashes, no leading dot, no surrounding spaces."
        )
    return split


def default_chunk_rows(n_features: int, n_classes: int, batch_size: int = 1) -> int:
    """Rows per store chunk: about 1 MiB of features and logits, a multiple of the batch.

    Smaller chunks lose less work to an interruption; larger ones compress and
    read better. Being a multiple of ``batch_size`` keeps the batches of a
    resumed run identical to those of an uninterrupted one.

    Parameters
    ----------
    n_features : int
        Feature width m.
    n_classes : int
        Number of classes C.
    batch_size : int, default=1
        Extraction batch size.

    Returns
    -------
    int
        At least ``batch_size`` and at most ``max(1024, batch_size)``.
    """
    batch_size = max(int(batch_size), 1)
    row_bytes = 4 * (int(n_features) + int(n_classes))
    rows = min(2**20 // max(row_bytes, 1), 1024)
    return max(batch_size, rows // batch_size * batch_size)


# --------------------------------------------------------------------------- readers


class FeatureStore:
    """Read-only view of a feature store; use :func:`open_store` to get one.

    Every array accessor refuses a split whose completion marker is missing.

    Attributes
    ----------
    path : pathlib.Path
        The store's folder.
    attrs : dict
        Root attributes (model, weights_sha256, preprocessing, feature_layer, ...).
    """

    def __init__(self, path: Path, group):
        self.path = path
        self._group = group
        self.attrs = dict(group.attrs.asdict())

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, model={self.model!r}, splits={self.splits})"

    @property
    def model(self) -> str:
        """Name of the model whose features the store holds."""
        return str(self.attrs.get("model", ""))

    @property
    def head(self) -> Head:
        """The classifier head, weight ``(m, C)`` in the paper's orientation."""
        try:
            head = self._group[_HEAD]
            weight = head["weight"][...]
            bias = head["bias"][...]
        except KeyError:
            raise StoreError(f"{self.path} has no head/weight and head/bias arrays: not a complete store.") from None
        return Head(weight, bias)

    @property
    def splits(self) -> list[str]:
        """Names of the splits present, complete or not, in sorted order."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # stray non-Zarr files in the folder
            names = [name for name, _ in self._group.groups() if name not in _RESERVED]
        return sorted(names)

    def _split_group(self, split: str):
        try:
            group = self._group[split]
        except KeyError:
            available = ", ".join(self.splits) or "none"
            raise StoreError(
                f"{self.path} has no split {split!r} (splits: {available}); "
                f"write it with `skdice extract ... --split {split}`."
            ) from None
        zarr = _zarr()
        if split in _RESERVED or not isinstance(group, zarr.Group):
            raise StoreError(f"{split!r} in {self.path} is not a split.")
        return group

    def split_info(self, split: str) -> dict:
        """Attributes and progress of one split, without refusing incomplete ones.

        Parameters
        ----------
        split : str

        Returns
        -------
        dict
            ``count`` (rows), ``complete`` (bool), ``source``, ``chunk_rows``,
            ``n_chunks``, ``written_chunks`` (flagged so far), and any other
            attributes the extraction recorded.
        """
        group = self._split_group(split)
        info = dict(group.attrs.asdict())
        info.setdefault("count", 0)
        info["complete"] = bool(info.get("complete", False))
        try:
            flags = group["written"][...]
            info["written_chunks"] = int(np.count_nonzero(flags))
        except (KeyError, ValueError, OSError):
            info["written_chunks"] = 0
        return info

    def score_names(self, split: str) -> dict:
        """Scores written back into a split (``<split>/scores/<name>``) and whether each is complete.

        Parameters
        ----------
        split : str

        Returns
        -------
        dict
            ``{name: complete}`` in sorted order; empty when none were written.
            Read them with :func:`read_scores`.
        """
        group = self._split_group(split)
        try:
            scores = group[_SCORES]
        except KeyError:
            return {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arrays = dict(scores.arrays())
        return {name: arrays[name].attrs.get("complete", True) is True for name in sorted(arrays)}

    def _complete_group(self, split: str):
        group = self._split_group(split)
        attrs = group.attrs.asdict()
        if attrs.get("complete") is not True:
            info = self.split_info(split)
            n_chunks = info.get("n_chunks", "?")
            raise IncompleteSplitError(
                f"split {split!r} in {self.path} is incomplete "
                f"({info['written_chunks']} of {n_chunks} chunks written): its extraction was "
                f"interrupted or is still running; {_RERUN}."
            )
        return group

    def array(self, split: str, name: str):
        """The Zarr array ``<split>/<name>`` of a complete split, for streaming or dask.

        Parameters
        ----------
        split : str
        name : {"features", "logits", "labels", "paths"} or another array of the split

        Returns
        -------
        zarr.Array
        """
        group = self._complete_group(split)
        try:
            arr = group[name]
        except KeyError:
            raise StoreError(f"split {split!r} in {self.path} has no array {name!r}.") from None
        stored = _stored_chunks(arr) if name in _DENSE else arr.nchunks
        if stored < arr.nchunks:
            # complete, yet chunks are gone: an interrupted copy or a deleted file
            # would otherwise read back as rows of zeros
            raise StoreError(
                f"split {split!r} in {self.path} is marked complete but {arr.nchunks - stored} "
                f"of the {arr.nchunks} chunks of {name} are missing on disk (a partial copy or deleted files): "
                f"delete the folder {self.path / split} and re-run `skdice extract` for it."
            )
        return arr

    def features(self, split: str, *, dask: bool = False):
        """Penultimate features of a split.

        Parameters
        ----------
        split : str
        dask : bool, default=False
            Return a lazy dask array instead of loading it: row blocks of about
            8 MiB (whole store chunks, so tasks are not a few KiB each), one
            block across the features.

        Returns
        -------
        ndarray of shape (n_samples, n_features), float32, or dask.array.Array
        """
        arr = self.array(split, "features")
        if dask:
            from .streaming import block_rows_for

            da = require("dask.array", "dask")
            return da.from_zarr(arr, chunks=(block_rows_for(arr), arr.shape[1]))
        return arr[...]

    def logits(self, split: str) -> np.ndarray:
        """Logits of the unmodified head, ndarray of shape (n_samples, n_classes), float32."""
        return self.array(split, "logits")[...]

    def labels(self, split: str) -> np.ndarray:
        """Labels, ndarray of shape (n_samples,), int64; -1 where unknown."""
        return np.asarray(self.array(split, "labels")[...], dtype=np.int64)

    def paths(self, split: str) -> list[str]:
        """The source of each row (a file path, or ``file#index`` for array files)."""
        return [str(p) for p in self.array(split, "paths")[...].tolist()]

    def iter_features(self, split: str):
        """Iterate over a split's features one store chunk at a time.

        Parameters
        ----------
        split : str

        Yields
        ------
        start : int
            Index of the chunk's first row.
        chunk : ndarray of shape (n_rows_in_chunk, n_features), float32
        """
        arr = self.array(split, "features")
        n = arr.shape[0]
        step = max(int(arr.chunks[0]), 1)
        for start in range(0, n, step):
            yield start, arr[start : min(start + step, n)]


def _stored_chunks(arr) -> int:
    """How many of a Zarr array's chunks exist in its store.

    For a local store with the default ``c/i/j`` chunk keys the chunk files are
    counted with ``os.scandir``, several times faster than
    ``zarr.Array.nchunks_initialized`` (which lists and parses every key: 0.13 s
    for 3,125 chunks, a cost every streamed fit would pay per row). Any other
    store or key encoding falls back to ``nchunks_initialized``.
    """
    root = getattr(arr.store, "root", None)
    encoding = arr.metadata.chunk_key_encoding
    if root is None or getattr(encoding, "name", None) != "default" or encoding.separator != "/":
        return int(arr.nchunks_initialized)
    grid = tuple(int(n) for n in arr.cdata_shape)
    base = os.path.join(os.fspath(root), *arr.path.split("/"), "c")

    def count(path, depth):
        # a chunk is a file at depth len(grid) whose every path part is an index in the grid
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            return 0
        total = 0
        last = depth == len(grid) - 1
        for entry in entries:
            if not entry.name.isdigit() or int(entry.name) >= grid[depth]:
                continue
            if last:
                total += entry.is_file()
            elif entry.is_dir():
                total += count(entry.path, depth + 1)
        return total

    return count(base, 0) if grid else int(arr.nchunks_initialized)


def open_store(path) -> FeatureStore:
    """Open a feature store for reading.

    Parameters
    ----------
    path : str or os.PathLike
        Folder written by ``skdice extract``.

    Returns
    -------
    FeatureStore

    Raises
    ------
    StoreError
        When the folder does not exist or is not a skdice feature store.
    """
    zarr = _zarr()
    path = Path(path)
    if not path.exists():
        raise StoreError(f"feature store {path} does not exist; create it with `skdice extract --out {path} ...`.")
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path} is not a feature store (no zarr.json): was it written by `skdice extract`?")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # corrupt metadata, a zarr array instead of a group, ...
        raise StoreError(f"{path} could not be opened as a Zarr group: {exc}") from None
    version = group.attrs.get(_MARKER_ATTR)
    if version is None:
        raise StoreError(f"{path} is a Zarr group but not a skdice feature store (no {_MARKER_ATTR!r} attribute).")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} uses store schema {version!r}; this skdice reads schema {SCHEMA_VERSION}: upgrade skdice."
        )
    return FeatureStore(path, group)


# --------------------------------------------------------------------------- lock


def _lock_path(store: Path, split: str) -> Path:
    # Beside the store, not inside it: Zarr warns about unknown files in a group's folder.
    return store.parent / f"{store.name}.{split}.lock"


def scores_lock(store: Path, split: str, method: str) -> "_SplitLock":
    """The lock file that keeps two scoring runs out of ``<split>/scores/<method>``.

    Parameters
    ----------
    store : Path
    split, method : str

    Returns
    -------
    _SplitLock
        Not yet acquired; ``acquire()`` raises StoreError while another live
        process holds it.
    """
    return _SplitLock(
        store,
        split,
        path=store.parent / f"{store.name}.{split}.scores-{method}.lock",
        what=f"scores {split}/scores/{method} of {store}",
        rerun="re-run the same `skdice score` command (it resumes from the last written block)",
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _SplitLock:
    """An exclusive lock file created with O_CREAT | O_EXCL, holding pid and host.

    A lock left behind by a process that died on this host (its pid is gone)
    is stale and taken over; a lock held by a live process or by another host
    is refused, with the lock file named so the user can delete it.
    """

    def __init__(
        self,
        store: Path,
        split: str,
        *,
        path: Path | None = None,
        what: str | None = None,
        rerun: str = _RERUN,
    ):
        self.path = _lock_path(store, split) if path is None else path
        self.what = f"split {split!r} of {store}" if what is None else what
        self.rerun = rerun
        self._held = False

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner.get("host") == me["host"] and not _pid_alive(int(owner.get("pid", -1))):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                who = f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "an unknown process"
                raise StoreError(
                    f"{self.what} is being written by {who} "
                    f"(lock file {self.path}); a second writer is refused. If no such run is "
                    f"going on, delete the lock file and {self.rerun}."
                ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self._held = True
            return
        raise StoreError(f"could not take the lock {self.path}: it keeps reappearing.")

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


# --------------------------------------------------------------------------- writers


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
    creation = _SplitLock(path, "", path=path.parent / f"{path.name}.create.lock", what=f"store {path}")
    deadline = time.monotonic() + _CREATE_WAIT_S
    while True:
        try:
            creation.acquire()
            break
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        found = _reopen_store(path, model, weights_sha256, weight, bias)
        if found is not None:
            return found
        return _new_store(path, model, weight, bias, preprocessing, weights_sha256, feature_layer)
    finally:
        creation.release()


def _reopen_store(path, model, weights_sha256, weight, bias) -> "StoreWriter | None":
    """A writer on the existing store at ``path`` if it holds this model; None if there is none."""
    zarr = _zarr()
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
    zarr = _zarr()
    from . import __version__

    group = zarr.open_group(str(path), mode="w")
    m, c = weight.shape
    head_group = group.create_group(_HEAD)
    w_arr = head_group.create_array(
        "weight", shape=(m, c), chunks=(m, min(c, max(1, 2**22 // max(m, 1)))), dtype="float32"
    )
    w_arr[...] = weight
    b_arr = head_group.create_array("bias", shape=(c,), chunks=(c,), dtype="float32")
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
            _MARKER_ATTR: SCHEMA_VERSION,
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
        return cls(Path(path), _zarr().open_group(str(path), mode="r+"))

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
        _validate_split_name(split)
        n_rows, chunk_rows = int(n_rows), int(chunk_rows)
        if n_rows < 0 or chunk_rows < 1:
            raise ValueError(f"n_rows must be >= 0 and chunk_rows >= 1, got {n_rows} and {chunk_rows}.")
        split_lock = _SplitLock(self.path, split) if lock else None
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
        zarr = _zarr()
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
        rows = max(n_rows, 1)
        group = self._group.create_group(split, overwrite=True)
        shape_rows = n_rows
        group.create_array(
            "features", shape=(shape_rows, self.n_features), chunks=(min(chunk_rows, rows), self.n_features), dtype="float32"
        )
        group.create_array(
            "logits", shape=(shape_rows, self.n_classes), chunks=(min(chunk_rows, rows), self.n_classes), dtype="float32"
        )
        group.create_array("labels", shape=(shape_rows,), chunks=(min(chunk_rows, rows),), dtype="int64", fill_value=-1)
        group.create_array("paths", shape=(shape_rows,), chunks=(min(chunk_rows, rows),), dtype=str)
        # One uncompressed byte per chunk, each its own object: flags of different
        # chunks never share a storage object, so concurrent ranks cannot clobber them.
        group.create_array(
            "written", shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0, compressors=None
        )
        group.attrs.update({**json.loads(json.dumps(extra_attrs)), **wanted, "complete": False})
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

    def __init__(self, store: StoreWriter, split: str, group, lock: _SplitLock | None):
        self.store = store
        self.split = split
        self._group = group
        self._lock = lock
        attrs = group.attrs.asdict()
        self.n_rows = int(attrs["count"])
        self.chunk_rows = int(attrs["chunk_rows"])
        self.n_chunks = int(attrs["n_chunks"])
        self._arrays = {name: group[name] for name in (*_SPLIT_ARRAYS, "written")}
        # Zarr skips chunks equal to the fill value; writing every chunk of the
        # dense arrays lets readers tell a chunk missing on disk from zeros.
        for name in _DENSE:
            self._arrays[name] = self._arrays[name].with_config({"write_empty_chunks": True})

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
        """Boolean array of shape (n_chunks,): which chunks are fully written."""
        if self.n_chunks == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(self._arrays["written"][...], dtype=bool)

    def pending(self) -> list[int]:
        """Indices of the chunks still to write, in order."""
        return [int(i) for i in np.flatnonzero(~self.written_flags())]

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
        for name, value in zip(_SPLIT_ARRAYS, (features, logits, labels, paths)):
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
        missing = self.pending()
        if missing:
            raise IncompleteSplitError(
                f"split {self.split!r} of {self.store.path} still misses chunks {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}; {_RERUN}."
            )
        self._group.attrs.update({"complete": True})

    def close(self) -> None:
        """Release the split's lock (the data written so far stays for a resume)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None


# --------------------------------------------------------------------------- scores
# Scores written back by skdice.streaming (owner: the scale work). Layout:
#   <store>/<split>/scores/<method>   (N,) float64, chunks (chunk_rows,)
#     attrs: complete (the completion marker, set last), rows_done (rows written
#            so far, in order), chunk_rows, fingerprint (of the fitted detector),
#            method, detector, params
# An array without the ``complete`` attribute was written whole in one call
# (skdice.evaluation.write_scores) and counts as complete.

_SCORES = "scores"


def _validate_score_name(method: str) -> str:
    if not isinstance(method, str) or not method or method.strip() != method:
        raise StoreError(f"invalid score name {method!r}: use a non-empty name without surrounding spaces.")
    if "/" in method or "\\" in method or method.startswith(".") or method.startswith("__"):
        raise StoreError(f"invalid score name {method!r}: no slashes, no leading dot or double underscore.")
    return method


class ScoresWriter:
    """Resumable, in-order writer of ``<split>/scores/<method>``; see :func:`open_scores_writer`.

    Rows are written in whole chunks, in order; after each chunk the
    ``rows_done`` attribute records the progress, and :meth:`finalize` sets the
    ``complete`` marker last. A rerun resumes at ``rows_done``.

    Attributes
    ----------
    n_rows : int
    chunk_rows : int
    rows_done : int
        Rows already written (a rerun starts here).
    """

    def __init__(self, array):
        self._array = array
        attrs = array.attrs.asdict()
        self.n_rows = int(array.shape[0])
        self.chunk_rows = int(attrs["chunk_rows"])
        self.rows_done = int(attrs.get("rows_done", 0))

    @property
    def complete(self) -> bool:
        """Whether the completion marker is set."""
        return self._array.attrs.get("complete") is True

    def write(self, start: int, scores) -> None:
        """Write the scores of rows ``[start, start + len(scores))``.

        Parameters
        ----------
        start : int
            Must equal :attr:`rows_done` (writes are in order) and be a chunk boundary.
        scores : array-like of shape (rows,)
            ``rows`` is a multiple of ``chunk_rows``, or reaches the last row.
        """
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        stop = start + scores.shape[0]
        if start != self.rows_done or start % self.chunk_rows or (
            stop != self.n_rows and stop % self.chunk_rows
        ) or stop > self.n_rows:
            raise ValueError(
                f"scores must be written in order in whole chunks of {self.chunk_rows} rows: "
                f"got rows [{start}, {stop}) with {self.rows_done} of {self.n_rows} done."
            )
        self._array[start:stop] = scores
        self._array.attrs.update({"rows_done": int(stop)})  # only after the data
        self.rows_done = int(stop)

    def finalize(self) -> None:
        """Set the completion marker, after checking that every row was written."""
        if self.rows_done != self.n_rows:
            raise IncompleteSplitError(
                f"scores {self._array.path} hold {self.rows_done} of {self.n_rows} rows; "
                "re-run the same scoring command (it resumes)."
            )
        self._array.attrs.update({"complete": True})


def open_scores_writer(
    path,
    split: str,
    method: str,
    *,
    chunk_rows: int,
    fingerprint: str,
    overwrite: bool = False,
    attrs: dict | None = None,
) -> ScoresWriter:
    """Create ``<split>/scores/<method>`` of a complete split, or reopen it to resume.

    Parameters
    ----------
    path : str or os.PathLike
        The store.
    split : str
        A complete split.
    method : str
        Name of the score array (no slashes).
    chunk_rows : int
        Rows per chunk of the score array (and per write).
    fingerprint : str
        Identifies the fitted detector; a started array is resumed only by the
        same detector and chunking.
    overwrite : bool, default=False
        Start again even when the array exists (complete or written by another
        detector).
    attrs : dict, default=None
        More JSON-able attributes to record when the array is created.

    Returns
    -------
    ScoresWriter
        Its ``complete`` is True when the same detector already scored the split.

    Raises
    ------
    StoreError
        When the array exists, was written by another detector or with another
        chunking, and ``overwrite`` is False.
    """
    zarr = _zarr()
    _validate_score_name(method)
    chunk_rows = int(chunk_rows)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}.")
    n_rows = open_store(path).array(split, "features").shape[0]  # refuses incomplete splits
    group = zarr.open_group(str(path), mode="r+")[split].require_group(_SCORES)
    where = f"{split}/{_SCORES}/{method} in {path}"
    if method in group and not overwrite:
        existing = group[method]
        old = existing.attrs.asdict()
        if "complete" not in old:
            raise StoreError(f"{where} exists (written in one go): pass overwrite=True (--overwrite) to replace it.")
        diff = [
            f"{key} {old.get(key)!r} vs {value!r}"
            for key, value in (("fingerprint", fingerprint), ("chunk_rows", chunk_rows))
            if old.get(key) != value
        ]
        if existing.shape != (n_rows,):
            diff.append(f"rows {existing.shape[0]} vs {n_rows}")
        if diff:
            raise StoreError(
                f"{where} was written by another detector or settings ({'; '.join(diff)} in this run): "
                "pass overwrite=True (--overwrite) to replace it, or choose another name."
            )
        return ScoresWriter(existing)
    array = group.create_array(
        method,
        shape=(n_rows,),
        chunks=(max(1, min(chunk_rows, max(n_rows, 1))),),
        dtype="float64",
        overwrite=True,
    )
    array.attrs.update(
        {
            **json.loads(json.dumps(attrs or {})),
            "chunk_rows": chunk_rows,
            "fingerprint": str(fingerprint),
            "rows_done": 0,
            "complete": False,
        }
    )
    return ScoresWriter(array)


def read_scores(path, split: str, method: str) -> np.ndarray:
    """Read ``<split>/scores/<method>``, refusing scores whose writing was interrupted.

    Parameters
    ----------
    path : str, os.PathLike or FeatureStore
    split : str
    method : str

    Returns
    -------
    ndarray of shape (n_samples,), float64

    Raises
    ------
    StoreError
        When there are no such scores.
    IncompleteSplitError
        When their writing was interrupted.
    """
    store = path if isinstance(path, FeatureStore) else open_store(path)
    group = store._split_group(split)
    try:
        array = group[_SCORES][method]
    except KeyError:
        raise StoreError(f"{store.path} has no scores {split}/{_SCORES}/{method}.") from None
    attrs = array.attrs.asdict()
    if attrs.get("complete", True) is not True:
        raise IncompleteSplitError(
            f"scores {split}/{_SCORES}/{method} in {store.path} are incomplete "
            f"({attrs.get('rows_done', 0)} of {array.shape[0]} rows): re-run the same scoring command."
        )
    return np.asarray(array[...], dtype=np.float64)
