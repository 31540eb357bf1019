"""Evaluate detectors on the splits of a feature store, as in the paper's tables.

The library behind ``skdice evaluate``, ``skdice fit`` and ``skdice score``,
under one stable import path:

- :func:`evaluate_store` fits each method on the training split (or a cached
  training mean), scores the ID split and every OOD split, and returns the
  per-set and average FPR95 / AUROC / AUPR-In / AUPR-Out together with the ID
  accuracy of the original head and of each masked (DICE) head;
  :class:`EvaluationReport` renders that result as ``skdice evaluate`` prints
  it (``to_table``, ``to_markdown``, ``to_csv``, ``to_json``);
- :func:`fit_from_store` fits one detector from a store, for saving;
- :func:`score_store` scores one split with a fitted detector and writes the
  scores back into the store (``<split>/scores/<name>``); :func:`write_scores`
  writes scores computed elsewhere;
- :func:`parse_method` and :class:`MethodSpec` read ``NAME[:key=value,...]``;
  :func:`load_train_mean` reads a cached training mean.

The code lives in :mod:`skdice.workflows` (evaluate, fit, score, methods,
resolve); see docs/architecture.md.
"""

from .workflows.evaluate import Evaluation, EvaluationReport, evaluate_store
from .workflows.fit import fit_from_store
from .workflows.methods import DEFAULT_METHODS, MethodSpec, parse_method
from .workflows.resolve import load_train_mean
from .workflows.score import score_store, write_scores

__all__ = [
    "DEFAULT_METHODS",
    "Evaluation",
    "EvaluationReport",
    "MethodSpec",
    "parse_method",
    "load_train_mean",
    "fit_from_store",
    "evaluate_store",
    "score_store",
    "write_scores",
]
