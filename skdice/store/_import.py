"""Features computed by any framework into a store: :func:`import_arrays` (``skdice import``).

A model that is not PyTorch (JAX, TensorFlow, ONNX, ...) cannot be extracted
by ``skdice extract``; its user saves the penultimate features, and for a new
store the head, as NumPy files, and this module writes them as a split
exactly as extraction does: the same writer (chunk-aligned, checksummed,
resumable, with the manifest), the model's name and the head's fingerprint in
the store's manifest, and a content fingerprint of the imported arrays in the
split's attributes (a resume must bring the same data).

Everything is checked before anything is written: the widths against the
store or the head, the head against the store's, non-finite values, labels
outside the head's classes and given logits that are not the features times
the head. Files are loaded without pickle; ``.npy`` files are memory-mapped
and read one chunk of rows at a time, so a split larger than memory streams
through (twice: once to check and fingerprint it, once to write it).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from .._head import Head
from ..exceptions import StoreError
from ._reader import open_store
from ._schema import default_chunk_rows, import_zarr
from ._verify import LOGITS_RTOL
from ._writer import StoreWriter, create_store

__all__ = ["WEIGHT_LAYOUTS", "import_arrays", "load_array"]

#: How ``weight`` is laid out, stated, never guessed: (n_features, n_classes) or (n_classes, n_features).
WEIGHT_LAYOUTS = {"features-classes": "paper", "classes-features": "torch"}
#: Rows read at a time while the arrays are checked and fingerprinted (memory-mapped files).
SCAN_ROWS = 4096


def load_array(spec) -> np.ndarray:
    """An array from ``FILE.npy`` (memory-mapped) or ``FILE.npz:KEY`` (that member), never unpickled.

    Parameters
    ----------
    spec : str or os.PathLike
        A ``.npy`` file, or an ``.npz`` file and the name of one of its
        members after a colon.

    Returns
    -------
    ndarray or numpy.memmap
        A ``.npy`` file is memory-mapped read-only (its rows are read when
        sliced); an ``.npz`` member is loaded whole (NumPy cannot map a member
        of a zip file).

    Raises
    ------
    ValueError
        When the file is missing, not a NumPy file, holds objects (pickles
        are never loaded), or the ``.npz`` has no such member (its members
        are named).
    """
    text = os.fspath(spec)
    path, key = Path(text), None
    if not path.exists() and ":" in text:
        head, _, tail = text.rpartition(":")
        if head.lower().endswith(".npz"):
            path, key = Path(head), tail
    if not path.is_file():
        raise ValueError(f"{text}: no such file" + (" (an .npz member is FILE.npz:KEY)"
                                                    if path.suffix.lower() == ".npz" else "") + ".")
    try:
        if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                if key is None:
                    raise ValueError(f"{path} is an .npz archive: name one member as {path}:KEY "
                                     f"(members: {', '.join(names) or 'none'})")
                if key not in names:
                    raise ValueError(f"{path} has no member {key!r} (members: {', '.join(names) or 'none'})")
                try:
                    return archive[key]
                except ValueError as exc:
                    _refuse_objects(exc, f"{path}:{key}")
                    raise
        with open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise OSError("no .npy header; pickles are never loaded")
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            _refuse_objects(exc, path)
            raise
    except ValueError as exc:
        raise ValueError(f"{exc}.".replace("..", ".")) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a NumPy .npy or .npz file ({type(exc).__name__}: {exc}).") from None


def _refuse_objects(exc: ValueError, where) -> None:
    """NumPy's refusal to unpickle, in one line of ours."""
    if any(word in str(exc) for word in ("allow_pickle", "Object arrays", "Python objects")):
        raise ValueError(f"{where} holds Python objects, not numbers (pickles are never loaded)") from None


