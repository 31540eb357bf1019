"""The Array API side of skdice: an input's namespace, and the operations the standard lacks.

scikit-learn's convention (``sklearn.set_config(array_api_dispatch=True)``):
an estimator that declares the tag ``array_api_support`` computes in the
namespace of its input ``X`` (torch, CuPy, NumPy, ...), on ``X``'s device,
and returns results there; its fitted arrays live there too ("everything
follows X"). :func:`array_space` says whether an input takes that path; the
kernels below are the detectors' scoring operations written once for any
namespace. NumPy input never comes here: it keeps the in-place NumPy kernels
of :mod:`skdice._numeric`, so its speed is what it was.

Built on ``array_api_compat`` (the namespace and device of an array).
``array_api_extra`` (0.11) was checked first and is not used: it has no
quantile and no logsumexp, and its ``argpartition`` for torch builds its
ranks on the default device, which fails for CUDA tensors. What the standard
lacks is written here once, tested in tests/test_array_api.py:

* :func:`logsumexp_rows` and :func:`max_softmax_rows`: the standard has no
  logsumexp, nor an ``out=`` for an in-place exponential; the rows are
  reduced in a few slices, so a chunk never holds a second logits block;
* :func:`top_k_mask`: the standard has argsort but no scatter, so the mask of
  each row's ``k`` largest entries is read from the ranks (two stable
  argsorts; ties go to the lower index);
* :func:`to_numpy` and :func:`to_namespace`: moves between a namespace and
  NumPy on the host, for the few head-sized statistics fitted there.
"""

from __future__ import annotations

import weakref

import numpy as np
from sklearn import get_config

__all__ = [
    "active_units",
    "array_space",
    "device_of",
    "logsumexp_rows",
    "max_softmax_rows",
    "namespace",
    "to_namespace",
    "to_numpy",
    "top_k_mask",
    "weight_as",
]

#: Slices a chunk's logits are reduced in: each slice's exponential is a
#: temporary of a quarter of the block, never a second whole block.
_SLICES = 4


def _compat():
    # imported on first use: ``import skdice`` stays light (tests/cli/test_startup.py)
    import array_api_compat

    return array_api_compat


def array_space(X, detector=None):
    """The namespace and device ``X`` is computed in, or None for the NumPy path.

    Not None only when scikit-learn's ``array_api_dispatch`` is on, ``X`` is
    an Array API array other than NumPy's (a torch tensor, a CuPy array, ...;
    Dask keeps its own path) and, when ``detector`` is given, the detector
    declares the tag ``array_api_support``. A detector without it converts a
    tensor to NumPy, as it always has.

    Parameters
    ----------
    X : object
    detector : BaseDetector, default=None

    Returns
    -------
    tuple (namespace, device) or None
    """
    if not get_config()["array_api_dispatch"] or isinstance(X, np.ndarray):
        return None
    compat = _compat()
    if not compat.is_array_api_obj(X) or compat.is_numpy_array(X) or compat.is_dask_array(X):
        return None
    if detector is not None and not detector.__sklearn_tags__().array_api_support:
        return None
    return compat.array_namespace(X), compat.device(X)


def device_of(X):
    """The device ``X`` lives on (``array_api_compat.device``; ``"cpu"`` for NumPy).

    Parameters
    ----------
    X : array

    Returns
    -------
    object
    """
    return _compat().device(X)


def namespace(X):
    """The Array API namespace of ``X`` (``array_api_compat``'s wrapper for torch and NumPy).

    Parameters
    ----------
    X : array

    Returns
    -------
    module
    """
    return _compat().array_namespace(X)


def to_numpy(X):
    """``X`` as a NumPy array on the host (a copy when it lives on a device).

    Parameters
    ----------
    X : array or scalar

    Returns
    -------
    ndarray
    """
    if isinstance(X, np.ndarray):
        return X
    compat = _compat()
    if compat.is_torch_array(X):
        return X.detach().cpu().numpy()
    if compat.is_cupy_array(X):
        return X.get()
    if compat.is_array_api_obj(X):
        return np.asarray(compat.to_device(X, "cpu"))
    return np.asarray(X)


def to_namespace(value, xp, device):
    """A NumPy array (or any array) moved into namespace ``xp`` on ``device``, its dtype kept.

    Parameters
    ----------
    value : ndarray
    xp : module
    device : object

    Returns
    -------
    array
    """
    # a copy: a fitted array never shares memory with the NumPy array it came from
    if value.dtype == np.bool_:
        return xp.asarray(value, dtype=xp.bool, device=device, copy=True)
    return xp.asarray(value, device=device, copy=True)


