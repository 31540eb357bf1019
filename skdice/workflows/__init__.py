"""Workflows: everything driven by a feature store (fit, score, evaluate, tune, plot).

The third layer of the house (docs/architecture.md): above the core
(estimators on arrays) and the storage (:mod:`skdice.store`), below the CLI.
Each module does one job:

- :mod:`~skdice.workflows.resolve`: the one resolver of a run's inputs (the
  store, its splits, the head, the training split or mean);
- :mod:`~skdice.workflows.methods`: method specs (``"dice:p=0.7"``) and the
  detectors they build;
- :mod:`~skdice.workflows.fit`: fitting a detector from a store, streamed;
- :mod:`~skdice.workflows.score`: scoring a split and writing the scores back;
- :mod:`~skdice.workflows.cluster`: the optional ``dask.distributed`` cluster;
- :mod:`~skdice.workflows.evaluate`: the paper's tables from a store;
- :mod:`~skdice.workflows.tune`: the p search on a store's splits;
- :mod:`~skdice.workflows.plot`: the figures of a store.

The stable import paths for users are :mod:`skdice.evaluation`,
:mod:`skdice.streaming`, :mod:`skdice.tuning` and :mod:`skdice.plotting`,
which re-export these.
"""
