"""Choose DICE's sparsity ``p`` on Gaussian-noise validation data (Section 4.1).

The paper picks ``p`` from {0.1, 0.3, 0.5, 0.7, 0.9, 0.99} with a validation
set of Gaussian-noise images as the only OOD data, because real OOD data is not
available when a model is deployed. :class:`SparsitySearch` does that search in
one pass per candidate on arrays; :func:`tune_store` runs it on the splits of a
feature store. The same search also runs through scikit-learn's
``GridSearchCV`` (see docs/tuning.md and the Notes of the class).

This module is the public face of both; the search lives in the core
(``skdice._search``), the store-driven run in :mod:`skdice.workflows.tune`.
"""

from ._search import DEFAULT_GRID, SparsitySearch
from .workflows.tune import tune_store

__all__ = ["DEFAULT_GRID", "SparsitySearch", "tune_store"]