def _array(value, name: str, ndim: int, kinds: str):
    """``value`` (an array or a file spec) checked for its rank and kind of numbers; its description."""
    if isinstance(value, (str, os.PathLike)):
        where, arr = os.fspath(value), load_array(value)
    else:
        where, arr = f"the {name} array", np.asarray(value)
    if arr.dtype.kind not in kinds:
        wanted = "integers" if kinds == "iu" else "real numbers"
        raise ValueError(f"{name} ({where}) must hold {wanted}, not {arr.dtype}.")
    if arr.ndim != ndim:
        raise ValueError(f"{name} ({where}) must be {ndim}-dimensional, got shape {arr.shape}.")
    return arr, where


def _head(weight, bias, weight_layout, m: int):
    """The head from its arrays and stated layout, checked against the features' width ``m``."""
    if weight_layout not in WEIGHT_LAYOUTS:
        raise ValueError(f"a weight needs its layout stated: weight_layout='features-classes' "
                         "(n_features, n_classes) or 'classes-features' (n_classes, n_features)"
                         + ("." if weight_layout is None else f", got {weight_layout!r}."))
    w, w_where = _array(weight, "weight", 2, "fiu")
    b = None if bias is None else _array(bias, "bias", 1, "fiu")[0]
    rows = w.shape[0] if weight_layout == "features-classes" else w.shape[1]
    if rows != m:
        other = "classes-features" if weight_layout == "features-classes" else "features-classes"
        hint = (f" (its shape is what weight_layout='{other}' describes)"
                if (w.shape[1] if weight_layout == "features-classes" else w.shape[0]) == m else "")
        raise ValueError(f"the weight ({w_where}) has shape {tuple(w.shape)}, which as {weight_layout} "
                         f"has {rows} features, but the features have {m}{hint}.")
    return Head(np.asarray(w), None if b is None else np.asarray(b), layout=WEIGHT_LAYOUTS[weight_layout])


def _existing_store(path: Path):
    """The store at ``path``, or None when there is none yet (no folder, or an empty one)."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    if path.is_dir() and not (path / "zarr.json").exists():
        raise StoreError(f"{path} is a folder but not a feature store: import into a new path.")
    try:
        return open_store(path)
    except StoreError as exc:
        if "re-running that command completes it" in str(exc):
            return None  # a creation killed half way: create_store makes it again
        raise


def _resolve_head(fs, path, head, model, m):
    """The head to write with: the store's (``head`` must equal it) or ``head`` for a new store."""
    if fs is None:
        if head is None or not model:
            raise ValueError(f"{path} is a new store: give its head (weight=W.npy, bias=b.npy, "
                             "weight_layout=...) and model=NAME with its first split.")
        return head
    stored = fs.head
    if stored.n_features != m:
        raise ValueError(f"{path} holds features of width {stored.n_features} ({fs.model!r}), "
                         f"these have {m}: import them into another store.")
    if head is not None and (head.weight.shape != stored.weight.shape or not (
            np.array_equal(head.weight, stored.weight) and np.array_equal(head.bias, stored.bias))):
        raise ValueError(f"the head given ({head.n_features} x {head.n_classes}) differs from the head "
                         f"{path} holds ({stored.n_features} x {stored.n_classes}, model {fs.model!r}): "
                         "import into another store, or leave weight= and bias= out to use the store's.")
    if model and model != fs.model:
        raise ValueError(f"{path} holds features of model {fs.model!r}, not {model!r}: import into "
                         "another store, or leave model= out.")
    return stored


