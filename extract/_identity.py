"""What a store's features depend on: a fingerprint of the model's parameters and buffers.

A store is extended or resumed only by the same model (docs/store.md,
"Model identity"). The same network may be named in many ways (a preset, an
import string with a relative or an absolute path, a module moved to another
checkout), and a network whose body changed may keep its name and even its
head; so the identity compared is the content: a SHA-256 of the state dict
(names, data types, shapes and bytes of every parameter and persistent
buffer), together with the preprocessing and the feature layer, which the
store records beside it.
"""

from __future__ import annotations

import hashlib

from skdice.exceptions import require

torch = require("torch", "extract")

__all__ = ["parameters_fingerprint", "BLOCK_BYTES"]

#: Bytes of a tensor copied to the CPU at a time while it is digested.
BLOCK_BYTES = 1 << 24


def parameters_fingerprint(module, *, block_bytes: int = BLOCK_BYTES) -> str:
    """``sha256:<hex>`` of a module's state dict: names, data types, shapes and bytes.

    Entries are taken in sorted order of their names; each tensor is copied
    to the CPU a block of about ``block_bytes`` at a time (whatever its device
    or memory format), so the memory used stays small and the digest does not
    depend on the device, the memory format or the block size.

    Parameters
    ----------
    module : torch.nn.Module
    block_bytes : int, default=16 MiB
        Most bytes copied to the CPU at once (a single element larger than
        this is copied whole).

    Returns
    -------
    str
        ``"sha256:"`` followed by 64 hexadecimal digits.

    Examples
    --------
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> a = nn.Linear(3, 2)
    >>> b = nn.Linear(3, 2)
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
    >>> parameters_fingerprint(a) == parameters_fingerprint(b)
    True
    """
    h = hashlib.sha256(b"skdice-parameters\0")
    state = module.state_dict(keep_vars=False)
    for name in sorted(state):
        value = state[name]
        if not isinstance(value, torch.Tensor):  # a module's extra state: its type only
            h.update(f"{name}\0extra:{type(value).__qualname__}\0".encode("utf-8", "backslashreplace"))
            continue
        tensor = value.detach()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        h.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode("utf-8", "backslashreplace"))
        _digest_tensor(h, tensor.reshape(1) if tensor.ndim == 0 else tensor, max(1, int(block_bytes)))
    return "sha256:" + h.hexdigest()


def _digest_tensor(h, tensor, block_bytes: int) -> None:
    """Feed ``tensor``'s bytes in C order to ``h``, slicing along the first axis (views, no copy)."""
    size = tensor.element_size()
    if tensor.numel() * size <= block_bytes:
        h.update(_cpu_bytes(tensor))
        return
    if tensor.ndim == 1:
        step = max(1, block_bytes // size)
        for start in range(0, tensor.shape[0], step):
            h.update(_cpu_bytes(tensor[start : start + step]))
        return
    row = tensor[0].numel() * size
    step = max(1, block_bytes // max(row, 1))
    for start in range(0, tensor.shape[0], step):
        part = tensor[start : start + step]
        if step == 1:
            _digest_tensor(h, part[0], block_bytes)  # one row is too large: slice it in turn
        else:
            h.update(_cpu_bytes(part))


def _cpu_bytes(tensor):
    """The tensor's bytes in C order, from a contiguous CPU copy (dtypes NumPy lacks included)."""
    flat = tensor.to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy()
