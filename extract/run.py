"""The extraction loop: a model and a data source in, one split of a feature store out.

:func:`extract_features` runs the model under ``torch.inference_mode`` and
writes the penultimate features, logits, labels and row paths of one split,
chunk by chunk, through :mod:`skdice.store`:

* batches never straddle a store chunk, and each chunk is written whole by a
  background thread (a bounded queue overlaps writing with compute);
* a chunk is flagged as written only after its arrays are, and the split's
  completion marker is set last, so an interrupted run leaves a split that
  every reader refuses, and re-running the same call resumes from the chunks
  not yet flagged. On CPU the resumed arrays equal those of an uninterrupted
  run bit for bit (same batch size: batches are cut at the same rows);
* under ``torchrun`` (or an initialised ``torch.distributed`` group) each rank
  takes whole, contiguous blocks of chunks of the pre-sized arrays; rank 0
  prepares the split, holds its lock and writes the marker at the end.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from skdice.exceptions import SkdiceError, StoreError, require
from skdice.store import create_store, default_chunk_rows, StoreWriter

torch = require("torch", "extract")

from ._guards import check_batch, check_classes, collate_rows  # noqa: E402
from ._identity import parameters_fingerprint  # noqa: E402
from .data import Source, open_source  # noqa: E402
from .hooked import HookedExtractor  # noqa: E402

__all__ = ["extract_features", "join_ranks", "resolve_device", "default_channels_last", "recorded_input_size"]

_QUEUE_CHUNKS = 2  # chunks buffered for the writer thread: bounds memory


def resolve_device(device="auto"):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a ``torch.device``.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"auto"`` picks CUDA when available, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        When CUDA is asked for and not available, or the name is unknown.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} asked for CUDA, but torch sees no CUDA device; use --device cpu.")
        return torch.device(name)
    raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda.")


class _RowCounter:
    """The loop's ``update(n)`` / ``close()`` on top of a ``progress(done, total)`` callable (or none)."""

    def __init__(self, callback, total: int):
        self.callback = callback
        self.total = int(total)
        self.done = 0
        if self.total and callback is not None:
            callback(0, self.total)

    def update(self, n: int) -> None:
        self.done += int(n)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        pass


def _progress_callback(progress):
    """The caller's ``progress(done, total)`` callable, or None; ``True`` is deprecated."""
    if progress is True:
        warnings.warn(
            "extract_features(progress=True) is deprecated and draws nothing: extraction has no "
            "display of its own; pass a callable progress(rows_done, rows_total) (the CLI passes its "
            "progress display).",
            DeprecationWarning,
            stacklevel=3,
        )
        return None
    if progress is None or progress is False:
        return None
    if not callable(progress):
        raise TypeError(f"progress must be a callable progress(rows_done, rows_total) or None, got {progress!r}.")
    return progress


