"""Image transforms with torchvision's exact semantics, built on Pillow, NumPy and torch.

torchvision from the package index does not import beside every torch build,
and the extraction stage only needs four transforms, so they are written out
here. Each one reproduces what ``torchvision.transforms`` does to a PIL image,
pixel for pixel:

* :class:`Resize` with an int resizes the shorter side to ``size`` and the
  longer side to ``int(size * long / short)``; with a pair it resizes to
  exactly ``(height, width)``. Pillow's bilinear filter is what torchvision
  calls for PIL inputs, and Pillow always antialiases when it shrinks.
* :class:`CenterCrop` takes the crop at ``int(round((h - crop_h) / 2.0))`` (so
  Python's round-half-to-even decides odd margins) and pads with zeros when
  the crop is larger than the image.
* :class:`ToTensor` turns uint8 ``(H, W, C)`` into float32 ``(C, H, W)`` / 255.
* :class:`Normalize` subtracts the mean and divides by the std per channel.

Every transform describes itself as a JSON-able dict (``describe()``), which
the store keeps as the record of how its features were made.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = [
    "Compose",
    "ConvertRGB",
    "Resize",
    "CenterCrop",
    "ToTensor",
    "Normalize",
    "resized_size",
    "center_crop_box",
    "to_rgb8",
]

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def _as_pil(img) -> Image.Image:
    if isinstance(img, Image.Image):
        return img
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise ValueError(
                f"an image array must be uint8 (H, W) or (H, W, C), got dtype {img.dtype}."
            )
        return Image.fromarray(img)
    raise TypeError(f"expected a PIL image or a uint8 ndarray, got {type(img).__name__}.")


def resized_size(height: int, width: int, size, max_size: int | None = None) -> tuple[int, int]:
    """Output ``(height, width)`` of torchvision's ``Resize(size, max_size=max_size)``.

    Parameters
    ----------
    height, width : int
        Size of the input image.
    size : int or sequence of one or two ints
        An int (or a one-element sequence) is the target of the shorter side;
        the longer side becomes ``int(size * long / short)``, truncated, so the
        aspect ratio is kept as torchvision keeps it. A pair is ``(height, width)``.
    max_size : int, default=None
        Upper bound on the longer side when ``size`` is an int; when the
        longer side would exceed it, it is set to ``max_size`` and the shorter
        side to ``int(max_size * short / long)``.

    Returns
    -------
    (int, int)
        The resized ``(height, width)``.

    Examples
    --------
    >>> resized_size(30, 40, 32)
    (32, 42)
    >>> resized_size(30, 40, (24, 24))
    (24, 24)
    """
    if isinstance(size, numbers.Integral):
        size = [int(size)]
    size = list(size)
    if len(size) == 2:
        if max_size is not None:
            raise ValueError("max_size is only allowed when size is a single int.")
        return int(size[0]), int(size[1])
    if len(size) != 1:
        raise ValueError(f"size must be an int or a sequence of 1 or 2 ints, got {size}.")
    short, long = (width, height) if width <= height else (height, width)
    new_short = int(size[0])
    new_long = int(new_short * long / short)
    if max_size is not None:
        if max_size <= new_short:
            raise ValueError(
                f"max_size = {max_size} must be larger than the requested size {new_short}."
            )
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if width <= height else (new_short, new_long)


def center_crop_box(height: int, width: int, crop_height: int, crop_width: int):
    """Offsets torchvision's ``CenterCrop`` uses on an image at least as large as the crop.

    Parameters
    ----------
    height, width : int
        Size of the image.
    crop_height, crop_width : int
        Size of the crop.

    Returns
    -------
    (int, int)
        ``(top, left)``: ``int(round((height - crop_height) / 2.0))`` and the
        same for the width. Python rounds halves to the even integer, so a
        margin of 3 puts the crop at 2 and a margin of 5 also at 2.

    Examples
    --------
    >>> center_crop_box(35, 33, 32, 32)
    (2, 0)
    """
    return int(round((height - crop_height) / 2.0)), int(round((width - crop_width) / 2.0))


class _Transform:
    name = "transform"

    def describe(self) -> dict:
        """A JSON-able description of this step."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({args})"


