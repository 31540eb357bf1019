"""Reading a feature store: :func:`open_store` and the read-only :class:`FeatureStore`."""

from __future__ import annotations

import difflib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from .._head import Head
from ..exceptions import IncompleteSplitError, StoreError
from ._blocks import iter_blocks, lazy_rows
from ._split import SplitFeatures
from ._integrity import (
    check_stored_array,
    array_data_type,
    metadata_error,
    metadata_file,
    open_node,
    read_checked,
    stored_chunks,
)
from ._manifest import (
    ChunkDigests,
    MANIFEST_ATTR,
    digest_check,
    head_fingerprint,
    identity_problems,
    read_manifest,
    split_problems,
)
from ._schema import (
    CHECKSUM,
    CHECKSUM_ATTR,
    HEAD,
    MANIFEST,
    MARKER_ATTR,
    RERUN,
    RESERVED,
    SCORES,
    SCHEMA_VERSION,
    is_count,
    score_schema,
    split_schema,
    validate_split_name,
    import_zarr,
)

__all__ = ["FeatureStore", "open_store"]

# --------------------------------------------------------------------------- readers


class FeatureStore:
    """Read-only view of a feature store; use :func:`open_store` to get one.

    Every array accessor refuses a split whose completion marker is missing,
    and checks each array before returning it: its data type, shape and
    chunking against the schema, every chunk on disk, and the crc32c codec on
    arrays written with checksums (docs/store.md, "Integrity"). Reads verify
    each chunk's checksum; a damaged chunk raises
    :class:`~skdice.exceptions.StoreError` naming the split, the array and
    the remedy.

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
        self._manifests, self._identity_checked = {}, False  # split ("" for the store) -> manifest

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, model={self.model!r}, splits={self.splits})"

    @property
    def model(self) -> str:
        """Name of the model whose features the store holds."""
        return str(self.attrs.get("model", ""))

    @property
    def checksums(self) -> bool:
        """Whether the head was written with crc32c checksums (stores made since they exist)."""
        return self.attrs.get(CHECKSUM_ATTR) == CHECKSUM

    @property
    def head(self) -> Head:
        """The classifier head, weight ``(m, C)`` in the paper's orientation.

        Checked against the fingerprint in the store's manifest, when it has one.
        """
        weight, bias = self.head_values()
        problem = self.head_problem(weight, bias)
        if problem:
            raise StoreError(problem)
        return Head(weight, bias)

    def head_values(self) -> tuple[np.ndarray, np.ndarray]:
        """The head's weight and bias decoded and checked, not yet against the manifest (for ``verify``)."""
        weight, bias = self._head_arrays()
        return read_checked(weight), read_checked(bias)

    def head_problem(self, weight, bias) -> str | None:
        """Why the decoded head disagrees with the store's manifest (None when it agrees or there is none)."""
        record = self.manifest()
        if record is None or head_fingerprint(weight, bias) == record.get("head"):
            return None
        return (
            f"the head of {self.path} does not match the fingerprint its manifest recorded when the store "
            f"was created ({record.get('head')}): the head was replaced or edited; the head is written "
            f"once, when the store is created: restore {self.path} from a copy, or extract into a new "
            "store."
        )

    def manifest(self, split: str | None = None) -> dict | None:
        """The manifest of a split, or of the store when ``split`` is None (docs/store.md, "The manifest").

        Parameters
        ----------
        split : str, default=None

        Returns
        -------
        dict or None
            Its attributes; None for a store or split written before manifests.

        Raises
        ------
        StoreError
            When the manifest is damaged, or missing from a split that records one.
        """
        key = "" if split is None else split
        if key not in self._manifests:
            if split is None:
                record = read_manifest(self.path / MANIFEST, "the store's manifest", f"restore {self.path} from a copy")
            else:
                remedy = f"delete the folder {self.path / split} and re-run `skdice extract` for it"
                record = read_manifest(self.path / split / MANIFEST, f"the manifest of split {split!r}", remedy)
                if record is None and self.split_group(split).attrs.get(MANIFEST_ATTR) is not None:
                    raise StoreError(
                        f"split {split!r} of {self.path} records a manifest but "
                        f"{self.path / split / MANIFEST / 'zarr.json'} is missing (a partial copy or a deleted "
                        f"file): {remedy}."
                    )
            self._manifests[key] = record
        return self._manifests[key]

    def identity_problems(self) -> list[str]:
        """How the root attributes disagree with the store's manifest (the model renamed, say)."""
        return identity_problems(self)

    def split_manifest_problems(self, split: str, layout: dict) -> list[str]:
        """How a split disagrees with its manifest's counts, head and model (no chunk is read).

        Parameters
        ----------
        split : str
        layout : dict
            From :meth:`layout`.

        Returns
        -------
        list of str
            One message per problem; empty when the split agrees or has no manifest.
        """
        return split_problems(self, split, layout)

    def _check_manifests(self, split: str, layout: dict) -> None:
        problems = [] if self._identity_checked else self.identity_problems()
        problems = problems or self.split_manifest_problems(split, layout)
        if problems:
            raise StoreError(problems[0])
        self._identity_checked = True

    def chunk_digests(self, split: str, name: str) -> "ChunkDigests | None":
        """The manifest's digests of ``<split>/<name>``, to check blocks as they are read; None without one."""
        record = self.manifest(split)
        if record is None or name not in record.get("arrays", ()):
            return None
        hexes = record.get("chunks", {}).get(name) if isinstance(record.get("chunks"), dict) else None
        return ChunkDigests(name, hexes, record.get("chunk_rows", 1))

    def digest_check(self, split: str, name: str):
        """A ``check(start, block)`` for :func:`iter_blocks` that refuses a chunk its manifest disowns.

        Returns None when the split has no manifest. The error names the split,
        the array, the chunk and the remedy.
        """
        return digest_check(self.path, split, name, self.manifest(split))

    def _read_array(self, split: str, name: str) -> np.ndarray:
        arr = self.array(split, name)
        values = read_checked(arr)
        check = self.digest_check(split, name)
        if check is not None:
            check(0, values)
        return values

    @property
    def head_shape(self) -> tuple[int, int]:
        """``(m, C)`` of the head, from its checked metadata (no chunk is read)."""
        weight, _ = self._head_arrays()
        return tuple(int(n) for n in weight.shape)

    @property
    def group(self):
        """The store's root Zarr group, opened read-only (for the package's own checks).

        Reading arrays through it skips the checks :meth:`array` makes: use
        :meth:`array` and the accessors for data.
        """
        return self._group

    def widths(self) -> tuple[int, int]:
        """``(n_features, n_classes)`` as the root attributes record them, checked.

        Returns
        -------
        tuple of int

        Raises
        ------
        StoreError
            When the root attributes do not hold two positive integers.
        """
        m, c = self.attrs.get("n_features"), self.attrs.get("n_classes")
        if not (is_count(m, 1) and is_count(c, 1)):
            raise StoreError(
                f"{self.path / 'zarr.json'} records n_features {m!r} and n_classes {c!r}, not "
                f"positive integers: the metadata was edited or damaged; restore {self.path} from a copy."
            )
        return m, c

    def _head_arrays(self):
        zarr = import_zarr()
        try:
            head = open_node(self._group, HEAD, self.path, HEAD)
            if not isinstance(head, zarr.Group):
                raise KeyError(HEAD)
            weight = open_node(head, "weight", self.path, f"{HEAD}/weight")
            bias = open_node(head, "bias", self.path, f"{HEAD}/bias")
            if not (isinstance(weight, zarr.Array) and isinstance(bias, zarr.Array)):
                raise KeyError(HEAD)
        except KeyError:
            raise StoreError(f"{self.path} has no head/weight and head/bias arrays: not a complete store.") from None
        m, c = self.widths()
        check_stored_array(weight, shape=(m, c), data_type="float32", checksum=self.checksums)
        check_stored_array(bias, shape=(c,), data_type="float32", checksum=self.checksums)
        return weight, bias

    @property
    def splits(self) -> list[str]:
        """Names of the splits present, complete or not, in sorted order.

        A split whose ``zarr.json`` is damaged is listed too (reading it then
        names the file).
        """
        names = []
        try:
            entries = list(os.scandir(self.path))
        except OSError:
            entries = None
        if entries is None:  # pragma: no cover - open_store only opens local folders
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # stray non-Zarr files in the folder
                return sorted(name for name, _ in self._group.groups() if name not in RESERVED)
        for entry in entries:
            if entry.name in RESERVED or not entry.is_dir() or _node_type(entry.path) not in ("group", None):
                continue
            names.append(entry.name)
        return sorted(names)

    def split_group(self, split: str):
        """The Zarr group of a split, complete or not (its arrays are not checked).

        Parameters
        ----------
        split : str

        Returns
        -------
        zarr.Group

        Raises
        ------
        StoreError
            For a name that is not a split of the store (with the nearest
            split's name when one is close).
        """
        if isinstance(split, str) and split in RESERVED:
            raise StoreError(f"{split!r} in {self.path} is not a split.")
        validate_split_name(split)  # before the name reaches a path
        try:
            group = open_node(self._group, split, self.path, split)
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
                f"extract it into this store as split {split!r} (`skdice extract`)."
            ) from None
        zarr = import_zarr()
        if not isinstance(group, zarr.Group):
            raise StoreError(f"{split!r} in {self.path} is not a split.")
        return group

    def layout(self, split: str, group=None) -> dict:
        """A split's row count and chunking, checked for agreement with each other and the root.

        Parameters
        ----------
        split : str
        group : zarr.Group, default=None
            The split's group when the caller has it (:meth:`split_group`).

        Returns
        -------
        dict
            ``count``, ``chunk_rows``, ``n_chunks``, ``n_features``,
            ``n_classes`` and ``checksum`` (whether the split's arrays carry
            crc32c checksums).

        Raises
        ------
        StoreError
            When the split's attributes are not integers, disagree with each
            other or with the root.
        """
        if group is None:
            group = self.split_group(split)
        attrs = group.attrs.asdict()
        m, c = self.widths()
        count, chunk_rows, n_chunks = attrs.get("count"), attrs.get("chunk_rows"), attrs.get("n_chunks")
        where = metadata_file(self.path, split)
        remedy = f"delete the folder {self.path / split} and re-run `skdice extract` for it"
        if not (is_count(count) and is_count(chunk_rows, 1) and is_count(n_chunks)):
            raise StoreError(
                f"{where} records count {count!r}, chunk_rows {chunk_rows!r} and n_chunks "
                f"{n_chunks!r}, not the integers a split needs: the metadata was edited or damaged; {remedy}."
            )
        if n_chunks != -(-count // chunk_rows):
            raise StoreError(
                f"{where} records count {count}, chunk_rows {chunk_rows} and n_chunks {n_chunks}, "
                f"which disagree ({count} rows make {-(-count // chunk_rows)} chunks): the metadata "
                f"was edited or damaged; {remedy}."
            )
        for key, root_value in (("n_features", m), ("n_classes", c)):
            if attrs.get(key, root_value) != root_value:
                raise StoreError(
                    f"{where} records {key} {attrs.get(key)!r} but the store's head has {root_value}: "
                    f"the metadata was edited or damaged; {remedy}."
                )
        return {"count": count, "chunk_rows": chunk_rows, "n_chunks": n_chunks, "n_features": m,
                "n_classes": c, "checksum": attrs.get(CHECKSUM_ATTR) == CHECKSUM}

    def split_info(self, split: str) -> dict:
        """Attributes and progress of one split, without refusing incomplete ones.

        Parameters
        ----------
        split : str

        Returns
        -------
        dict
            ``count`` (rows), ``complete`` (bool), ``source``, ``chunk_rows``,
            ``n_chunks``, ``written_chunks`` (flagged so far, counted from the
            flag files in constant memory), ``checksums`` (whether its arrays
            carry crc32c checksums; False for splits written before them), and
            any other attributes the extraction recorded.
        """
        group = self.split_group(split)
        info = dict(group.attrs.asdict())
        info.setdefault("count", 0)
        info["complete"] = bool(info.get("complete", False))
        info["checksums"] = info.get(CHECKSUM_ATTR) == CHECKSUM
        try:
            # Each flag is its own chunk and only flags set to 1 are ever stored, so
            # the flag files are counted, never the flag array read whole (a split
            # declaring 10**12 rows would make that array gigabytes).
            info["written_chunks"] = stored_chunks(open_node(group, "written", self.path, f"{split}/written"))
        except (KeyError, StoreError, ValueError, OSError):
            info["written_chunks"] = 0
        return info

    def check_split(self, split: str) -> list[str]:
        """What the readers would refuse in a split, from its metadata and chunk files alone.

        No chunk is decoded (``skdice verify`` does that): this checks the
        split's attributes, each array's data type, shape, chunking and
        checksum codec, that every chunk is on disk, and the same for the
        scores written back into it. An incomplete split is only checked for
        its attributes.

        Parameters
        ----------
        split : str

        Returns
        -------
        list of str
            One message per problem; empty when the split is sound.
        """
        zarr = import_zarr()
        problems = []
        try:
            group = self.split_group(split)
            layout = self.layout(split, group)
        except StoreError as exc:
            return [str(exc)]
        if group.attrs.get("complete") is not True:
            return problems
        for name in split_schema(1, 1, 1, 1, 1):
            try:
                self.array(split, name)
            except StoreError as exc:
                problems.append(str(exc))
        names = self.score_names(split)
        if not names:
            return problems
        try:
            scores = open_node(group, SCORES, self.path, f"{split}/{SCORES}")
        except (StoreError, KeyError) as exc:
            return [*problems, str(exc)]
        for name in names:
            try:
                arr = open_node(scores, name, self.path, f"{split}/{SCORES}/{name}")
                if isinstance(arr, zarr.Array):
                    check_score_array(arr, layout["count"])
            except (StoreError, KeyError) as exc:
                problems.append(str(exc))
        return problems

    def check_head(self) -> list[str]:
        """What the readers would refuse in the head, from its metadata and chunk files alone."""
        try:
            self._head_arrays()
        except StoreError as exc:
            return [str(exc)]
        return []

    def score_names(self, split: str) -> dict:
        """Scores written back into a split (``<split>/scores/<name>``) and whether each is complete.

        Parameters
        ----------
        split : str

        Returns
        -------
        dict
            ``{name: complete}`` in sorted order; empty when none were written.
            A score array whose ``zarr.json`` is damaged counts as not complete.
            Read them with :func:`read_scores`.
        """
        group = self.split_group(split)
        folder = self.path / split / SCORES
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return {}
        try:
            scores = open_node(group, SCORES, self.path, f"{split}/{SCORES}")
        except (StoreError, KeyError):
            scores = None
        names = {}
        for entry in entries:
            kind = _node_type(entry.path) if entry.is_dir() else "none"
            if kind == "array":
                try:
                    if scores is None:
                        raise KeyError(entry.name)
                    arr = open_node(scores, entry.name, self.path, f"{split}/{SCORES}/{entry.name}")
                    names[entry.name] = arr.attrs.get("complete", True) is True
                except (StoreError, KeyError):
                    names[entry.name] = False
            elif kind is None:  # its zarr.json is unreadable: listed, and reported by check_split
                names[entry.name] = False
        return dict(sorted(names.items()))

    def _complete_group(self, split: str):
        group = self.split_group(split)
        attrs = group.attrs.asdict()
        if attrs.get("complete") is not True:
            info = self.split_info(split)
            n_chunks = info.get("n_chunks", "?")
            raise IncompleteSplitError(
                f"split {split!r} in {self.path} is incomplete "
                f"({info['written_chunks']} of {n_chunks} chunks written): its extraction was "
                f"interrupted or is still running; {RERUN}."
            )
        return group

    def array(self, split: str, name: str):
        """The Zarr array ``<split>/<name>`` of a complete split, checked, for streaming or dask.

        Before it is returned the array is checked against the schema (data
        type, shape, chunking, the checksum codec when its split has
        checksums) and for chunks missing on disk. Reads from it verify each
        chunk's checksum; :func:`skdice.store.iter_blocks` reports a damaged
        chunk as a :class:`~skdice.exceptions.StoreError`.

        Parameters
        ----------
        split : str
        name : {"features", "logits", "labels", "paths"} or another array of the split

        Returns
        -------
        zarr.Array

        Raises
        ------
        StoreError
            When the split is incomplete, or the array is missing, disagrees
            with the schema or misses chunks on disk.
        """
        zarr = import_zarr()
        group = self._complete_group(split)
        layout = self.layout(split, group)
        try:
            arr = open_node(group, name, self.path, f"{split}/{name}")
        except KeyError:
            raise StoreError(f"split {split!r} in {self.path} has no array {name!r}.") from None
        if not isinstance(arr, zarr.Array):
            raise StoreError(f"{split}/{name} in {self.path} is not an array.")
        expected = split_schema(layout["count"], layout["chunk_rows"], layout["n_chunks"],
                                 layout["n_features"], layout["n_classes"]).get(name)
        if expected is not None:
            check_stored_array(arr, **expected, checksum=layout["checksum"],
                         dense=None if name != "written" else False)
        elif not arr.ndim or arr.shape[0] != layout["count"]:
            raise StoreError(
                f"{metadata_file(self.path, f'{split}/{name}')} declares shape {tuple(arr.shape)} but "
                f"split {split!r} holds {layout['count']} rows: the metadata was edited or damaged."
            )
        else:
            check_stored_array(arr, shape=arr.shape, data_type=array_data_type(arr), checksum=layout["checksum"])
        self._check_manifests(split, layout)  # after the schema: its messages name the file edited
        return arr

    def features(self, split: str, *, dask: bool = False):
        """Penultimate features of a split.

        Parameters
        ----------
        split : str
        dask : bool, default=False
            Return a lazy dask array instead of loading it: row blocks of about
            8 MiB (whole store chunks, so tasks are not a few KiB each), one
            block across the features. Its reads report a damaged chunk, and
            a chunk its manifest disowns, as a
            :class:`~skdice.exceptions.StoreError`, like the in-memory read.

        Returns
        -------
        ndarray of shape (n_samples, n_features), float32, or dask.array.Array
        """
        arr = self.array(split, "features")
        if dask:
            return lazy_rows(arr)
        return self._read_array(split, "features")

    def logits(self, split: str) -> np.ndarray:
        """Logits of the unmodified head, ndarray of shape (n_samples, n_classes), float32."""
        return self._read_array(split, "logits")

    def labels(self, split: str) -> np.ndarray:
        """Labels, ndarray of shape (n_samples,), int64; -1 where unknown."""
        labels = np.asarray(self._read_array(split, "labels"), dtype=np.int64)
        _, c = self.widths()
        bad = np.flatnonzero((labels < -1) | (labels >= c))
        if bad.size:  # a chunk decoded to garbage (a store written without checksums)
            raise StoreError(
                f"split {split!r} of {self.path} has labels outside [-1, {c}) (row {int(bad[0])} holds "
                f"{int(labels[bad[0]])}): the store is damaged; delete the folder {self.path / split} "
                "and re-run `skdice extract` for it."
            )
        return labels

    def paths(self, split: str) -> list[str]:
        """The source of each row (a file path, or ``file#index`` for array files)."""
        return [str(p) for p in self._read_array(split, "paths").tolist()]

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
        yield from iter_blocks(arr, max(int(arr.chunks[0]), 1), prefetch=False,
                               check=self.digest_check(split, "features"))

    def block_source(self, split: str) -> SplitFeatures:
        """A split's features as a block source, read again block by block on each pass.

        What the streaming workflows hand to scoring and to the searches
        instead of the loaded split: memory does not grow with its rows.

        Parameters
        ----------
        split : str

        Returns
        -------
        SplitFeatures
            Checked complete and against the schema now, its chunks as they
            are read.
        """
        return SplitFeatures(self, split)


def check_score_array(arr, count: int) -> None:
    """Schema and completeness of a score array (chunks missing only once it is complete)."""
    attrs = arr.attrs.asdict()
    chunk_rows = attrs.get("chunk_rows")
    schema = score_schema(count, chunk_rows if is_count(chunk_rows, 1) else None)
    check_stored_array(arr, **schema, checksum=attrs.get(CHECKSUM_ATTR) == CHECKSUM,
                 dense=None if attrs.get("complete", True) is True else False)


def _node_type(folder) -> str | None:
    """``"group"`` or ``"array"`` from a folder's zarr.json; None when it is unreadable, "none" when absent."""
    path = os.path.join(folder, "zarr.json")
    try:
        if os.path.getsize(path) > 2**26:
            return None
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except FileNotFoundError:
        return "none"
    except (OSError, ValueError, RecursionError):
        return None
    kind = meta.get("node_type") if isinstance(meta, dict) else None
    return kind if kind in ("group", "array") else None


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
    zarr = import_zarr()
    path = Path(path)
    if not path.exists():
        raise StoreError(f"feature store {path} does not exist; create it by extracting features into it "
                         "(`skdice extract`, or skdice.store.create_store).")
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path} is not a feature store (no zarr.json): was it written by `skdice extract`?")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # corrupt metadata, a zarr array instead of a group, ...
        raise StoreError(f"{path} could not be opened as a Zarr group: {metadata_error(path, '', exc)}") from None
    version = group.attrs.get(MARKER_ATTR)
    if version is None:
        raise StoreError(f"{path} is a Zarr group but not a skdice feature store (no {MARKER_ATTR!r} attribute); "
                         "if a `skdice extract` was stopped while creating it, re-running that command completes it.")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} uses store schema {version!r}; this skdice reads schema {SCHEMA_VERSION}: upgrade skdice."
        )
    return FeatureStore(path, group)

