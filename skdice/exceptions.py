"""Exceptions the library raises for problems a user can fix.

The command line turns every :class:`SkdiceError` (and ``ValueError``) into
one line on stderr and exit code 1.
"""

__all__ = [
    "SkdiceError",
    "StoreError",
    "IncompleteSplitError",
    "MissingExtraError",
    "DetectorFormatError",
]


class SkdiceError(Exception):
    """Base class of skdice's own errors."""


class StoreError(SkdiceError, ValueError):
    """A feature store is missing, corrupt, or lacks what was asked for."""


class IncompleteSplitError(StoreError):
    """A split was not written to the end (an interrupted extraction)."""


class MissingExtraError(SkdiceError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class DetectorFormatError(SkdiceError, ValueError):
    """A file is not a saved skdice detector, or comes from an incompatible version."""


def require(module: str, extra: str):
    """Import an optional dependency or raise one clear line naming the extra.

    Parameters
    ----------
    module : str
        Module to import, for example ``"zarr"``.
    extra : str
        The skdice extra that installs it, for example ``"store"``.

    Returns
    -------
    module
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed: pip install \"skdice[{extra}]\" ({exc})"
        ) from None
