"""BiT ResNet-v2 (Kolesnikov et al., 2020) and its official ``.npz`` weight layout.

BiT-S-R101x1 is the DICE paper's ImageNet model. The network: weight-
standardised convolutions (per output filter, biased variance, eps 1e-10, no
bias), GroupNorm with 32 groups, a stem of conv 7x7/2 -> zero pad 1 -> max-pool
3/2 with no normalisation, four stages of pre-activation bottlenecks (the
projection shortcut taken from the pre-activated input, the stride on the 3x3
conv), then GroupNorm + ReLU + global average pooling (the penultimate
feature) and a 1x1 convolution with bias as the head.

The official weight files are ``.npz`` archives with TensorFlow names under
``resnet/`` and HWIO kernels; :func:`load_bit_npz` reads them strictly (no
pickle) and :func:`save_bit_npz` writes a module back in the same layout, so
reduced-size models can stand in for the real file in tests.
"""

from __future__ import annotations

import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._weights import BIT_WEIGHTS_URL, WeightsMismatchError, check_state_keys

__all__ = [
    "StdConv2d",
    "PreActBottleneck",
    "ResNetV2",
    "bit_s_r101x1",
    "load_bit_npz",
    "save_bit_npz",
    "R101_UNITS",
]

#: Units per stage of ResNet-101.
R101_UNITS = (3, 4, 23, 3)
_GROUPS = 32
_STD_EPS = 1e-10
_STAGE_STRIDES = (1, 2, 2, 2)


class StdConv2d(nn.Conv2d):
    """Conv2d whose kernel is standardised per output filter at every forward pass.

    ``w = (w - mean) / sqrt(var + 1e-10)`` with the mean and the biased
    variance taken over (in_channels, kh, kw) of each output filter.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), keepdim=True, correction=0)
        weight = (self.weight - mean) / torch.sqrt(var + _STD_EPS)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _std_conv(cin, cout, kernel, stride=1, padding=0):
    return StdConv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck unit of ResNet-v2.

    Parameters
    ----------
    cin, cout, cmid : int
        Input, output and bottleneck widths.
    stride : int
        Stride of the 3x3 convolution and of the projection.
    """

    def __init__(self, cin: int, cout: int, cmid: int, stride: int = 1):
        super().__init__()
        self.gn1 = nn.GroupNorm(_GROUPS, cin)
        self.conv1 = _std_conv(cin, cmid, 1)
        self.gn2 = nn.GroupNorm(_GROUPS, cmid)
        self.conv2 = _std_conv(cmid, cmid, 3, stride=stride, padding=1)
        self.gn3 = nn.GroupNorm(_GROUPS, cmid)
        self.conv3 = _std_conv(cmid, cout, 1)
        self.downsample = (
            _std_conv(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.gn1(x))
        # the projection sees the pre-activated input, the identity the raw one
        shortcut = self.downsample(out) if self.downsample is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.gn2(out)))
        out = self.conv3(F.relu(self.gn3(out)))
        return out + shortcut