def to_rgb8(img: Image.Image) -> Image.Image:
    """An 8-bit RGB image from any PIL image, converted by its value range.

    Pillow's ``convert("RGB")`` clips wider modes to 0-255, so a 16-bit PNG
    would reach the model as a solid white image. Here:

    * 8-bit modes (``L``, ``P``, ``RGBA``, ``LA``, ``CMYK``, ...) convert as
      torchvision's loader converts them (palette looked up, alpha dropped);
    * 16-bit modes (``I;16*``) and 32-bit integer ``I`` (how Pillow opens
      16-bit PNGs) are scaled from 0-65535: a 16-bit image gives the features
      of its 8-bit twin (``x8 * 257``);
    * float ``F`` images (float TIFFs) are read as [0, 1] when their values lie
      there, else as 0-255; values outside the range are clipped.

    Parameters
    ----------
    img : PIL.Image.Image

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``, a new image (loaded: the file may be closed afterwards).
    """
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(img, dtype=np.float64) / 257.0
    elif mode == "F":
        values = np.asarray(img, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            values = values * 255.0
        values = np.nan_to_num(values, nan=0.0)
    else:
        return img.convert("RGB")
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


class ConvertRGB(_Transform):
    """Convert a PIL image to RGB (what torchvision's ``ImageFolder`` loader does).

    Grayscale, palette and RGBA images become three-channel RGB; RGB images
    pass through unchanged; 16-bit and float images are scaled by their value
    range first (:func:`to_rgb8`).

    Examples
    --------
    >>> from PIL import Image
    >>> ConvertRGB()(Image.new("L", (4, 4))).mode
    'RGB'
    """

    name = "ConvertRGB"

    def __call__(self, img) -> Image.Image:
        img = _as_pil(img)
        return img if img.mode == "RGB" else to_rgb8(img)


class Resize(_Transform):
    """Resize a PIL image the way ``torchvision.transforms.Resize`` does.

    Parameters
    ----------
    size : int or (int, int)
        An int sets the shorter side and keeps the aspect ratio (the longer side
        becomes ``int(size * long / short)``); a pair is ``(height, width)``.
    interpolation : str, default="bilinear"
        Pillow filter: "bilinear", "nearest", "bicubic", "lanczos", "box" or
        "hamming". Pillow antialiases when shrinking, which is what
        torchvision's ``antialias=True`` means for PIL images.
    max_size : int, default=None
        Bound on the longer side, as in torchvision.

    Notes
    -----
    An image already of the output size is returned unchanged, as torchvision does.

    Examples
    --------
    >>> from PIL import Image
    >>> Resize(32)(Image.new("RGB", (40, 30))).size  # PIL sizes are (width, height)
    (42, 32)
    """

    name = "Resize"

    def __init__(self, size, interpolation: str = "bilinear", max_size: int | None = None):
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {interpolation!r}."
            )
        if isinstance(size, numbers.Integral):
            size = int(size)
        elif isinstance(size, Sequence) and len(size) in (1, 2):
            size = tuple(int(s) for s in size)
        else:
            raise ValueError(f"size must be an int or a sequence of 1 or 2 ints, got {size!r}.")
        self.size = size
        self.interpolation = interpolation
        self.max_size = max_size

    def __call__(self, img) -> Image.Image:
        img = _as_pil(img)
        width, height = img.size
        out_h, out_w = resized_size(height, width, self.size, self.max_size)
        if (out_h, out_w) == (height, width):
            return img
        return img.resize((out_w, out_h), _INTERPOLATIONS[self.interpolation])

    def describe(self) -> dict:
        size = list(self.size) if isinstance(self.size, tuple) else self.size
        return {
            "name": self.name,
            "size": size,
            "interpolation": self.interpolation,
            "antialias": True,
            "max_size": self.max_size,
        }


class CenterCrop(_Transform):
    """Crop the centre of a PIL image the way ``torchvision.transforms.CenterCrop`` does.

    Parameters
    ----------
    size : int or (int, int)
        Crop ``(height, width)``; an int gives a square crop.

    Notes
    -----
    The offsets are ``int(round((h - crop_h) / 2.0))`` and the same for the
    width (:func:`center_crop_box`). A crop larger than the image first pads
    it with zeros, ``(crop - size) // 2`` before and ``(crop - size + 1) // 2``
    after.

    Examples
    --------
    >>> from PIL import Image
    >>> CenterCrop(32)(Image.new("RGB", (42, 32))).size
    (32, 32)
    """

    name = "CenterCrop"

    def __init__(self, size):
        if isinstance(size, numbers.Integral):
            size = (int(size), int(size))
        elif isinstance(size, Sequence) and len(size) == 1:
            size = (int(size[0]), int(size[0]))
        elif isinstance(size, Sequence) and len(size) == 2:
            size = (int(size[0]), int(size[1]))
        else:
            raise ValueError(f"size must be an int or a sequence of 1 or 2 ints, got {size!r}.")
        self.size = size

    def __call__(self, img) -> Image.Image:
        img = _as_pil(img)
        crop_h, crop_w = self.size
        width, height = img.size
        if crop_w > width or crop_h > height:
            pad_left = (crop_w - width) // 2 if crop_w > width else 0
            pad_top = (crop_h - height) // 2 if crop_h > height else 0
            new_w, new_h = max(width, crop_w), max(height, crop_h)
            fill = 0 if len(img.getbands()) == 1 else (0,) * len(img.getbands())
            canvas = Image.new(img.mode, (new_w, new_h), fill)
            canvas.paste(img, (pad_left, pad_top))
            img, width, height = canvas, new_w, new_h
            if (width, height) == (crop_w, crop_h):
                return img
        top, left = center_crop_box(height, width, crop_h, crop_w)
        return img.crop((left, top, left + crop_w, top + crop_h))

    def describe(self) -> dict:
        return {"name": self.name, "size": list(self.size)}