def _scan(features, labels, logits, head: Head, rows: int) -> str:
    """Check every row (finite, labels in range, logits = features x head) and fingerprint them all.

    Returns the content fingerprint ``blake2b:<hex>`` of the features, labels
    and logits as they will be stored (float32, int64, float32).
    """
    h = hashlib.blake2b(digest_size=16, person=b"skdice-import")
    n, c = features.shape[0], head.n_classes
    for what, arr in (("features", features), ("labels", labels), ("logits", logits)):
        h.update(f"{what}{None if arr is None else tuple(arr.shape)}\0".encode("ascii"))
    w, b = head.weight.astype(np.float64), head.bias.astype(np.float64)
    for a in range(0, n, rows):
        z = min(a + rows, n)
        with np.errstate(over="ignore", invalid="ignore"):
            block = np.ascontiguousarray(features[a:z], dtype=np.float32)
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            raise ValueError(f"the features hold NaN or infinity (in float32) at row {a + int(np.argmax(bad))}: "
                             "nothing was written; fix them and import again.")
        h.update(block.view(np.uint8))
        if labels is not None:
            y = np.asarray(labels[a:z], dtype=np.int64)
            out = (y < -1) | (y >= c)
            if out.any():
                r = int(np.argmax(out))
                raise ValueError(f"label {int(y[r])} at row {a + r} is outside [-1, {c}) (the head has {c} "
                                 "classes; -1 means unknown): nothing was written.")
            h.update(np.ascontiguousarray(y, "<i8").view(np.uint8))
        if logits is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                z32 = np.ascontiguousarray(logits[a:z], dtype=np.float32)
            _check_logits(block, z32, w, b, a)
            h.update(z32.view(np.uint8))
    return "blake2b:" + h.hexdigest()


def _check_logits(block, logits, w, b, start: int) -> None:
    """Refuse logits that are not ``block @ w + b`` within verify's tolerance (another head or model)."""
    if not np.isfinite(logits).all():
        r = int(np.argmax(~np.isfinite(logits).all(axis=1)))
        raise ValueError(f"the logits hold NaN or infinity (in float32) at row {start + r}: nothing was written.")
    h = block.astype(np.float64)
    diff = np.abs(logits - (h @ w + b))
    bound = LOGITS_RTOL * (np.abs(h) @ np.abs(w) + np.abs(b)) + 1e-6
    if (diff > bound).any():
        r = int(np.argmax((diff > bound).any(axis=1)))
        raise ValueError(
            f"the logits differ from the features times the head by up to {float(diff[r].max()):.3g} at row "
            f"{start + r}: they are another model's or the head's layout is wrong; nothing was written "
            "(leave the logits out to have them computed from the head).")


