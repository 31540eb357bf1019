"""The hyperparameter searches (:mod:`skdice.tuning`) on the splits of a feature store."""

from __future__ import annotations

import warnings

from sklearn.base import clone
from sklearn.model_selection import ParameterGrid

from .._base import BaseDetector, available_detectors, detector_tags
from .._search import (
    DEFAULT_GRID,
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_N_BOOTSTRAP,
    HyperparameterSearch,
    SparsitySearch,
    default_grid,
)
from ..exceptions import UnlabelledValidationWarning
from .resolve import (
    SplitFeatures,
    TrainingData,
    check_validation_splits,
    class_labels,
    open_feature_store,
    stream_mean,
)

__all__ = ["make_search", "run_search", "tune_store"]


def make_search(
    method="dice",
    grid=None,
    *,
    metric="fpr95",
    tpr=0.95,
    guard=True,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
    n_bootstrap=DEFAULT_N_BOOTSTRAP,
    random_state=0,
):
    """The search for a method: :class:`SparsitySearch` for DICE's p, else :class:`HyperparameterSearch`.

    Parameters
    ----------
    method : str or BaseDetector, default="dice"
        A registry name, or a detector whose parameters are the base of every
        candidate.
    grid : dict, sequence or None, default=None
        ``{parameter: values}``, a sequence for a one-parameter grid, or None
        for the method's declared grid.
    metric, tpr, guard, max_accuracy_drop, n_bootstrap, random_state
        As in :class:`HyperparameterSearch`.

    Returns
    -------
    SparsitySearch or HyperparameterSearch
        Unfitted.
    """
    options = dict(metric=metric, tpr=tpr, guard=guard, max_accuracy_drop=max_accuracy_drop,
                   n_bootstrap=n_bootstrap, random_state=random_state)
    if method == "dice" and (grid is None or not isinstance(grid, dict) or set(grid) == {"p"}):
        values = DEFAULT_GRID if grid is None else grid["p"] if isinstance(grid, dict) else grid
        return SparsitySearch(grid=values, **options)
    return HyperparameterSearch(method, grid, **options)


def _candidates(search):
    """Unfitted detectors of every candidate, to read what their fit needs from their tags."""
    if isinstance(search, SparsitySearch):
        return [], "dice"
    method = search.method
    base = clone(method) if isinstance(method, BaseDetector) else None
    if base is None:
        registry = available_detectors()
        if method not in registry:
            raise ValueError(
                f"unknown method {method!r}; choose from: {', '.join(registry)} "
                "(`skdice methods` lists them)."
            )
        base = registry[method]()
    grid = search.grid if search.grid is not None else default_grid(base)
    if not isinstance(grid, dict):
        grid = {next(iter(default_grid(base)), "p"): grid}
    name = type(base).name or type(base).__name__
    try:
        return [clone(base).set_params(**c) for c in ParameterGrid(grid)], name
    except (TypeError, ValueError):  # a malformed grid: the search says what is wrong
        return [base], name


def run_search(search, fs, train: TrainingData, *, id_split: str, noise_splits):
    """Fit a search on a store's ID validation split against its noise split(s).

    What the training split gives each candidate follows its tags:
    detectors fitted from the mean feature get the mean (the training split
    streamed block by block, or the cached mean), the others the training
    features in memory (with class labels where they need them); detectors
    whose scores come from the head alone need no training data. The ID
    split's class labels (rows ``-1`` unknown) feed the guard; a split
    without any gives one :class:`~skdice.exceptions.UnlabelledValidationWarning`.

    The validation splits are never loaded: they are handed to the search as
    :class:`~skdice.workflows.resolve.SplitFeatures`, read block by block
    (once in all by DICE's :class:`SparsitySearch`, once per candidate by
    :class:`HyperparameterSearch`); what stays in memory is 8 bytes a row
    per candidate (the scores) and the placements of the bootstrap. Training
    features are read whole only for detectors that keep them (KNN,
    Mahalanobis...).

    Parameters
    ----------
    search : SparsitySearch or HyperparameterSearch
        Unfitted (see :func:`make_search`).
    fs : skdice.store.FeatureStore
    train : TrainingData
        The run's training split and/or mean.
    id_split : str
    noise_splits : sequence of str

    Returns
    -------
    search
        Fitted.
    """
    head = fs.head
    candidates, name = _candidates(search)
    # block sources: the searches read the splits block by block, never whole
    X_id = SplitFeatures(fs, id_split)
    X_noise = {split: SplitFeatures(fs, split) for split in noise_splits}
    labels = fs.labels(id_split)
    y_id = labels if (labels >= 0).any() else None
    kwargs = {}
    if isinstance(search, SparsitySearch) or all(detector_tags(c).fits_from_mean for c in candidates):
        if train.mean is not None:
            kwargs["train_mean"] = train.mean
        elif train.split is not None:
            kwargs["train_mean"] = stream_mean(fs, train.split)
        else:
            raise ValueError(
                f"method {name!r} is fitted on the mean training feature: pass train=SPLIT "
                "or train_mean=FILE.npy."
            )
    elif any(detector_tags(c).uses_features for c in candidates):
        if train.split is None:
            raise ValueError(
                f"method {name!r} is fitted on in-distribution training features: pass train=SPLIT."
            )
        kwargs["X"] = train.X
        if any(detector_tags(c).requires_class_labels for c in candidates):
            kwargs["y"] = class_labels(fs, train.split)
        if train.mean is not None and all(detector_tags(c).accepts_train_mean for c in candidates):
            kwargs["train_mean"] = train.mean
    search.fit(head=head, X_id=X_id, X_noise=X_noise, y_id=y_id, **kwargs)
    masked = int(search.cv_results_["n_kept"][0]) >= 0
    if y_id is None and masked and search.guard:
        warnings.warn(
            f"split {id_split!r} has no class labels (every row is -1): the ID-accuracy guard "
            "is skipped.",
            UnlabelledValidationWarning,
            stacklevel=2,
        )
    return search


