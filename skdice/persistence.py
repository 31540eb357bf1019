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

Loading trusts nothing in the file:

- only the archive members the header names are read, and each only after
  its size was checked: members must be stored uncompressed (as
  :func:`numpy.savez` writes them) and lie inside the file, and the shape and
  dtype in a member's ``.npy`` header must account for exactly its size, so a
  small file can never make the loader allocate more than its own size;
- the header is bounded (size, nesting) and every descriptor in it is checked
  before use;
- parameters are validated with the detector class's own constraints;
- only the attribute names the class defines are set: its documented fitted
  attributes (names ending in ``_``, from the numpydoc ``Attributes``
  sections of the class and its bases), the estimator contract's own
  (``n_features_in_``, ``offset_``, ...), and the private caches its code
  assigns; never a name the class itself defines (a method or property);
- those attributes are checked: required ones present, documented kinds,
  dtypes and feature widths, and the consistency of mask, masked weight,
  head and feature width.

Anything else is refused with :class:`skdice.exceptions.DetectorFormatError`.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zipfile
from pathlib import Path

import numpy as np

from ._saved_attributes import attribute_schema, check_attributes
from .exceptions import DetectorFormatError

__all__ = ["FORMAT_VERSION", "save_detector", "load_detector", "read_header"]

#: version of the on-disk layout; bumped whenever old files could be misread
FORMAT_VERSION = 1

_FORMAT_NAME = "skdice-detector"
_HEADER_KEY = "__skdice__"
_JSON_SCALARS = (bool, int, float, str, type(None))
#: bounds on what a header may hold: bytes of JSON, nesting of descriptors
_MAX_HEADER_BYTES = 64 * 2**20
_MAX_DEPTH = 16
#: member dtypes a saved detector may hold (no object, structured or datetime arrays)
_ARRAY_KINDS = "biufcSU"


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


def save_detector(detector, path) -> Path:
    """Save a fitted detector to one ``.npz`` file, without pickle.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector from the registry (:func:`skdice.available_detectors`).
    path : str or path-like
        Destination file, written exactly there (no suffix is added; ``.npz``
        is the conventional one). The file is written to a temporary name
        (``.<name>.skdice-save-<pid>``) and renamed, so an interrupted save
        never leaves a half-written detector; the temporary is removed on any
        error, and temporaries that killed saves left in the folder are removed
        by the next save into that folder.

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
    _remove_stale_temporaries(path.parent)
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **members)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


#: the temporary file of a save is ``.<name>.skdice-save-<pid>`` in the destination's folder
_TMP_MARK = ".skdice-save-"
_TMP_NAME = re.compile(r"^\..+" + re.escape(_TMP_MARK) + r"(\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process, or no such number
        return True
    return True


def _remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporary files that saves killed before their end (``kill -9``) left in ``folder``.

    A save writes ``.<name>.skdice-save-<pid>`` and renames it; it removes that
    file itself on any error, but a killed process cannot. Only files named
    that way whose process id is not a running process are removed (a save in
    progress in another process keeps its file). :func:`save_detector` calls
    this before each save.

    Parameters
    ----------
    folder : str or path-like

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone meanwhile, or not ours to remove: left alone
            continue
    return removed


# --------------------------------------------------------------------------- reading

#: what zipfile and numpy's .npy parser raise on a damaged or crafted archive
_BROKEN_ZIP = (zipfile.BadZipFile, OSError, ValueError, EOFError, SyntaxError, TypeError,
               OverflowError, MemoryError, NotImplementedError, struct.error, IndexError, KeyError)


class _Archive:
    """A saved detector's zip archive, read member by member with every size checked first."""

    def __init__(self, path: Path):
        if not path.exists():
            raise FileNotFoundError(f"no saved detector at {path}: the file does not exist.")
        if path.is_dir():
            raise DetectorFormatError(
                f"{path} is a directory, not a saved skdice detector (an .npz file)."
            )
        if not zipfile.is_zipfile(path):
            raise DetectorFormatError(
                f"{path} is not a saved skdice detector: it is not an .npz archive "
                "(save one with skdice.save_detector or `skdice fit`)."
            )
        self.path = path
        self.size = path.stat().st_size
        try:
            self.zip = zipfile.ZipFile(path)
        except _BROKEN_ZIP as exc:
            raise self.unreadable(exc) from None
        self._cache: dict[str, np.ndarray] = {}
        self._budget = self.size  # stored members: never more bytes than the file holds

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()
        return False

    def unreadable(self, why) -> DetectorFormatError:
        return DetectorFormatError(f"{self.path} is not a readable saved skdice detector: {why}")

    def has(self, key: str) -> bool:
        return isinstance(key, str) and f"{key}.npy" in self.zip.NameToInfo

    def _info(self, key: str) -> zipfile.ZipInfo:
        info = self.zip.NameToInfo.get(f"{key}.npy") if isinstance(key, str) else None
        if info is None:
            raise DetectorFormatError(f"{self.path}: corrupt saved detector (no member {key!r}).")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            # save_detector (numpy.savez) stores members as they are; a compressed one
            # could expand to any size, so it is refused before it is read
            raise self.unreadable(f"member {key!r} is compressed, which save_detector never writes.")
        if info.header_offset + info.file_size > self.size:
            raise self.unreadable(f"member {key!r} claims {info.file_size} bytes beyond the end of the file.")
        return info

    def array(self, key: str, *, limit: int | None = None) -> np.ndarray:
        """Member ``key`` as an array, read only after its header accounts for its size."""
        if key in self._cache:
            return self._cache[key]
        info = self._info(key)
        try:
            with self.zip.open(info) as handle:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                if dtype.hasobject or dtype.kind not in _ARRAY_KINDS:
                    raise ValueError(f"member {key!r} has dtype {dtype}, which a saved detector never holds")
                count = math.prod(shape)
                nbytes = count * dtype.itemsize
                if handle.tell() + nbytes != info.file_size:
                    raise ValueError(
                        f"member {key!r} declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                        f"{info.file_size - handle.tell()}"
                    )
                if nbytes > self._budget or (limit is not None and nbytes > limit):
                    raise ValueError(f"member {key!r} is larger than the file could hold ({nbytes} bytes)")
                self._budget -= nbytes
                flat = np.empty(count, dtype=dtype)
                view = memoryview(flat.view(np.uint8)) if nbytes else memoryview(b"")
                filled = 0
                while filled < nbytes:
                    got = handle.readinto(view[filled:])
                    if not got:
                        raise ValueError(f"member {key!r} ends early")
                    filled += got
                # the last read reached the member's end, where zipfile compares its
                # CRC-32: a flipped byte anywhere in the member raises BadZipFile
        except DetectorFormatError:
            raise
        except _BROKEN_ZIP as exc:
            # numpy's header parser raises ValueError/SyntaxError on crafted headers;
            # zipfile raises BadZipFile on a CRC-32 mismatch (a flipped byte),
            # NotImplementedError on flag bits it does not support, struct.error ...
            raise self.unreadable(exc) from None
        array = flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)
        self._cache[key] = array
        return array