class ToTensor(_Transform):
    """Convert a uint8 image to a float32 ``(C, H, W)`` tensor in [0, 1].

    Accepts a PIL image (modes ``L``, ``RGB``, ``RGBA``, ...) or a uint8
    ndarray ``(H, W)`` / ``(H, W, C)``; divides by 255 in float32 as
    torchvision does, so values agree bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> ToTensor()(np.full((2, 3, 3), 255, dtype=np.uint8)).shape
    torch.Size([3, 2, 3])
    """

    name = "ToTensor"

    def __call__(self, img) -> torch.Tensor:
        if isinstance(img, Image.Image):
            if img.mode not in _EIGHT_BIT_MODES:
                raise ValueError(
                    f"ToTensor handles 8-bit images (modes {sorted(_EIGHT_BIT_MODES)}), got mode "
                    f"{img.mode!r}; convert it first."
                )
            if img.mode == "1":  # torchvision scales bilevel images to 0 / 255
                arr = np.array(img, dtype=np.uint8) * np.uint8(255)
            else:
                arr = np.array(img, dtype=np.uint8, copy=True)
        elif isinstance(img, np.ndarray):
            if img.dtype != np.uint8:
                raise ValueError(f"ToTensor expects a uint8 array, got dtype {img.dtype}.")
            arr = np.array(img, copy=True)
        else:
            raise TypeError(f"expected a PIL image or a uint8 ndarray, got {type(img).__name__}.")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"an image must be (H, W) or (H, W, C), got shape {arr.shape}.")
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous().to(torch.float32).div(255)


class Normalize(_Transform):
    """Per-channel ``(x - mean) / std`` on a float ``(C, H, W)`` tensor.

    Parameters
    ----------
    mean, std : float or sequence of float
        One value for all channels or one per channel.

    Examples
    --------
    >>> import torch
    >>> Normalize(0.5, 0.5)(torch.ones(3, 2, 2)).unique()
    tensor([1.])
    """

    name = "Normalize"

    def __init__(self, mean, std):
        self.mean = [float(v) for v in np.atleast_1d(mean)]
        self.std = [float(v) for v in np.atleast_1d(std)]
        if any(s == 0 for s in self.std):
            raise ValueError(f"std must be non-zero, got {self.std}.")

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(tensor) or not tensor.is_floating_point():
            raise TypeError("Normalize expects a float tensor (apply ToTensor first).")
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        channels = tensor.shape[-3]
        if mean.numel() not in (1, channels) or std.numel() not in (1, channels):
            raise ValueError(
                f"mean/std have {mean.numel()}/{std.numel()} values for a {channels}-channel image."
            )
        return tensor.sub(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))

    def describe(self) -> dict:
        return {"name": self.name, "mean": list(self.mean), "std": list(self.std)}


class Compose(_Transform):
    """Apply transforms in order.

    Parameters
    ----------
    transforms : sequence of callables
        Each takes the previous one's output.

    Examples
    --------
    >>> t = Compose([Resize(32), CenterCrop(32), ToTensor(), Normalize(0.5, 0.5)])
    >>> [step["name"] for step in t.describe()["steps"]]
    ['Resize', 'CenterCrop', 'ToTensor', 'Normalize']
    """

    name = "Compose"

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for transform in self.transforms:
            img = transform(img)
        return img

    def describe(self) -> dict:
        steps = []
        for transform in self.transforms:
            describe = getattr(transform, "describe", None)
            steps.append(describe() if describe else {"name": repr(transform)})
        return {"name": self.name, "steps": steps}

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"
