"""Method specs: ``NAME[:key=value,...]`` parsed into a registry name and parameters."""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field

from .._base import BaseDetector, available_detectors
from .._validation import check_sparsity

__all__ = [
    "ALL_METHODS",
    "DEFAULT_METHODS",
    "RANDOM_STATE",
    "MethodSpec",
    "build_detector",
    "expand_methods",
    "parse_method",
]

#: The spec that stands for every registered method (``skdice evaluate --method all``).
ALL_METHODS = "all"

#: What ``skdice evaluate`` compares when no ``--method`` is given: DICE beside energy.
DEFAULT_METHODS = ("dice", "energy")

#: Seed of the detectors with a ``random_state`` (the random-mask ablations) in
#: store-driven runs, unless the method spec gives one.
RANDOM_STATE = 0


@dataclass(frozen=True)
class MethodSpec:
    """A registry name with constructor parameters, parsed from ``NAME[:key=value,...]``.

    Attributes
    ----------
    name : str
        Registry name (see :func:`skdice.available_detectors`).
    params : dict
        Constructor parameters given in the spec.
    """

    name: str
    params: dict = field(default_factory=dict)


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word is a string


def parse_method(spec: str) -> MethodSpec:
    """Parse a method spec ``NAME`` or ``NAME:key=value[,key=value...]``.

    Values are Python literals (``0.5``, ``10``, ``True``, ``None``); anything
    else is taken as a string.

    Parameters
    ----------
    spec : str
        For example ``"dice"``, ``"dice:p=0.7"`` or ``"energy:temperature=2"``.

    Returns
    -------
    MethodSpec

    Raises
    ------
    ValueError
        For an unknown detector name or a malformed parameter.

    Examples
    --------
    >>> parse_method("dice:p=0.7")
    MethodSpec(name='dice', params={'p': 0.7})
    """
    name, _, rest = str(spec).partition(":")
    name = name.strip()
    registry = available_detectors()
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"unknown method {name!r}; {hint}choose from: {', '.join(registry)} "
            "(`skdice methods` lists them)."
        )
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(
                f"method spec {spec!r}: parameters are key=value pairs separated by "
                f"commas, got {item!r}."
            )
        params[key.strip()] = _literal(value.strip())
    valid = registry[name]().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"method {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(valid) or 'none'}."
        )
    return MethodSpec(name, params)


def expand_methods(methods) -> list:
    """Method specs with ``"all"`` replaced by every registered detector, in registry order.

    Parameters
    ----------
    methods : sequence of str or MethodSpec

    Returns
    -------
    list of str or MethodSpec
        Repeats that ``"all"`` brings in are dropped; explicit specs keep their place.
    """
    out = []
    for method in methods:
        if isinstance(method, str) and method.strip() == ALL_METHODS:
            out.extend(name for name in available_detectors() if name not in out)
        elif method not in out:
            out.append(method)
    return out


def build_detector(spec: MethodSpec | str, p: float | None = None) -> BaseDetector:
    """An unfitted detector from a spec, with a run-wide sparsity ``p`` where it applies.

    Parameters
    ----------
    spec : MethodSpec or str
    p : float, default=None
        Given to the detector when it has a ``p`` parameter and the spec does
        not set one; None keeps the detector's default.

    Returns
    -------
    BaseDetector

    Notes
    -----
    A detector with a ``random_state`` (the random-mask ablations) gets
    :data:`RANDOM_STATE` unless the spec sets one
    (``"unit-dropout:random_state=3"``), so that a store-driven run gives the
    same table every time.
    """
    spec = spec if isinstance(spec, MethodSpec) else parse_method(spec)
    p = check_sparsity(p, allow_none=True)
    cls = available_detectors()[spec.name]
    params = dict(spec.params)
    defaults = cls().get_params()
    if p is not None and "p" in defaults and "p" not in params:
        params["p"] = p
    if "random_state" in defaults and "random_state" not in params:
        # a run is reproducible: the random ablations draw the same mask every time
        params["random_state"] = RANDOM_STATE
    return cls(**params)
