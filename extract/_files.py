"""Sources read from files: image folders, ``.npz`` arrays, CIFAR python batches (private: import from :mod:`skdice.extract.data`)."""

from __future__ import annotations

import io
import math
import os
import pickle
import warnings
from pathlib import Path

import numpy as np

from skdice.exceptions import require

torch = require("torch", "extract")
from PIL import Image  # noqa: E402  (Pillow comes with the extract extra)

from ._source import Source, UInt8ImageArray, default_preprocess  # noqa: E402
from .transforms import to_rgb8  # noqa: E402

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "ImageFolderSource", "NpzSource", "CifarSource",
           "escape_file_name", "file_name_bytes"]

#: File suffixes read as images by :class:`ImageFolderSource` (compared in lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

#: Images with more pixels (8192 x 8192) are refused before decoding: about 192 MiB as RGB.
#: Pillow's own limit (89,478,485 pixels warns, twice that refuses) lets a 12000 x 12000
#: image through with a warning, at about 1 GiB per image.
MAX_IMAGE_PIXELS = 8192 * 8192


def escape_file_name(name: str) -> str:
    """A file name as a row path: UTF-8 text that maps back to the name's bytes.

    A backslash becomes ``\\\\`` and each byte that is not part of valid
    UTF-8 (a name that ``os.fsdecode`` could only keep with surrogates, such
    as ``b"bad\\xff.png"``) becomes ``\\xNN``; every other character is kept.
    :func:`file_name_bytes` reverses it.

    Parameters
    ----------
    name : str
        A name as Python gives it (``os.fsdecode``: undecodable bytes as surrogates).

    Returns
    -------
    str

    Examples
    --------
    >>> escape_file_name(os.fsdecode(b"bad\\xff.png"))
    'bad\\\\xff.png'
    >>> escape_file_name("cat/0001.png")
    'cat/0001.png'
    """
    return os.fsencode(name).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def file_name_bytes(path: str) -> bytes:
    """The bytes of the file name a row path stands for (the inverse of :func:`escape_file_name`).

    Parameters
    ----------
    path : str
        A row path of an image folder's split.

    Returns
    -------
    bytes
        Pass to ``os.fsdecode`` for a name ``open`` accepts.

    Examples
    --------
    >>> file_name_bytes("bad\\\\xff.png")
    b'bad\\xff.png'
    """
    out, i, text = bytearray(), 0, str(path)
    while i < len(text):
        if text.startswith("\\\\", i):
            out += b"\\"
            i += 2
        elif text.startswith("\\x", i) and all(c in "0123456789abcdefABCDEF" for c in text[i + 2 : i + 4]) \
                and len(text) >= i + 4:
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out += text[i].encode("utf-8")
            i += 1
    return bytes(out)