class _ChunkWriter:
    """Background thread writing whole chunks; errors surface in the main thread."""

    def __init__(self, split_writer):
        self._sw = split_writer
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="skdice-store-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain without writing after a failure
            try:
                self._sw.write_chunk(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                self.error = exc

    def put(self, item) -> None:
        self._check()
        self._queue.put(item)

    def _check(self):
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Wait until every queued chunk is written, then raise any write error."""
        self._queue.put(None)
        self._thread.join()
        self._check()


def _batches_of(chunks, split_writer, batch_size: int):
    # Batches are cut inside each chunk, so a resumed run forms the same batches.
    out = []
    for index in chunks:
        start, stop = split_writer.chunk_bounds(index)
        for s in range(start, stop, batch_size):
            out.append(list(range(s, min(s + batch_size, stop))))
    return out


def _resolve_model(module_or_spec, head, model_name, input_size, preprocess):
    """(module, head, name, input_size, preprocess, store attrs) from a spec, preset name or module."""
    nn = torch.nn
    if isinstance(module_or_spec, str):
        from .models import load_preset

        module_or_spec = load_preset(module_or_spec)
    if isinstance(module_or_spec, nn.Module):
        module = module_or_spec
        attrs = {"preprocessing": None, "weights_sha256": None}
        name = model_name or type(module).__name__
    elif hasattr(module_or_spec, "module") and hasattr(module_or_spec, "preprocess"):
        spec = module_or_spec
        module = spec.module
        head = head if head is not None else getattr(spec, "head", None)
        input_size = input_size or getattr(spec, "input_size", None)
        preprocess = preprocess or spec.preprocess
        name = model_name or spec.name
        attrs = {
            "preprocessing": getattr(spec, "preprocessing", None),
            "weights_sha256": getattr(spec, "weights_sha256", None),
            "feature_layer": getattr(spec, "feature_layer", None),
        }
    else:
        raise TypeError(
            f"extract_features needs an nn.Module, a ModelSpec or a preset name, got {type(module_or_spec).__name__}."
        )
    return module, head, name, input_size, preprocess, attrs


def _dist_context():
    """(rank, world_size, initialised_here) for torchrun or an existing process group."""
    dist = torch.distributed
    if not dist.is_available():
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = os.environ.get("SKDICE_DIST_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        store, rank, world = _rendezvous()
        dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


#: how long the ranks of a distributed extraction wait for each other (seconds), unless
#: SKDICE_RENDEZVOUS_TIMEOUT says otherwise; the collectives after it keep torch's default
RENDEZVOUS_TIMEOUT_S = 60.0


def _rendezvous():
    """The ranks' env:// meeting, bounded in time: (store, rank, world_size), or one error naming the variables."""
    from datetime import timedelta

    seconds = float(os.environ.get("SKDICE_RENDEZVOUS_TIMEOUT") or RENDEZVOUS_TIMEOUT_S)
    found = ", ".join(f"{k}={os.environ.get(k)}" for k in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"))
    try:
        return next(torch.distributed.rendezvous("env://", timeout=timedelta(seconds=seconds)))
    except (RuntimeError, ValueError, TimeoutError) as exc:
        raise SkdiceError(
            f"the environment makes this a distributed extraction ({found}) but the ranks did not meet within "
            f"{seconds:g} s ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}): unset "
            "WORLD_SIZE and RANK for a single-process run, or start every rank (torchrun); "
            "SKDICE_RENDEZVOUS_TIMEOUT sets the wait in seconds."
        ) from None


def join_ranks() -> tuple[int, int]:
    """Join the ranks of a distributed extraction now, before a model is loaded; ``(rank, world_size)``.

    ``extract_features`` joins them itself when no process group exists; a
    caller that loads its model first (``skdice extract``) calls this before,
    so that the ranks' bounded wait (``SKDICE_RENDEZVOUS_TIMEOUT``, 60 s by
    default) counts from the start, whatever each model's load takes. Outside
    a distributed run (``WORLD_SIZE`` unset or 1) it does nothing: ``(0, 1)``.

    Returns
    -------
    tuple of int

    Raises
    ------
    SkdiceError
        When the ranks do not meet in time, naming the variables.
    """
    rank, world, _ = _dist_context()
    return rank, world


def _agree_to_start(rank, world, error, dist_here) -> None:
    """Every rank's setup outcome, shared: one rank that could not set up stops them all, each with one line.

    Without it a rank whose model, source or classes were refused would leave
    the others waiting in the first collective for torch's 30 minutes.
    """
    failed = []
    if world > 1:
        box = [None] * world
        torch.distributed.all_gather_object(box, None if error is None else f"{type(error).__name__}: {error}")
        failed = [(r, message) for r, message in enumerate(box) if message is not None]
        if failed and dist_here:
            torch.distributed.destroy_process_group()
    if failed and error is None:
        r, message = failed[0]
        raise SkdiceError(f"rank {r} of {world} could not start the extraction ({message}); every rank stops.")


def _broadcast_status(rank, world, message):
    """Share rank 0's setup outcome, so no rank waits on a barrier rank 0 never reaches."""
    box = [message]
    torch.distributed.broadcast_object_list(box, src=0)
    if box[0] is not None:
        if rank == 0:
            return
        raise StoreError(f"rank 0 could not prepare the split: {box[0]}")


def extract_features(
    module_or_spec,
    data,
    out,
    split: str,
    *,
    head=None,
    batch_size: int = 64,
    device="auto",
    workers: int | None = None,
    limit: int | None = None,
    amp: bool = False,
    progress: Callable[[int, int], None] | None = None,
    model_name: str | None = None,
    chunk_rows: int | None = None,
    input_size=None,
    preprocess=None,
    channels_last: bool | None = None,
) -> Path:
    """Extract penultimate features of one split into a feature store (resumable).

    Parameters
    ----------
    module_or_spec : nn.Module or ModelSpec or str
        A classifier (its head found or given by ``head``), a preset's
        :class:`ModelSpec` from ``skdice.extract.models.load_preset``, or a preset name.
    data : Source or str
        A data source from :mod:`skdice.extract.data`, or a ``--data`` string
        (folder, .npz, CIFAR batches, ``noise:N[:seed]``) opened with the
        model's preprocessing.
    out : str or os.PathLike
        The store's folder; created, or reused when it holds the same model.
    split : str
        Split name, for example ``"test"`` or ``"noise"``.
    head : nn.Module or str, default=None
        The classifier head (an ``nn.Linear`` or 1x1 ``nn.Conv2d``) or its
        dotted name; None finds it (or takes the spec's).
    batch_size : int, default=64
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
    workers : int, default=None
        DataLoader worker processes; None means 0 on CPU and ``min(8, cpu_count - 1)`` on CUDA.
        Batches are pinned in host memory when the device is CUDA (it speeds up host-to-GPU copies).
    limit : int, default=None
        Use only the first ``limit`` rows of the source.
    amp : bool, default=False
        bf16 autocast on CUDA (ignored with a warning on CPU). Recorded in the
        split; a resume must use the same setting.
    progress : callable, default=None
        Called as ``progress(rows_done, rows_total)``: first with 0, then after every batch, up
        to ``rows_total``, the rows this run extracts (a resumed split counts only the chunks not
        yet written). Under ``torchrun`` only rank 0 reports. Extraction draws nothing itself:
        ``skdice extract`` passes the CLI's progress display. With a callable, a split with every
        chunk already written is said on stderr. None or False reports nothing; True is
        deprecated (a DeprecationWarning, and nothing is drawn).
    model_name : str, default=None
        Name recorded in the store (default: the spec's name or the module's class).
    chunk_rows : int, default=None
        Rows per store chunk; default about 1 MiB per chunk, a multiple of ``batch_size``.
    input_size : tuple of int, default=None
        The network's input shape (3, H, W), needed for noise with a bare module.
        None with a generated ``data`` string takes the size the store at
        ``out`` recorded at its first extraction (:func:`recorded_input_size`).
    preprocess : callable, default=None
        PIL image -> tensor, for string ``data`` with a bare module.
    channels_last : bool, default=None
        Run convolutions in the channels-last memory format. None chooses per
        device (:func:`default_channels_last`): on CUDA yes; on the CPU yes
        unless the network has GroupNorm layers, whose CPU channels-last
        kernel is far less precise and no faster (measured: docs/store.md).

    Returns
    -------
    pathlib.Path
        The store's folder.

    Raises
    ------
    StoreError
        When another process writes the same split, or the store or split exists with other settings.

    Notes
    -----
    The module runs in eval mode (its previous mode is restored afterwards); it is moved to the
    device and, with ``channels_last``, converted to that memory format in place, as
    ``nn.Module.to`` does. Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is
    initialised here (NCCL on CUDA, else gloo; ``SKDICE_DIST_BACKEND`` overrides) and destroyed
    at the end; an existing process group is used as it is.

    Examples
    --------
    >>> from torch import nn
    >>> from skdice.extract.data import ArraySource
    >>> from skdice.store import open_store
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    >>> path = extract_features(net, ArraySource(torch.randn(10, 3, 8, 8)), "toy.zarr", "test")  # doctest: +SKIP
    >>> open_store(path).features("test").shape  # doctest: +SKIP
    (10, 4)
    """
    # The ranks meet first, so their bounded wait counts from the start, not from each one's model
    # load; then they agree that every rank could set up before any waits on another.
    rank, world, dist_here = _dist_context()
    try:
        module, head, name, input_size, preprocess, attrs = _resolve_inputs(
            module_or_spec, head, model_name, input_size, preprocess, batch_size, data, out)
        callback = _progress_callback(progress)
        loop = _run_settings(module, device, rank, world, amp, channels_last, workers, batch_size)
        source = _nonempty_source(data, input_size, preprocess, limit, split)
        extractor = HookedExtractor(module, head)
        check_classes(source, extractor.n_classes)  # before anything is written
    except Exception as exc:
        _agree_to_start(rank, world, exc, dist_here)
        raise
    _agree_to_start(rank, world, None, dist_here)
    was_training = _on_device(module, loop)
    try:
        _write_split(extractor, source, Path(out), split, name, attrs, rank, world, notify=bool(progress),
                     callback=callback if rank == 0 else None, loop=loop, chunk_rows=chunk_rows)
    finally:
        _restore(module, was_training, dist_here)
    return Path(out)


def _resolve_inputs(module_or_spec, head, model_name, input_size, preprocess, batch_size, data, out):
    """The model, its head, name, input size, preprocessing and store attributes for this run.

    Generated sources given by a ``--data`` string with no input size take the
    size the store's first split recorded (noise into a store of real images).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    module, head, name, input_size, preprocess, attrs = _resolve_model(
        module_or_spec, head, model_name, input_size, preprocess)
    if input_size is None and isinstance(data, (str, os.PathLike)):
        input_size = recorded_input_size(out)
    return module, head, name, input_size, preprocess, attrs


def _restore(module, was_training: bool, dist_here: bool) -> None:
    """Put the module back in its former mode; end the process group this run started."""
    module.train(was_training)
    if dist_here:
        torch.distributed.destroy_process_group()


def _on_device(module, loop):
    """The module in eval mode, in the run's memory format, on the run's device (in place); its former mode."""
    was_training = module.training
    module.eval()
    if loop["channels_last"]:
        module.to(memory_format=torch.channels_last)
    module.to(loop["dev"])
    return was_training


def _write_split(extractor, source, out, split, name, attrs, rank, world, *, notify, callback, loop, chunk_rows):
    """Prepare the split (rank 0) or open it, extract this rank's pending chunks, finalize (rank 0)."""
    batch_size, amp = loop["batch_size"], loop["amp"]
    rows = (default_chunk_rows(extractor.n_features, extractor.n_classes, batch_size) if chunk_rows is None
            else int(chunk_rows))
    extra = {"batch_size": int(batch_size)}
    if getattr(source, "classes", None):
        extra["classes"] = list(source.classes)
    split_writer = None
    try:
        if rank == 0:
            split_writer = _prepare_split(out, split, extractor, source, name, attrs, rows, amp, extra, world)
        else:
            _broadcast_status(rank, world, None)
            split_writer = StoreWriter.open(out).open_split(split)
        pending = split_writer.pending()
        if not pending and rank == 0 and notify:
            print(f"split {split!r} of {out} has every chunk written already.", file=sys.stderr)
        mine = _chunks_of_this_rank(pending, rank, world)
        todo = sum(stop - start for start, stop in map(split_writer.chunk_bounds, mine))
        bar = _RowCounter(callback, todo)
        try:
            _run_chunks(extractor, source, split_writer, mine, batch_size, loop["dev"], loop["workers"], amp,
                        loop["channels_last"], bar)
        except KeyboardInterrupt:
            done = split_writer.written_chunks()
            print(
                f"\ninterrupted: {done} of {split_writer.n_chunks} chunks of split {split!r} are written; "
                "re-run the same command to resume.",
                file=sys.stderr,
            )
            raise
        if world > 1:
            torch.distributed.barrier()  # every rank's blocks are written
        if rank == 0:
            split_writer.finalize()
    finally:
        if split_writer is not None:
            split_writer.close()


def _run_settings(module, device, rank, world, amp, channels_last, workers, batch_size):
    """This run's settings (device of this rank, amp, channels_last, workers, batch_size), defaults filled in."""
    dev = resolve_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    if amp and dev.type != "cuda":
        # stacklevel: the caller of extract_features
        warnings.warn("--amp (bf16 autocast) applies on CUDA only; running in float32 on the CPU.", stacklevel=3)
        amp = False
    if channels_last is None:
        channels_last = default_channels_last(module, dev)
    if workers is None:
        workers = min(8, max((os.cpu_count() or 1) - 1, 0)) if dev.type == "cuda" else 0
    return dict(batch_size=batch_size, dev=dev, workers=workers, amp=amp, channels_last=channels_last)


def _nonempty_source(data, input_size, preprocess, limit, split):
    """The data source opened (a ``--data`` string) and limited; an empty one refused."""
    source = open_source(data, input_size, preprocess) if not isinstance(data, Source) else data
    source = source.limit(limit)
    if len(source) == 0:
        # an empty split would be "complete" and then break every reader's metrics
        raise ValueError(
            f"data source {source.description} holds no images"
            f"{' after --limit 0' if limit == 0 else ''}: nothing to extract into split {split!r}."
        )
    return source


def _prepare_split(out, split, extractor, source, name, attrs, rows, amp, extra, world):
    """Rank 0: the store created or reopened and the split prepared; the outcome shared with the other ranks."""
    status = None
    split_writer = None
    try:
        writer = create_store(
            out,
            model=name,
            head=extractor.to_head(),
            preprocessing=_with_input_size(attrs.get("preprocessing"), source),
            weights_sha256=attrs.get("weights_sha256"),
            feature_layer=attrs.get("feature_layer") or f"{extractor.head_name}:input",
            parameters_sha256=parameters_fingerprint(extractor.module),  # the identity; the name is information
        )
        split_writer = writer.prepare_split(
            split, len(source), source=source.description, chunk_rows=rows,
            settings={"amp": bool(amp)}, extra_attrs=extra,
        )
    except Exception as exc:
        status = str(exc)
        if world == 1:
            raise
    if world > 1:
        _broadcast_status(0, world, status)
        if status is not None:
            raise StoreError(status)
    return split_writer


def _with_input_size(preprocessing, source):
    """The preprocessing record with ``input_size``, the shape of the source's first network input, added.

    Only a record (a dict) that lacks it gains it: a generated source extended
    into the store later takes its size from there (:func:`recorded_input_size`).
    """
    if not isinstance(preprocessing, dict) or "input_size" in preprocessing:
        return preprocessing
    shape = getattr(source[0][0], "shape", None)
    return preprocessing if shape is None else {**preprocessing, "input_size": [int(v) for v in shape]}


def recorded_input_size(out) -> tuple[int, ...] | None:
    """The network input shape ``(C, H, W)`` the store at ``out`` recorded with its preprocessing.

    Extraction records the shape of the first split's inputs; a generated
    source (``noise:N``, ``blobs:N``, ...) given no ``input_size`` takes it from
    there, so noise joins a store of real images at their size.

    Parameters
    ----------
    out : str or os.PathLike
        A store's folder.

    Returns
    -------
    tuple of int or None
        None when there is no readable store there, or it recorded no size.
    """
    from skdice.store import open_store

    if not Path(out).is_dir():
        return None
    try:
        preprocessing = open_store(out).attrs.get("preprocessing")
    except (StoreError, OSError, ValueError):
        return None  # extraction then reports the store's problem, or asks for a size
    size = preprocessing.get("input_size") if isinstance(preprocessing, dict) else None
    if not isinstance(size, list) or not size or not all(isinstance(v, int) and v > 0 for v in size):
        return None
    return tuple(size)


def _chunks_of_this_rank(pending, rank, world):
    """Of the chunks not yet written, those this rank extracts (contiguous blocks, one per rank)."""
    if world == 1:
        return pending
    torch.distributed.barrier()  # every rank read the flags before anyone writes
    return [int(c) for c in np.array_split(np.asarray(pending, dtype=int), world)[rank]]


def _worker_error(exc: BaseException) -> BaseException | None:
    """The error a DataLoader worker raised, without the traceback torch pastes into its message.

    torch re-raises a worker's exception as the same type with the message
    "Caught X in DataLoader worker process N.\nOriginal Traceback ...", which
    would turn a one-line user error (a corrupt image) into a traceback.
    """
    text = str(exc)
    if "DataLoader worker" not in text or "Original Traceback" not in text:
        return None
    last = [line for line in text.splitlines() if line.strip()][-1].strip()
    prefix = f"{type(exc).__name__}: "
    message = last[len(prefix):] if last.startswith(prefix) else last
    try:
        return type(exc)(message)
    except Exception:  # an exception type that wants other arguments: keep torch's
        return None


def default_channels_last(module, device) -> bool:
    """Whether extraction runs in the channels-last memory format by default on ``device``.

    Measured on this project's CPU (2 cores, torch 2.13, float64 reference;
    docs/store.md): DenseNet-BC-100 (BatchNorm) runs 2.4x faster in
    channels-last at the same precision (max relative error 6.8e-7 vs 4.5e-7),
    while BiT-S-R101 (GroupNorm) runs no faster and is 13x less precise
    (3.2e-4 vs 2.5e-5). So: on CUDA yes (cuDNN's fast path); on the CPU yes
    unless the network has ``nn.GroupNorm`` layers.

    Parameters
    ----------
    module : torch.nn.Module
    device : torch.device

    Returns
    -------
    bool
    """
    if torch.device(device).type == "cuda":
        return True
    return not any(isinstance(m, torch.nn.GroupNorm) for m in module.modules())


def _run_chunks(extractor, source, split_writer, chunks, batch_size, dev, workers, amp, channels_last, bar):
    if not chunks:
        return
    batches = _batches_of(chunks, split_writer, batch_size)
    loader = torch.utils.data.DataLoader(
        source,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
        collate_fn=collate_rows,  # images of several sizes: one line, not torch's stack error
        prefetch_factor=4 if workers > 0 else None,
    )
    m, c = extractor.n_features, extractor.n_classes
    batches_in = iter(loader)  # fork the workers before the writer thread starts
    writer = _ChunkWriter(split_writer)
    order = iter(chunks)
    current = None
    try:
        with torch.inference_mode():
            for x, y, paths in batches_in:
                if current is None:
                    index = next(order)
                    start, stop = split_writer.chunk_bounds(index)
                    current = (index, start, stop, np.empty((stop - start, m), np.float32),
                               np.empty((stop - start, c), np.float32), np.empty(stop - start, np.int64), [])
                    filled = 0
                x = x.to(dev, non_blocking=True)
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    feats, logits = extractor(x)
                feats, logits, y = feats.float().cpu().numpy(), logits.float().cpu().numpy(), y.numpy()
                check_batch(x.shape[0], feats, logits, y, paths, n_features=m, n_classes=c, amp=amp)
                n = feats.shape[0]
                index, start, stop, f_buf, l_buf, y_buf, p_buf = current
                f_buf[filled : filled + n] = feats
                l_buf[filled : filled + n] = logits
                y_buf[filled : filled + n] = y
                p_buf.extend(paths)
                filled += n
                bar.update(n)
                if filled == stop - start:
                    writer.put((index, f_buf, l_buf, y_buf, p_buf))
                    current = None
    except torch.OutOfMemoryError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        raise SkdiceError(
            f"out of {dev.type} memory at --batch-size {batch_size} ({first}): lower --batch-size; "
            f"the split's chunking follows the batch size, so delete the folder "
            f"{split_writer.store.path / split_writer.split} before running again with another one."
        ) from exc
    except Exception as exc:
        clean = _worker_error(exc)
        if clean is None:
            raise
        raise clean from exc
    finally:
        writer.close()
        bar.close()
