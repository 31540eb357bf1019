"""Model presets for the extraction stage: the DICE paper's two networks.

``load_preset(name, weights)`` returns a :class:`ModelSpec`: the module in
eval mode, its head, the input size, the preprocessing (a callable and its
JSON description for the store), and the SHA-256 of the weights file.

================  ==================================================  ===========  =====
name              model                                               input        m
================  ==================================================  ===========  =====
bit-s-r101        BiT-S-R101x1, ResNet-v2 (ImageNet, 1000 classes)    3 x 480²     2048
densenet-bc-100   DenseNet-BC-100, growth 12 (CIFAR-10 / CIFAR-100)   3 x 32²      342
================  ==================================================  ===========  =====

Weights are never downloaded: pass the file. ``random_init=True`` builds
untrained weights, for speed measurements only.

Any other torch classifier comes in by import string (``module.path:factory``
or ``path/to/file.py:factory``, see :mod:`skdice.extract.models.factory`);
:func:`load_model` takes either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..transforms import CenterCrop, Compose, ConvertRGB, Normalize, Resize, ToTensor
from ._spec import ModelSpec
from ._weights import WeightsMismatchError, sha256_file

__all__ = ["ModelSpec", "Preset", "PRESETS", "load_model", "load_preset", "WeightsMismatchError"]


@dataclass(frozen=True)
class Preset:
    """A named model recipe (see :data:`PRESETS`)."""

    name: str
    summary: str
    input_size: tuple
    weights_hint: str
    default_classes: int


PRESETS = MappingProxyType({
    "bit-s-r101": Preset(
        "bit-s-r101",
        "BiT-S-R101x1 ResNet-v2 (the paper's ImageNet model), 2048-d features, 480x480 input",
        (3, 480, 480),
        "the official BiT-S-R101x1.npz "
        "(https://storage.googleapis.com/bit_models/BiT-S-R101x1.npz)",
        1000,
    ),
    "densenet-bc-100": Preset(
        "densenet-bc-100",
        "DenseNet-BC-100 growth 12 (the paper's CIFAR model), 342-d features, 32x32 input",
        (3, 32, 32),
        "a DICE checkpoint such as checkpoints/CIFAR-10/densenet/checkpoint_100.pth.tar "
        "from github.com/deeplearning-wisc/dice",
        10,
    ),
})


def _bit_preprocess() -> Compose:
    return Compose([ConvertRGB(), Resize((480, 480)), ToTensor(), Normalize(0.5, 0.5)])


def _densenet_preprocess() -> Compose:
    from .densenet import CIFAR_MEAN, CIFAR_STD

    return Compose(
        [ConvertRGB(), Resize(32), CenterCrop(32), ToTensor(), Normalize(CIFAR_MEAN, CIFAR_STD)]
    )


def load_preset(name: str, weights=None, *, random_init: bool = False,
                num_classes: int | None = None) -> ModelSpec:
    """Build one of the paper's models from its weights file.

    Parameters
    ----------
    name : {"bit-s-r101", "densenet-bc-100"}
    weights : str or Path, default=None
        The weights file: BiT's official ``.npz`` for ``bit-s-r101``, a DICE
        checkpoint (``.pth.tar``) for ``densenet-bc-100``. Required unless
        ``random_init=True``; nothing is downloaded.
    random_init : bool, default=False
        Build untrained weights instead of loading a file: for speed
        measurements only, never for detection results.
    num_classes : int, default=None
        Classes of a random-init head (1000 for BiT, 10 for DenseNet by
        default). With a weights file the count is read from the file.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        For an unknown name, a missing ``weights`` without ``random_init``, or
        both given.
    FileNotFoundError
        If the weights file does not exist.
    WeightsMismatchError
        If the file does not fit the architecture (names missing and unexpected keys).

    Examples
    --------
    >>> spec = load_preset("densenet-bc-100", random_init=True)
    >>> spec.input_size, spec.head_name, spec.num_features
    ((3, 32, 32), 'fc', 342)
    """
    if name not in PRESETS:
        raise ValueError(
            f"unknown model preset {name!r}; available: {', '.join(sorted(PRESETS))}."
        )
    preset = PRESETS[name]
    if weights is not None and random_init:
        raise ValueError("pass either weights or random_init=True, not both.")
    if weights is None and not random_init:
        raise ValueError(
            f"model {name!r} needs its weights file: pass weights=FILE, "
            f"{preset.weights_hint}. skdice never downloads weights."
        )
    if num_classes is not None and not random_init:
        raise ValueError("num_classes is only for random_init; a weights file sets the classes.")

    if name == "bit-s-r101":
        from .bit import R101_UNITS, bit_s_r101x1, load_bit_npz

        if random_init:
            module = bit_s_r101x1(num_classes or preset.default_classes)
        else:
            module = load_bit_npz(weights, units=R101_UNITS, base_width=64)
        head_name, head, preprocess = "head.conv", module.head.conv, _bit_preprocess()
        n_classes = head.out_channels
    else:
        from .densenet import densenet_bc_100, load_densenet_checkpoint

        if random_init:
            module = densenet_bc_100(num_classes or preset.default_classes)
        else:
            module = load_densenet_checkpoint(weights)
        head_name, head, preprocess = "fc", module.fc, _densenet_preprocess()
        n_classes = head.out_features

    module.eval()
    return ModelSpec(
        name=name,
        module=module,
        head=head,
        input_size=preset.input_size,
        preprocess=preprocess,
        preprocessing=preprocess.describe(),
        weights_sha256=None if weights is None else sha256_file(weights),
        feature_layer=f"{head_name}:input",
        head_name=head_name,
        weights_path=None if weights is None else str(Path(weights)),
        num_classes=n_classes,
        num_features=module.num_features,
    )


def load_model(model: str, weights=None, *, input_size=None, mean=None, std=None, head=None) -> ModelSpec:
    """A preset by name, or any torch classifier by import string (``skdice extract --model``).

    Parameters
    ----------
    model : str
        A preset name (:data:`PRESETS`) or ``module.path:factory`` /
        ``path/to/file.py:factory``.
    weights : str or Path, default=None
        The weights file (required by presets; a state dict for factories).
    input_size, mean, std, head
        Preprocessing and head options of an import-string model (see
        :func:`skdice.extract.models.factory.load_factory`); presets have
        their own and refuse them.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        For an unknown preset (with the closest names), or options a preset
        does not take.
    """
    from .factory import is_import_string, load_factory

    if is_import_string(model):
        return load_factory(model, weights, input_size=input_size, mean=mean, std=std, head=head)
    if model not in PRESETS:
        import difflib

        close = [p for p in sorted(PRESETS) if p.startswith(model.lower())] or difflib.get_close_matches(
            model, list(PRESETS), n=2, cutoff=0.75)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else (
            f" For a model of your own (such as torchvision's {model}), write a factory that returns it, "
            f"e.g. def build(): return {model}(...) in mynet.py, and give --model mynet.py:build.")
        raise ValueError(
            f"unknown model {model!r}: give a preset ({', '.join(sorted(PRESETS))}) or a torch "
            f"model by import string, module.path:factory or path/to/file.py:factory.{hint}"
        )
    given = [flag for flag, value in (("--input-size", input_size), ("--mean", mean), ("--std", std),
                                      ("--head", head)) if value is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} apply to models given by import string; the preset {model!r} "
            "has its own preprocessing and head."
        )
    return load_preset(model, weights)
