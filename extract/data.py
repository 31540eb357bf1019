"""Data sources for the extraction stage: image folders, .npz arrays, CIFAR batches, noise,
synthetic outlier images and corruptions of real images.

Every source is a map-style ``torch.utils.data.Dataset`` of fixed length and
fixed order whose items are ``(input tensor (3, H, W) float32, label int,
path str)``; the default collate function turns a batch of them into
``(tensor (B, 3, H, W), labels int64 (B,), list of paths)``. The order never
depends on the file system's listing order or on the worker count, which is
what lets an interrupted extraction resume chunk by chunk.

Use :func:`open_source` for the strings the command line accepts (``--data``)
and :class:`ArraySource` for arrays already in memory.

Validation outliers that need no real OOD data come in three families:
``noise:N`` (N(0, 1) on the network's input, the DICE paper's Section 4.1),
pixel-space images drawn by :class:`SyntheticImageSource` (``gaussian``,
``uniform``, ``rademacher``, ``blobs``, after Hendrycks et al. 2019) and
corruptions of another source's images by :class:`CorruptedSource`
(``jigsaw``, ``permute``, ``blur``). The last two are images: they go through
the model's own preprocessing exactly as real images do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ._files import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    CifarSource,
    ImageFolderSource,
    NpzSource,
    escape_file_name,
    file_name_bytes,
)
from ._generated import (
    CORRUPTION_KINDS,
    CORRUPTIONS,
    INPUT_SIZE_REMEDY,
    MAX_GENERATED_ROWS,
    SYNTHETIC,
    SYNTHETIC_KINDS,
    CorruptedSource,
    NoiseSource,
    SyntheticImageSource,
    checked_param,
)
from ._source import ArraySource, Source

__all__ = [
    "Source",
    "ImageFolderSource",
    "NpzSource",
    "CifarSource",
    "NoiseSource",
    "SyntheticImageSource",
    "CorruptedSource",
    "ArraySource",
    "open_source",
    "IMAGE_EXTENSIONS",
    "SYNTHETIC_KINDS",
    "CORRUPTION_KINDS",
    "MAX_GENERATED_ROWS",
    "MAX_IMAGE_PIXELS",
    "escape_file_name",
    "file_name_bytes",
]


# KIND[key=value,...]:REST. A name of two characters or more, so that a
# Windows drive letter ("C:") is never read as a kind.
_SPEC = re.compile(r"(?P<kind>[A-Za-z][A-Za-z0-9_-]+)(?:\[(?P<params>[^\[\]]*)\])?:(?P<rest>.*)", re.DOTALL)
_KIND_PREFIX = re.compile(r"(?P<kind>[A-Za-z][A-Za-z0-9_-]+)[\[:]")
_COUNT = re.compile(r"(?P<n>[0-9]+)(?::(?P<seed>[0-9]+))?")


def _usage(kind: str) -> str:
    if kind == "noise":
        return "noise:N[:SEED]"
    if kind in SYNTHETIC:
        params = SYNTHETIC[kind][2]
        return f"{kind}{'[' + ','.join(f'{k}=...' for k in params) + ']' if params else ''}:N[:SEED]"
    return f"{kind}[{','.join(f'{k}=...' for k in CORRUPTIONS[kind][2])}]:SOURCE"


def _spec_params(kind: str, text: str | None, spec: str, allowed: dict) -> dict:
    """``key=value,...`` of a spec, checked against the kind's parameters."""
    if text is None or not text.strip():
        return {}
    if not allowed:
        raise ValueError(f"{spec!r}: {kind} takes no parameters (write {_usage(kind)}).")
    out = {}
    for item in text.split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key or not value:
            raise ValueError(f"{spec!r}: parameters are written [key=value,...], got {item.strip()!r}.")
        if key not in allowed:
            raise ValueError(f"{spec!r}: {kind} has no parameter {key!r} (it takes: {', '.join(allowed)}).")
        if key in out:
            raise ValueError(f"{spec!r}: parameter {key!r} is given twice.")
        out[key] = checked_param(key, value, allowed[key][0], repr(spec))
    return out


