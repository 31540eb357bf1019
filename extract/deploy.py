"""The way back: put a fitted DICE head into a copy of the torch model.

DICE changes nothing but the classifier's weight at scoring time, so a fitted
detector can be deployed without skdice: copy the model, replace the head's
weight by the masked weight ``M ⊙ W``, and the copy's logits are DICE's
logits. Its ``logsumexp`` over classes is ``DICEDetector.score_samples`` of the
same input, and the copy exports with ``torch.onnx`` like any other model.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .hooked import resolve_head

__all__ = ["to_torch_head", "ClippedLinear", "ClippedConv2d"]


class ClippedLinear(nn.Linear):
    """``nn.Linear`` applied to ``min(x, clip)``: ReAct's rectification before the head.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default=True
    clip : float, default=inf
        Upper bound on the input activations.
    """

    def __init__(self, in_features, out_features, bias=True, clip=float("inf"), **kwargs):
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self.clip = float(clip)

    def forward(self, x):
        return super().forward(torch.clamp(x, max=self.clip))

    def extra_repr(self):
        return f"{super().extra_repr()}, clip={self.clip}"


class ClippedConv2d(nn.Conv2d):
    """``nn.Conv2d`` applied to ``min(x, clip)`` (a 1x1-conv head with ReAct's clip).

    Parameters
    ----------
    *args, **kwargs
        As for ``nn.Conv2d``.
    clip : float, default=inf
        Upper bound on the input activations.
    """

    def __init__(self, *args, clip=float("inf"), **kwargs):
        super().__init__(*args, **kwargs)
        self.clip = float(clip)

    def forward(self, x):
        return super().forward(torch.clamp(x, max=self.clip))

    def extra_repr(self):
        return f"{super().extra_repr()}, clip={self.clip}"


def _clipped_copy(head: nn.Module, clip: float) -> nn.Module:
    ref = head.weight
    if isinstance(head, nn.Linear):
        new = ClippedLinear(head.in_features, head.out_features, bias=head.bias is not None,
                            clip=clip)
    else:
        new = ClippedConv2d(
            head.in_channels, head.out_channels, head.kernel_size, stride=head.stride,
            padding=head.padding, dilation=head.dilation, groups=head.groups,
            bias=head.bias is not None, padding_mode=head.padding_mode, clip=clip,
        )
    new = new.to(device=ref.device, dtype=ref.dtype)
    new.load_state_dict(head.state_dict())
    new.train(head.training)
    return new


def _react_clip(detector):
    """ReAct's clip if the detector rectifies features before its masked head, else None."""
    try:
        from skdice.detectors.react import DICEReActDetector
    except ImportError:  # a core without the ReAct family: nothing clips
        return None
    return float(detector.threshold_) if isinstance(detector, DICEReActDetector) else None


def _fitted_arrays(detector):
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(detector, "fit"):
        raise TypeError(
            f"to_torch_head needs a fitted skdice detector, got {type(detector).__name__}."
        )
    check_is_fitted(detector)
    if not hasattr(detector, "masked_weight_"):
        raise TypeError(
            f"to_torch_head needs a detector with a masked head weight (masked_weight_, "
            f"as DICEDetector has); {type(detector).__name__} has none."
        )
    masked = np.asarray(detector.masked_weight_, dtype=np.float32)
    bias = np.asarray(detector.bias_, dtype=np.float32)
    weight = getattr(detector, "weight_", None)
    return masked, bias, None if weight is None else np.asarray(weight, dtype=np.float32)


def to_torch_head(detector, model: nn.Module, head=None, *, check_head: bool = True) -> nn.Module:
    """A copy of ``model`` whose head outputs DICE's masked logits.

    Parameters
    ----------
    detector : DICEDetector or another fitted detector with ``masked_weight_``
        Its ``masked_weight_`` (n_features, n_classes) and ``bias_`` go into
        the head. For ``DICEReActDetector`` the head also clips its input at
        ``threshold_`` (it becomes a :class:`ClippedLinear` or
        :class:`ClippedConv2d`, with the same parameter names).
    model : nn.Module
        The classifier the detector's features came from. It is not modified.
    head : nn.Module or str, default=None
        The head (a submodule of ``model`` or its dotted name); ``None``
        finds it as :class:`~skdice.extract.hooked.HookedExtractor` does.
    check_head : bool, default=True
        Refuse a detector whose original weight ``weight_`` and bias differ
        from the model's head (it was fitted on another model or head).

    Returns
    -------
    nn.Module
        A deep copy of ``model`` (same mode and device) whose head weight is
        ``masked_weight_.T`` (reshaped to ``(C, m, 1, 1)`` for a 1x1 conv) and
        whose bias is ``bias_``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the detector is not fitted.
    TypeError
        If the detector has no masked head weight (it is not a DICE detector).
    ValueError
        If the head's shape differs from the detector's, or ``check_head``
        finds a different head.

    Notes
    -----
    ``torch.logsumexp(dice_model(x), dim=1)`` is ``S(x)`` of the paper's Eq. (4)
    with T = 1, the value ``detector.score_samples`` gives for the features of
    ``x``; compare it with ``detector.offset_`` to reproduce ``predict``
    (below the offset = OOD). The copy's logits are the ones the detector
    scores, so ``logsumexp`` reproduces every energy-based masked detector
    (DICE, DICE + ReAct, the ablations); ``DICEMSPDetector`` scores them by
    the maximum softmax instead. The model's class predictions come from the
    original model: keep both, or run the features through both heads.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> from skdice import DICEDetector
    >>> from skdice.extract.hooked import HookedExtractor
    >>> net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    >>> x = torch.randn(50, 6)
    >>> extractor = HookedExtractor(net)
    >>> H, _ = extractor(x)
    >>> det = DICEDetector(p=0.5).fit(H.numpy(), extractor.head_weight(), extractor.head_bias())
    >>> dice_net = to_torch_head(det, net)
    >>> scores = torch.logsumexp(dice_net(x), dim=1).detach().numpy()
    >>> bool(np.allclose(scores, det.score_samples(H.numpy()), rtol=1e-5))
    True
    """
    masked, bias, original = _fitted_arrays(detector)
    name, orig_head = resolve_head(model, head)
    if isinstance(orig_head, nn.Linear):
        m, c = orig_head.in_features, orig_head.out_features
    else:
        m, c = orig_head.in_channels, orig_head.out_channels
    if masked.shape != (m, c):
        raise ValueError(
            f"the detector's head is {masked.shape} (n_features, n_classes) but the model's head "
            f"{name!r} maps {m} features to {c} classes."
        )
    if check_head:
        weight = orig_head.weight.detach().to("cpu", torch.float32).reshape(c, m).numpy().T
        model_bias = (
            np.zeros(c, np.float32) if orig_head.bias is None
            else orig_head.bias.detach().to("cpu", torch.float32).numpy()
        )
        same_weight = original is None or np.allclose(original, weight, rtol=1e-5, atol=1e-6)
        if not same_weight or not np.allclose(bias, model_bias, rtol=1e-5, atol=1e-6):
            part = "weight" if not same_weight else "bias"
            raise ValueError(
                f"the detector was fitted on a different head: its {part} differs from the "
                f"model's {name!r}; fit it on this model's features and head, or pass "
                "check_head=False."
            )

    dice_model = copy.deepcopy(model)
    new_head = dice_model.get_submodule(name) if name else dice_model
    clip = _react_clip(detector)
    if clip is not None:
        new_head = _clipped_copy(new_head, clip)
        if name:
            parent_name, _, child = name.rpartition(".")
            parent = dice_model.get_submodule(parent_name) if parent_name else dice_model
            setattr(parent, child, new_head)
        else:
            dice_model = new_head
    ref = new_head.weight
    with torch.no_grad():
        new_head.weight.copy_(
            torch.from_numpy(np.ascontiguousarray(masked.T)).reshape(ref.shape).to(ref)
        )
        bias_tensor = torch.from_numpy(bias.copy()).to(ref)
        if new_head.bias is not None:
            new_head.bias.copy_(bias_tensor)
        elif np.any(bias != 0):  # only reachable with check_head=False
            new_head.bias = nn.Parameter(bias_tensor, requires_grad=ref.requires_grad)
    return dice_model
