"""scikit-learn's estimator checks over every registered detector.

The checks call ``fit(X, y)`` with plain arrays and no classifier head, so
each registered class runs through a small test-only subclass (built by
:func:`_checkable`) that draws a seeded random head of the right width when
none is given, and derives class labels for Mahalanobis when ``y`` is None.
The subclass has ``name = None``, so it never enters the registry.

scikit-learn's Array API checks run in the namespaces this project supports,
never skipped (:func:`_array_api_checks`): NumPy, and torch on the CPU in
float64 and float32, with values compared, for every detector that declares
``array_api_support``; a numpy-only smoke check (dispatch on, NumPy input) for
the others. scikit-learn's own list would also yield CuPy, array-api-strict
and GPU devices, which skip where they are absent; those are left out here
(benchmarks/gpu_check.py compares scores on CUDA).
"""

from __future__ import annotations

from collections import namedtuple
from functools import partial

import numpy as np
import pytest
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_array_api_input,
    check_array_api_mixed_inputs,
    check_array_api_same_namespace,
    estimator_checks_generator,
)
from sklearn.utils.metaestimators import available_if

from skdice import Head, available_detectors, detector_tags

#: constructor parameters for the checks, where the defaults do not fit their tiny data
_CHECK_PARAMS = {
    # the checks fit on as few as 10 rows; the default k = 50 needs 50 rows
    "knn": {"n_neighbors": 5, "backend": "sklearn"},
    "nnguide": {"n_neighbors": 5},  # the same: the default k = 10 needs 10 rows
    # seeded random masks, so that repeated fits are comparable; at p = 0.9 the
    # checks' 2 x 3 head would usually lose every weight (constant scores)
    "weight-dropout": {"p": 0.5, "random_state": 0},
    "unit-dropout": {"p": 0.5, "random_state": 0},
    "dice-random-k": {"random_state": 0},
    # at p = 0.9 the checks' 6-weight head keeps k = 1 weight, which
    # top+bottom-k (kept in pairs of equal extremity) rounds down to none
    "dice-top-bottom-k": {"p": 0.5},
}

#: every expected failure, per registry name, with its reason (none at present:
#: DICE+ReAct's partial_fit exists only when its tags say it can work, with threshold=...)
EXPECTED_FAILURES: dict[str, dict[str, str]] = {}


def _checkable(cls):
    """A test-only subclass of ``cls`` whose ``fit(X, y)`` supplies a head and labels."""

    class Checkable(cls):
        name = None

        def fit(self, X=None, y=None, **kwargs):
            # not np.shape: one check passes an object that refuses __array_function__
            if X is None:
                shape = ()
            else:
                shape = X.shape if hasattr(X, "shape") else np.asarray(X).shape
            tags = detector_tags(self)
            if (
                tags.requires_head
                and len(shape) == 2
                and shape[1] > 0
                and kwargs.get("W") is None
                and kwargs.get("head") is None
            ):
                rng = np.random.RandomState(0)
                kwargs["head"] = Head(rng.normal(size=(shape[1], 3)), rng.normal(size=3))
            if tags.requires_class_labels and y is None and len(shape) >= 1:
                y = np.arange(shape[0]) % 2
            return super().fit(X, y=y, **kwargs)

        @available_if(lambda self: detector_tags(self).partial_fit)
        def partial_fit(self, X, y=None, **kwargs):
            shape = X.shape if hasattr(X, "shape") else np.asarray(X).shape
            if "n_samples_seen_" not in self.__dict__ and len(shape) == 2:
                rng = np.random.RandomState(0)
                kwargs["head"] = Head(rng.normal(size=(shape[1], 3)), rng.normal(size=3))
            return super().partial_fit(X, y=y, **kwargs)

    Checkable.__name__ = cls.__name__
    Checkable.__doc__ = cls.__doc__
    # a module-level name, so that the pickling checks can find the class
    Checkable.__qualname__ = f"_Checkable{cls.__name__}"
    globals()[Checkable.__qualname__] = Checkable
    return Checkable


def _instances():
    return [
        _checkable(cls)(**_CHECK_PARAMS.get(name, {}))
        for name, cls in available_detectors().items()
    ]


def _expected_failures(estimator):
    name = type(estimator).__mro__[1].name
    return EXPECTED_FAILURES.get(name, {})


#: what scikit-learn's mixed-input check reads of a namespace (its own tuple is private)
_Space = namedtuple("_Space", ["xp", "device"])
_TORCH, _NUMPY = _Space("torch", "cpu"), _Space("numpy", None)


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


def _array_api_checks(estimator):
    """scikit-learn's Array API checks in the namespaces this project supports (see the module's docstring)."""
    if not get_tags(estimator).array_api_support:
        yield partial(check_array_api_input, array_namespace="numpy", expect_only_array_outputs=False)
        return
    yield partial(check_array_api_input, array_namespace="numpy", check_values=True)
    for dtype in ("float64", "float32"):
        yield partial(
            check_array_api_input, array_namespace="torch", device_name="cpu",
            dtype_name=dtype, check_values=True,
        )
    yield partial(check_array_api_mixed_inputs, X_ns_and_device=_TORCH, other_ns_and_device=_NUMPY)
    yield partial(check_array_api_mixed_inputs, X_ns_and_device=_NUMPY, other_ns_and_device=_TORCH)
    yield partial(check_array_api_same_namespace, array_namespace="torch", device_name="cpu")


def _check_id(value) -> str:
    if isinstance(value, partial):
        args = ",".join(f"{k}={getattr(v, 'xp', v)}" for k, v in value.keywords.items())
        return f"{value.func.__name__}({args})"
    return type(value).__name__ + "()" if not callable(value) or hasattr(value, "fit") else value.__name__


def _checks():
    """Every check of ``parametrize_with_checks``, its Array API ones replaced by :func:`_array_api_checks`."""
    for estimator in _instances():
        for item in estimator_checks_generator(
            estimator, legacy=True, expected_failed_checks=_expected_failures(estimator), mark="xfail"
        ):
            values = getattr(item, "values", item)
            if not _check_name(values[1]).startswith("check_array_api"):
                yield item
        for check in _array_api_checks(estimator):
            name = type(estimator).__name__
            yield estimator, partial(check, name)


@pytest.mark.parametrize("estimator, check", list(_checks()), ids=_check_id)
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_array_api_checks_cover_every_supported_detector():
    """The namespaces above are checked for each detector declaring support: none slips to numpy-only."""
    supported = [e for e in _instances() if get_tags(e).array_api_support]
    assert supported, "no detector declares array_api_support"
    for estimator in supported:
        names = [_check_name(c) for c in _array_api_checks(estimator)]
        assert names.count("check_array_api_input") == 3
        assert "check_array_api_same_namespace" in names


def test_checkable_subclasses_stay_out_of_the_registry():
    before = set(available_detectors())
    _checkable(available_detectors()["energy"])
    assert set(available_detectors()) == before


@pytest.mark.parametrize("name", sorted(available_detectors()))
def test_every_detector_has_a_summary_and_a_reference(name):
    cls = available_detectors()[name]
    assert cls.summary and "\n" not in cls.summary
    assert "References" in (cls.__doc__ or "") or name == "dice"
