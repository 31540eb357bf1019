"""What a saved detector may carry: the attributes its class documents, checked on load.

The fitted attributes a class documents (its numpydoc Attributes sections,
read by :func:`attribute_schema`, plus the estimator contract every detector
shares) are the only ones :func:`skdice.persistence.load_detector` sets;
:func:`check_attributes` refuses missing, mistyped or inconsistent ones
before the detector is returned.
"""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .exceptions import DetectorFormatError

__all__ = ["attribute_schema", "check_attributes"]


class _Spec(NamedTuple):
    """What a class documents about one fitted attribute."""

    kind: str | None  # "array", "int", "float", "bool" or None (not stated)
    dims: tuple | None  # the documented shape, e.g. ("n_features", "n_classes")
    dtype: str | None  # the documented dtype, e.g. "float32"
    required: bool  # set by every fit (not "only when ...")


#: the estimator contract's attributes, shared by every detector (BaseDetector)
_CONTRACT = {
    "n_features_in_": _Spec("int", None, None, True),
    "offset_": _Spec("float", None, None, True),
    "weight_": _Spec("array", ("n_features", "n_classes"), "float32", False),
    "bias_": _Spec("array", ("n_classes",), "float32", False),
    "n_samples_seen_": _Spec("int", None, None, False),
    "feature_names_in_": _Spec("array", ("n_features",), None, False),
}
_SECTION = re.compile(r"^Attributes\n-+\n(.*?)(?=\n[A-Z][A-Za-z ]*\n-{3,}\n|\Z)", re.S | re.M)
_ENTRY = re.compile(r"^(?P<names>[A-Za-z_][\w, ]*?)\s*(?::\s*(?P<type>.*))?$")
_SHAPE = re.compile(r"\(([^()]*)\)")
_DTYPE = re.compile(r"\b(float16|float32|float64|bool|int32|int64)\s*$")


def _documented(cls) -> dict:
    """Fitted attributes (ending in ``_``) from the numpydoc Attributes sections of ``cls``'s MRO."""
    specs: dict = {}
    for klass in cls.__mro__:
        doc = klass.__dict__.get("__doc__")
        if not isinstance(doc, str):
            continue
        section = _SECTION.search(inspect.cleandoc(doc))
        if section is None:
            continue
        lines = section.group(1).splitlines()
        for i, line in enumerate(lines):
            if not line or line[0].isspace():
                continue
            match = _ENTRY.match(line.strip())
            if match is None:
                continue
            names = [n.strip() for n in match.group("names").split(",") if n.strip()]
            text = match.group("type") or ""
            body = []
            for more in lines[i + 1:]:
                if more and not more[0].isspace():
                    break
                body.append(more)
            required = " only " not in f" {' '.join(body)} "
            shapes = [tuple(d.strip() for d in m.split(",") if d.strip()) for m in _SHAPE.findall(text)]
            dtype = _DTYPE.search(text)
            kind = ("array" if text.startswith("ndarray") else text.strip() if text.strip() in
                    ("int", "float", "bool") else None)
            for j, name in enumerate(names):
                if not name.endswith("_") or name.startswith("_"):
                    continue
                spec = _Spec(kind, shapes[j] if j < len(shapes) else (shapes[0] if len(shapes) == 1 else None),
                             dtype.group(1) if dtype and len(names) == 1 else None, required)
                old = specs.get(name)
                if old is None:
                    specs[name] = spec
                elif old.kind is None:  # "As in DICEDetector": the base's entry says more
                    specs[name] = spec._replace(required=old.required and spec.required)
    return specs


@functools.lru_cache(maxsize=None)
def attribute_schema(cls) -> tuple[dict, frozenset]:
    """(documented and contract attributes, private caches) that instances of ``cls`` may carry."""
    from ._base import BaseDetector

    specs = {**_CONTRACT, **_documented(cls)}
    private = set()
    for klass in cls.__mro__:
        if not (isinstance(klass, type) and issubclass(klass, BaseDetector)):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # defined where its source cannot be read
            continue
        # instance attributes its code uses: self._name, not followed by a call
        private.update(re.findall(r"\bself\.(_[A-Za-z][A-Za-z0-9_]*)\b(?!\s*\()", source))
    # never a name the class itself defines (a method, property or class attribute):
    # an instance attribute of that name would shadow it
    specs = {k: v for k, v in specs.items() if not hasattr(cls, k)}
    private = frozenset(k for k in private if not k.startswith("__") and not hasattr(cls, k))
    return specs, private


