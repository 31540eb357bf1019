"""Shared pieces of weight loading: the mismatch error, key checks, file hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from skdice.exceptions import SkdiceError

__all__ = ["WeightsMismatchError", "check_state_keys", "sha256_file", "BIT_WEIGHTS_URL", "DENSENET_CHECKPOINTS"]

#: Where the paper's ImageNet model comes from: BiT-S-R101x1 of google-research/big_transfer.
BIT_WEIGHTS_URL = "https://storage.googleapis.com/bit_models/BiT-S-R101x1.npz"
#: Where the paper's CIFAR DenseNet-BC-100 comes from: the DICE authors' repository.
DENSENET_CHECKPOINTS = (
    "checkpoints/CIFAR-10/densenet/checkpoint_100.pth.tar in https://github.com/deeplearning-wisc/dice"
)

_SHOWN = 8


class WeightsMismatchError(SkdiceError, ValueError):
    """A weights file does not fit the architecture (missing, unexpected or misshapen keys)."""


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    more = len(keys) - _SHOWN
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def check_state_keys(expected: dict, found: dict, *, source, architecture: str) -> None:
    """Raise :class:`WeightsMismatchError` unless two key -> shape maps agree exactly.

    Parameters
    ----------
    expected : dict of str to tuple
        Keys and shapes the architecture needs.
    found : dict of str to tuple
        Keys and shapes the file holds (already in the architecture's layout).
    source : str or Path
        The file, named in the message.
    architecture : str
        Name of the architecture, named in the message.

    Raises
    ------
    WeightsMismatchError
        Naming the missing keys, the unexpected keys and the keys whose shapes
        differ (the first few of each, with counts).
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshapen = sorted(
        k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k])
    )
    if not (missing or unexpected or misshapen):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if misshapen:
        shapes = [f"{k} {tuple(found[k])} != {tuple(expected[k])}" for k in misshapen]
        parts.append(f"{len(misshapen)} keys with wrong shapes (file != model): {_listing(shapes)}")
    raise WeightsMismatchError(
        f"weights file {source} does not match {architecture}: " + "; ".join(parts) + "."
    )


def sha256_file(path, block_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in blocks.

    Parameters
    ----------
    path : str or Path
    block_size : int, default=1 MiB

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(Path(path), "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()
