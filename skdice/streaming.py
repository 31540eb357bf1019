"""Out-of-core and distributed fitting and scoring: the public face.

Features of a large training set (ImageNet's 1.28 M images at 2048 float32
features are 10.5 GB) need not fit in memory to fit DICE: its statistic is the
mean feature, a running float64 sum. This module gathers, under one stable
import path,

- fitting a detector from a feature-store split read block by block
  (:func:`fit_store`), memory bounded whatever the row count, and calibrating
  ``offset_`` afterwards (:func:`calibrate_offset`);
- scoring a split block by block and writing the scores back into the store,
  resumably (:func:`score_to_store`, :func:`detector_fingerprint`);
- block reads with read-ahead (:func:`iter_blocks`, :func:`block_rows_for`);
- Dask: ``fit`` reduces the mean with Dask and ``score_samples`` returns a lazy
  dask array (:func:`score_dask`); an existing ``dask.distributed`` cluster is
  used when its address is given (:func:`dask_client`, the ``--scheduler``
  option or ``SKDICE_SCHEDULER``).

The code lives in its layers (docs/architecture.md): :mod:`skdice.workflows.fit`,
:mod:`skdice.workflows.score`, :mod:`skdice.workflows.cluster`,
:mod:`skdice.store` and the core's Dask support. See
:mod:`skdice.workflows.fit` for how a streaming fit calibrates ``offset_``.
"""

from ._dask import score_dask
from .store import block_rows_for, iter_blocks
from .workflows.cluster import SCHEDULER_ENV, dask_client, resolve_scheduler
from .workflows.fit import calibrate_offset, fit_store
from .workflows.score import detector_fingerprint, score_to_store

__all__ = [
    "SCHEDULER_ENV",
    "block_rows_for",
    "calibrate_offset",
    "dask_client",
    "detector_fingerprint",
    "fit_store",
    "iter_blocks",
    "resolve_scheduler",
    "score_dask",
    "score_to_store",
]
