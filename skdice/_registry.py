"""The detector registry: each registry name to its detector class.

A detector class registers itself when it is defined
(``BaseDetector.__init_subclass__`` calls :func:`register`). The catalogue in
:mod:`skdice.detectors` is loaded the first time the registry is read: the
package (``skdice/__init__.py``, which runs before any of its modules) hands
this module the loader (:func:`set_catalogue_loader`), so ``import skdice``
stays light (the CLI starts without scikit-learn) and every lookup still sees
the whole catalogue. This module imports nothing from skdice: the template
(``skdice._base``) sits above it and knows no subclass.
"""

from __future__ import annotations

__all__ = ["available_detectors", "detector_class", "get_detector", "register", "set_catalogue_loader"]

_REGISTRY: dict[str, type] = {}
_catalogue_loader = None


def set_catalogue_loader(loader) -> None:
    """Give the registry the function that imports the catalogue; it runs once, at the first lookup.

    Parameters
    ----------
    loader : callable
        Called with no arguments; importing the detectors registers them.
    """
    global _catalogue_loader
    _catalogue_loader = loader


def _load_catalogue() -> None:
    global _catalogue_loader
    loader, _catalogue_loader = _catalogue_loader, None
    if loader is not None:
        loader()


def register(cls: type) -> None:
    """Enter a detector class in the registry under its ``name``.

    A class defined again under the same qualified name (the same
    ``__module__`` and ``__qualname__``: a notebook cell run twice, a module
    reloaded) replaces its earlier entry.

    Parameters
    ----------
    cls : type
        A :class:`skdice.BaseDetector` subclass whose own ``name`` is set.

    Raises
    ------
    RuntimeError
        When a different class already holds the name.
    """
    name = cls.__dict__["name"]
    taken = _REGISTRY.get(name)
    if taken is not None and taken is not cls and _qualified(taken) != _qualified(cls):
        raise RuntimeError(
            f"detector name {name!r} is taken by {taken.__qualname__} "
            f"({_qualified(taken)}); give {cls.__qualname__} another name."
        )
    _REGISTRY[name] = cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def available_detectors() -> dict:
    """All registered detectors, by registry name, sorted by name.

    Returns
    -------
    dict of str to type
        The mapping the CLI, the docs and the tests read.

    Examples
    --------
    >>> from skdice import available_detectors
    >>> available_detectors()["dice"].__name__
    'DICEDetector'
    """
    _load_catalogue()
    return dict(sorted(_REGISTRY.items()))


def detector_class(name: str) -> type:
    """The detector class registered under ``name``.

    Parameters
    ----------
    name : str
        Registry name, for example ``"dice"`` or ``"energy"``.

    Returns
    -------
    type
        The :class:`skdice.BaseDetector` subclass.

    Raises
    ------
    ValueError
        For a name no detector is registered under; the message lists the
        registered names.

    Examples
    --------
    >>> from skdice._registry import detector_class
    >>> detector_class("energy").__name__
    'EnergyDetector'
    """
    registry = available_detectors()
    if name not in registry:
        raise ValueError(f"unknown detector {name!r}; choose one of: {', '.join(registry)}.")
    return registry[name]


def get_detector(name: str, **params):
    """Instantiate a registered detector by its registry name.

    Parameters
    ----------
    name : str
        Registry name, for example ``"dice"`` or ``"energy"``.
    **params
        Constructor parameters.

    Returns
    -------
    BaseDetector

    Raises
    ------
    ValueError
        For an unknown name (see :func:`detector_class`).

    Examples
    --------
    >>> from skdice import get_detector
    >>> get_detector("dice", p=0.7)
    DICEDetector(p=0.7)
    """
    return detector_class(name)(**params)
