"""Hyperparameter searches on ID vs OOD validation features, and when they cannot choose.

:class:`HyperparameterSearch` tunes any registered detector over the grid its
class declares (``search_grid``, from its own paper's sweep) or over a given
one; :class:`SparsitySearch` is its specialisation to DICE's sparsity ``p``
(Section 4.1 of the paper), with its own names and tie rule. Both score every
candidate once on the validation rows, then decide from those scores alone
whether the validation set can choose at all:

- a paired bootstrap over the validation rows (ID and OOD rows resampled
  independently, the same resamples for every candidate) gives each
  candidate's FPR and AUROC an interval and each candidate's difference to
  the best one an interval;
- the choice is *informative* when the OOD set is separated from ID at some
  candidate (AUROC interval above 0.5) and at least one candidate is worse
  than the best beyond sampling noise (its difference interval above 0);
- with class labels for the ID rows, candidates whose masked head loses more
  than ``max_accuracy_drop`` of ID accuracy against the dense head are flagged
  and not chosen (the guard);
- when uninformative the search returns the detector's default parameters
  (DICE: the paper's p = 0.9) and warns with
  :class:`~skdice.exceptions.UninformativeValidationWarning`.

Arrays in, a fitted search out (the core layer). The store-driven search is
:func:`skdice.workflows.tune.tune_store`; users import everything from
:mod:`skdice.tuning`. This module gathers the search's parts, one job each:

- :mod:`skdice._search_grid`: the detector named, its declared grid, a given grid checked;
- :mod:`skdice._training`: the training mean and DICE's masked heads (also theory's);
- :mod:`skdice._decision`: the rule (informative, or the fallback);
- :mod:`skdice._hyperparameter_search` and :mod:`skdice._sparsity_search`: the two
  estimators, the second overriding the first's one evaluation hook ``_run_search``;
- scoring through a masked head is the detectors' own kernel,
  :func:`skdice._masked.masked_head_scores`.
"""

from __future__ import annotations

from ._bootstrap import DEFAULT_N_BOOTSTRAP, paired_bootstrap
from ._hyperparameter_search import DEFAULT_MAX_ACCURACY_DROP, HyperparameterSearch
from ._search_grid import DEFAULT_GRID, default_grid
from ._sparsity_search import SparsitySearch
from ._training import masked_heads, training_mean

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_MAX_ACCURACY_DROP",
    "DEFAULT_N_BOOTSTRAP",
    "HyperparameterSearch",
    "SparsitySearch",
    "default_grid",
    "masked_heads",
    "paired_bootstrap",
    "training_mean",
]