class ResNetV2(nn.Module):
    """BiT ResNet-v2 classifier.

    Parameters
    ----------
    units : sequence of 4 ints, default=(3, 4, 23, 3)
        Bottleneck units per stage (ResNet-101 by default).
    base_width : int, default=64
        Stem width; stage outputs are 4, 8, 16 and 32 times it (256 ... 2048
        for BiT-R101x1). Must be a multiple of 32 (GroupNorm's groups).
    num_classes : int, default=1000

    Attributes
    ----------
    root : nn.Sequential
        ``conv`` (7x7/2), ``pad`` (constant 1), ``pool`` (max 3/2).
    body : nn.Sequential
        ``block1`` ... ``block4``, each of ``unit01``, ``unit02``, ...
    head : nn.Sequential
        ``gn``, ``relu``, ``avg`` (the penultimate feature), ``conv`` (1x1 with bias).
    num_features : int
        Width of the penultimate feature (``32 * base_width``).
    units : tuple of int
    base_width : int
    """

    def __init__(self, units=R101_UNITS, base_width: int = 64, num_classes: int = 1000):
        super().__init__()
        units = tuple(int(u) for u in units)
        if len(units) != 4 or min(units) < 1:
            raise ValueError(f"units must be 4 positive ints, got {units}.")
        if base_width <= 0 or base_width % _GROUPS:
            raise ValueError(
                f"base_width must be a positive multiple of {_GROUPS} (GroupNorm groups), "
                f"got {base_width}."
            )
        self.units, self.base_width = units, int(base_width)
        wf = self.base_width
        self.root = nn.Sequential(OrderedDict(
            conv=_std_conv(3, wf, 7, stride=2, padding=3),
            pad=nn.ConstantPad2d(1, 0.0),
            pool=nn.MaxPool2d(kernel_size=3, stride=2, padding=0),
        ))
        blocks, cin = [], wf
        for stage, (n_units, stride) in enumerate(zip(units, _STAGE_STRIDES), start=1):
            cmid = wf * 2 ** (stage - 1)
            cout = 4 * cmid
            stage_units = []
            for i in range(1, n_units + 1):
                unit = PreActBottleneck(cin, cout, cmid, stride if i == 1 else 1)
                stage_units.append((f"unit{i:02d}", unit))
                cin = cout
            blocks.append((f"block{stage}", nn.Sequential(OrderedDict(stage_units))))
        self.body = nn.Sequential(OrderedDict(blocks))
        self.num_features = cin
        self.head = nn.Sequential(OrderedDict(
            gn=nn.GroupNorm(_GROUPS, cin),
            relu=nn.ReLU(inplace=True),
            avg=nn.AdaptiveAvgPool2d(1),
            conv=nn.Conv2d(cin, num_classes, kernel_size=1, bias=True),
        ))
        self._init_weights()

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, StdConv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.head.conv.weight, std=0.01)
        nn.init.zeros_(self.head.conv.bias)

    @property
    def num_classes(self) -> int:
        """Number of classes of the head."""
        return self.head.conv.out_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate feature, shape ``(batch, num_features)``."""
        out = self.body(self.root(x))
        return self.head.avg(self.head.relu(self.head.gn(out))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(batch, num_classes)``."""
        return self.head(self.body(self.root(x))).flatten(1)


def bit_s_r101x1(num_classes: int = 1000) -> ResNetV2:
    """BiT-S-R101x1's architecture, randomly initialised (for speed measurements).

    Parameters
    ----------
    num_classes : int, default=1000

    Returns
    -------
    ResNetV2
        In eval mode.
    """
    return ResNetV2(R101_UNITS, 64, num_classes).eval()


# -- the official .npz layout -------------------------------------------------------------------

_CONV = "standardized_conv2d/kernel"


def _npz_layout(model: ResNetV2) -> dict[str, torch.Tensor]:
    """npz key -> the module's tensor it fills (kernels still OIHW here)."""
    layout = {f"resnet/root_block/{_CONV}": model.root.conv.weight}
    for block_name, block in model.body.named_children():
        for unit_name, unit in block.named_children():
            prefix = f"resnet/{block_name}/{unit_name}/"
            for letter, conv, gn in (
                ("a", unit.conv1, unit.gn1),
                ("b", unit.conv2, unit.gn2),
                ("c", unit.conv3, unit.gn3),
            ):
                layout[f"{prefix}{letter}/{_CONV}"] = conv.weight
                layout[f"{prefix}{letter}/group_norm/gamma"] = gn.weight
                layout[f"{prefix}{letter}/group_norm/beta"] = gn.bias
            if unit.downsample is not None:
                layout[f"{prefix}a/proj/{_CONV}"] = unit.downsample.weight
    layout["resnet/group_norm/gamma"] = model.head.gn.weight
    layout["resnet/group_norm/beta"] = model.head.gn.bias
    layout["resnet/head/conv2d/kernel"] = model.head.conv.weight
    layout["resnet/head/conv2d/bias"] = model.head.conv.bias
    return layout


