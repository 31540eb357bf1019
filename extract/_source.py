"""The base of the data sources and the in-memory ones (private: import from :mod:`skdice.extract.data`).

:class:`Source` fixes the protocol every source follows (fixed length and
order, items ``(tensor, label, path)``); :class:`UInt8ImageArray` is the
uint8 image array behind ``.npz``, CIFAR and :class:`ArraySource` rows.
"""

from __future__ import annotations

import numpy as np

from skdice.exceptions import require

torch = require("torch", "extract")
from PIL import Image  # noqa: E402  (Pillow comes with the extract extra)

__all__ = ["Source", "ArraySource", "UInt8ImageArray", "default_preprocess", "array_to_pil"]


def default_preprocess(img: Image.Image):
    # What ToTensor does: (H, W, 3) uint8 -> (3, H, W) float32 in [0, 1].
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def array_to_pil(image: np.ndarray, where: str) -> Image.Image:
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


class UInt8ImageArray(Source):
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
        self.preprocess = preprocess or default_preprocess
        self._where = where

    def __len__(self):
        return self.images.shape[0]

    def labels(self):
        return self._labels.copy()

    def _label(self, index):
        return int(self._labels[index])

    def _item(self, index):
        img = array_to_pil(self.images[index], self._where)
        return self.preprocess(img), int(self._labels[index]), f"{self._where}#{index}"

    def _raw(self, index):
        return np.asarray(array_to_pil(self.images[index], self._where)), f"{self._where}#{index}"


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
            self._uint8 = UInt8ImageArray()
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
