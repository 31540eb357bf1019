"""Penultimate features of any torch classifier, captured at the input of its head."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["HookedExtractor", "find_head", "resolve_head"]


def _is_head_candidate(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(module, nn.Conv2d)
        and tuple(module.kernel_size) == (1, 1)
        and tuple(module.stride) == (1, 1)
        and module.groups == 1
    )


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if _is_head_candidate(m)]


def find_head(model: nn.Module) -> tuple[str, nn.Module]:
    """The classifier head of a model: its last ``nn.Linear``, else its last 1x1 conv.

    "Last" is registration order (``named_modules``), which for the usual
    classifiers (torchvision ResNets, DenseNets, BiT) is the order of the
    forward pass ending in the head.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    (str, nn.Module)
        Dotted name and module of the head.

    Raises
    ------
    ValueError
        If the model has neither an ``nn.Linear`` nor a 1x1 ``nn.Conv2d``.
    """
    found = _candidates(model)
    linears = [(n, m) for n, m in found if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    if found:
        return found[-1]
    raise ValueError(
        f"{type(model).__name__} has no nn.Linear or 1x1 nn.Conv2d to use as the head; "
        "pass head= (the module or its dotted name)."
    )


def resolve_head(model: nn.Module, head=None) -> tuple[str, nn.Module]:
    """The head named by ``head`` (a module of ``model`` or a dotted name), or found.

    Parameters
    ----------
    model : nn.Module
    head : nn.Module or str, default=None
        ``None`` finds it with :func:`find_head`.

    Returns
    -------
    (str, nn.Module)
        Dotted name and module.

    Raises
    ------
    ValueError
        If the name does not exist in the model, the module is not part of
        it, or it is neither an ``nn.Linear`` nor a 1x1 ``nn.Conv2d``.
    """
    if head is None:
        return find_head(model)
    if isinstance(head, str):
        try:
            module = model.get_submodule(head)
        except AttributeError:
            names = ", ".join(n or "<root>" for n, _ in _candidates(model)[-5:]) or "none"
            raise ValueError(
                f"{type(model).__name__} has no submodule {head!r}; "
                f"Linear / 1x1-conv modules it has (last 5): {names}."
            ) from None
        name = head
    elif isinstance(head, nn.Module):
        name = next((n for n, m in model.named_modules() if m is head), None)
        if name is None:
            raise ValueError(
                f"the head {type(head).__name__} given is not a submodule of "
                f"{type(model).__name__}."
            )
        module = head
    else:
        raise TypeError(
            f"head must be an nn.Module, a dotted name or None, got {type(head).__name__}."
        )
    if not _is_head_candidate(module):
        raise ValueError(
            f"the head {name!r} is a {type(module).__name__}; it must be an nn.Linear or a "
            "1x1 nn.Conv2d (stride 1, groups 1)."
        )
    return name, module


class HookedExtractor:
    """Run a classifier and return its penultimate features and logits.

    A forward hook on the head (the last ``nn.Linear`` or 1x1 ``nn.Conv2d``,
    or the one named) captures the head's input, which is the penultimate
    feature h(x) of the DICE paper, and its output, the logits. The hook is
    attached only for the duration of each call, so the model is left as it
    was.

    Parameters
    ----------
    module : nn.Module
        The classifier. Put it in eval mode yourself (the presets are).
    head : nn.Module or str, default=None
        The head, as a submodule or its dotted name; ``None`` finds it.

    Attributes
    ----------
    module : nn.Module
    head : nn.Linear or nn.Conv2d
    head_name : str
        Dotted name of the head inside ``module``.
    n_features : int
        Width m of the penultimate feature.
    n_classes : int
        Number of logits C.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    >>> extractor = HookedExtractor(net)
    >>> features, logits = extractor(torch.randn(4, 5))
    >>> extractor.head_name, tuple(features.shape), tuple(logits.shape)
    ('2', (4, 8), (4, 3))
    >>> extractor.head_weight().shape
    (8, 3)
    """

    def __init__(self, module: nn.Module, head=None):
        self.module = module
        self.head_name, self.head = resolve_head(module, head)
        if isinstance(self.head, nn.Linear):
            self.n_features, self.n_classes = self.head.in_features, self.head.out_features
        else:
            self.n_features, self.n_classes = self.head.in_channels, self.head.out_channels

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward ``batch`` through the model under ``torch.inference_mode``.

        Parameters
        ----------
        batch : torch.Tensor
            The model's input, on the model's device.

        Returns
        -------
        features : torch.Tensor of shape (batch, n_features)
            The head's input, flattened.
        logits : torch.Tensor of shape (batch, n_classes)
            The head's output, flattened.

        Raises
        ------
        RuntimeError
            If the head was not called exactly once, or a 1x1-conv head saw a
            feature map larger than 1 x 1 (so its input is not a pooled feature).
        """
        captured = []

        def hook(_module, inputs, output):
            captured.append((inputs[0], output))

        handle = self.head.register_forward_hook(hook)
        try:
            with torch.inference_mode():
                self.module(batch)
        finally:
            handle.remove()
        if len(captured) != 1:
            raise RuntimeError(
                f"the head {self.head_name!r} ran {len(captured)} times in one forward pass; "
                "expected exactly once (pass head= to choose the classifier layer)."
            )
        features, logits = captured[0]
        if features.ndim == 4 and features.shape[2:] != (1, 1):
            raise RuntimeError(
                f"the 1x1-conv head {self.head_name!r} received a "
                f"{features.shape[2]}x{features.shape[3]} feature map; the head must act on a "
                "globally pooled (batch, m, 1, 1) feature."
            )
        n = features.shape[0]
        return features.reshape(n, -1), logits.reshape(n, -1)

    def head_weight(self) -> np.ndarray:
        """The head's weight in the paper's orientation.

        Returns
        -------
        ndarray of shape (n_features, n_classes), float32
            ``weight.T`` for an ``nn.Linear``; the 1x1 kernel reshaped likewise.
        """
        weight = self.head.weight.detach().to("cpu", torch.float32)
        return np.ascontiguousarray(weight.reshape(self.n_classes, self.n_features).numpy().T)

    def head_bias(self) -> np.ndarray:
        """The head's bias.

        Returns
        -------
        ndarray of shape (n_classes,), float32
            Zeros when the head has no bias.
        """
        if self.head.bias is None:
            return np.zeros(self.n_classes, dtype=np.float32)
        return self.head.bias.detach().to("cpu", torch.float32).numpy().copy()

    def to_head(self):
        """The head as a :class:`skdice.Head` (weight ``(n_features, n_classes)``, bias).

        Returns
        -------
        skdice.Head
        """
        from skdice import Head

        return Head(self.head_weight(), self.head_bias())

    def __repr__(self) -> str:
        return (
            f"HookedExtractor({type(self.module).__name__}, head={self.head_name!r}, "
            f"n_features={self.n_features}, n_classes={self.n_classes})"
        )