def _parse_header(archive: _Archive) -> dict:
    path = archive.path
    if not archive.has(_HEADER_KEY):
        raise DetectorFormatError(
            f"{path} is an .npz archive but not a saved skdice detector "
            f"(it has no {_HEADER_KEY!r} header)."
        )
    raw = archive.array(_HEADER_KEY, limit=_MAX_HEADER_BYTES)
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"header has dtype {raw.dtype} and shape {raw.shape}")
        header = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except RecursionError:
        raise DetectorFormatError(f"{path}: corrupt skdice detector header (nested too deeply).") from None
    except ValueError as exc:
        raise DetectorFormatError(f"{path}: corrupt skdice detector header ({exc}).") from None
    if header.get("format") != _FORMAT_NAME:
        raise DetectorFormatError(
            f"{path} is not a saved skdice detector (header format {header.get('format')!r})."
        )
    return header


def read_header(path) -> dict:
    """Read the JSON header of a saved detector without building it.

    Only the header member is read (bounded in size); the arrays are not.

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
    with _Archive(path) as archive:
        return _parse_header(archive)


class _Decoder:
    """Turn checked descriptors back into values, reading each named member once."""

    def __init__(self, archive: _Archive):
        self.archive = archive

    def fail(self, where: str, why: str) -> DetectorFormatError:
        return DetectorFormatError(f"{self.archive.path}: corrupt saved detector: {where} {why}.")

    def keys(self, desc, where: str, depth: int = 0) -> list[str]:
        """The members a descriptor names, after checking its structure (nothing is read)."""
        if depth > _MAX_DEPTH:
            raise self.fail(where, f"is nested more than {_MAX_DEPTH} levels deep")
        if not isinstance(desc, dict) or not isinstance(desc.get("kind"), str):
            raise self.fail(where, "is not a descriptor")
        kind = desc["kind"]
        if kind in ("array", "numpy_scalar"):
            return [self._key(desc, "key", where)]
        if kind == "head":
            return [self._key(desc, "weight", where), self._key(desc, "bias", where)]
        if kind == "json":
            if "value" not in desc or not isinstance(desc["value"], _JSON_SCALARS):
                raise self.fail(where, "is not a JSON scalar")
            return []
        if kind == "str_object_array":
            shape, items = desc.get("shape"), desc.get("items")
            if not (isinstance(shape, list) and len(shape) <= 32
                    and all(type(n) is int and n >= 0 for n in shape)
                    and isinstance(items, list) and all(isinstance(v, str) for v in items)
                    and math.prod(shape) == len(items)):
                raise self.fail(where, "is not a list of strings of the shape it declares")
            return []
        if kind in ("list", "tuple"):
            items = desc.get("items")
            if not isinstance(items, list):
                raise self.fail(where, "has no list of items")
            return [k for i, d in enumerate(items) for k in self.keys(d, f"{where}[{i}]", depth + 1)]
        if kind == "dict":
            items = desc.get("items")
            if not isinstance(items, dict):
                raise self.fail(where, "has no mapping of items")
            return [k for name, d in items.items() for k in self.keys(d, f"{where}[{name!r}]", depth + 1)]
        raise self.fail(where, f"has unknown kind {kind!r}")

    def _key(self, desc, field: str, where: str) -> str:
        key = desc.get(field)
        if not isinstance(key, str) or not self.archive.has(key) or key == _HEADER_KEY:
            raise self.fail(where, f"names no member of the archive ({field} {key!r})")
        return key

    def decode(self, desc, where: str):
        from ._head import Head

        kind = desc["kind"]
        if kind == "array":
            return self.archive.array(desc["key"])
        if kind == "numpy_scalar":
            value = self.archive.array(desc["key"])
            if value.ndim != 0:
                raise self.fail(where, f"is a scalar but its member has shape {value.shape}")
            return value[()]
        if kind == "json":
            return desc["value"]
        if kind == "str_object_array":
            out = np.empty(len(desc["items"]), dtype=object)
            out[:] = desc["items"]
            return out.reshape(desc["shape"])
        if kind == "head":
            try:
                return Head(self.archive.array(desc["weight"]), self.archive.array(desc["bias"]))
            except ValueError as exc:
                raise self.fail(where, f"is not a valid head ({exc})") from None
        if kind in ("list", "tuple"):
            items = [self.decode(d, f"{where}[{i}]") for i, d in enumerate(desc["items"])]
            return items if kind == "list" else tuple(items)
        return {k: self.decode(d, f"{where}[{k!r}]") for k, d in desc["items"].items()}


# --------------------------------------------------------------------------- attribute schema


def load_detector(path):
    """Load a detector saved by :func:`save_detector`.

    Reads with bounds and rebuilds the detector from the registry, so no code
    named in the file is run and scores after loading are identical to the
    scores before saving. Only the members the header names are read, each
    after its size was checked against its declared shape; the parameters are
    validated with the class's own constraints; only the attributes the class
    defines are set, after checks of their kinds, shapes and consistency.

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
        format version, names a detector this skdice does not provide, or
        holds invalid parameters or missing, unknown or inconsistent
        attributes.

    See Also
    --------
    save_detector : the inverse.
    """
    path = Path(path)
    with _Archive(path) as archive:
        return _load(archive, path)


def _load(archive: _Archive, path: Path):
    from sklearn.utils.validation import check_is_fitted

    from ._version import __version__
    from ._base import available_detectors

    header = _parse_header(archive)
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
    if not isinstance(name, str) or name not in registry:
        raise DetectorFormatError(
            f"{path} holds a {name!r} detector, which this skdice {__version__} does not "
            f"provide (available: {', '.join(registry)})."
        )
    cls = registry[name]
    params, attributes = header.get("params"), header.get("attributes")
    if not isinstance(params, dict) or not isinstance(attributes, dict):
        raise DetectorFormatError(f"{path}: corrupt skdice detector header (no params and attributes objects).")
    allowed = set(cls().get_params(deep=False))
    for key in params:
        if key not in allowed:
            raise DetectorFormatError(
                f"{path}: the saved parameters do not fit {cls.__name__} (unknown parameter {key!r})."
            )
    for key in attributes:
        # fitted state only: a crafted header must not reach dunder attributes
        if not key.isidentifier() or key.startswith("__") or not (key.endswith("_") or key.startswith("_")):
            raise DetectorFormatError(
                f"{path}: corrupt skdice detector header (attribute {key!r} is not fitted state)."
            )
    decoder = _Decoder(archive)
    # every descriptor is checked, and every member it names sized, before any is read
    for key, desc in params.items():
        decoder.keys(desc, f"parameter {key!r}")
    for key, desc in attributes.items():
        decoder.keys(desc, f"attribute {key!r}")
    params = {k: decoder.decode(d, f"parameter {k!r}") for k, d in params.items()}
    detector = cls(**params)
    try:
        detector._validate_params()  # the class's own constraints: p = 5.0 is refused here
    except (ValueError, TypeError) as exc:  # sklearn's InvalidParameterError is both
        raise DetectorFormatError(
            f"{path}: the saved parameters are invalid for {cls.__name__} ({exc})"
        ) from None
    specs, private = attribute_schema(cls)
    for key in attributes:
        if key not in specs and key not in private:  # before reading its members
            raise DetectorFormatError(
                f"{path}: corrupt skdice detector header (attribute {key!r} is not fitted state "
                f"of {cls.__name__})."
            )
    attributes = {k: decoder.decode(d, f"attribute {k!r}") for k, d in attributes.items()}
    check_attributes(detector, attributes, path)
    for key, value in attributes.items():
        setattr(detector, key, value)
    detector._freeze_cached_arrays()
    check_is_fitted(detector)
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