def _open_generated(kind, params_text, rest, spec, input_size, preprocess) -> Source:
    """A ``noise``, synthetic or corrupted source from its parsed spec."""
    if kind in CORRUPTIONS:
        params = _spec_params(kind, params_text, spec, CORRUPTIONS[kind][2])
        if not rest:
            raise ValueError(f"{spec!r}: {kind} needs a source after the colon, e.g. {kind}:/data/cifar-10-batches-py.")
        base = open_source(rest, input_size, preprocess)
        if not base.provides_images:
            raise ValueError(
                f"{spec!r}: {kind} corrupts images, but {rest!r} gives network inputs; "
                f"corrupt a folder, an .npz, CIFAR batches or a synthetic image source."
            )
        return CorruptedSource(base, kind, preprocess, **params)
    params = _spec_params(kind, params_text, spec, {} if kind == "noise" else SYNTHETIC[kind][2])
    match = _COUNT.fullmatch(rest)
    if match is None:
        raise ValueError(
            f"{kind} source {spec!r} must look like {kind}:N or {kind}:N:SEED (integers, SEED >= 0; "
            f"in full: {_usage(kind)})."
        )
    n, seed = int(match["n"]), int(match["seed"] or 0)
    if n > MAX_GENERATED_ROWS:
        raise ValueError(
            f"{spec!r} asks for {n} rows; a generated source holds at most {MAX_GENERATED_ROWS} "
            f"(extract several splits with different seeds for more)."
        )
    if kind == "noise":
        return NoiseSource(n, input_size, seed)
    if input_size is None:
        raise ValueError(f"{spec!r}: {kind} images {INPUT_SIZE_REMEDY}")
    return SyntheticImageSource(kind, n, tuple(input_size)[-2:], seed, preprocess, **params)


def open_source(spec, input_size=None, preprocess=None) -> Source:
    """Open the data source named by a ``--data`` string.

    Parameters
    ----------
    spec : str or os.PathLike or Source
        A path: a folder of images (class subfolders or flat), an ``.npz``
        file, a CIFAR python batches folder (``cifar-10-batches-py``,
        ``cifar-100-python``) or one batch file. Or a generated source,
        ``KIND[key=value,...]:REST``:

        - ``noise:N[:SEED]``: N(0, 1) on the network's input
          (:class:`NoiseSource`);
        - ``gaussian[sigma=S]:N[:SEED]``, ``uniform:N[:SEED]``,
          ``rademacher:N[:SEED]``, ``blobs[sigma=S]:N[:SEED]``: images drawn
          in pixel space at the network's input size, then preprocessed
          (:class:`SyntheticImageSource`);
        - ``jigsaw[grid=G,seed=S]:SOURCE``, ``permute[seed=S]:SOURCE``,
          ``blur[sigma=S]:SOURCE``: the images of ``SOURCE`` (any spec
          above, the rest of the string after the first colon) corrupted,
          then preprocessed (:class:`CorruptedSource`).

        A known kind always wins over a path: write ``./gaussian:5`` for a
        file of that name. A :class:`Source` is returned as is.
    input_size : tuple of int, default=None
        The network's input shape ``(3, H, W)``; needed for noise and for the
        synthetic images (their size is ``(H, W)``).
    preprocess : callable, default=None
        PIL RGB image -> float32 tensor (3, H, W).

    Returns
    -------
    Source

    Raises
    ------
    ValueError
        When the path does not exist or is not a recognised source, the kind
        is unknown, or a count, seed or parameter is malformed. The message
        names the spec.

    Examples
    --------
    >>> open_source("blobs:100:1", input_size=(3, 32, 32)).description
    'blobs[sigma=1.5]:100:1'
    >>> open_source("jigsaw[grid=2]:uniform:10", input_size=(3, 32, 32)).description
    'jigsaw[grid=2,seed=0]:uniform:10:0'
    """
    if isinstance(spec, Source):
        return spec
    text = os.fspath(spec)
    known = ("noise", *SYNTHETIC, *CORRUPTIONS)
    match = _SPEC.fullmatch(text)
    prefix = _KIND_PREFIX.match(text)
    if prefix and prefix["kind"] in known and (match is None or match["kind"] != prefix["kind"]):
        raise ValueError(f"{text!r} is not a valid {prefix['kind']} source: write {_usage(prefix['kind'])}.")
    if match and match["kind"] in known:
        return _open_generated(match["kind"], match["params"], match["rest"], text, input_size, preprocess)
    if match and not Path(text).exists():
        raise ValueError(
            f"unknown data source kind {match['kind']!r} in {text!r}, and no such file or folder exists "
            f"(kinds: {', '.join(known)}; write ./{text} for a path)."
        )
    path = Path(text)
    if not path.exists():
        raise ValueError(
            f"data source {path} does not exist (expected a folder, an .npz, CIFAR batches, "
            f"or a generated source such as noise:N, gaussian:N or jigsaw:SOURCE)."
        )
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return NpzSource(path, preprocess)
        if path.name in ("test_batch", "test", "train") or path.name.startswith("data_batch_"):
            return CifarSource(path, preprocess)
        raise ValueError(f"{path} is neither an .npz file nor a CIFAR python batch.")
    if (path / "batches.meta").is_file() or ((path / "meta").is_file() and (path / "test").is_file()):
        return CifarSource(path, preprocess)
    return ImageFolderSource(path, preprocess)
