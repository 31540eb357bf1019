"""Scoring a store's split with a fitted detector and writing the scores back.

:func:`score_to_store` scores block by block into ``<split>/scores/<method>``,
resumably, under a lock; :func:`score_store` is the ``skdice score`` command's
library call (checks that the detector belongs to the store's model, writes,
summarises); :func:`write_scores` writes an array computed elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._numeric import scores_by_block
from ..persistence import load_detector
from ..store import block_rows_for, iter_blocks, lazy_rows, open_scores_writer, read_scores, scores_lock
from .cluster import dask_client, resolve_scheduler
from .resolve import SplitFeatures, damaged_store_error, open_feature_store

__all__ = ["detector_fingerprint", "score_store", "score_to_store", "write_scores"]


def detector_fingerprint(detector) -> str:
    """A SHA-256 of a fitted detector's class, parameters and fitted arrays.

    Two detectors with the same fingerprint give the same scores; a resumed
    scoring run checks it so that a store never mixes two detectors' scores.

    Parameters
    ----------
    detector : BaseDetector

    Returns
    -------
    str
        Hex digest.
    """
    # Hand-rolled rather than joblib.hash: joblib.hash of the detector changes with
    # offset_ (which scores do not depend on, so a recalibrated detector would have to
    # rescore) and with private caches such as partial_fit's running sum; and a
    # fingerprint stored in a store must not change with the joblib version.
    digest = hashlib.sha256()
    digest.update(f"{type(detector).__module__}.{type(detector).__qualname__}".encode())
    digest.update(json.dumps(detector.get_params(deep=False), sort_keys=True, default=repr).encode())
    for name in sorted(vars(detector)):
        if not name.endswith("_") or name.startswith("_") or name == "offset_":
            continue
        value = getattr(detector, name)
        digest.update(name.encode())
        if isinstance(value, np.ndarray):
            digest.update(str((value.dtype, value.shape)).encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def score_to_store(
    store,
    split: str,
    detector,
    *,
    method: str | None = None,
    block_rows: int | None = None,
    overwrite: bool = False,
    scheduler: str | None = None,
    progress=None,
) -> dict:
    """Score a split block by block and write the scores to ``<split>/scores/<method>``.

    Memory stays bounded (three blocks of about 8 MiB of features plus the
    detector) however many rows the split has. The scores are written in
    order; after each block the array's ``rows_done`` attribute records the
    progress and the ``complete`` marker is set last, so an interrupted run
    resumes where it stopped when called again with the same detector. Scores
    already complete from the same detector are not recomputed.

    Parameters
    ----------
    store : str or path-like
        The feature store (opened for writing the scores).
    split : str
        A complete split.
    detector : BaseDetector or str or path-like
        A fitted detector, or the path of one saved with ``skdice.save_detector``.
    method : str, default=None
        Name of the score array; the detector's registry name by default.
    block_rows : int, default=None
        Rows per block (and per score chunk); about 8 MiB of features, a
        multiple of the store's row chunk, by default.
    overwrite : bool, default=False
        Replace scores written by another detector, or complete ones.
    scheduler : str or distributed.Client, default=None
        Address of a ``dask.distributed`` scheduler, or a client (or the
        ``SKDICE_SCHEDULER`` environment variable): the blocks are then scored
        on that cluster, whose workers must reach the store's path; the client
        writes the scores. ``None`` and no variable: this process.
    progress : callable, default=None
        Called as ``progress(rows_done, n_rows)`` after each block.

    Returns
    -------
    dict
        ``written`` (``"<split>/scores/<method>"``), ``n`` (rows),
        ``resumed_from`` (row where this run started), ``computed`` (rows
        scored by this run).

    Raises
    ------
    StoreError
        When the split is missing or incomplete, or the score array exists
        from another detector and ``overwrite`` is False.
    """
    if isinstance(detector, (str, Path)):
        detector = load_detector(detector)
    check_is_fitted(detector)
    fs = open_feature_store(store)
    array = fs.array(split, "features")
    n, m = array.shape
    expected = getattr(detector, "n_features_in_", m)
    if m != expected:
        raise ValueError(
            f"split {split!r} of {fs.path} has {m} features but the detector was fitted "
            f"on {expected}: it belongs to another model."
        )
    method = method or type(detector).name or type(detector).__name__
    step = int(block_rows or block_rows_for(array))
    lock = scores_lock(fs.path, split, method)
    lock.acquire()  # a second scorer of the same array is refused, never interleaved
    try:
        return _score_locked(fs, array, split, method, detector, step, overwrite,
                             scheduler, progress)
    finally:
        lock.release()


def _score_locked(fs, array, split, method, detector, step, overwrite, scheduler, progress):
    n = array.shape[0]
    writer = open_scores_writer(
        fs.path,
        split,
        method,
        chunk_rows=step,
        fingerprint=detector_fingerprint(detector),
        overwrite=overwrite,
        attrs={"method": method, "detector": type(detector).name,
               "params": json.loads(json.dumps(detector.get_params(deep=False), default=repr))},
    )
    resumed_from = writer.rows_done
    if writer.complete:
        return {"written": f"{split}/scores/{method}", "n": n, "resumed_from": n, "computed": 0}
    client = scheduler if scheduler is not None and not isinstance(scheduler, str) else None
    address = None if client is not None else resolve_scheduler(scheduler)
    if client is None and address is None:
        for start, block in iter_blocks(array, step, start=writer.rows_done):
            writer.write(start, detector.score_samples(block))
            if progress is not None:
                progress(writer.rows_done, n)
    else:
        with dask_client(client if client is not None else address) as active:
            _score_blocks_on_cluster(detector, array, writer, step, active, progress)
    writer.finalize()
    return {
        "written": f"{split}/scores/{method}",
        "n": n,
        "resumed_from": resumed_from,
        "computed": n - resumed_from,
    }


def _score_blocks_on_cluster(detector, array, writer, step, client, progress):
    n = array.shape[0]
    X = lazy_rows(array, step)  # every read checked, on the workers too (crc32c and manifest)
    lazy = detector.score_samples(X)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    first = writer.rows_done // step
    blocks = list(range(first, lazy.numblocks[0]))
    window = 2 * n_workers
    for i in range(0, len(blocks), window):
        part = blocks[i : i + window]
        results = client.gather(client.compute([lazy.blocks[j] for j in part]))
        for j, values in zip(part, results):
            writer.write(j * step, values)
            if progress is not None:
                progress(writer.rows_done, n)


def write_scores(store, split: str, name: str, scores, *, overwrite: bool = True) -> str:
    """Write an array of scores to ``<split>/scores/<name>`` of a store.

    Goes through the store's own score writer
    (:func:`skdice.store.open_scores_writer`), so the array carries the same
    completion marker as scores written by ``skdice score``.

    Parameters
    ----------
    store : str, path-like or FeatureStore
    split : str
        A complete split of the store.
    name : str
        Name of the score array (no slashes).
    scores : array-like of shape (n_samples,)
        One score per row of the split.
    overwrite : bool, default=True
        Replace an existing array of that name.

    Returns
    -------
    str
        The array's path inside the store, ``"<split>/scores/<name>"``.
    """
    fs = open_feature_store(store)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    count = fs.array(split, "features").shape[0]  # refuses a missing or incomplete split
    if scores.shape != (count,):
        raise ValueError(f"split {split!r} has {count} rows but {scores.shape} scores were given.")
    writer = open_scores_writer(
        fs.path, split, name,
        chunk_rows=int(fs.split_info(split).get("chunk_rows") or max(count, 1)),
        fingerprint="array:" + hashlib.sha256(scores.tobytes()).hexdigest(),
        overwrite=overwrite,
    )
    if not writer.complete:
        writer.write(writer.rows_done, scores[writer.rows_done:])
        writer.finalize()
    return f"{split}/scores/{name}"


def _summary(scores, detector, split) -> dict:
    offset = getattr(detector, "offset_", np.nan)
    flagged = None if np.isnan(offset) else int(np.count_nonzero(scores < offset))
    empty = not scores.size
    return {
        "split": split,
        "method": type(detector).name,
        "n": int(scores.size),
        "mean": float("nan") if empty else float(scores.mean()),
        "std": float("nan") if empty else float(scores.std()),
        "min": float("nan") if empty else float(scores.min()),
        "max": float("nan") if empty else float(scores.max()),
        "n_ood": flagged,
        "fraction_ood": None if flagged is None or empty else flagged / scores.size,
    }


def score_store(
    store,
    split: str,
    detector,
    *,
    name: str | None = None,
    write: bool = True,
    overwrite: bool = False,
    scheduler=None,
    progress=None,
) -> dict:
    """Score one split of a store with a fitted detector and write the scores back.

    Writing goes block by block through :func:`score_to_store`:
    memory stays bounded, an interrupted run resumes, and scores already
    written by the same detector are not recomputed.

    Parameters
    ----------
    store : str, path-like or FeatureStore
    split : str
        Split to score.
    detector : BaseDetector or str or path-like
        A fitted detector, or the path of one saved with :func:`skdice.save_detector`.
    name : str, default=None
        Name of the score array; the detector's registry name by default.
    write : bool, default=True
        Write the scores to ``<split>/scores/<name>``; False only computes them.
    overwrite : bool, default=False
        Replace scores of that name written by another detector.
    scheduler : str, default=None
        A ``dask.distributed`` scheduler address to score on (see
        :func:`score_to_store`).
    progress : callable, default=None
        Called as ``progress(rows_done, n_rows)`` while writing.

    Returns
    -------
    dict
        ``scores`` (ndarray), ``written`` (the array path or None),
        ``computed`` (rows scored by this run), and a summary: ``split``,
        ``method``, ``n``, ``mean``, ``std``, ``min``, ``max``, and ``n_ood`` /
        ``fraction_ood`` (rows ``predict`` flags as OOD; None when ``offset_``
        is not calibrated).
    """
    if isinstance(detector, (str, Path)):
        detector = load_detector(detector)
    fs = open_feature_store(store)
    array = fs.array(split, "features")  # refuses a missing or incomplete split
    expected = getattr(detector, "n_features_in_", None)
    if expected is not None and array.shape[1] != expected:
        raise ValueError(
            f"split {split!r} of {fs.path} has {array.shape[1]} features but the detector was "
            f"fitted on {expected}: it belongs to another model."
        )
    fitted_weight = getattr(detector, "weight_", None)
    if fitted_weight is not None:
        # Same width is not enough: scores of a head other than the store's are meaningless.
        head = fs.head
        same = np.shape(fitted_weight) == head.weight.shape and np.allclose(
            fitted_weight, head.weight, rtol=1e-6, atol=0
        ) and np.allclose(getattr(detector, "bias_", head.bias), head.bias, rtol=1e-6, atol=0)
        if not same:
            raise ValueError(
                f"the detector was fitted with another classifier head (W {np.shape(fitted_weight)}) "
                f"than the one of {fs.path} (W {head.weight.shape}): it belongs to another model."
            )
    if write:
        try:
            done = score_to_store(fs.path, split, detector, method=name, overwrite=overwrite,
                                  scheduler=scheduler, progress=progress)
        except (RuntimeError, OSError) as exc:
            raise damaged_store_error(fs, split, exc) from exc
        scores = read_scores(fs.path, split, done["written"].rsplit("/", 1)[-1])
        written, computed = done["written"], done["computed"]
    else:
        scores = scores_by_block(SplitFeatures(fs, split), detector.score_samples)
        written, computed = None, int(scores.size)
    return {"scores": scores, "written": written, "computed": computed,
            **_summary(scores, detector, split)}