def import_arrays(path, split: str, *, features, labels=None, logits=None, weight=None, bias=None,
                  weight_layout: str | None = None, model: str | None = None, chunk_rows: int | None = None,
                  progress=None) -> Path:
    """Write features computed by any framework into a store as a split, as extraction does.

    Parameters
    ----------
    path : str or os.PathLike
        The store: created by the first import (which gives the head and the
        model's name), extended by the next ones.
    split : str
        The split's name.
    features : array-like of shape (n_samples, n_features), or a file spec
        Penultimate features; a file spec is ``FILE.npy`` (memory-mapped) or
        ``FILE.npz:KEY``. Stored as float32.
    labels : array-like of shape (n_samples,) of integers, or a file spec, default=None
        Class indices in ``[0, n_classes)``, -1 for unknown; None: all -1.
    logits : array-like of shape (n_samples, n_classes), or a file spec, default=None
        The head's logits; None: computed as ``features @ W + b``. Given
        ones must agree with that within ``verify``'s tolerance.
    weight : array-like of 2 dimensions, or a file spec, default=None
        The head's weight; required for a new store, else compared with the store's.
    bias : array-like of shape (n_classes,), or a file spec, default=None
        The head's bias (zeros when a weight is given without one).
    weight_layout : {"features-classes", "classes-features"}, default=None
        How ``weight`` is laid out: ``(n_features, n_classes)`` (the paper's,
        JAX's ``Dense`` kernel) or ``(n_classes, n_features)`` (PyTorch's,
        ONNX ``Gemm`` with ``transB=1``); required with ``weight``.
    model : str, default=None
        The model's name, recorded; required for a new store, else it must
        equal the store's.
    chunk_rows : int, default=None
        Rows per chunk; default as ``skdice extract`` at batch size 64.
    progress : callable, default=None
        ``progress(rows_done, rows_total)`` as chunks are written.

    Returns
    -------
    pathlib.Path
        The store.

    Raises
    ------
    ValueError
        For inputs that disagree with each other, the head or the store
        (nothing is written).
    StoreError
        When the store is damaged, another writer holds the split, or the
        split was started with other data (its content fingerprint differs).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skdice.store import import_arrays, open_store
    >>> rng = np.random.default_rng(0)
    >>> W, b = rng.normal(size=(8, 3)), np.zeros(3)
    >>> out = os.path.join(tempfile.mkdtemp(), "jax.zarr")
    >>> _ = import_arrays(out, "test", features=rng.random((100, 8)), labels=rng.integers(0, 3, 100),
    ...                   weight=W, bias=b, weight_layout="features-classes", model="my-jax-net")
    >>> open_store(out).features("test").shape
    (100, 8)
    """
    path = Path(path)
    import_zarr()  # without the store extra: its one-line error first
    H, h_where = _array(features, "features", 2, "fiu")
    n, m = H.shape
    if n == 0 or m == 0:
        raise ValueError(f"the features ({h_where}) have shape {tuple(H.shape)}: nothing to import.")
    y = None if labels is None else _array(labels, "labels", 1, "iu")
    Z = None if logits is None else _array(logits, "logits", 2, "fiu")
    for name, got in (("labels", y), ("logits", Z)):
        if got is not None and got[0].shape[0] != n:
            raise ValueError(f"{name} ({got[1]}) have {got[0].shape[0]} rows but the features {n}.")
    head = None if weight is None else _head(weight, bias, weight_layout, m)
    if weight is None and (bias is not None or weight_layout is not None):
        raise ValueError("bias= and weight_layout= describe a weight: give weight= too.")
    fs = _existing_store(path)
    head = _resolve_head(fs, path, head, model, m)
    if Z is not None and Z[0].shape[1] != head.n_classes:
        raise ValueError(f"the logits ({Z[1]}) have {Z[0].shape[1]} classes but the head {head.n_classes}.")
    rows = int(chunk_rows) if chunk_rows is not None else default_chunk_rows(m, head.n_classes, 64)
    if rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {rows}.")
    content = _scan(H, None if y is None else y[0], None if Z is None else Z[0], head, SCAN_ROWS)
    writer = (create_store(path, model=model, head=head, feature_layer="imported")
              if fs is None else StoreWriter.open(path))
    described = ", ".join(f"{k}={w}" for k, w in (("features", h_where), ("labels", y and y[1]),
                                                   ("logits", (Z and Z[1]) or "features x head")) if w)
    with writer.prepare_split(split, n, source=f"imported: {described}", chunk_rows=rows,
                              settings={"content_fingerprint": content}) as sw:
        _write_chunks(sw, H, None if y is None else y[0], None if Z is None else Z[0], head,
                      Path(h_where).name if h_where != "the features array" else "features", progress)
        sw.finalize()
    return path


def _write_chunks(sw, H, y, Z, head: Head, name: str, progress) -> None:
    """Write every pending chunk of ``sw`` from the (memory-mapped) arrays, one chunk in memory at a time."""
    pending = sw.pending()
    total = sum(z - a for a, z in map(sw.chunk_bounds, pending))
    done = 0
    if progress is not None and total:
        progress(0, total)
    for k in pending:
        a, z = sw.chunk_bounds(k)
        block = np.ascontiguousarray(H[a:z], dtype=np.float32)
        logits = head.logits(block) if Z is None else np.asarray(Z[a:z], dtype=np.float32)
        labels = np.full(z - a, -1, np.int64) if y is None else np.asarray(y[a:z], dtype=np.int64)
        sw.write_chunk(k, block, logits, labels, [f"{name}#{i}" for i in range(a, z)])
        done += z - a
        if progress is not None:
            progress(done, total)