def _what(value) -> str:
    """A short description of a value for an error message (never a multi-line repr)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 and "\n" not in text else f"a {type(value).__name__}"


def check_attributes(detector, attributes: dict, path: Path) -> None:
    """Refuse missing, mistyped or inconsistent fitted attributes (names were checked before reading)."""
    from ._base import detector_tags
    from ._head import Head

    cls = type(detector)
    specs, _ = attribute_schema(cls)

    def fail(why: str):
        raise DetectorFormatError(f"{path}: corrupt skdice detector: {why}.")

    required = {k for k, spec in specs.items() if spec.required}
    if detector_tags(detector).requires_head:
        required |= {"weight_", "bias_"}
    missing = sorted(required - set(attributes))
    if missing:
        fail(f"{cls.__name__} needs the fitted attribute{'s' if len(missing) > 1 else ''} "
             f"{', '.join(missing)}, which the file lacks")
    m = attributes["n_features_in_"]
    if not isinstance(m, (int, np.integer)) or isinstance(m, (bool, np.bool_)) or m < 1:
        fail(f"n_features_in_ is {_what(m)}, not a positive integer")
    m = int(m)
    for key, spec in specs.items():
        if key not in attributes:
            continue
        value = attributes[key]
        if spec.kind == "array":
            if not isinstance(value, np.ndarray):
                fail(f"{key} is a {type(value).__name__}, not an array")
            if spec.dims is not None and value.ndim != len(spec.dims):
                fail(f"{key} has shape {value.shape}, not {len(spec.dims)}-dimensional as documented")
            if spec.dims is not None:
                for axis, dim in enumerate(spec.dims):
                    if dim == "n_features" and value.shape[axis] != m:
                        fail(f"{key} has shape {value.shape}: axis {axis} is not n_features_in_ = {m}")
            if spec.dtype is not None and value.dtype != np.dtype(spec.dtype):
                fail(f"{key} has dtype {value.dtype}, not {spec.dtype}")
        elif spec.kind == "int":
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 0:
                fail(f"{key} is {_what(value)}, not a non-negative integer")
        elif spec.kind == "float":
            if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
                fail(f"{key} is {_what(value)}, not a number")
    weight, bias = attributes.get("weight_"), attributes.get("bias_")
    if (weight is None) != (bias is None):
        fail("it has one of weight_ and bias_ without the other")
    if weight is not None:
        if bias.shape != weight.shape[1:]:
            fail(f"bias_ has shape {bias.shape} but weight_ {weight.shape}")
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            fail("the head (weight_, bias_) holds NaN or infinity")
        for key in ("mask_", "masked_weight_", "contribution_"):
            value = attributes.get(key)
            if isinstance(value, np.ndarray) and value.shape != weight.shape:
                fail(f"{key} has shape {value.shape} but weight_ {weight.shape}")
    # a masked head (the tag) scores through masked_weight_: it must be weight_ under mask_
    mask, masked = attributes.get("mask_"), attributes.get("masked_weight_")
    if detector_tags(detector).masked_head and mask is not None and masked is not None and weight is not None:
        if not np.array_equal(masked, np.where(mask, weight, np.float32(0))):
            fail("masked_weight_ is not weight_ where mask_ is True and 0 elsewhere")
    stream = attributes.get("_stream_head")
    if stream is not None and (not isinstance(stream, Head) or stream.n_features != m):
        fail(f"_stream_head is not a head of {m} features")
    total = attributes.get("_feature_sum")
    if total is not None and (not isinstance(total, np.ndarray) or total.shape != (m,)):
        fail(f"_feature_sum is not an array of shape ({m},)")
