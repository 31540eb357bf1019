"""Out-of-core and distributed fitting and scoring.

Features of a large training set (ImageNet's 1.28 M images at 2048 float32
features are 10.5 GB) need not fit in memory to fit DICE: its statistic is the
mean feature, a running float64 sum. This module

- fits a detector from a feature-store split read block by block
  (:func:`fit_store`), memory bounded whatever the row count;
- calibrates ``offset_`` after a streaming fit (:func:`calibrate_offset`);
- scores a split block by block and writes the scores back into the store,
  resumably (:func:`score_to_store`);
- runs the same on Dask: ``fit`` reduces the mean with Dask and
  ``score_samples`` returns a lazy dask array (:func:`score_dask`); an existing
  ``dask.distributed`` cluster is used when its address is given
  (:func:`dask_client`, the ``--scheduler`` option or ``SKDICE_SCHEDULER``).

How ``offset_`` is calibrated by a streaming fit
------------------------------------------------
``offset_`` is the ``1 - tpr`` quantile of the fitting rows' scores under the
*final* mask, which depends on the mean of all rows; a single pass cannot
score rows it has already passed. :func:`fit_store` therefore draws a uniform
sample of ``calibration_rows`` rows (seeded, without replacement) while it
streams, and scores that sample once the mean is known
(``calibration="sample"``, one pass over the data); ``calibration="exact"``
makes a second pass and gives exactly the in-memory ``fit``'s ``offset_``.
When the split has no more rows than ``calibration_rows`` both are the same.
With the defaults (10,000 rows, ``tpr = 0.95``) the realised TPR of the
sampled offset has a standard error of about 0.2 percentage points.

Dask and zarr are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from ._base import _FLOAT_DTYPES, BaseDetector, _is_dask
from ._head import Head
from .exceptions import require

__all__ = [
    "SCHEDULER_ENV",
    "block_rows_for",
    "calibrate_offset",
    "dask_client",
    "detector_fingerprint",
    "fit_store",
    "iter_blocks",
    "resolve_scheduler",
    "score_dask",
    "score_to_store",
]

#: Environment variable naming a dask.distributed scheduler (``tcp://host:8786``).
SCHEDULER_ENV = "SKDICE_SCHEDULER"

#: How long dask_client tries to reach a scheduler.
_CONNECT_TIMEOUT = "10s"

#: Bytes of features read per block by the streaming paths. Reading a store in
#: blocks of 4-8 MiB measured faster than in 32 MiB blocks (and than one store
#: chunk per call): the block is still in cache when it is summed or scored.
_BLOCK_BYTES = 8 * 2**20

#: Blocks being read ahead while the caller consumes one: Zarr decodes each
#: block's chunks in parallel but leaves the cores idle between two reads;
#: two reads in flight keep them busy (measured on 2 cores: the fit's pass at
#: 0.95-0.97x a plain read, against 0.91-0.93x with one read at a time).
_READS_IN_FLIGHT = 2


# ------------------------------------------------------------------ blocks
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


def iter_blocks(array, block_rows: int | None = None, *, start: int = 0, prefetch: bool = True):
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

    Yields
    ------
    start : int
        Index of the block's first row.
    block : ndarray of shape (rows, n_features)
    """
    n = int(array.shape[0])
    step = int(block_rows or block_rows_for(array))
    starts = range(int(start), n, step)

    def read(s):
        return np.asarray(array[s : min(s + step, n)])

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


# ------------------------------------------------------------------ fitting
def _open(store):
    from .store import FeatureStore, open_store

    return store if isinstance(store, FeatureStore) else open_store(store)


def _check_streamable(detector):
    if not isinstance(detector, BaseDetector):
        raise TypeError(f"expected a skdice detector, got {type(detector).__name__}.")
    if not type(detector)._accepts_train_mean:
        raise ValueError(
            f"{type(detector).__name__} cannot be fitted out of core: its statistics are not "
            "a mean feature. Load the split into memory and call fit."
        )


