"""Save and load fitted detectors without pickle: one ``.npz`` of arrays plus JSON.

A saved detector is a NumPy ``.npz`` archive (written with :func:`numpy.savez`,
never with object arrays) that holds

- every fitted array of the detector, one archive member each, and
- a header member ``__skdice__``: a ``uint8`` array holding UTF-8 JSON with the
  registry name of the detector, its constructor parameters
  (``get_params()``), its scalar fitted attributes, the skdice version that
  wrote it and the format version.

Loading uses ``numpy.load(allow_pickle=False)`` and rebuilds the detector
through the registry (:func:`skdice.get_detector`), so no code named in the
file is ever imported or run. Files that are not saved detectors, that come
from a different format version, or that name a detector this skdice does not
have are refused with :class:`skdice.exceptions.DetectorFormatError`.

The format is generic: it stores the instance's attributes that are not
constructor parameters (the fitted state ending in ``_`` and any private
cache), as long as each is an array, a NumPy or Python scalar, a string,
``None``, a :class:`skdice.Head`, or a list, tuple or string-keyed dict of
those.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .exceptions import DetectorFormatError

__all__ = ["FORMAT_VERSION", "save_detector", "load_detector", "read_header"]

#: version of the on-disk layout; bumped whenever old files could be misread
FORMAT_VERSION = 1

_FORMAT_NAME = "skdice-detector"
_HEADER_KEY = "__skdice__"
_JSON_SCALARS = (bool, int, float, str, type(None))


class _Encoder:
    """Turn attribute values into JSON descriptors, collecting arrays on the side."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def _add_array(self, array: np.ndarray) -> str:
        key = f"a{len(self.arrays):04d}"
        self.arrays[key] = array
        return key

    def encode(self, value, where: str):
        from ._head import Head

        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                if all(isinstance(v, str) for v in value.ravel()):
                    return {
                        "kind": "str_object_array",
                        "shape": list(value.shape),
                        "items": [str(v) for v in value.ravel()],
                    }
                raise DetectorFormatError(
                    f"cannot save {where}: an object array (dtype {value.dtype}) "
                    "has no pickle-free representation."
                )
            # np.save keeps Fortran order, so BLAS sees the same layout after a load
            # and scores stay bit-identical.
            return {"kind": "array", "key": self._add_array(value)}
        if isinstance(value, np.generic):
            # A 0-d array keeps the exact NumPy scalar type (float32 stays float32).
            return {"kind": "numpy_scalar", "key": self._add_array(np.asarray(value))}
        if isinstance(value, _JSON_SCALARS):
            return {"kind": "json", "value": value}
        if isinstance(value, Head):
            return {
                "kind": "head",
                "weight": self._add_array(np.asarray(value.weight)),
                "bias": self._add_array(np.asarray(value.bias)),
            }
        if isinstance(value, (list, tuple)):
            return {
                "kind": type(value).__name__,
                "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)],
            }
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise DetectorFormatError(f"cannot save {where}: a dict with non-string keys.")
            return {
                "kind": "dict",
                "items": {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()},
            }
        raise DetectorFormatError(
            f"cannot save {where}: values of type {type(value).__name__} have no "
            "pickle-free representation in the skdice detector format."
        )


def _decode(desc, arrays, where: str):
    from ._head import Head

    try:
        kind = desc["kind"]
        if kind == "array":
            return arrays[desc["key"]]
        if kind == "numpy_scalar":
            return arrays[desc["key"]][()]
        if kind == "json":
            return desc["value"]
        if kind == "str_object_array":
            out = np.empty(len(desc["items"]), dtype=object)
            out[:] = desc["items"]
            return out.reshape(desc["shape"])
        if kind == "head":
            return Head(arrays[desc["weight"]], arrays[desc["bias"]])
        if kind in ("list", "tuple"):
            items = [_decode(d, arrays, f"{where}[{i}]") for i, d in enumerate(desc["items"])]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            return {k: _decode(d, arrays, f"{where}[{k!r}]") for k, d in desc["items"].items()}
    except (KeyError, TypeError) as exc:
        raise DetectorFormatError(f"corrupt saved detector: {where} is unreadable ({exc!r}).") from None
    raise DetectorFormatError(f"corrupt saved detector: {where} has unknown kind {kind!r}.")


