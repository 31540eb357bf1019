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

import io
import os
import pickle
import re
from pathlib import Path
from types import MappingProxyType

import numpy as np

from skdice.exceptions import require

torch = require("torch", "extract")
from PIL import Image  # noqa: E402  (Pillow comes with the extract extra)

from .transforms import to_rgb8  # noqa: E402

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

    @property
    def provides_images(self) -> bool:
        """Whether :meth:`image` works: the rows are images, not network inputs."""
        return False

    def image(self, index: int) -> np.ndarray:
        """The RGB image of row ``index`` before preprocessing.

        Parameters
        ----------
        index : int

        Returns
        -------
        ndarray of shape (H, W, 3), uint8

        Raises
        ------
        ValueError
            When the source holds network inputs rather than images (noise,
            float arrays).
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} rows of {self.description}")
        if not self.provides_images:
            raise ValueError(f"{self.description} holds network inputs, not images.")
        return self._raw(index % n)[0]

    def _raw(self, index: int):  # pragma: no cover - abstract
        """(uint8 RGB image (H, W, 3), row path) of a source that provides images."""
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

    @property
    def provides_images(self):
        return self.base.provides_images

    def _raw(self, index):
        return self.base._raw(index)

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

    provides_images = True

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

    def _pil(self, index):
        path = self.files[index]
        try:
            with Image.open(path) as img:
                return to_rgb8(img)  # by value range: a 16-bit PNG is not clipped to white
        except Exception as exc:  # a corrupt file: say which one
            raise ValueError(f"could not read image {path}: {exc}") from None

    def _item(self, index):
        img = self._pil(index)
        return self.preprocess(img), int(self._labels[index]), self.files[index].relative_to(self.root).as_posix()

    def _raw(self, index):
        return np.asarray(self._pil(index)), self.files[index].relative_to(self.root).as_posix()


class _UInt8ImageArray(Source):
    """Rows of a uint8 image array (N, H, W) or (N, H, W, C) through ``preprocess``."""

    provides_images = True

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

    def _raw(self, index):
        return np.asarray(_array_to_pil(self.images[index], self._where)), f"{self._where}#{index}"


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
    applied: the noise is the network's input. For noise drawn as images and
    preprocessed like them, see :class:`SyntheticImageSource`.

    Parameters
    ----------
    n : int
        Number of rows, at most :data:`MAX_GENERATED_ROWS`.
    input_size : tuple of int
        The network's input shape per row, for example ``(3, 32, 32)``.
    seed : int, default=0
        A non-negative integer.
    """

    def __init__(self, n: int, input_size, seed: int = 0):
        _check_count_and_seed("noise", n, seed)
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


#: Most rows a generated source (``noise``, ``gaussian``, ...) accepts. Rows are
#: drawn one by one in ``__getitem__``, so a count allocates nothing; the bound
#: only stops a mistyped count from preparing a split of absurd size.
MAX_GENERATED_ROWS = 10_000_000


def _check_count_and_seed(kind: str, n, seed) -> None:
    if not 0 <= int(n) <= MAX_GENERATED_ROWS:
        raise ValueError(f"{kind} needs a row count from 0 to {MAX_GENERATED_ROWS}, got {n}.")
    if int(seed) < 0:
        raise ValueError(f"{kind} needs a seed >= 0, got {seed}.")


# Parameters of the generated and corrupted sources: name -> (rule, check, text).
_RULES = {
    "positive": (float, lambda v: np.isfinite(v) and v > 0, "a number > 0"),
    "grid": (int, lambda v: v >= 2, "an integer >= 2"),
    "seed": (int, lambda v: v >= 0, "an integer >= 0"),
}


def _checked_param(key: str, value, rule: str, where: str):
    cast, ok, text = _RULES[rule]
    try:
        if isinstance(value, bool) or (cast is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        converted = cast(value)
        good = bool(ok(converted))
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ValueError(f"{where}: {key} must be {text}, got {value!r}.")
    return converted


def _param_text(params: dict) -> str:
    if not params:
        return ""
    return "[" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) + "]"


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    # Values in [0, 1] become the 8-bit levels a real image file would hold.
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)


def _gaussian_image(rng, height, width, sigma):
    return _to_uint8(rng.normal(0.5, sigma, size=(height, width, 3)))


def _uniform_image(rng, height, width):
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _rademacher_image(rng, height, width):
    return rng.integers(0, 2, size=(height, width, 3), dtype=np.uint8) * np.uint8(255)


