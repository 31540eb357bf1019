"""What a search searches: the detector named, its declared grid, a given grid checked.

The one reader of a detector's ``search_grid`` declaration
(:func:`default_grid`) and of the searches' ``method`` (a registry name,
looked up in :mod:`skdice._registry`, whose message names the registered
detectors, or a detector), and the check of a given grid against the
detector's parameters (:func:`param_grid`).
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from ._base import BaseDetector
from ._registry import detector_class

__all__ = [
    "DEFAULT_GRID",
    "applicable_candidates",
    "default_grid",
    "param_grid",
    "same_value",
    "spell_params",
]

#: The paper's candidate sparsities (Section 4.1).
DEFAULT_GRID = (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)


def method_class(method) -> type:
    """The detector class of a search's ``method``: a registry name, a detector class or instance.

    Parameters
    ----------
    method : str, detector class or detector instance

    Returns
    -------
    type
        A :class:`skdice.BaseDetector` subclass.

    Raises
    ------
    ValueError
        For an unknown registry name (:func:`skdice._registry.detector_class`).
    TypeError
        For anything else.
    """
    if isinstance(method, str):
        return detector_class(method)
    if isinstance(method, type) and issubclass(method, BaseDetector):
        return method
    if isinstance(method, BaseDetector):
        return type(method)
    raise TypeError(
        f"method must be a registered detector name or a skdice detector, got {type(method).__name__}."
    )


def default_grid(method) -> dict:
    """The search grid a detector declares: ``{parameter: (values, ...)}``.

    Every registered detector declares, as the class attribute
    ``search_grid``, the values of its hyperparameters that its own paper
    swept (docs/tuning.md lists them with their sources); an empty dict means
    nothing to tune. This function is the one reader of that declaration: the
    searches, ``skdice tune --method`` and ``skdice evaluate --tune-id`` all
    call it.

    Parameters
    ----------
    method : str, detector class or detector instance
        A registry name (``"react"``) or a detector.

    Returns
    -------
    dict of str to tuple
        A copy; values in the declared order. ``{}`` for a detector that
        declares nothing (or no grid at all).

    Examples
    --------
    >>> default_grid("dice")
    {'p': (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)}
    """
    cls = method_class(method)
    declared = getattr(cls, "search_grid", None) or {}
    return {name: tuple(values) for name, values in declared.items()}


def param_grid(grid, estimator):
    """``(grid dict, declared?)``: a search's ``grid`` with every value checked against its parameter.

    Parameters
    ----------
    grid : dict of str to sequence, sequence or None
        As the searches' ``grid``: None for the declared grid, a plain
        sequence for a detector that declares one parameter.
    estimator : BaseDetector
        The base of every candidate.

    Returns
    -------
    grid : dict of str to list
    declared : bool
        Whether the grid is the declared one (whose values the data may
        refuse: the search then skips them).

    Raises
    ------
    ValueError
        For an empty grid, an unknown parameter, values that are not a
        sequence, empty, repeated or out of the parameter's range.
    """
    name = type(estimator).name or type(estimator).__name__
    declared = default_grid(type(estimator))
    if grid is None:
        if not declared:
            raise ValueError(
                f"method {name!r} declares no hyperparameter to search; give grid={{...}}."
            )
        grid, is_declared = declared, True
    elif isinstance(grid, dict):
        grid, is_declared = dict(grid), False
    else:
        if len(declared) != 1:
            raise ValueError(
                f"grid for {name!r} must be a dict {{parameter: values}}"
                + (f" (its parameters: {', '.join(declared)})." if declared else ".")
            )
        grid, is_declared = {next(iter(declared)): grid}, False
    if not grid:
        raise ValueError("grid is empty: give at least one parameter and its values.")
    valid = estimator.get_params()
    for key, values in grid.items():
        if key not in valid:
            raise ValueError(
                f"method {name!r} has no parameter {key!r}; its parameters are: "
                f"{', '.join(valid)}."
            )
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"grid values of {key!r} must be a sequence, got {values!r}.")
        values = list(values)
        if not values:
            raise ValueError(f"grid values of {key!r} are empty.")
        if any(same_value(a, b) for i, a in enumerate(values) for b in values[:i]):
            raise ValueError(f"grid values of {key!r} are repeated: {values}.")
        for value in values:
            try:
                clone(estimator).set_params(**{key: value})._validate_params()
            except InvalidParameterError as exc:
                raise ValueError(f"grid value {value!r} of {key!r} is out of range: {exc}") from None
        grid[key] = values
    return grid, is_declared


def applicable_candidates(estimator, candidates, *, n_features, n_classes=None, n_samples=None):
    """The candidates that can apply to the data, and the others with why: ``(kept, dropped)``.

    Before any candidate is fitted, each one's
    :meth:`~skdice.BaseDetector.effective_params` on data of this shape
    says whether it can apply (a ViM ``dim`` not below the feature width, a
    KNN ``n_neighbors`` above the fitting rows cannot) and how it acts: of
    candidates that act alike (GEN's ``M`` at or above the class count, ASH
    percentiles that keep the same count of units) one is kept, the one
    with the most of the detector's default values (the first in grid order
    on a tie).

    Parameters
    ----------
    estimator : BaseDetector
        The base of every candidate (its parameters are the defaults).
    candidates : list of dict
        In grid order.
    n_features : int
    n_classes : int or None, default=None
    n_samples : int or None, default=None
        Fitting rows (None: unknown, nothing is dropped for them).

    Returns
    -------
    kept : list of dict
        In grid order.
    dropped : list of (dict, str)
        Each dropped candidate with the reason, in grid order.

    Examples
    --------
    >>> from skdice.detectors import GENDetector
    >>> kept, dropped = applicable_candidates(
    ...     GENDetector(), [{"M": 10}, {"M": 100}], n_features=8, n_classes=10)
    >>> kept, dropped
    ([{'M': 100}], [({'M': 10}, 'acts as M=100 on 10 classes and 8 features')])
    """
    defaults = estimator.get_params()
    acting, dropped, reasons = [], {}, {}
    for i, params in enumerate(candidates):
        det = clone(estimator).set_params(**params)
        try:
            effect = det.effective_params(n_features, n_classes, n_samples)
        except ValueError as exc:
            dropped[i] = str(exc)
            continue
        acting.append((i, {k: effect[k] for k in params}))
    groups = []
    for i, effect in acting:
        for group in groups:
            if all(same_value(effect[k], group[1][k]) for k in effect):
                group[0].append(i)
                break
        else:
            groups.append(([i], effect))
    shape = f"{n_classes} classes and {n_features} features" if n_classes else f"{n_features} features"
    for members, _ in groups:
        # the member with the most default values (first in grid order on a tie)
        agree = [sum(same_value(v, defaults.get(k)) for k, v in candidates[i].items()) for i in members]
        keep = members[int(np.argmax(agree))]
        for i in members:
            if i != keep:
                dropped[i] = f"acts as {spell_params(candidates[keep])} on {shape}"
    kept = [c for i, c in enumerate(candidates) if i not in dropped]
    return kept, [(candidates[i], dropped[i]) for i in sorted(dropped)]


def is_number(value) -> bool:
    """Whether ``value`` is a real number (a bool is not).

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return isinstance(value, (Real, np.number)) and not isinstance(value, bool)


def same_value(a, b) -> bool:
    """Whether two parameter values are the same (numbers by value: ``1 == 1.0``).

    Parameters
    ----------
    a, b : object

    Returns
    -------
    bool
    """
    if is_number(a) and is_number(b):
        return float(a) == float(b)
    return a is b or a == b


def spell_params(params: dict) -> str:
    """``"p=0.9, percentile=90"``: a candidate's parameters for a message.

    Parameters
    ----------
    params : dict

    Returns
    -------
    str
    """
    return ", ".join(f"{k}={v:g}" if is_number(v) else f"{k}={v!r}" for k, v in params.items())
