"""Any torch classifier by import string: ``module.path:factory`` or ``path/to/file.py:factory``.

The convention of uvicorn and gunicorn: the part before the last ``:`` names a
module (dotted, importable) or a Python file, the part after it a callable in
it (dotted attributes allowed, ``models:Zoo.resnet``). The callable is called
with no arguments and must return an ``nn.Module``; ``weights`` optionally
loads a state dict into it (``torch.load(weights_only=True)``: no pickled
objects run).

The default input is the image as float in [0, 1], NCHW, at its stored size
(``ConvertRGB`` then ``ToTensor``); ``input_size`` resizes to a fixed size
first (needed for noise sources and for folders of mixed sizes) and
``mean``/``std`` normalise. The store records the import string, the weights'
SHA-256 and this preprocessing, so a resumed or extended split refuses another
model or another preprocessing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from ..hooked import resolve_head
from ..transforms import Compose, ConvertRGB, Normalize, Resize, ToTensor

__all__ = ["is_import_string", "load_factory", "parse_input_size"]


def is_import_string(text: str) -> bool:
    """Whether ``--model`` names a factory (``something:callable``) rather than a preset.

    Parameters
    ----------
    text : str

    Returns
    -------
    bool
    """
    target, sep, attr = str(text).rpartition(":")
    return bool(sep and target and attr) and not attr.startswith(("/", "\\"))


def parse_input_size(value) -> tuple[int, int, int] | None:
    """``--input-size`` as ``(3, H, W)``: ``"32"``, ``"224x224"``, an int or a pair.

    Parameters
    ----------
    value : str, int, tuple or None

    Returns
    -------
    tuple of int or None
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            sizes = [int(p) for p in parts if p.strip()]
        except ValueError:
            sizes = []
    elif isinstance(value, int):
        sizes = [value]
    else:
        sizes = [int(v) for v in value]
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise ValueError(
            f"--input-size must be one size or HxW in pixels, for example 32 or 224x224; got {value!r}."
        )
    return (3, sizes[0], sizes[1])


def _floats(value, name):
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = [float(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--{name} must be one number or three separated by commas; got {value!r}.") from None
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(values) not in (1, 3):
        raise ValueError(f"--{name} must be one number or three (one per channel); got {len(values)}.")
    if name == "std" and min(values) <= 0:
        raise ValueError(f"--std must be positive; got {values}.")
    return values


def _import_target(import_string: str):
    target, _, attr = import_string.rpartition(":")
    path = Path(target)
    if target.endswith(".py") or path.suffix == ".py" or "/" in target or "\\" in target:
        if not path.is_file():
            raise ValueError(f"--model {import_string!r}: the file {target} does not exist.")
        name = f"skdice_model_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"--model {import_string!r}: {target} cannot be imported as Python.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ValueError(
                f"--model {import_string!r}: importing {target} failed: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ValueError(
                f"--model {import_string!r}: cannot import the module {target!r} ({exc}); "
                "give module.path:factory for an importable module or path/to/file.py:factory."
            ) from None
        except Exception as exc:
            raise ValueError(
                f"--model {import_string!r}: importing {target} failed: {type(exc).__name__}: {exc}"
            ) from exc
    factory = module
    for part in attr.split("."):
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise ValueError(f"--model {import_string!r}: {target} has no attribute {attr!r}.") from None
    if not callable(factory):
        raise ValueError(f"--model {import_string!r}: {attr} is a {type(factory).__name__}, not a callable.")
    return factory


def _load_state_dict(module: nn.Module, weights, import_string: str) -> None:
    import torch

    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch's message would suggest loading the file as a pickle, which skdice never does
        raise ValueError(
            f"--weights {path} is not a torch state dict file (one saved with torch.save(model.state_dict(), "
            "path); files holding pickled Python objects are not loaded)."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"--weights {path} holds a {type(state).__name__}, not a state dict.")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])
        raise ValueError(f"--weights {path} does not fit the model of {import_string}: {detail}") from None
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:5]) or "none"
        unexpected = ", ".join(result.unexpected_keys[:5]) or "none"
        raise ValueError(
            f"--weights {path} does not fit the model of {import_string}: "
            f"{len(result.missing_keys)} missing keys ({missing}), "
            f"{len(result.unexpected_keys)} unexpected keys ({unexpected})."
        )


def load_factory(import_string: str, weights=None, *, input_size=None, mean=None, std=None, head=None):
    """Build a :class:`~skdice.extract.models.ModelSpec` from a user's model factory.

    Parameters
    ----------
    import_string : str
        ``module.path:factory`` or ``path/to/file.py:factory``; the factory
        takes no arguments and returns an ``nn.Module`` classifier.
    weights : str or Path, default=None
        A state dict file (or a checkpoint holding ``{"state_dict": ...}``),
        loaded with ``weights_only=True`` and strict key matching.
    input_size : int, str or tuple, default=None
        Resize every image to this size first (``32``, ``"224x224"``). None
        keeps each image's stored size (noise sources then need it).
    mean, std : float or sequence of 3 floats, default=None
        Normalise the [0, 1] input with these (both or neither).
    head : str, default=None
        Dotted name of the head module when the last ``nn.Linear`` / 1x1
        conv is not it.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        When the import string does not resolve, the factory raises or does
        not return an ``nn.Module``, the model has no head, the weights do not
        fit, or an option is malformed (one line each).
    """
    from ._spec import ModelSpec
    from ._weights import sha256_file

    if not is_import_string(import_string):
        raise ValueError(
            f"--model {import_string!r} is not an import string: use module.path:factory "
            "or path/to/file.py:factory."
        )
    size = parse_input_size(input_size)
    mean, std = _floats(mean, "mean"), _floats(std, "std")
    if (mean is None) != (std is None):
        raise ValueError("give --mean and --std together (or neither).")
    factory = _import_target(import_string)
    try:
        module = factory()
    except Exception as exc:
        raise ValueError(
            f"--model {import_string!r}: the factory raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(module, nn.Module):
        raise ValueError(
            f"--model {import_string!r}: the factory returned a {type(module).__name__}, "
            "not a torch nn.Module."
        )
    if weights is not None:
        _load_state_dict(module, weights, import_string)
    try:
        head_name, head_module = resolve_head(module, head)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--model {import_string!r}: {exc}".replace("pass head=", "pass --head NAME")) from None
    steps = [ConvertRGB()]
    if size is not None:
        steps.append(Resize(size[1:]))
    steps.append(ToTensor())
    if mean is not None:
        steps.append(Normalize(mean, std))
    preprocess = Compose(steps)
    module.eval()
    if isinstance(head_module, nn.Linear):
        n_classes, n_features = head_module.out_features, head_module.in_features
    else:
        n_classes, n_features = head_module.out_channels, head_module.in_channels
    return ModelSpec(
        name=import_string,
        module=module,
        head=head_module,
        input_size=size,
        preprocess=preprocess,
        preprocessing=preprocess.describe(),
        weights_sha256=None if weights is None else sha256_file(weights),
        feature_layer=f"{head_name}:input",
        head_name=head_name,
        weights_path=None if weights is None else str(Path(weights)),
        num_classes=n_classes,
        num_features=n_features,
    )
