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
    "DegenerateFitWarning",
    "UninformativeValidationWarning",
    "UnlabelledValidationWarning",
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


class DegenerateFitWarning(UserWarning):
    """A fit left the masked head without a non-zero weight: every input gets one score.

    Raised (as a warning) by the detectors that score with a masked head
    (:class:`skdice.DICEDetector`, DICE+MSP, DICE+ReAct, DICE's unit-selection
    variants and the sparsification ablations) when their mask keeps no
    weight, or keeps only zero weights: the masked logits are then the bias
    for every input, and so is the score. Every way of fitting warns (``fit``,
    ``fit(train_mean=...)``, ``fit_from_mean``, ``partial_fit``, Dask). The
    message names the cause: an all-zero training mean feature, an all-zero
    head, contributions ``V = mean * W`` that all tie, a ``p`` whose threshold
    reaches the largest contribution, or a head of a single weight. ``fit``
    with features also warns when the fitting rows differ but all get the
    same score: the kept weights read only units that are constant over the
    rows, or the scores saturate in floating point. The fit itself completes.
    ``warnings.simplefilter("error", DegenerateFitWarning)`` turns it into an
    error.

    See Also
    --------
    skdice.sparsify.dice_mask : DICE's rule; ties at the threshold are all dropped.
    """


class UninformativeValidationWarning(UserWarning):
    """The validation set cannot choose between the candidates of a search.

    Raised (as a warning) by :class:`skdice.tuning.HyperparameterSearch` and
    :class:`skdice.tuning.SparsitySearch` when the OOD validation set is not
    separated from the ID rows at any candidate, or no candidate is worse
    than the best beyond sampling noise; the search then returns its
    documented fallback (the detector's default parameters). The message says
    why and what was returned. ``warnings.simplefilter("error",
    UninformativeValidationWarning)`` turns it into an error.
    """


class UnlabelledValidationWarning(UserWarning):
    """The ID validation split has no class labels, so the ID-accuracy guard is skipped."""


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
