"""The manifest: what a store holds, bound to where it holds it (docs/store.md, "The manifest").

A crc32c per chunk proves that a chunk's bytes are the ones written, not that
they are in the right place: two valid chunks swapped, a split's features
copied over another's, a head replaced by another of the same shape or a row
count edited consistently in the ``zarr.json`` files all pass it. The
manifest records, when a split is finalized:

- a digest of every row chunk of every array of the split (features, logits,
  labels, paths), computed on the chunk's *decoded* values together with the
  array's name and the chunk's index, so a valid chunk read at another index,
  or from another split or store, gives another digest;
- the split's counts (rows, chunk rows, chunks, widths);
- the head's fingerprint and the model's name, also recorded once for the
  whole store (``STORE/manifest``) when the store is created.

Both are Zarr groups whose attributes are the manifest (plain JSON, no
pickle), each written whole to a temporary file beside its ``zarr.json`` and
renamed into place. While a split is written, each chunk's digests go to the
split's ``digests`` array (one chunk of it per row chunk, before the chunk's
``written`` flag), so a resumed extraction keeps those of the chunks already
written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..exceptions import StoreError
from ._schema import MANIFEST, SCORES, SPLIT_ARRAYS

#: The per-chunk digests of a split being written (bookkeeping, like ``written``).
DIGESTS = "digests"
#: Split attribute (and manifest key) naming the digest; its presence means a manifest must exist.
MANIFEST_ATTR = "manifest"
DIGEST = "blake2b-128"
MANIFEST_VERSION = 1
DIGEST_SIZE = 16
_PERSON = b"skdice-chunk"
#: Manifests larger than this are not read (about 7 million chunks: 7 TB of features).
_MAX_MANIFEST_BYTES = 2**30

#: What a chunk whose digest differs is, in words.
DIGEST_MISMATCH = (
    "does not match its digest in the split's manifest (replaced, moved or edited after it was written: "
    "swapped with another chunk, copied from another split or store, or rolled back)"
)

#: What a score chunk whose digest differs is, in words.
SCORE_DIGEST_MISMATCH = (
    "does not match its digest in the scores' manifest (replaced, moved or edited after they were written: "
    "swapped with another chunk, copied from another split, score array or store, or rolled back)"
)

#: The numeric arrays' data types, little-endian, as digested.
_DTYPES = {"features": "<f4", "logits": "<f4", "labels": "<i8", SCORES: "<f8"}
#: Readers digest every ROW_STRIDE-th row of each chunk of these arrays (the first row
#: included) as they read them: a full digest costs 2x a plain read (docs/store.md).
SAMPLED = ("features", "logits")
#: The stride of splits written since readers' checks were made cheaper: one row in 128
#: (1 to 8 rows of a chunk of 64 to 1024 rows); what a sample catches is a chunk moved
#: or replaced, and any row of it shows that (the chunk's index is part of the digest).
ROW_STRIDE = 128
#: The stride of the splits written before (a split keeps its stride across a resume).
LEGACY_ROW_STRIDE = 32
#: The split attribute recording the stride its chunks' sampled digests were made with.
STRIDE_ATTR = "row_stride"


def sampled_key(name: str, stride: int = ROW_STRIDE) -> str:
    """The manifest key of the sampled rows' digests of ``name``."""
    return f"{name}[::{int(stride)}]"


def digest_keys(stride: int = ROW_STRIDE) -> tuple:
    """What a split's digests hold for each chunk, in order: every array whole, then the samples."""
    return (*SPLIT_ARRAYS, *(sampled_key(name, stride) for name in SAMPLED))


#: The digests of a split written now (their count is the same for every stride).
DIGEST_KEYS = digest_keys()


def chunk_digests(index: int, values: dict, stride: int = ROW_STRIDE) -> np.ndarray:
    """All the digests of row chunk ``index`` (``values``: array name -> its rows), ``(len(DIGEST_KEYS), 16)`` uint8."""
    out = [chunk_digest(name, index, values[name]) for name in SPLIT_ARRAYS]
    out += [chunk_digest(sampled_key(name, stride), index, np.asarray(values[name])[::stride]) for name in SAMPLED]
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(len(DIGEST_KEYS), DIGEST_SIZE)


# --------------------------------------------------------------------------- digests