def save_detector(detector, path) -> Path:
    """Save a fitted detector to one ``.npz`` file, without pickle.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector from the registry (:func:`skdice.available_detectors`).
    path : str or path-like
        Destination file, written exactly there (no suffix is added; ``.npz``
        is the conventional one). The file is written to a temporary name and
        renamed, so an interrupted save never leaves a half-written detector.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the detector is not fitted.
    DetectorFormatError
        If the detector is not a registered skdice detector or holds a value
        that has no pickle-free representation.

    See Also
    --------
    load_detector : the inverse.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skdice import DICEDetector, save_detector, load_detector
    >>> rng = np.random.default_rng(0)
    >>> H, W = rng.random((50, 6)), rng.normal(size=(6, 3))
    >>> det = DICEDetector(p=0.5).fit(H, W)
    >>> path = os.path.join(tempfile.mkdtemp(), "dice.npz")
    >>> _ = save_detector(det, path)
    >>> again = load_detector(path)
    >>> bool(np.array_equal(again.score_samples(H), det.score_samples(H)))
    True
    """
    from sklearn.utils.validation import check_is_fitted

    from ._version import __version__
    from ._base import BaseDetector, available_detectors

    if not isinstance(detector, BaseDetector):
        raise DetectorFormatError(
            f"save_detector saves skdice detectors, got {type(detector).__name__}."
        )
    name = type(detector).name
    if name is None or available_detectors().get(name) is not type(detector):
        raise DetectorFormatError(
            f"{type(detector).__name__} is not a registered skdice detector "
            "(its class attribute `name` is missing or taken), so it could not be loaded back."
        )
    check_is_fitted(detector)
    params = detector.get_params(deep=False)
    encoder = _Encoder()
    header = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "skdice_version": __version__,
        "detector": name,
        "params": {k: encoder.encode(v, f"parameter {k!r}") for k, v in params.items()},
        "attributes": {
            k: encoder.encode(v, f"attribute {k!r} of {type(detector).__name__}")
            for k, v in sorted(vars(detector).items())
            if k not in params
        },
    }
    blob = json.dumps(header, allow_nan=True).encode("utf-8")
    members = {_HEADER_KEY: np.frombuffer(blob, dtype=np.uint8), **encoder.arrays}

    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"cannot save the detector to {path}: it is a folder; give a file name such as "
            f"{path / 'detector.npz'}."
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save the detector to {path}: the folder {path.parent} does not exist."
        )
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **members)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _open_archive(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"no saved detector at {path}: the file does not exist.")
    if path.is_dir():
        raise DetectorFormatError(
            f"{path} is a directory, not a saved skdice detector (an .npz file)."
        )
    if not zipfile.is_zipfile(path):
        raise DetectorFormatError(
            f"{path} is not a saved skdice detector: it is not an .npz archive "
            "(save one with skdice.save_detector or `skdice fit --out`)."
        )
    try:
        archive = np.load(path, allow_pickle=False)
        members = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DetectorFormatError(
            f"{path} is not a readable saved skdice detector: {exc}"
        ) from None
    return members


def _parse_header(members: dict, path: Path) -> dict:
    if _HEADER_KEY not in members:
        raise DetectorFormatError(
            f"{path} is an .npz archive but not a saved skdice detector "
            f"(it has no {_HEADER_KEY!r} header)."
        )
    raw = members[_HEADER_KEY]
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"header has dtype {raw.dtype} and shape {raw.shape}")
        header = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except ValueError as exc:
        raise DetectorFormatError(f"{path}: corrupt skdice detector header ({exc}).") from None
    if header.get("format") != _FORMAT_NAME:
        raise DetectorFormatError(
            f"{path} is not a saved skdice detector (header format {header.get('format')!r})."
        )
    return header


def read_header(path) -> dict:
    """Read the JSON header of a saved detector without building it.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_detector`.

    Returns
    -------
    dict
        Keys ``format``, ``format_version``, ``skdice_version``, ``detector``
        (registry name), ``params`` and ``attributes`` (encoded descriptors).

    Raises
    ------
    DetectorFormatError
        If the file is not a saved skdice detector.
    """
    path = Path(path)
    return _parse_header(_open_archive(path), path)


def load_detector(path):
    """Load a detector saved by :func:`save_detector`.

    Reads with ``numpy.load(allow_pickle=False)`` and rebuilds the detector
    from the registry, so scores after loading are identical to the scores
    before saving.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_detector`.

    Returns
    -------
    BaseDetector
        The fitted detector.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DetectorFormatError
        If the file is not a saved skdice detector, was written in another
        format version, or names a detector this skdice does not provide.

    See Also
    --------
    save_detector : the inverse.
    """
    from ._version import __version__
    from ._base import available_detectors

    path = Path(path)
    members = _open_archive(path)
    header = _parse_header(members, path)
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise DetectorFormatError(
            f"{path} was saved in skdice detector format version {version!r} "
            f"(by skdice {header.get('skdice_version', '?')}); this skdice {__version__} "
            f"reads format version {FORMAT_VERSION} only: fit and save the detector again "
            "with this version."
        )
    name = header.get("detector")
    registry = available_detectors()
    if name not in registry:
        raise DetectorFormatError(
            f"{path} holds a {name!r} detector, which this skdice {__version__} does not "
            f"provide (available: {', '.join(registry)})."
        )
    try:
        params = {k: _decode(d, members, f"parameter {k!r}") for k, d in header["params"].items()}
        attributes = {
            k: _decode(d, members, f"attribute {k!r}") for k, d in header["attributes"].items()
        }
    except (KeyError, AttributeError, TypeError) as exc:
        raise DetectorFormatError(f"{path}: corrupt skdice detector header ({exc!r}).") from None
    try:
        detector = registry[name](**params)
    except TypeError as exc:
        raise DetectorFormatError(
            f"{path}: the saved parameters do not fit {registry[name].__name__} ({exc})."
        ) from None
    for key, value in attributes.items():
        # fitted state only: a crafted header must not reach dunder attributes
        if not key.isidentifier() or key.startswith("__") or not (key.endswith("_") or key.startswith("_")):
            raise DetectorFormatError(
                f"{path}: corrupt skdice detector header (attribute {key!r} is not fitted state)."
            )
        setattr(detector, key, value)
    detector._freeze_cached_arrays()
    return detector


_DEPRECATED_ALIASES = {"save": "save_detector", "load": "load_detector"}


def __getattr__(name):
    # skdice 0.1 had the undocumented aliases save / load: kept, with a warning
    if name in _DEPRECATED_ALIASES:
        import warnings

        new = _DEPRECATED_ALIASES[name]
        warnings.warn(
            f"skdice.persistence.{name} is deprecated; use skdice.{new}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