def _printable(text: str) -> str:
    """``text`` for a message or an attribute: unchanged when it is valid UTF-8, else its bytes escaped."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


class ImageFolderSource(Source):
    """Images in a folder: class subfolders (labels from sorted names) or flat (labels -1).

    Files are taken in sorted order of their paths; each row's path is
    recorded relative to ``root``.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding either one subfolder per class or the images themselves.
    preprocess : callable, default=None
        PIL RGB image -> float32 tensor (3, H, W); None scales to [0, 1] only.

    Attributes
    ----------
    classes : list of str
        Sorted class folder names (empty for a flat folder).
    files : list of pathlib.Path
    """

    provides_images = True

    def __init__(self, root, preprocess=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"image folder {self.root} does not exist or is not a folder.")
        self.preprocess = preprocess or default_preprocess
        entries = sorted(p for p in self.root.iterdir() if not p.name.startswith("."))
        subdirs = [p for p in entries if p.is_dir()]
        flat = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if subdirs and flat:
            raise ValueError(
                f"{self.root} holds both images and subfolders: use one subfolder per class, "
                f"or a flat folder of images."
            )
        self.classes = [escape_file_name(p.name) for p in subdirs]
        self.files, labels = [], []
        if subdirs:
            for label, sub in enumerate(subdirs):
                found = sorted(
                    p for p in sub.rglob("*")
                    if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                    and not any(part.startswith(".") for part in p.relative_to(sub).parts)
                )
                self.files.extend(found)
                labels.extend([label] * len(found))
        else:
            self.files = flat
            labels = [-1] * len(flat)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {self.root}.")
        self._labels = np.asarray(labels, dtype=np.int64)
        self.description = f"folder:{_printable(str(self.root.resolve()))}"

    def __len__(self):
        return len(self.files)

    def _label(self, index):
        return int(self._labels[index])

    def labels(self):
        return self._labels.copy()

    def _pil(self, index):
        path = self.files[index]
        try:
            with warnings.catch_warnings():  # Pillow's bomb warning: refused below, with the cause
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(path)  # reads the header only: the size is known before decoding
        except Exception as exc:  # a corrupt file: say which one
            raise ValueError(f"could not read image {_printable(str(path))}: {exc}") from None
        with img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                side = math.isqrt(MAX_IMAGE_PIXELS)
                raise ValueError(
                    f"image {_printable(str(path))} is {width}x{height} pixels ({width * height:,}), more than "
                    f"the {MAX_IMAGE_PIXELS:,} ({side}x{side}) skdice decodes; refused before decoding (it would "
                    f"take about {width * height * 3 / 2**30:.1f} GiB): downscale it first, or leave it out."
                )
            try:
                return to_rgb8(img)  # by value range: a 16-bit PNG is not clipped to white
            except Exception as exc:  # a corrupt file: say which one
                raise ValueError(f"could not read image {_printable(str(path))}: {exc}") from None

    def _row_path(self, index) -> str:
        # lossless and UTF-8 whatever the name's bytes (docs/store.md, "File names")
        return escape_file_name(self.files[index].relative_to(self.root).as_posix())

    def _item(self, index):
        img = self._pil(index)
        return self.preprocess(img), int(self._labels[index]), self._row_path(index)

    def _raw(self, index):
        return np.asarray(self._pil(index)), self._row_path(index)


class NpzSource(UInt8ImageArray):
    """Images from an .npz file: ``images`` uint8 (N, H, W) or (N, H, W, C), optional ``labels``.

    Loaded with ``allow_pickle=False``. Grayscale images become RGB. Row paths
    are ``<file>#<index>``.

    Parameters
    ----------
    path : str or os.PathLike
    preprocess : callable, default=None
        PIL RGB image -> float32 tensor (3, H, W).
    """

    def __init__(self, path, preprocess=None):
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path} does not exist.")
        try:
            with np.load(path, allow_pickle=False) as data:
                if "images" not in data.files:
                    raise ValueError(f"{path} has no 'images' array (it has: {', '.join(data.files) or 'nothing'}).")
                images = data["images"]
                labels = data["labels"] if "labels" in data.files else None
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                raise ValueError(f"{path} holds Python objects; only plain numeric arrays are read.") from None
            raise
        self._setup(images, labels, str(path), preprocess)
        self.description = f"npz:{path.resolve()}"


class _CifarUnpickler(pickle.Unpickler):
    # The CIFAR python batches are pickles of a dict of bytes keys, lists of ints
    # and one uint8 ndarray. Only numpy's array reconstruction is let through,
    # so a crafted file cannot name any other callable.
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode  # how protocol 2 spells bytes written by Python 3
        if (module, name) in self._ALLOWED:
            if module == "numpy.core.multiarray" and hasattr(np, "_core"):
                module = "numpy._core.multiarray"  # NumPy 2 renamed it; the old name warns
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays")


def _latin1_encode(text, encoding="latin1"):
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin1")


def _load_cifar_batch(path: Path) -> dict:
    try:
        data = _CifarUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as exc:
        raise ValueError(f"{path} is not a CIFAR python batch: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CIFAR python batch (it holds a {type(data).__name__}).")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


class CifarSource(UInt8ImageArray):
    """The CIFAR-10/100 python batches (``cifar-10-batches-py``, ``cifar-100-python``).

    A folder means its test set (``test_batch`` for CIFAR-10, ``test`` for
    CIFAR-100, fine labels); a file means that batch. The files are Python
    pickles by format; they are read with a restricted unpickler that resolves
    nothing but NumPy's array reconstruction, and the result is checked to be
    a dict with a uint8 ``data`` array of shape (N, 3072).

    Parameters
    ----------
    path : str or os.PathLike
        The batches folder or one batch file.
    preprocess : callable, default=None
        PIL RGB image -> float32 tensor (3, H, W).
    """

    def __init__(self, path, preprocess=None):
        path = Path(path)
        if path.is_dir():
            for name in ("test_batch", "test"):
                if (path / name).is_file():
                    path = path / name
                    break
            else:
                raise ValueError(f"{path} has neither test_batch (CIFAR-10) nor test (CIFAR-100).")
        data = _load_cifar_batch(path)
        raw = data.get("data")
        labels = data.get("labels", data.get("fine_labels"))
        if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != 3072:
            raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, 3072).")
        if labels is None or len(labels) != raw.shape[0]:
            raise ValueError(f"{path}: 'labels' or 'fine_labels' must hold one label per row.")
        images = raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self._setup(np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64), str(path), preprocess)
        self.description = f"cifar:{path.resolve()}"