def logsumexp_rows(Z, temperature: float = 1.0):
    """Row-wise ``T * log(sum(exp(Z / T)))`` in ``Z``'s namespace; ``Z`` may be overwritten.

    The row maximum is subtracted (in place) before the exponential, and the
    sum runs in float64, as in :func:`skdice._numeric.logsumexp_rows`. The
    rows go in :data:`_SLICES` slices, so the exponential's temporary is a
    fraction of the block.

    Parameters
    ----------
    Z : array of shape (n_rows, n_cols), float32 or float64
    temperature : float, default=1.0

    Returns
    -------
    array of shape (n_rows,), float64
    """
    xp = namespace(Z)
    n = Z.shape[0]
    if temperature != 1.0:
        Z /= temperature
    out = xp.empty(n, dtype=xp.float64, device=device_of(Z))
    step = max(1, -(-n // _SLICES))
    for start in range(0, n, step):
        z = Z[start : start + step, ...]
        top = xp.max(z, axis=1, keepdims=True)
        z -= top
        total = xp.sum(xp.exp(z), axis=1, dtype=xp.float64)
        out[start : start + step] = temperature * (xp.log(total) + xp.astype(top[:, 0], xp.float64))
    return out


def max_softmax_rows(Z, temperature: float = 1.0):
    """Row-wise ``max_c softmax(Z / T)_c`` through the log-sum-exp, in ``Z``'s namespace.

    Parameters
    ----------
    Z : array of shape (n_rows, n_cols), float32 or float64
        Overwritten.
    temperature : float, default=1.0

    Returns
    -------
    array of shape (n_rows,), float64
    """
    xp = namespace(Z)
    top = xp.astype(xp.max(Z, axis=1), xp.float64)
    lse = logsumexp_rows(Z, temperature)
    return xp.exp((top - lse) / temperature)


def top_k_mask(X, k: int):
    """Boolean mask of the ``k`` largest entries of each row, in ``X``'s namespace.

    Exactly ``k`` per row: ties at the ``k``-th value go to the lower column
    index (NumPy's ``argpartition`` breaks them arbitrarily; the two agree
    whenever the row has no tie there).

    Parameters
    ----------
    X : array of shape (n_rows, n_features)
    k : int

    Returns
    -------
    array of shape (n_rows, n_features), bool
    """
    xp = namespace(X)
    n, m = X.shape
    if k >= m:
        return xp.ones((n, m), dtype=xp.bool, device=device_of(X))
    order = xp.argsort(X, axis=1, descending=True, stable=True)
    ranks = xp.argsort(order, axis=1, stable=True)
    return ranks < k


_CACHE: dict = {}


def _cached(weight, key, make):
    """``make()`` cached for the lifetime of ``weight`` (a fitted array, never modified)."""
    key = (id(weight), *key)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is weight:
        return hit[1]
    value = make()
    ref = weakref.ref(weight, lambda _, key=key, cache=_CACHE: cache.pop(key, None))
    _CACHE[key] = (ref, value)
    return value


def weight_as(weight, dtype):
    """A fitted weight in ``dtype`` (the products' dtype), cast once per weight and dtype.

    The standard does not promote a float64 block times a float32 weight
    (torch refuses it); NumPy does, so the NumPy path never casts.

    Parameters
    ----------
    weight : array
    dtype : dtype of the same namespace

    Returns
    -------
    array
        ``weight`` itself when it has ``dtype``.
    """
    if weight.dtype == dtype:
        return weight
    return _cached(weight, ("astype", str(dtype)), lambda: namespace(weight).astype(weight, dtype))


def active_units(weight, limit: float, dtype):
    """The rows of a masked weight with a non-zero entry, and the weight with only those rows.

    The namespace-generic twin of :func:`skdice._numeric.active_units`: units
    whose kept weights are all zero leave the product. Cached for the
    lifetime of ``weight`` (a fitted ``masked_weight_``, never modified).

    Parameters
    ----------
    weight : array of shape (n_features, n_classes)
    limit : float
        Drop rows only when the fraction of active rows is at most this
        (:data:`skdice._numeric.DROP_UNITS_BELOW`).
    dtype : dtype of the same namespace
        The products' dtype (the packed weight's).

    Returns
    -------
    units : array of shape (k,), int64, or None
        None when more than ``limit`` of the rows are active (the gather
        would cost more than the rows it saves).
    packed : array of shape (k, n_classes)
        ``weight[units]`` in ``dtype``, or ``weight`` itself.
    """

    def make():
        xp = namespace(weight)
        keep = xp.nonzero(xp.any(weight != 0, axis=1))[0]
        units = None if keep.shape[0] > limit * weight.shape[0] else keep
        packed = weight if units is None else xp.take(weight, units, axis=0)
        return units, xp.astype(packed, dtype, copy=False)

    return _cached(weight, ("active", limit, str(dtype)), make)
