"""Torch tensors as they come, read without importing torch."""

from __future__ import annotations

__all__ = ["as_numpy", "is_torch_tensor"]


def is_torch_tensor(value) -> bool:
    """Whether ``value`` is a torch tensor (or ``nn.Parameter``), checked without importing torch.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return type(value).__module__.split(".")[0] == "torch" and callable(getattr(value, "detach", None))


def as_numpy(value):
    """A torch tensor (or a CuPy array) as a NumPy array; anything else unchanged.

    The tensor is detached from autograd, moved to the CPU, and a 16-bit float
    (``bfloat16``, which NumPy has no dtype for, or ``float16``) is widened to
    float32; a CuPy array is copied to the host. The only place skdice
    converts an input to NumPy: every input check calls it, so the searches
    and the detectors without ``array_api_support`` read such arrays on the
    host (the Array API boundary, docs/api.md).

    Parameters
    ----------
    value : object
        A torch tensor, or anything else (returned as it is).

    Returns
    -------
    ndarray or object

    Examples
    --------
    >>> import numpy as np
    >>> as_numpy(np.ones(3)) is not None
    True
    """
    if type(value).__module__.split(".")[0] == "cupy":
        return value.get()
    if not is_torch_tensor(value):
        return value
    value = value.detach().cpu()
    if value.is_floating_point() and value.element_size() < 4:
        value = value.float()
    return value.numpy()