def _blobs_image(rng, height, width, sigma):
    from scipy import ndimage

    # Outlier Exposure's blobs: Bernoulli(0.7) pixels, a Gaussian blur over the
    # whole (H, W, 3) array (the channel axis too, as the reference code does),
    # and every value below 0.75 set to 0, which leaves amorphous shapes with
    # definite edges.
    x = rng.binomial(1, 0.7, size=(height, width, 3)).astype(np.float64)
    x = ndimage.gaussian_filter(x, sigma=sigma, mode="nearest", truncate=4.0)
    x[x < 0.75] = 0.0
    return _to_uint8(x)


# kind -> (summary, generator, {parameter: (rule, default)})
_SYNTHETIC = {
    "gaussian": (
        "clip(N(0.5, sigma^2), 0, 1) per pixel and channel; sigma defaults to 0.25, "
        "Outlier Exposure's N(0, 0.5^2) on [-1, 1] mapped to [0, 1]",
        _gaussian_image, {"sigma": ("positive", 0.25)},
    ),
    "uniform": ("every pixel and channel uniform on the 256 levels (U(0, 1), mean 0.5)", _uniform_image, {}),
    "rademacher": ("every pixel and channel 0 or 1 with probability 1/2 (Rademacher noise on [0, 1])",
                   _rademacher_image, {}),
    "blobs": (
        "Bernoulli(0.7) pixels blurred by a Gaussian of sigma (default 1.5, over height, width "
        "and channel), values below 0.75 set to 0 (Outlier Exposure's blobs)",
        _blobs_image, {"sigma": ("positive", 1.5)},
    ),
}


class SyntheticImageSource(Source):
    """Outlier images drawn in pixel space, then preprocessed like real images.

    Each row is an RGB uint8 image of ``image_size`` drawn from its own
    generator seeded with ``(seed, i)``: any row is reproducible on its own,
    whatever the batch size, worker count or resume point, and nothing is
    drawn before it is asked for. The image then goes through ``preprocess``,
    the model's own transform, exactly as an image file would; this is what
    tells these sources from ``noise:N``, which is the network's input itself.

    ==========  =====================================================================
    kind        pixels (per pixel and channel, values in [0, 1] stored as 8-bit levels)
    ==========  =====================================================================
    gaussian    ``clip(N(0.5, sigma^2), 0, 1)``, ``sigma`` default 0.25
    uniform     uniform on the 256 levels: U(0, 1), mean 0.5
    rademacher  0 or 1, each with probability 1/2
    blobs       Bernoulli(0.7), Gaussian blur of ``sigma`` (default 1.5) over
                height, width and channel, values below 0.75 set to 0
    ==========  =====================================================================

    Labels are -1; row paths are ``<description>#<i>`` with the description
    ``<kind>[params]:<n>:<seed>``, for example ``gaussian[sigma=0.25]:1000:0#7``.

    Parameters
    ----------
    kind : {"gaussian", "uniform", "rademacher", "blobs"}
    n : int
        Number of rows, at most :data:`MAX_GENERATED_ROWS`.
    image_size : tuple of int
        ``(H, W)`` of the images, or ``(3, H, W)`` (the network's input size).
    seed : int, default=0
    preprocess : callable, default=None
        PIL RGB image -> float32 tensor (3, H, W); None scales to [0, 1] only.
    **params
        ``sigma`` for ``gaussian`` and ``blobs``.

    Attributes
    ----------
    params : dict
        Every parameter of the kind, defaults filled in.

    References
    ----------
    Hendrycks, Mazeika and Dietterich, "Deep Anomaly Detection with Outlier
    Exposure", ICLR 2019 (the Gaussian, Rademacher and blobs test sets).

    Examples
    --------
    >>> src = SyntheticImageSource("rademacher", 5, (8, 8), seed=1)
    >>> src.description, sorted(set(src.image(0).ravel().tolist()))
    ('rademacher:5:1', [0, 255])
    """

    def __init__(self, kind: str, n: int, image_size, seed: int = 0, preprocess=None, **params):
        if kind not in _SYNTHETIC:
            raise ValueError(f"unknown synthetic image kind {kind!r} (known: {', '.join(_SYNTHETIC)}).")
        _check_count_and_seed(kind, n, seed)
        if image_size is None:
            raise ValueError(f"{kind} images need the network's input size, for example (3, 32, 32).")
        size = tuple(int(v) for v in image_size)[-2:]
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"{kind} images need a size (H, W) of positive integers, got {image_size}.")
        allowed = _SYNTHETIC[kind][2]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            takes = f"it takes: {', '.join(allowed)}" if allowed else "it takes none"
            raise ValueError(f"{kind} has no parameter {unknown[0]!r} ({takes}).")
        self.kind = kind
        self.n, self.seed, self.image_size = int(n), int(seed), size
        self.params = {
            key: _checked_param(key, params.get(key, default), rule, kind)
            for key, (rule, default) in allowed.items()
        }
        self.preprocess = preprocess or _default_preprocess
        self.description = f"{kind}{_param_text(self.params)}:{self.n}:{self.seed}"

    provides_images = True

    def __len__(self):
        return self.n

    def _label(self, index):
        return -1

    def labels(self):
        return np.full(self.n, -1, dtype=np.int64)

    def _raw(self, index):
        rng = np.random.default_rng([self.seed, index])
        image = _SYNTHETIC[self.kind][1](rng, *self.image_size, **self.params)
        return image, f"{self.description}#{index}"

    def _item(self, index):
        image, path = self._raw(index)
        return self.preprocess(Image.fromarray(image, mode="RGB")), -1, path


