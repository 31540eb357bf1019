"""Scores written back into a split: ``<split>/scores/<method>``, resumable and in order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..exceptions import IncompleteSplitError, StoreError
from ._blocks import iter_blocks
from ._integrity import (
    array_root,
    check_stored_array,
    checksummed_compressors,
    describe_node,
    open_node,
    read_checked,
    rows_of,
    scan_chunks,
)
from ._manifest import (
    MANIFEST_ATTR,
    SCORE_DIGEST_MISMATCH,
    chunk_digest,
    score_digests,
    score_key,
    score_record,
    store_head,
)
from ._reader import FeatureStore, check_score_array, open_store
from ._schema import (
    CHECKSUM,
    CHECKSUM_ATTR,
    SCORES,
    score_schema,
    validate_score_name,
    validate_split_name,
    import_zarr,
)

# --------------------------------------------------------------------------- scores
# Scores written back by skdice.streaming (owner: the scale work). Layout:
#   <store>/<split>/scores/<method>   (N,) float64, chunks (chunk_rows,)
#     attrs: complete (the completion marker, set last), rows_done (rows written
#            so far, in order), chunk_rows, fingerprint (of the fitted detector),
#            method, detector, params
# An array without the ``complete`` attribute was written whole in one call
# (skdice.evaluation.write_scores) and counts as complete. Arrays made since
# checksums exist carry a crc32c codec and every chunk on disk (attr checksum).


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
        # every chunk stored, scores of exactly 0.0 included: a missing chunk is damage
        self._array = array.with_config({"write_empty_chunks": True})
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
        """Set the completion marker, after checking that every row was written.

        The array's manifest (each chunk's digest at its place, bound to the
        split, the array's name and the store's head; docs/store.md, "The
        manifest") is written with the marker, in one update of its
        attributes: the scores are read back for it, chunk by chunk (a
        score is 8 bytes a row, a small fraction of the features' read).
        """
        if self.rows_done != self.n_rows:
            raise IncompleteSplitError(
                f"scores {self._array.path} hold {self.rows_done} of {self.n_rows} rows; "
                "re-run the same scoring command (it resumes)."
            )
        self._array.attrs.update({MANIFEST_ATTR: self._manifest(), "complete": True})

    def _manifest(self) -> dict:
        split, _, method = str(self._array.path).split("/")
        root = array_root(self._array)
        head = None if root is None else store_head(root)
        step = int(self._array.chunks[0])
        key = score_key(split, method, head)
        hexes = [chunk_digest(key, start // step, block).hex()
                 for start, block in iter_blocks(self._array, step, prefetch=False, check=False)]
        return score_record(split, method, head, self.n_rows, step, hexes)


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
    zarr = import_zarr()
    validate_split_name(split)
    validate_score_name(method)  # before the name reaches a path
    chunk_rows = int(chunk_rows)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}.")
    n_rows = open_store(path).array(split, "features").shape[0]  # refuses incomplete splits
    group = zarr.open_group(str(path), mode="r+")[split].require_group(SCORES)
    where = f"{split}/{SCORES}/{method} in {path}"
    try:
        existing = None if overwrite else open_node(group, method, Path(path), f"{split}/{SCORES}/{method}")
    except KeyError:
        existing = None
    if existing is not None:
        if not isinstance(existing, zarr.Array):
            raise StoreError(f"{where} is not a score array: pass overwrite=True to replace it.")
        old = existing.attrs.asdict()
        if "complete" not in old:
            raise StoreError(f"{where} exists (written in one go): pass overwrite=True to replace it.")
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
                "pass overwrite=True to replace it, or choose another name."
            )
        check_stored_array(existing, **score_schema(n_rows, chunk_rows),
                     checksum=old.get(CHECKSUM_ATTR) == CHECKSUM, dense=False,
                     remedy="pass overwrite=True to write the scores again")
        return _resume_at_first_damage(existing, chunk_rows)
    array = group.create_array(
        method,
        shape=(n_rows,),
        chunks=(max(1, min(chunk_rows, max(n_rows, 1))),),
        dtype="float64",
        overwrite=True,
        compressors=checksummed_compressors(),
    )
    array.attrs.update(
        {
            **json.loads(json.dumps(attrs or {})),
            CHECKSUM_ATTR: CHECKSUM,
            "chunk_rows": chunk_rows,
            "fingerprint": str(fingerprint),
            "rows_done": 0,
            "complete": False,
        }
    )
    return ScoresWriter(array)


def _resume_at_first_damage(array, chunk_rows: int) -> ScoresWriter:
    """A writer on a started or complete score array, set back to its first missing or damaged chunk.

    A chunk deleted or damaged after it was written would otherwise be read back
    as zeros, or make every later read fail, while a rerun said "nothing to
    recompute": the rerun redoes the array from that chunk on instead.
    """
    writer = ScoresWriter(array)
    if tuple(array.shape) != (writer.n_rows,) or writer.n_rows == 0:
        return writer
    step = max(1, min(chunk_rows, writer.n_rows))
    if tuple(array.chunks) != (step,):
        return writer  # not the chunking this writer writes in: leave it to read_scores
    rows = writer.n_rows if writer.complete else writer.rows_done
    digests = score_digests(array, step) if writer.complete else None
    disowned = []

    def on_block(start, block):
        disowned.extend(digests.mismatches(start, block))

    damaged = next(scan_chunks(array, rows=rows, on_block=on_block if digests else None), None)
    first = min(([] if damaged is None else [int(damaged[0])]) + disowned, default=None)
    if first is None:
        return writer
    array.attrs.update({"rows_done": first * step, "complete": False})
    return ScoresWriter(array)


def read_scores(path, split: str, method: str) -> np.ndarray:
    """Read ``<split>/scores/<method>``, refusing scores that are incomplete or damaged.

    The array is checked like the split's own arrays (data type, shape, every
    chunk on disk) and each chunk's checksum is verified as it is decoded.

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
        When there are no such scores, or they are damaged (a chunk missing or
        failing its checksum: re-running the same ``skdice score`` recomputes it).
    IncompleteSplitError
        When their writing was interrupted.
    """
    store = path if isinstance(path, FeatureStore) else open_store(path)
    validate_score_name(method)
    group = store.split_group(split)
    try:
        scores = open_node(group, SCORES, store.path, f"{split}/{SCORES}")
        array = open_node(scores, method, store.path, f"{split}/{SCORES}/{method}")
    except KeyError:
        raise StoreError(f"{store.path} has no scores {split}/{SCORES}/{method}.") from None
    if not isinstance(array, import_zarr().Array):
        raise StoreError(f"{split}/{SCORES}/{method} in {store.path} is not a score array.")
    attrs = array.attrs.asdict()
    if attrs.get("complete", True) is not True:
        raise IncompleteSplitError(
            f"scores {split}/{SCORES}/{method} in {store.path} are incomplete "
            f"({attrs.get('rows_done', 0)} of {array.shape[0]} rows): re-run the same scoring command."
        )
    count = group.attrs.get("count")
    check_score_array(array, count if isinstance(count, int) else int(array.shape[0]))
    values = np.asarray(read_checked(array), dtype=np.float64)
    digests = score_digests(array)
    bad = [] if digests is None or not values.size else digests.mismatches(0, values)
    if bad:
        about = describe_node(store.path, str(array.path))
        raise StoreError(f"{about.subject} could not be read (chunk {bad[0]}{rows_of(array, bad[0])} "
                         f"{SCORE_DIGEST_MISMATCH}): {about.remedy}.")
    return values