def chunk_digest(name: str, index: int, values) -> bytes:
    """The digest of row chunk ``index`` of array ``name``, from its decoded values.

    Parameters
    ----------
    name : {"features", "logits", "labels", "paths"}, a sampled key (``"features[::128]"``),
        or a score array's key (:func:`score_key`)
    index : int
        The chunk's index in its split: part of the digest, so the same values
        at another index digest differently.
    values : ndarray or sequence of str
        The chunk's rows as written (or as read back).

    Returns
    -------
    bytes
        ``DIGEST_SIZE`` bytes of BLAKE2b.
    """
    h = hashlib.blake2b(digest_size=DIGEST_SIZE, person=_PERSON)
    h.update(f"{name}\0{int(index)}\0".encode("utf-8"))  # ASCII for the split arrays' names
    if name == "paths":
        # ASCII JSON: unambiguous (lengths and separators escaped), any str included
        h.update(json.dumps([str(p) for p in np.asarray(values).tolist()], ensure_ascii=True).encode("ascii"))
    else:
        data = np.ascontiguousarray(values, dtype=_DTYPES[name.split("[")[0].split("/")[0]])
        h.update(str(data.shape).encode("ascii"))
        h.update(data.reshape(-1).view(np.uint8))
    return h.digest()


def head_fingerprint(weight, bias) -> str:
    """``blake2b:<hex>`` of the head's weight and bias: their bytes, shapes and data types (float32).

    Parameters
    ----------
    weight : ndarray of shape (m, C)
    bias : ndarray of shape (C,)

    Returns
    -------
    str
    """
    h = hashlib.blake2b(digest_size=DIGEST_SIZE, person=b"skdice-head")
    for value in (weight, bias):
        data = np.ascontiguousarray(value, dtype="<f4")
        h.update(f"float32{data.shape}\0".encode("ascii"))
        h.update(data.reshape(-1).view(np.uint8))
    return "blake2b:" + h.hexdigest()


# --------------------------------------------------------------------------- files


def write_manifest(folder: Path, attributes: dict) -> None:
    """Write ``folder/zarr.json`` as a Zarr group whose attributes are ``attributes``, atomically.

    The text goes to a temporary file in ``folder`` (flushed to disk), which is
    then renamed over ``zarr.json``: a reader sees the old manifest or the new
    one, never half of one; a temporary file left by a crash is removed by the
    next write.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("zarr.json.tmp-*"):
        stale.unlink(missing_ok=True)
    text = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes}, indent=1)
    tmp = folder / f"zarr.json.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / "zarr.json")
    finally:
        tmp.unlink(missing_ok=True)


#: Manifests parsed in this process, by file and its stat (a write renames a new file into
#: place: another inode and ctime, so an edited or replaced manifest is read again).
_PARSED: dict = {}
_PARSED_MAX = 64


def read_manifest(folder: Path, where: str, remedy: str) -> dict | None:
    """The attributes of the manifest at ``folder``; None when there is none.

    A manifest is parsed once per process while its file is unchanged (same
    inode, size, mtime and ctime): each block read of a split checks against
    it, and a large split's manifest is megabytes of JSON. The dict returned
    is shared: do not modify it.

    Raises
    ------
    StoreError
        When the file is unreadable, not JSON, or not a manifest.
    """
    path = Path(folder) / "zarr.json"
    try:
        st = path.stat()
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key in _PARSED:
            return _PARSED[key]
        if st.st_size > _MAX_MANIFEST_BYTES:
            raise ValueError("far larger than any manifest")
        meta = json.loads(path.read_text(encoding="utf-8"))
        attrs = meta["attributes"]
        if not isinstance(attrs, dict) or attrs.get(MANIFEST_ATTR) != DIGEST:
            raise ValueError(f"not a skdice manifest ({MANIFEST_ATTR!r} is not {DIGEST!r})")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise StoreError(f"{path} ({where}) is damaged ({type(exc).__name__}: {exc}): {remedy}.") from None
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = attrs
    return attrs


def store_record(model: str, weight, bias, weights_sha256) -> dict:
    """The store-level manifest: the model's name and the head's fingerprint."""
    return {
        MANIFEST_ATTR: DIGEST,
        "version": MANIFEST_VERSION,
        "model": str(model),
        "weights_sha256": weights_sha256,
        "head": head_fingerprint(weight, bias),
        "head_shape": [int(n) for n in np.shape(weight)],
    }


def split_record(split: str, layout: dict, model: str, head: str, digests, stride: int = ROW_STRIDE) -> dict:
    """The split's manifest from its counts and its ``(n_chunks, len(DIGEST_KEYS), 16)`` digests (sampled at ``stride``)."""
    digests = np.asarray(digests, dtype=np.uint8)
    return {
        MANIFEST_ATTR: DIGEST,
        "version": MANIFEST_VERSION,
        "split": split,
        **{key: int(layout[key]) for key in ("count", "chunk_rows", "n_chunks", "n_features", "n_classes")},
        "model": str(model),
        "head": head,
        "arrays": list(SPLIT_ARRAYS),
        "row_stride": int(stride),
        "chunks": {name: [digests[k, i].tobytes().hex() for k in range(digests.shape[0])]
                   for i, name in enumerate(digest_keys(stride))},
    }