def tune_store(
    store,
    *,
    id_split,
    noise_split,
    train=None,
    train_mean=None,
    grid=None,
    metric="fpr95",
    tpr=0.95,
    method="dice",
    guard=True,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
    n_bootstrap=DEFAULT_N_BOOTSTRAP,
    random_state=0,
):
    """Run the search for a method (DICE's p by default) on the splits of a feature store.

    Parameters
    ----------
    store : str, path-like or skdice.store.FeatureStore
        A store written by ``skdice extract``; its head is the model's head.
    id_split : str
        Split of ID validation features; its class labels feed the guard.
    noise_split : str or sequence of str
        Split(s) of OOD validation features (Gaussian noise, other
        generators); with several, every metric is their mean.
    train : str, default=None
        Split of ID training features. Mean-based detectors stream it chunk
        by chunk (it is never loaded whole); the others read it.
    train_mean : array-like of shape (n_features,), str or path-like, default=None
        The mean training feature, or a ``.npy`` file holding it
        (:func:`skdice.workflows.resolve.load_train_mean`).
    grid : dict, sequence or None, default=None
        ``{parameter: values}``; a sequence of values for a method with one
        searched parameter (DICE: the sparsities); None for the method's
        declared grid (DICE: the paper's).
    metric : {"fpr95", "auroc"}, default="fpr95"
    tpr : float, default=0.95
    method : str, default="dice"
        A registered detector name.
    guard, max_accuracy_drop, n_bootstrap, random_state
        As in :class:`skdice.tuning.HyperparameterSearch`.

    Returns
    -------
    SparsitySearch or HyperparameterSearch
        Fitted; ``informative_`` says whether the validation could choose.

    Raises
    ------
    skdice.exceptions.StoreError
        When the store or a split is missing or incomplete.
    ValueError
        For a split given both as ID validation and as noise, a bad grid, or
        training data the method cannot be fitted from.
    """
    fs = open_feature_store(store)
    noise = check_validation_splits(id_split, noise_split)
    if train is not None and train_mean is not None and method == "dice":
        raise ValueError("give exactly one of train=SPLIT or train_mean=FILE.npy.")
    search = make_search(method, grid, metric=metric, tpr=tpr, guard=guard,
                         max_accuracy_drop=max_accuracy_drop, n_bootstrap=n_bootstrap,
                         random_state=random_state)
    if train is None and train_mean is None:
        if isinstance(search, SparsitySearch) or method == "dice":
            raise ValueError("give exactly one of train=SPLIT or train_mean=FILE.npy.")
        if detector_tags(_base(method)).uses_features:
            name = method if isinstance(method, str) else type(method).name
            raise ValueError(f"method={name} needs train=SPLIT (or train_mean=FILE.npy).")
    return run_search(search, fs, TrainingData(fs, train, train_mean), id_split=id_split,
                      noise_splits=noise)


def _base(method):
    if isinstance(method, BaseDetector):
        return method
    registry = available_detectors()
    if method not in registry:
        raise ValueError(
            f"unknown method {method!r}; choose from: {', '.join(registry)} "
            "(`skdice methods` lists them)."
        )
    return registry[method]()