def _jigsaw(image, rng, grid, where):
    height, width = image.shape[:2]
    ph, pw = height // grid, width // grid
    if ph == 0 or pw == 0:
        raise ValueError(f"{where}: a {height}x{width} image cannot be cut into {grid}x{grid} patches.")
    out = image.copy()
    region = image[: ph * grid, : pw * grid]
    patches = region.reshape(grid, ph, grid, pw, 3).transpose(0, 2, 1, 3, 4).reshape(grid * grid, ph, pw, 3)
    order = rng.permutation(grid * grid)
    if np.array_equal(order, np.arange(grid * grid)):
        order = np.roll(order, 1)  # never hand back the image unchanged
    shuffled = patches[order].reshape(grid, grid, ph, pw, 3).transpose(0, 2, 1, 3, 4)
    out[: ph * grid, : pw * grid] = shuffled.reshape(ph * grid, pw * grid, 3)
    return out


def _permute(image, rng, where):
    height, width = image.shape[:2]
    flat = image.reshape(height * width, 3)
    return flat[rng.permutation(height * width)].reshape(height, width, 3)


def _blur(image, rng, sigma, where):
    from scipy import ndimage

    blurred = ndimage.gaussian_filter(image.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect")
    return np.round(np.clip(blurred, 0, 255)).astype(np.uint8)


# kind -> (summary, corruption, {parameter: (rule, default)}, seeded)
_CORRUPTIONS = {
    "jigsaw": (
        "the image cut into grid x grid equal patches (default 4; a remainder strip at the bottom "
        "and right stays in place) put back in a shuffled order, never the original one",
        _jigsaw, {"grid": ("grid", 4), "seed": ("seed", 0)}, True,
    ),
    "permute": ("the image's pixels (RGB triples) in a random order: the same colours, no structure",
                _permute, {"seed": ("seed", 0)}, True),
    "blur": ("a Gaussian blur of sigma pixels (default 3) over height and width, edges reflected",
             _blur, {"sigma": ("positive", 3.0)}, False),
}


class CorruptedSource(Source):
    """Outliers made from another source's images: jigsaw, pixel permutation, heavy blur.

    The corruption is applied to the raw RGB image, before ``preprocess``,
    so the result reaches the network as a real image would. Row ``i`` uses
    its own generator seeded with ``(seed, i)``, so it is reproducible on its
    own. The images keep their size; labels are -1 (they are outliers), row
    paths are ``<kind>[params]:<base row path>``.

    ==========  =====================================================================
    kind        corruption
    ==========  =====================================================================
    jigsaw      cut into ``grid`` x ``grid`` equal patches (default 4), shuffled; a
                remainder strip (size not divisible by ``grid``) stays in place
    permute     the pixels (RGB triples) in a random order
    blur        Gaussian blur of ``sigma`` pixels (default 3) over height and width
    ==========  =====================================================================

    Parameters
    ----------
    base : Source
        A source of images (a folder, .npz, CIFAR batches, a synthetic or
        another corrupted source); not ``noise`` or float arrays.
    kind : {"jigsaw", "permute", "blur"}
    preprocess : callable, default=None
        PIL RGB image -> float32 tensor (3, H, W); None takes the base's.
    **params
        ``grid`` and ``seed`` for ``jigsaw``, ``seed`` for ``permute``,
        ``sigma`` for ``blur``.

    Attributes
    ----------
    params : dict
        Every parameter of the kind, defaults filled in.

    Examples
    --------
    >>> base = ArraySource(np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3))
    >>> src = CorruptedSource(base, "permute", seed=3)
    >>> src.description, sorted(src.image(0).ravel()) == sorted(base.image(0).ravel())
    ('permute[seed=3]:array:array', True)
    """

    def __init__(self, base: Source, kind: str, preprocess=None, **params):
        if kind not in _CORRUPTIONS:
            raise ValueError(f"unknown corruption {kind!r} (known: {', '.join(_CORRUPTIONS)}).")
        if not isinstance(base, Source):
            raise TypeError(f"{kind} corrupts a Source, got {type(base).__name__}.")
        if not base.provides_images:
            raise ValueError(
                f"{kind} corrupts images, but {base.description} holds network inputs "
                f"(noise or float arrays): give it a folder, an .npz or CIFAR batches."
            )
        allowed = _CORRUPTIONS[kind][2]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"{kind} has no parameter {unknown[0]!r} (it takes: {', '.join(allowed)}).")
        self.base, self.kind = base, kind
        self.params = {
            key: _checked_param(key, params.get(key, default), rule, kind)
            for key, (rule, default) in allowed.items()
        }
        self.preprocess = preprocess or getattr(base, "preprocess", None) or _default_preprocess
        self._prefix = f"{kind}{_param_text(self.params)}"
        self.description = f"{self._prefix}:{base.description}"

    provides_images = True

    def __len__(self):
        return len(self.base)

    def _label(self, index):
        return -1

    def labels(self):
        return np.full(len(self), -1, dtype=np.int64)

    def _raw(self, index):
        image, path = self.base._raw(index)
        _, corrupt, _, seeded = _CORRUPTIONS[self.kind]
        params = dict(self.params)
        rng = np.random.default_rng([params.pop("seed"), index]) if seeded else None
        return corrupt(np.ascontiguousarray(image), rng, where=self.description, **params), f"{self._prefix}:{path}"

    def _item(self, index):
        image, path = self._raw(index)
        return self.preprocess(Image.fromarray(image, mode="RGB")), -1, path


