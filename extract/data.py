"""Data sources for the extraction stage: image folders, .npz arrays, CIFAR batches, noise.

Every source is a map-style ``torch.utils.data.Dataset`` of fixed length and
fixed order whose items are ``(input tensor (3, H, W) float32, label int,
path str)``; the default collate function turns a batch of them into
``(tensor (B, 3, H, W), labels int64 (B,), list of paths)``. The order never
depends on the file system's listing order or on the worker count, which is
what lets an interrupted extraction resume chunk by chunk.

Use :func:`open_source` for the strings the command line accepts (``--data``)
and :class:`ArraySource` for arrays already in memory.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from skdice.exceptions import require

torch = require("torch", "extract")
from PIL import Image  # noqa: E402  (Pillow comes with the extract extra)

__all__ = [
    "Source",
    "ImageFolderSource",
    "NpzSource",
    "CifarSource",
    "NoiseSource",
    "ArraySource",
    "open_source",
    "IMAGE_EXTENSIONS",
]

#: File suffixes read as images by :class:`ImageFolderSource` (compared in lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def _default_preprocess(img: Image.Image):
    # What ToTensor does: (H, W, 3) uint8 -> (3, H, W) float32 in [0, 1].
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _array_to_pil(image: np.ndarray, where: str) -> Image.Image:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return Image.fromarray(image, mode="L").convert("RGB")  # grayscale becomes RGB
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return Image.fromarray(image[:, :, :3], mode="RGB")
    raise ValueError(f"{where}: an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}.")


class Source(torch.utils.data.Dataset):
    """Base of the data sources: fixed order, items ``(tensor, label, path)``.

    Subclasses set ``description`` (recorded as the split's ``source``
    attribute, which must match when an extraction is resumed) and implement
    ``__len__`` and ``_item(index)``.
    """

    description = "source"

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _item(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} rows of {self.description}")
        return self._item(index % n if n else index)

    def labels(self) -> np.ndarray:
        """Labels of every row, ndarray of shape (n,), int64; -1 where unknown."""
        return np.array([self._label(i) for i in range(len(self))], dtype=np.int64)

    def _label(self, index: int) -> int:
        return int(self._item(index)[1])

    def limit(self, n: int | None) -> "Source":
        """The first ``n`` rows of this source (all of them when ``n`` is None or larger).

        Parameters
        ----------
        n : int or None

        Returns
        -------
        Source
        """
        if n is None or n >= len(self):
            return self
        if n < 0:
            raise ValueError(f"limit must be >= 0, got {n}.")
        return _Limited(self, int(n))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, n={len(self)})"


class _Limited(Source):
    def __init__(self, base: Source, n: int):
        self.base = base
        self.n = n
        self.description = f"{base.description} [first {n}]"

    def __len__(self):
        return self.n

    def _item(self, index):
        return self.base[index]

    def _label(self, index):
        return self.base._label(index)


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

    def __init__(self, root, preprocess=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"image folder {self.root} does not exist or is not a folder.")
        self.preprocess = preprocess or _default_preprocess
        entries = sorted(p for p in self.root.iterdir() if not p.name.startswith("."))
        subdirs = [p for p in entries if p.is_dir()]
        flat = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if subdirs and flat:
            raise ValueError(
                f"{self.root} holds both images and subfolders: use one subfolder per class, "
                f"or a flat folder of images."
            )
        self.classes = [p.name for p in subdirs]
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
        self.description = f"folder:{self.root.resolve()}"

    def __len__(self):
        return len(self.files)

    def _label(self, index):
        return int(self._labels[index])

    def labels(self):
        return self._labels.copy()

    def _item(self, index):
        path = self.files[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except Exception as exc:  # a corrupt file: say which one
            raise ValueError(f"could not read image {path}: {exc}") from None
        return self.preprocess(img), int(self._labels[index]), path.relative_to(self.root).as_posix()


class _UInt8ImageArray(Source):
    """Rows of a uint8 image array (N, H, W) or (N, H, W, C) through ``preprocess``."""

    def _setup(self, images, labels, where: str, preprocess):
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"{where}: images must be uint8, got {images.dtype}.")
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
            raise ValueError(f"{where}: images must be (N, H, W) or (N, H, W, C) with C in 1, 3, 4; got {images.shape}.")
        n = images.shape[0]
        if labels is None:
            labels = np.full(n, -1, dtype=np.int64)
        labels = np.asarray(labels)
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            raise ValueError(f"{where}: labels must be integers of shape ({n},), got {labels.dtype} {labels.shape}.")
        self.images = images
        self._labels = labels.astype(np.int64)
        self.preprocess = preprocess or _default_preprocess
        self._where = where

    def __len__(self):
        return self.images.shape[0]

    def labels(self):
        return self._labels.copy()

    def _label(self, index):
        return int(self._labels[index])

    def _item(self, index):
        img = _array_to_pil(self.images[index], self._where)
        return self.preprocess(img), int(self._labels[index]), f"{self._where}#{index}"


class NpzSource(_UInt8ImageArray):
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


class CifarSource(_UInt8ImageArray):
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


class NoiseSource(Source):
    """Gaussian-noise inputs: N(0, 1) for every element of the network's input tensor.

    Row ``i`` is drawn from its own generator seeded with ``(seed, i)``, so any
    row is reproducible on its own (a resumed extraction regenerates exactly
    the rows it skipped) and independent of batch size and worker count.
    Labels are -1; paths are ``noise:<n>:<seed>#<i>``. No preprocessing is
    applied: the noise is the network's input.

    Parameters
    ----------
    n : int
        Number of rows.
    input_size : tuple of int
        The network's input shape per row, for example ``(3, 32, 32)``.
    seed : int, default=0
    """

    def __init__(self, n: int, input_size, seed: int = 0):
        if int(n) < 0:
            raise ValueError(f"noise needs a row count >= 0, got {n}.")
        if input_size is None:
            raise ValueError("noise inputs need the network's input size, for example (3, 32, 32).")
        self.n = int(n)
        self.input_size = tuple(int(s) for s in input_size)
        self.seed = int(seed)
        self.description = f"noise:{self.n}:{self.seed}"

    def __len__(self):
        return self.n

    def _label(self, index):
        return -1

    def labels(self):
        return np.full(self.n, -1, dtype=np.int64)

    def _item(self, index):
        rng = np.random.default_rng([self.seed, index])
        x = rng.standard_normal(self.input_size, dtype=np.float32)
        return torch.from_numpy(x), -1, f"{self.description}#{index}"


class ArraySource(Source):
    """In-memory images: float tensors already preprocessed, or uint8 images.

    Parameters
    ----------
    images : array-like or torch.Tensor
        Float ``(N, C, H, W)``: the network's inputs as they are. uint8
        ``(N, H, W)`` or ``(N, H, W, C)``: images passed through ``preprocess``.
    labels : array-like of shape (N,), default=None
        Integer labels; None means -1 (unknown).
    preprocess : callable, default=None
        For uint8 images: PIL RGB image -> float32 tensor (3, H, W).
    name : str, default="array"
        Recorded as the source; row paths are ``<name>#<index>``.
    """

    def __init__(self, images, labels=None, preprocess=None, name: str = "array"):
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu()
            is_float = images.is_floating_point()
        else:
            images = np.asarray(images)
            is_float = images.dtype.kind == "f"
        self.name = str(name)
        self.description = f"array:{self.name}"
        if is_float:
            tensor = torch.as_tensor(images, dtype=torch.float32)
            if tensor.ndim != 4:
                raise ValueError(f"float images must be (N, C, H, W) network inputs, got shape {tuple(tensor.shape)}.")
            n = tensor.shape[0]
            if labels is None:
                labels = np.full(n, -1, dtype=np.int64)
            labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
            if labels.shape != (n,) or labels.dtype.kind not in "iu":
                raise ValueError(f"labels must be integers of shape ({n},), got {labels.dtype} {labels.shape}.")
            self._tensor = tensor.contiguous()
            self._labels = labels.astype(np.int64)
            self.images = None
        else:
            if isinstance(images, torch.Tensor):
                images = images.numpy()
            if isinstance(labels, torch.Tensor):
                labels = labels.cpu().numpy()
            self._tensor = None
            self._uint8 = _UInt8ImageArray()
            self._uint8._setup(images, labels, self.name, preprocess)
            self._labels = self._uint8._labels

    def __len__(self):
        return self._tensor.shape[0] if self._tensor is not None else len(self._uint8)

    def labels(self):
        return self._labels.copy()

    def _label(self, index):
        return int(self._labels[index])

    def _item(self, index):
        if self._tensor is not None:
            return self._tensor[index], int(self._labels[index]), f"{self.name}#{index}"
        return self._uint8[index]


def open_source(spec, input_size=None, preprocess=None) -> Source:
    """Open the data source named by a ``--data`` string.

    Parameters
    ----------
    spec : str or os.PathLike or Source
        ``noise:N[:seed]``; a folder of images (class subfolders or flat); an
        ``.npz`` file; a CIFAR python batches folder (``cifar-10-batches-py``,
        ``cifar-100-python``) or one batch file. A :class:`Source` is returned as is.
    input_size : tuple of int, default=None
        The network's input shape ``(3, H, W)``; needed for noise.
    preprocess : callable, default=None
        PIL RGB image -> float32 tensor (3, H, W).

    Returns
    -------
    Source

    Raises
    ------
    ValueError
        When the path does not exist or is not a recognised source.
    """
    if isinstance(spec, Source):
        return spec
    text = os.fspath(spec)
    if text.startswith("noise:"):
        parts = text.split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            n = int(parts[1])
            seed = int(parts[2]) if len(parts) == 3 else 0
        except ValueError:
            raise ValueError(f"noise source {text!r} must look like noise:N or noise:N:SEED (integers).") from None
        return NoiseSource(n, input_size, seed)
    path = Path(text)
    if not path.exists():
        raise ValueError(f"data source {path} does not exist (expected a folder, an .npz, CIFAR batches or noise:N[:seed]).")
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return NpzSource(path, preprocess)
        if path.name in ("test_batch", "test", "train") or path.name.startswith("data_batch_"):
            return CifarSource(path, preprocess)
        raise ValueError(f"{path} is neither an .npz file nor a CIFAR python batch.")
    if (path / "batches.meta").is_file() or ((path / "meta").is_file() and (path / "test").is_file()):
        return CifarSource(path, preprocess)
    return ImageFolderSource(path, preprocess)