def _to_torch_layout(key: str, array: np.ndarray) -> np.ndarray:
    if key.endswith("/kernel"):
        return array.transpose(3, 2, 0, 1) if array.ndim == 4 else array  # HWIO -> OIHW
    if array.ndim > 1 and all(d == 1 for d in array.shape[:-1]):  # gamma stored (1, 1, 1, C)
        return array.reshape(-1)
    return array


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(
            f"BiT weights file not found: {path} (download BiT-S-R101x1.npz from {BIT_WEIGHTS_URL})."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, zipfile.BadZipFile, OSError, EOFError):
        # object arrays, a pickle or junk: NumPy's message would suggest loading a pickle, which skdice never does
        raise WeightsMismatchError(
            f"{path} is not a BiT weights file (an .npz of plain numeric arrays, such as {BIT_WEIGHTS_URL})."
        ) from None
    # a zip of other files opens as an archive whose members are raw bytes, not arrays
    odd = [key for key, value in arrays.items()
           if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu"]
    if odd or not arrays:
        raise WeightsMismatchError(
            f"{path} is not a BiT .npz of numeric arrays"
            + (f" (member {odd[0]!r} is not one)." if odd else " (it holds no arrays).")
        )
    return arrays


def _infer_architecture(arrays: dict[str, np.ndarray]) -> tuple[tuple[int, ...], int]:
    units = []
    for stage in range(1, 5):
        pattern = re.compile(rf"^resnet/block{stage}/unit(\d+)/")
        found = {int(m.group(1)) for k in arrays if (m := pattern.match(k))}
        units.append(max(found) if found else 0)
    root = arrays.get(f"resnet/root_block/{_CONV}")
    base_width = int(root.shape[-1]) if root is not None and root.ndim == 4 else 64
    return tuple(units), base_width


def load_bit_npz(path, units=R101_UNITS, base_width: int | None = 64) -> ResNetV2:
    """Build a BiT ResNet-v2 from an official-layout ``.npz`` file, strictly.

    Parameters
    ----------
    path : str or Path
        An ``.npz`` with keys under ``resnet/`` (``BiT-S-R101x1.npz`` and
        friends), read with ``allow_pickle=False``.
    units : sequence of 4 ints or None, default=(3, 4, 23, 3)
        Units per stage the file must hold; ``None`` reads them from the keys.
    base_width : int or None, default=64
        Stem width the file must hold; ``None`` reads it from the stem kernel.

    Returns
    -------
    ResNetV2
        In eval mode; the number of classes is read from ``head/conv2d/bias``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    WeightsMismatchError
        If the file is not a plain-array ``.npz`` or its keys or shapes differ
        from the architecture; the message names the missing and unexpected keys.

    Notes
    -----
    4-D kernels are stored HWIO and become OIHW; GroupNorm's gamma/beta and
    the head bias are copied as they are.
    """
    path = Path(path)
    arrays = _read_npz(path)
    inferred_units, inferred_width = _infer_architecture(arrays)
    if units is None:
        if min(inferred_units) < 1:
            raise WeightsMismatchError(
                f"{path} does not hold the units of all four stages (found units per stage "
                f"{inferred_units}); is it a BiT ResNet-v2 file?"
            )
        units = inferred_units
    width = inferred_width if base_width is None else base_width
    bias = arrays.get("resnet/head/conv2d/bias")
    num_classes = int(bias.shape[-1]) if bias is not None and bias.ndim >= 1 else 1000
    model = ResNetV2(units, width, num_classes)
    layout = _npz_layout(model)
    converted = {k: _to_torch_layout(k, v) for k, v in arrays.items()}
    name = f"BiT ResNet-v2 (units {list(model.units)}, width {model.base_width})"
    check_state_keys(
        {k: tuple(t.shape) for k, t in layout.items()},
        {k: tuple(v.shape) for k, v in converted.items()},
        source=path,
        architecture=name,
    )
    with torch.no_grad():
        for key, tensor in layout.items():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(converted[key], dtype=np.float32)))
    return model.eval()


def save_bit_npz(model: ResNetV2, path) -> Path:
    """Write a :class:`ResNetV2` to an ``.npz`` in the official BiT layout.

    The inverse of :func:`load_bit_npz`: kernels become HWIO, everything is
    float32, keys are the TensorFlow names under ``resnet/``.

    Parameters
    ----------
    model : ResNetV2
    path : str or Path
        Destination; NumPy appends ``.npz`` if it is missing.

    Returns
    -------
    Path
        The file written.
    """
    arrays = {}
    for key, tensor in _npz_layout(model).items():
        array = tensor.detach().to("cpu", torch.float32).numpy()
        if array.ndim == 4:  # OIHW -> HWIO
            array = array.transpose(2, 3, 1, 0)
        arrays[key] = np.ascontiguousarray(array)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    np.savez(path, **arrays)
    return path
