"""``ModelSpec``, what every model loader returns (private: import it from :mod:`skdice.extract.models`).

Its own module so that the loaders (the presets in the package, the import-string
factories in :mod:`~skdice.extract.models.factory`) take it from below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

__all__ = ["ModelSpec"]


@dataclass
class ModelSpec:
    """A classifier ready for feature extraction.

    Attributes
    ----------
    name : str
        Preset name, e.g. ``"densenet-bc-100"``.
    module : nn.Module
        The network, in eval mode, on the CPU.
    head : nn.Linear or nn.Conv2d
        The classifier layer whose input is the penultimate feature.
    input_size : tuple of int
        ``(3, H, W)`` of the tensors ``preprocess`` produces.
    preprocess : callable
        PIL image (or uint8 array) -> float32 tensor of shape ``input_size``.
    preprocessing : dict
        JSON-able description of ``preprocess`` (for the store's attributes).
    weights_sha256 : str or None
        SHA-256 of the weights file; None for random weights.
    feature_layer : str
        Where the feature is read: ``"<head name>:input"``, e.g. ``"fc:input"``.
    head_name : str
        Dotted name of ``head`` inside ``module``.
    weights_path : str or None
        The weights file as given.
    num_classes : int
    num_features : int
        Width m of the penultimate feature.
    """

    name: str
    module: nn.Module
    head: nn.Module
    input_size: tuple
    preprocess: Callable
    preprocessing: dict
    weights_sha256: str | None
    feature_layer: str
    head_name: str = ""
    weights_path: str | None = None
    num_classes: int = field(default=0)
    num_features: int = field(default=0)
