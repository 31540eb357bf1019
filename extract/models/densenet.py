"""DenseNet-BC for CIFAR, laid out like the DICE paper's checkpoints ("DenseNet-101").

Architecture (Huang et al., 2017, "BC" = bottleneck + compression): a 3x3
stem convolution to ``2 * growth_rate`` channels, three dense blocks of
bottleneck layers (BN-ReLU-conv1x1 to ``4 * growth_rate``, BN-ReLU-conv3x3 to
``growth_rate``, concatenated to the input), transitions (BN-ReLU-conv1x1 to
``floor(channels * reduction)``, then 2x2 average pooling), a final BN + ReLU
and global average pooling: the penultimate feature. For depth 100 and growth
12 the channels go 24 -> 216 -> 108 -> 300 -> 150 -> 342.

The attribute names reproduce the state_dict keys of the paper's
checkpoints (``conv1``, ``block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2}``,
``trans{1,2}.{bn1,conv1}``, ``bn1``, ``fc``), so they load strictly.
"""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ._weights import DENSENET_CHECKPOINTS, WeightsMismatchError, check_state_keys

__all__ = [
    "DenseNetBC",
    "densenet_bc_100",
    "load_densenet_checkpoint",
    "CIFAR_MEAN",
    "CIFAR_STD",
]

#: Normalisation of the paper's CIFAR evaluation transform.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


class _Bottleneck(nn.Module):
    def __init__(self, in_planes: int, growth_rate: int):
        super().__init__()
        inter = 4 * growth_rate
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, inter, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(inter)
        self.conv2 = nn.Conv2d(inter, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)


class _DenseBlock(nn.Module):
    def __init__(self, n_layers: int, in_planes: int, growth_rate: int):
        super().__init__()
        self.layer = nn.Sequential(
            *(_Bottleneck(in_planes + i * growth_rate, growth_rate) for i in range(n_layers))
        )

    def forward(self, x):
        return self.layer(x)


class _Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv1(F.relu(self.bn1(x))), 2)


class DenseNetBC(nn.Module):
    """DenseNet-BC for 32 x 32 inputs with the DICE checkpoints' parameter names.

    Parameters
    ----------
    depth : int, default=100
        Total depth; each of the three dense blocks has ``(depth - 4) // 6``
        bottleneck layers (16 for depth 100).
    growth_rate : int, default=12
    reduction : float, default=0.5
        Compression of the transitions.
    num_classes : int, default=10

    Attributes
    ----------
    num_features : int
        Width of the penultimate feature (342 for the defaults).
    fc : nn.Linear
        The head, ``(num_classes, num_features)``.

    Notes
    -----
    The penultimate feature is the global average of ``relu(bn1(x))``; the
    original code pools with an 8 x 8 window, which is the same on 32 x 32
    inputs. No dropout: the checkpoints were trained without it.
    """

    def __init__(self, depth: int = 100, growth_rate: int = 12, reduction: float = 0.5,
                 num_classes: int = 10):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"DenseNet-BC depth must be 6 n + 4, got {depth}.")
        n_layers = (depth - 4) // 6
        planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(3, planes, kernel_size=3, padding=1, bias=False)
        self.block1 = _DenseBlock(n_layers, planes, growth_rate)
        planes += n_layers * growth_rate
        self.trans1 = _Transition(planes, int(math.floor(planes * reduction)))
        planes = int(math.floor(planes * reduction))
        self.block2 = _DenseBlock(n_layers, planes, growth_rate)
        planes += n_layers * growth_rate
        self.trans2 = _Transition(planes, int(math.floor(planes * reduction)))
        planes = int(math.floor(planes * reduction))
        self.block3 = _DenseBlock(n_layers, planes, growth_rate)
        planes += n_layers * growth_rate
        self.bn1 = nn.BatchNorm2d(planes)
        self.fc = nn.Linear(planes, num_classes)
        self.num_features = planes
        self._init_weights()

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate feature, shape ``(batch, num_features)``."""
        out = self.conv1(x)
        out = self.trans1(self.block1(out))
        out = self.trans2(self.block2(out))
        out = self.block3(out)
        out = F.relu(self.bn1(out))
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(batch, num_classes)``."""
        return self.fc(self.forward_features(x))


def densenet_bc_100(num_classes: int = 10) -> DenseNetBC:
    """DenseNet-BC-100 (growth 12, compression 0.5), randomly initialised.

    Parameters
    ----------
    num_classes : int, default=10

    Returns
    -------
    DenseNetBC
        In eval mode.
    """
    return DenseNetBC(100, 12, 0.5, num_classes).eval()


def _not_a_checkpoint(path) -> WeightsMismatchError:
    """The one line for a file torch cannot read as tensors (never torch's advice to load a pickle)."""
    return WeightsMismatchError(
        f"{path} is not a readable torch checkpoint of DenseNet weights (a state_dict saved with torch.save, "
        f"such as {DENSENET_CHECKPOINTS})."
    )


def _read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"DenseNet weights file not found: {path} (the paper's checkpoint is {DENSENET_CHECKPOINTS})."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", message)
        if found:
            raise WeightsMismatchError(
                f"{path} holds objects other than tensors and plain containers ({found.group(1)}), "
                "which are not loaded (torch.load weights_only=True); save a state_dict instead."
            ) from None
        raise _not_a_checkpoint(path) from None
    except Exception:  # junk, a text file, a Python file: torch's message would suggest loading a pickle
        raise _not_a_checkpoint(path) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise WeightsMismatchError(
            f"{path} holds neither a state_dict nor a dict with a 'state_dict' entry of tensors."
        )
    if obj and all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_densenet_checkpoint(path) -> DenseNetBC:
    """Build DenseNet-BC-100 from one of the paper's checkpoints, strictly.

    Parameters
    ----------
    path : str or Path
        A torch file holding ``{'epoch': ..., 'state_dict': ...}`` (the DICE
        repository's checkpoints) or a bare state_dict. Loaded with
        ``map_location="cpu"`` and ``weights_only=True``.

    Returns
    -------
    DenseNetBC
        In eval mode; the number of classes is read from ``fc.weight``'s shape.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    WeightsMismatchError
        If the file is not a checkpoint, or its keys or shapes differ from
        DenseNet-BC-100's; the message names the missing and unexpected keys.
    """
    path = Path(path)
    state = _read_state_dict(path)
    fc_weight = state.get("fc.weight")
    num_classes = int(fc_weight.shape[0]) if fc_weight is not None and fc_weight.ndim == 2 else 10
    model = DenseNetBC(100, 12, 0.5, num_classes)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    check_state_keys(expected, found, source=path, architecture="DenseNet-BC-100 (growth 12)")
    model.load_state_dict(state, strict=True)
    return model.eval()