def fit_store(
    detector,
    store,
    split: str,
    *,
    head=None,
    calibration: str = "sample",
    calibration_rows: int = 10_000,
    random_state=0,
    block_rows: int | None = None,
    progress=None,
):
    """Fit a detector from a feature-store split, reading it block by block.

    The mean feature is a running float64 sum over blocks of about 8 MiB
    (see :meth:`BaseDetector.partial_fit`), so memory does not grow with the
    number of rows; ``offset_`` is calibrated as the module docstring explains.
    The sample costs one scoring of ``calibration_rows`` rows, whatever the
    split's size.

    Parameters
    ----------
    detector : BaseDetector
        A detector whose statistic is the mean feature (one with
        ``partial_fit``, such as :class:`skdice.DICEDetector`); refitted in place.
    store : str, path-like or FeatureStore
    split : str
        A complete split of in-distribution training features.
    head : Head, default=None
        The classifier head; the store's own head by default.
    calibration : {"sample", "exact", "none"}, default="sample"
        How ``offset_`` is calibrated: on a uniform sample of rows taken in the
        same pass, by a second pass over every row (equal to the in-memory
        ``fit``), or not at all (``offset_`` stays NaN).
    calibration_rows : int, default=10000
        Size of the sample for ``calibration="sample"``.
    random_state : int or None, default=0
        Seed of the sample.
    block_rows : int, default=None
        Rows per read block (a multiple of the store's row chunk by default).
    progress : callable, default=None
        Called as ``progress(rows_done, rows_total)`` after each block, where
        ``rows_total`` counts both passes with ``calibration="exact"``.

    Returns
    -------
    detector
        The fitted detector; ``n_samples_seen_`` is the split's row count.

    Examples
    --------
    >>> from skdice import DICEDetector
    >>> from skdice.streaming import fit_store
    >>> det = fit_store(DICEDetector(p=0.9), "features.zarr", "train")  # doctest: +SKIP
    """
    _check_streamable(detector)
    if calibration not in ("sample", "exact", "none"):
        raise ValueError(
            f"calibration must be 'sample', 'exact' or 'none', got {calibration!r}."
        )
    if int(calibration_rows) < 1:
        raise ValueError(f"calibration_rows must be >= 1, got {calibration_rows!r}.")
    fs = _open(store)
    array = fs.array(split, "features")
    n, m = array.shape
    if n == 0:
        raise ValueError(f"split {split!r} of {fs.path} has no rows to fit on.")
    head = fs.head if head is None else head
    if not isinstance(head, Head):
        raise TypeError(f"head must be a skdice.Head, got {type(head).__name__}.")
    detector._validate_params()
    detector._stream_start(detector._build_head(head, m))
    sample_idx = sample = None
    if calibration == "sample":
        if n > calibration_rows:
            rng = np.random.default_rng(random_state)
            sample_idx = np.sort(rng.choice(n, size=int(calibration_rows), replace=False))
        else:
            sample_idx = np.arange(n)
        dtype = array.dtype if array.dtype in _FLOAT_DTYPES else np.dtype(np.float32)
        sample = np.empty((sample_idx.size, m), dtype=dtype)  # filled in place
    def consume(start, block):
        if block.dtype not in _FLOAT_DTYPES:
            block = block.astype(np.float32)
        detector._stream_add(block)
        if not np.isfinite(detector._feature_sum).all():  # NaN and inf reach the sum
            _raise_non_finite(block, start)
        if sample is not None:
            lo, hi = np.searchsorted(sample_idx, [start, start + block.shape[0]])
            if hi > lo:
                np.take(block, sample_idx[lo:hi] - start, axis=0, out=sample[lo:hi])

    total = 2 * n if calibration == "exact" else n
    _read_and_consume(array, block_rows or block_rows_for(array), consume,
                      None if progress is None else lambda done: progress(done, total))
    detector._stream_finish()
    if sample is not None:
        calibrate_offset(detector, sample)
    elif calibration == "exact":
        def second_pass():
            for start, block in iter_blocks(array, block_rows):
                yield block
                if progress is not None:
                    progress(n + start + block.shape[0], total)

        calibrate_offset(detector, second_pass())
    return detector