# --------------------------------------------------------------------------- checks


def count_problems(record: dict, layout: dict) -> list[str]:
    """How a split's counts disagree with its manifest's (empty when they agree)."""
    return [
        f"{key} {layout[key]!r} where its manifest records {record.get(key)!r}"
        for key in ("count", "chunk_rows", "n_chunks", "n_features", "n_classes")
        if record.get(key) != layout[key]
    ]


class ChunkDigests:
    """A split manifest's digests of one array, checked against decoded blocks of its rows.

    Parameters
    ----------
    name : str
        The array (``"features"``, ...).
    hexes : list of str
        One digest per row chunk, from the manifest.
    chunk_rows : int
    row_stride : int, default=1
        Check the digest of every ``row_stride``-th row of each chunk (a sampled key).
    """

    def __init__(self, name: str, hexes, chunk_rows: int, row_stride: int = 1):
        self.name = name
        self.key = name if row_stride == 1 else f"{name}[::{row_stride}]"
        self.hexes = list(hexes) if isinstance(hexes, list) else []
        self.chunk_rows = max(int(chunk_rows), 1)
        self.row_stride = row_stride

    def mismatches(self, start: int, block) -> list[int]:
        """Indices of the row chunks in ``block`` (rows from ``start``) whose digest differs.

        ``start`` must be a chunk boundary; a chunk the manifest has no digest
        for counts as a mismatch.
        """
        bad = []
        step = self.chunk_rows
        first = int(start) // step
        for i in range(-(-len(block) // step)):
            k = first + i
            want = self.hexes[k] if k < len(self.hexes) else None
            rows = block[i * step : (i + 1) * step][:: self.row_stride]
            if want != chunk_digest(self.key, k, rows).hex():
                bad.append(k)
        return bad


def identity_problems(fs) -> list[str]:
    """How the root attributes disagree with the store's manifest (the model renamed, say)."""
    record = fs.manifest()
    if record is None:
        return []
    problems = []
    for key in ("model", "weights_sha256"):
        if fs.attrs.get(key) != record.get(key):
            problems.append(
                f"{fs.path / 'zarr.json'} records {key} {fs.attrs.get(key)!r} but the store's manifest "
                f"records {record.get(key)!r}: the metadata was edited; restore {fs.path} from a copy "
                f"(or set {key} back to {record.get(key)!r})."
            )
    return problems


def split_problems(fs, split: str, layout: dict) -> list[str]:
    """How a split disagrees with its manifest's counts, head and model (no chunk is read).

    Parameters
    ----------
    fs : FeatureStore
    split : str
    layout : dict
        From ``FeatureStore.layout``.

    Returns
    -------
    list of str
        One message per problem; empty when the split agrees or has no manifest.
    """
    record = fs.manifest(split)
    if record is None:
        return []
    remedy = f"delete the folder {fs.path / split} and re-run `skdice extract` for it"
    problems = []
    counts = count_problems(record, layout)
    if counts:
        problems.append(
            f"{fs.path / split / 'zarr.json'} records {'; '.join(counts)}: the metadata was "
            f"edited or damaged; {remedy}."
        )
    root = fs.manifest()
    if root is not None and record.get("head") != root.get("head"):
        problems.append(
            f"split {split!r} of {fs.path} was written with another head (fingerprint "
            f"{record.get('head')}) than the store's ({root.get('head')}): it was copied from another "
            f"store, or the head was replaced; {remedy}."
        )
    if record.get("model") != (root or fs.attrs).get("model"):
        problems.append(
            f"split {split!r} of {fs.path} holds features of model {record.get('model')!r}, not "
            f"{(root or fs.attrs).get('model')!r}: it was copied from another store; {remedy}."
        )
    return problems


def digest_check(root, split: str, name: str, record: dict | None, read_rows=None):
    """A ``check(start, block)`` for block reads that refuses a chunk its split's manifest disowns.

    Readers check the digest of every ``ROW_STRIDE``-th row of each chunk of
    the features and logits (a full digest would double a plain read's time),
    the labels and paths whole; ``verify`` checks every array whole.

    Parameters
    ----------
    root : pathlib.Path
        The store.
    split, name : str
    record : dict or None
        The split's manifest.
    read_rows : callable, default=None
        ``read_rows(slice)``, the array's rows: with it, a block that starts or
        ends inside a chunk is checked too, the rows of its first and last
        chunks it lacks read for the check (at most two chunks decoded again
        per block); without it, blocks must start on a chunk boundary.

    Returns
    -------
    callable or None
        None when there is no manifest or it has no digests of ``name``.
    """
    if record is None or name not in SPLIT_ARRAYS or not isinstance(record.get("chunks"), dict):
        return None
    stride = record.get("row_stride", 1) if name in SAMPLED else 1
    stride = stride if isinstance(stride, int) and stride > 1 else 1
    key = sampled_key(name, stride) if stride > 1 and sampled_key(name, stride) in record["chunks"] else name
    stride = 1 if key == name else stride
    digests = ChunkDigests(name, record["chunks"].get(key), record.get("chunk_rows", 1), stride)
    path = Path(root)

    count = record.get("count")

    def check(start, block):
        if read_rows is not None and isinstance(count, int):
            start, block = whole_chunks(start, block, digests.chunk_rows, count, read_rows)
        bad = digests.mismatches(start, block)
        if bad:
            k = bad[0]
            a = k * digests.chunk_rows
            z = min(a + digests.chunk_rows, start + len(block)) - 1
            raise StoreError(
                f"split {split!r} of {path} could not be read (chunk {k} (rows {a} to {z}) of {name} "
                f"{DIGEST_MISMATCH}): the store is damaged; "
                f"delete the folder {path / split} and re-run `skdice extract` for it."
            )

    return check


def whole_chunks(start: int, block, chunk_rows: int, count: int, read_rows):
    """``(start, block)`` widened to whole chunks: the rows it lacks of its first and last chunks read."""
    end = start + len(block)
    a = start // chunk_rows * chunk_rows
    z = min(-(-end // chunk_rows) * chunk_rows, count)
    if (a == start and z == end) or not len(block):
        return start, block
    parts = [read_rows(slice(a, start))] if a < start else []
    parts.append(block)
    if end < z:
        parts.append(read_rows(slice(end, z)))
    return a, np.concatenate([np.asarray(p) for p in parts])


def array_check(arr, read_rows=None):
    """:func:`digest_check` for a Zarr array of a split of a local store, from its manifest; None when none."""
    root = getattr(arr.store, "root", None)
    parts = str(arr.path).split("/")
    if root is None or len(parts) != 2 or parts[1] not in SPLIT_ARRAYS:
        return None
    root = Path(os.fspath(root))
    remedy = f"delete the folder {root / parts[0]} and re-run `skdice extract` for it"
    record = read_manifest(root / parts[0] / MANIFEST, f"the manifest of split {parts[0]!r}", remedy)
    return digest_check(root, parts[0], parts[1], record, read_rows)


# --------------------------------------------------------------------------- scores written back


def score_key(split: str, method: str, head) -> str:
    """The digest name of ``<split>/scores/<method>``: bound to its split, its name and the store's head.

    Scores copied from another split, another score array or another store
    (another head) digest differently at the same place.
    """
    return f"{SCORES}/{method}\0{split}\0{head}"


def score_record(split: str, method: str, head, count: int, chunk_rows: int, hexes) -> dict:
    """The manifest of a score array (kept in its attributes under ``manifest``)."""
    return {MANIFEST_ATTR: DIGEST, "version": MANIFEST_VERSION, "split": split, "method": method,
            "head": head, "count": int(count), "chunk_rows": int(chunk_rows), "chunks": list(hexes)}


def store_head(root) -> str | None:
    """The head fingerprint of the store at ``root`` from its manifest; None without one (or unreadable)."""
    try:
        record = read_manifest(Path(root) / MANIFEST, "the store's manifest", "restore the store from a copy")
    except StoreError:
        return None
    return None if record is None else record.get("head")


def score_digests(arr, chunk_rows: int | None = None):
    """:class:`ChunkDigests` of a score array from the manifest in its attributes; None without one.

    Parameters
    ----------
    arr : zarr.Array
        ``<split>/scores/<method>`` of a local store.
    chunk_rows : int, default=None
        The array's row chunk (read from it by default).

    Returns
    -------
    ChunkDigests or None
    """
    record = arr.attrs.get(MANIFEST_ATTR)
    root = getattr(arr.store, "root", None)
    parts = str(arr.path).split("/")
    if not isinstance(record, dict) or root is None or len(parts) != 3 or parts[1] != SCORES:
        return None
    key = score_key(parts[0], parts[2], store_head(os.fspath(root)))
    return ChunkDigests(key, record.get("chunks"), chunk_rows or int(arr.chunks[0]))
