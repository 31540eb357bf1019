"""The names the shell completes without importing the library: methods and model presets.

Completion runs the whole command line for every TAB, so it must not import
scikit-learn (the registry) or torch (the presets). The names are written
here once; ``tests/cli/test_startup.py`` checks them against
:func:`skdice.available_detectors` and :data:`skdice.extract.models.PRESETS`.
"""

from __future__ import annotations

__all__ = ["METHOD_NAMES", "MODEL_PRESETS", "complete_from"]

#: every registered detector name (``skdice methods``), sorted
METHOD_NAMES = (
    "ash-b", "ash-p", "ash-s", "bats", "dice", "dice-bottom-k", "dice-msp", "dice-random-k",
    "dice-react", "dice-top-bottom-k", "energy", "fdbd", "gen", "gradnorm", "klm", "knn", "line",
    "mahalanobis", "maxlogit", "msp", "nci", "neco", "nnguide", "odin", "optfs", "react", "relation",
    "residual", "rmds", "scale", "she", "unit-dropout", "unit-pruning", "vim", "vra",
    "weight-dropout", "weight-pruning",
)

#: the model presets of ``skdice extract --model``
MODEL_PRESETS = ("bit-s-r101", "densenet-bc-100")


def complete_from(names, incomplete: str) -> list:
    """Shell completion of a value from a fixed list of names.

    Parameters
    ----------
    names : iterable of str
        The names to offer.
    incomplete : str
        What has been typed of the value so far.

    Returns
    -------
    list of click.shell_completion.CompletionItem
        The names that start with ``incomplete``, in the given order.
    """
    try:
        from typer._click.shell_completion import CompletionItem  # typer >= 0.29 vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click.shell_completion import CompletionItem

    return [CompletionItem(name) for name in names if name.startswith(incomplete)]