def _read_and_consume(array, block_rows: int, consume, progress=None) -> None:
    """Call ``consume(start, block)`` on every block of rows, in order, reading ahead.

    The blocks come from :func:`iter_blocks` with its read-ahead; an exception
    from ``consume`` or from a read stops the pass (reads not yet started are
    cancelled) and is re-raised here. ``progress(rows_done)`` is called after
    each block is consumed.
    """
    n = int(array.shape[0])
    blocks = iter_blocks(array, block_rows)
    try:
        for start, block in blocks:
            consume(start, block)
            if progress is not None:
                progress(min(start + block.shape[0], n))
    finally:
        blocks.close()


def _raise_non_finite(block, start):
    rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
    if rows.size:
        raise ValueError(f"the features contain NaN or infinity (first at row {start + int(rows[0])}).")
    raise ValueError(
        f"the feature sum overflows float64 by row {start + block.shape[0]}: rescale the features."
    )


def calibrate_offset(detector, X) -> BaseDetector:
    """Set ``offset_`` from the scores of in-distribution rows, after a streaming fit.

    ``offset_`` becomes the ``1 - tpr`` quantile of the scores, exactly as
    :meth:`BaseDetector.fit` sets it on its fitting rows.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector (for example after :meth:`~BaseDetector.partial_fit`).
    X : array-like of shape (n_samples, n_features), dask array, or iterable of such blocks
        The fitting rows, or a sample of them. Only their scores (8 bytes a
        row) are kept.

    Returns
    -------
    detector
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(detector)
    if isinstance(X, np.ndarray) or _is_dask(X) or hasattr(X, "__array__"):
        blocks = [X]
    else:
        blocks = X
    scores = []
    for block in blocks:
        s = detector.score_samples(block)
        scores.append(np.asarray(s.compute() if _is_dask(s) else s, dtype=np.float64))
    scores = np.concatenate(scores) if scores else np.empty(0)
    if scores.size == 0:
        raise ValueError("calibrate_offset needs at least one in-distribution row.")
    detector.offset_ = float(np.quantile(scores, 1.0 - detector.tpr))
    return detector


# ------------------------------------------------------------------ scoring into the store
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
    from .store import scores_lock

    if isinstance(detector, (str, Path)):
        from .persistence import load_detector

        detector = load_detector(detector)
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(detector)
    fs = _open(store)
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
    from .store import open_scores_writer

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
    import dask.array as da

    n = array.shape[0]
    X = da.from_zarr(array, chunks=(step, array.shape[1]))
    lazy = score_dask(detector, X)
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


# ------------------------------------------------------------------ dask
def _score_chunk(chunk, detector):
    return detector._score_all(np.asarray(chunk))


def score_dask(detector, X):
    """Lazy scores of a dask array: one task per row chunk, the detector shipped once.

    The array is rechunked to a single chunk across the features (a score
    needs whole rows); each row chunk is scored by the detector's own chunked
    NumPy path, so every task's memory is bounded by its chunk.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector.
    X : dask.array.Array of shape (n_samples, n_features)

    Returns
    -------
    dask.array.Array of shape (n_samples,), float64
        Chunked like ``X``'s rows.
    """
    import uuid

    dask = require("dask", "dask")
    da = require("dask.array", "dask")
    if X.ndim != 2 or X.shape[1] != detector.n_features_in_:
        raise ValueError(
            f"X has shape {X.shape}, but {type(detector).__name__} is expecting "
            f"{detector.n_features_in_} features as input."
        )
    if X.dtype.kind not in "fiu":
        raise ValueError(f"X must be numeric, got dtype {X.dtype}.")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    # one graph key holds the detector: distributed sends it to each worker once,
    # not inside every task
    shipped = dask.delayed(detector, name=f"skdice-detector-{uuid.uuid4().hex}")
    return da.map_blocks(
        _score_chunk, X, shipped, drop_axis=1, dtype=np.float64, meta=np.empty(0, np.float64)
    )


def _fit_dask(detector, X, y, head, train_mean):
    """``fit`` on a dask array: the mean is reduced by Dask, then offset_ from lazy scores."""
    _check_streamable(detector)
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array, got a dask array of shape {X.shape}.")
    if X.dtype.kind not in "fiu":
        raise ValueError(f"X must be numeric, got dtype {X.dtype}.")
    n, m = X.shape
    if n == 0:
        raise ValueError("Found array with 0 sample(s) (shape=(0, %d)) while a minimum of 1 is required." % m)
    if head is None:
        raise ValueError(
            f"{type(detector).__name__}.fit needs the classifier head: "
            "pass W (n_features, n_classes) and b, or head=Head(W, b)."
        )
    head = detector._build_head(head, m)
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"y must be 1-D with one entry per row of X ({n}), got shape {y.shape}.")
        keep = y != 0
        if not keep.any():
            raise ValueError("every row of X is marked y == 0 (OOD); fit needs in-distribution rows.")
        X = X[keep]
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    if train_mean is None:
        import dask
        import dask.array as da

        total, finite = dask.compute(X.sum(axis=0, dtype=np.float64), da.isfinite(X).all())
        if not finite:
            raise ValueError("Input X contains NaN or infinity.")
        mean = np.asarray(total, dtype=np.float64) / X.shape[0]
    else:
        mean = detector._check_train_mean(train_mean, m)
    detector.__dict__.pop("feature_names_in_", None)
    detector._stream_start(head)
    detector._feature_sum = mean * X.shape[0]
    detector.n_samples_seen_ = int(X.shape[0])
    detector._stream_finish()
    scores = np.asarray(score_dask(detector, X).compute(), dtype=np.float64)
    detector.offset_ = float(np.quantile(scores, 1.0 - detector.tpr))
    return detector


# ------------------------------------------------------------------ schedulers
def resolve_scheduler(scheduler: str | None = None) -> str | None:
    """The dask.distributed scheduler to use: the argument, else ``SKDICE_SCHEDULER``.

    Parameters
    ----------
    scheduler : str, default=None
        An address such as ``tcp://10.0.0.5:8786``. An empty string means none.

    Returns
    -------
    str or None
        None means the single-machine path (no dask cluster).
    """
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV)
    scheduler = (scheduler or "").strip()
    return scheduler or None


@contextmanager
def dask_client(scheduler: str | None = None, *, timeout: str | None = None):
    """Connect to an existing ``dask.distributed`` cluster for the duration of a block.

    Within the block, dask computations (``.compute()``, ``dask.compute``) run
    on that cluster. Without an address (and without ``SKDICE_SCHEDULER``)
    nothing is started and ``None`` is yielded: the single-machine path.
    skdice never starts a scheduler of its own.

    Parameters
    ----------
    scheduler : str, default=None
        Scheduler address, or a ``distributed.Client`` to use as is.
    timeout : str, default=None
        How long to try to connect; 10 seconds by default.

    Yields
    ------
    distributed.Client or None
    """
    if scheduler is not None and not isinstance(scheduler, str):
        with nullcontext(scheduler):
            yield scheduler
        return
    address = resolve_scheduler(scheduler)
    if address is None:
        yield None
        return
    distributed = require("distributed", "dask")
    try:
        client = distributed.Client(
            address, timeout=timeout or _CONNECT_TIMEOUT, set_as_default=True
        )
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"could not connect to the dask scheduler at {address!r} "
            f"(from {'--scheduler' if scheduler else SCHEDULER_ENV}): {exc}"
        ) from None
    try:
        yield client
    finally:
        client.close()
