"""Reading a feature store: :func:`open_store` and the read-only :class:`FeatureStore`."""

from __future__ import annotations

import difflib
import os
import warnings
from pathlib import Path

import numpy as np

from .._head import Head
from ..exceptions import IncompleteSplitError, StoreError, require
from ._blocks import block_rows_for, iter_blocks
from ._schema import _DENSE, _HEAD, _MARKER_ATTR, _RERUN, _RESERVED, _SCORES, SCHEMA_VERSION, _zarr

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
            splits = self.splits
            close = difflib.get_close_matches(str(split), splits, n=1, cutoff=0.6)
            if close:  # a typo of an existing split, not a split still to extract
                raise StoreError(
                    f"{self.path} has no split {split!r}: did you mean {close[0]!r}? "
                    f"(splits: {', '.join(splits)})"
                ) from None
            raise StoreError(
                f"{self.path} has no split {split!r} (splits: {', '.join(splits) or 'none'}); "
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
        yield from iter_blocks(arr, max(int(arr.chunks[0]), 1), prefetch=False)


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