#: Pixel-space outlier generators of :class:`SyntheticImageSource`: name -> what a row holds.
SYNTHETIC_KINDS = MappingProxyType({name: entry[0] for name, entry in _SYNTHETIC.items()})
#: Corruptions of :class:`CorruptedSource`: name -> what it does to an image.
CORRUPTION_KINDS = MappingProxyType({name: entry[0] for name, entry in _CORRUPTIONS.items()})


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

    @property
    def provides_images(self):
        return self._tensor is None

    def _raw(self, index):
        return self._uint8._raw(index)


# KIND[key=value,...]:REST. A name of two characters or more, so that a
# Windows drive letter ("C:") is never read as a kind.
_SPEC = re.compile(r"(?P<kind>[A-Za-z][A-Za-z0-9_-]+)(?:\[(?P<params>[^\[\]]*)\])?:(?P<rest>.*)", re.DOTALL)
_KIND_PREFIX = re.compile(r"(?P<kind>[A-Za-z][A-Za-z0-9_-]+)[\[:]")
_COUNT = re.compile(r"(?P<n>[0-9]+)(?::(?P<seed>[0-9]+))?")


def _usage(kind: str) -> str:
    if kind == "noise":
        return "noise:N[:SEED]"
    if kind in _SYNTHETIC:
        params = _SYNTHETIC[kind][2]
        return f"{kind}{'[' + ','.join(f'{k}=...' for k in params) + ']' if params else ''}:N[:SEED]"
    return f"{kind}[{','.join(f'{k}=...' for k in _CORRUPTIONS[kind][2])}]:SOURCE"


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
        out[key] = _checked_param(key, value, allowed[key][0], repr(spec))
    return out


def _open_generated(kind, params_text, rest, spec, input_size, preprocess) -> Source:
    """A ``noise``, synthetic or corrupted source from its parsed spec."""
    if kind in _CORRUPTIONS:
        params = _spec_params(kind, params_text, spec, _CORRUPTIONS[kind][2])
        if not rest:
            raise ValueError(f"{spec!r}: {kind} needs a source after the colon, e.g. {kind}:/data/cifar-10-batches-py.")
        base = open_source(rest, input_size, preprocess)
        if not base.provides_images:
            raise ValueError(
                f"{spec!r}: {kind} corrupts images, but {rest!r} gives network inputs; "
                f"corrupt a folder, an .npz, CIFAR batches or a synthetic image source."
            )
        return CorruptedSource(base, kind, preprocess, **params)
    params = _spec_params(kind, params_text, spec, {} if kind == "noise" else _SYNTHETIC[kind][2])
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
        raise ValueError(f"{spec!r}: {kind} images need the network's input size, for example (3, 32, 32).")
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
    known = ("noise", *_SYNTHETIC, *_CORRUPTIONS)
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
