"""Generated sources: network-input noise, pixel-space outlier images, corruptions of real images.

Private: import the sources from :mod:`skdice.extract.data`. The tables
:data:`SYNTHETIC` and :data:`CORRUPTIONS` (kind -> summary, function,
parameters) and :func:`checked_param` are shared with its ``--data`` parser.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from skdice.exceptions import require

torch = require("torch", "extract")
from PIL import Image  # noqa: E402  (Pillow comes with the extract extra)

from ._source import Source, default_preprocess  # noqa: E402

__all__ = [
    "NoiseSource",
    "SyntheticImageSource",
    "CorruptedSource",
    "SYNTHETIC_KINDS",
    "CORRUPTION_KINDS",
    "MAX_GENERATED_ROWS",
    "SYNTHETIC",
    "CORRUPTIONS",
    "checked_param",
    "INPUT_SIZE_REMEDY",
]

#: How a generated source without a size is told to get one (the end of its one-line error).
INPUT_SIZE_REMEDY = (
    "need the network's input size: pass --input-size, for example --input-size 32 for (3, 32, 32) "
    "(input_size=(3, 32, 32) in Python), or extract them into a store whose first split recorded its image size."
)


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
            raise ValueError(f"noise inputs {INPUT_SIZE_REMEDY}")
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


def checked_param(key: str, value, rule: str, where: str):
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
SYNTHETIC = {
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
        if kind not in SYNTHETIC:
            raise ValueError(f"unknown synthetic image kind {kind!r} (known: {', '.join(SYNTHETIC)}).")
        _check_count_and_seed(kind, n, seed)
        if image_size is None:
            raise ValueError(f"{kind} images {INPUT_SIZE_REMEDY}")
        size = tuple(int(v) for v in image_size)[-2:]
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"{kind} images need a size (H, W) of positive integers, got {image_size}.")
        allowed = SYNTHETIC[kind][2]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            takes = f"it takes: {', '.join(allowed)}" if allowed else "it takes none"
            raise ValueError(f"{kind} has no parameter {unknown[0]!r} ({takes}).")
        self.kind = kind
        self.n, self.seed, self.image_size = int(n), int(seed), size
        self.params = {
            key: checked_param(key, params.get(key, default), rule, kind)
            for key, (rule, default) in allowed.items()
        }
        self.preprocess = preprocess or default_preprocess
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
        image = SYNTHETIC[self.kind][1](rng, *self.image_size, **self.params)
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
CORRUPTIONS = {
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
        if kind not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {kind!r} (known: {', '.join(CORRUPTIONS)}).")
        if not isinstance(base, Source):
            raise TypeError(f"{kind} corrupts a Source, got {type(base).__name__}.")
        if not base.provides_images:
            raise ValueError(
                f"{kind} corrupts images, but {base.description} holds network inputs "
                f"(noise or float arrays): give it a folder, an .npz or CIFAR batches."
            )
        allowed = CORRUPTIONS[kind][2]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"{kind} has no parameter {unknown[0]!r} (it takes: {', '.join(allowed)}).")
        self.base, self.kind = base, kind
        self.params = {
            key: checked_param(key, params.get(key, default), rule, kind)
            for key, (rule, default) in allowed.items()
        }
        self.preprocess = preprocess or getattr(base, "preprocess", None) or default_preprocess
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
        _, corrupt, _, seeded = CORRUPTIONS[self.kind]
        params = dict(self.params)
        rng = np.random.default_rng([params.pop("seed"), index]) if seeded else None
        return corrupt(np.ascontiguousarray(image), rng, where=self.description, **params), f"{self._prefix}:{path}"

    def _item(self, index):
        image, path = self._raw(index)
        return self.preprocess(Image.fromarray(image, mode="RGB")), -1, path


#: Pixel-space outlier generators of :class:`SyntheticImageSource`: name -> what a row holds.
SYNTHETIC_KINDS = MappingProxyType({name: entry[0] for name, entry in SYNTHETIC.items()})
#: Corruptions of :class:`CorruptedSource`: name -> what it does to an image.
CORRUPTION_KINDS = MappingProxyType({name: entry[0] for name, entry in CORRUPTIONS.items()})
