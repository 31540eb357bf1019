"""Choose hyperparameters on validation data, and say when the validation cannot choose.

The paper picks DICE's ``p`` from {0.1, 0.3, 0.5, 0.7, 0.9, 0.99} with a
validation set of Gaussian-noise images as the only OOD data, because real
OOD data is not available when a model is deployed. :class:`SparsitySearch`
does that search in one pass per candidate on arrays;
:class:`HyperparameterSearch` does the same for any registered detector over
the grid its class declares (:func:`default_grid`); :func:`tune_store` runs
either on the splits of a feature store. Every search decides whether the
validation set is informative (a paired bootstrap over the validation rows)
and guards the classifier's ID accuracy; when it cannot choose it returns the
detector's default and warns with
:class:`~skdice.exceptions.UninformativeValidationWarning`. The same search
also runs through scikit-learn's ``GridSearchCV`` (see docs/tuning.md).

This module is the public face of all of it; the searches live in the core
(``skdice._search`` re-exports them from the modules split by job), the
store-driven run in :mod:`skdice.workflows.tune`, and :class:`SearchReport`
renders a fitted search as ``skdice tune`` prints it (``to_table``,
``to_json``).
"""

from ._search import (
    DEFAULT_GRID,
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_N_BOOTSTRAP,
    HyperparameterSearch,
    SparsitySearch,
    default_grid,
    paired_bootstrap,
)
from .exceptions import UninformativeValidationWarning
from .workflows.tune import SearchReport, tune_store

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_MAX_ACCURACY_DROP",
    "DEFAULT_N_BOOTSTRAP",
    "HyperparameterSearch",
    "SearchReport",
    "SparsitySearch",
    "UninformativeValidationWarning",
    "default_grid",
    "paired_bootstrap",
    "tune_store",
]
