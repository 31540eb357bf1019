"""A detector fitted and scored in its input's namespace (scikit-learn's Array API dispatch).

``BaseDetector`` hands an input here when :func:`skdice._array_api.array_space`
says so: ``sklearn.set_config(array_api_dispatch=True)``, a non-NumPy Array
API array (a torch tensor on the CPU or a GPU, a CuPy array) and a detector
declaring the tag ``array_api_support``. Everything follows ``X``:

* **fit**: the rows are validated in their namespace; the statistics a
  detector learns from its rows are taken on their device where they are a
  mean (DICE and the masked heads that fit from a mean: one float64 column
  sum, ``n_features`` numbers copied to the host) or not needed (the logit
  baselines); a detector whose statistics need the rows themselves (ReAct's
  percentile without ``threshold``, Mahalanobis, ViM) reads one host copy of
  them. The head-sized statistics (a mask, a covariance) are then computed
  by the detector's own NumPy code, exactly as for NumPy input, and every
  fitted array is moved to ``X``'s namespace and device. ``offset_`` is the
  quantile of the fitting rows' scores, scored on the device.
* **score_samples**, ``decision_function``, ``predict``, ``predict_class``:
  the rows are scored on their device chunk by chunk (the same chunks as the
  NumPy path, :func:`skdice._numeric.row_chunks`); the results come back in
  ``X``'s namespace on ``X``'s device, scores in float64, labels in int64.

An input in another namespace or on another device than the fitted arrays is
refused, as scikit-learn's estimators refuse it (:func:`check_namespace`).
"""

from __future__ import annotations

import numpy as np
from sklearn import get_config
from sklearn.utils.validation import validate_data

from ._array_api import device_of, namespace, to_namespace, to_numpy
from ._numeric import row_chunks
from ._tags import detector_tags
from ._validation import check_head, check_id_mask, check_train_mean, missing_head_error, raise_non_finite

__all__ = [
    "check_namespace",
    "fit_in_namespace",
    "predict_class_in_namespace",
    "score_in_namespace",
    "validate_rows",
]


def validate_rows(det, X, space, *, reset: bool):
    """scikit-learn's ``validate_data`` in ``X``'s namespace: float16, float32 and float64 kept.

    A 16-bit float that is not float16 (torch's bfloat16) is widened to
    float32, as :func:`skdice._tensors.as_numpy` widens it on the NumPy path,
    and a tensor that requires grad is detached, as there.

    Parameters
    ----------
    det : BaseDetector
    X : array of shape (n_samples, n_features)
    space : tuple (namespace, device)
    reset : bool
        True in ``fit`` (sets ``n_features_in_``), False when scoring.

    Returns
    -------
    array of shape (n_samples, n_features)
    """
    xp = space[0]
    if getattr(X, "requires_grad", False):
        X = X.detach()  # scores are not differentiated: no autograd graph on the device
    floats = (xp.float32, xp.float64, xp.float16)
    if X.dtype not in floats and xp.isdtype(X.dtype, "real floating"):
        X = xp.astype(X, xp.float32)
    kwargs = {"ensure_min_samples": 1} if reset else {"ensure_all_finite": False}
    return validate_data(det, X, reset=reset, dtype=floats, **kwargs)


def _reference_array(det):
    """A fitted array of ``det`` (its namespace and device are those of its fit), or None."""
    for key, value in vars(det).items():
        # classes_ may stay NumPy (string labels), as in scikit-learn
        if key.endswith("_") and key != "classes_" and hasattr(value, "shape") and hasattr(value, "dtype"):
            return value
    return None


def check_namespace(det, X, method: str) -> None:
    """Refuse ``X`` in another namespace or on another device than ``det``'s fitted arrays.

    A no-op unless ``array_api_dispatch`` is on and ``det`` declares
    ``array_api_support``.

    Parameters
    ----------
    det : BaseDetector
    X : array-like
    method : str
        The calling method's name, for the message.

    Raises
    ------
    ValueError
        "Inputs passed to ``Class.method()`` must use the same namespace and
        the same device as those passed to fit()".
    """
    if not get_config()["array_api_dispatch"] or not det.__sklearn_tags__().array_api_support:
        return  # a detector without the tag reads any input as NumPy, as it always has
    fitted = _reference_array(det)
    if fitted is None:
        return
    from array_api_compat import device, is_array_api_obj, is_numpy_array

    x_numpy = not is_array_api_obj(X) or is_numpy_array(X)
    f_numpy = is_numpy_array(fitted)
    if x_numpy and f_numpy:
        return
    if not x_numpy and not f_numpy and namespace(X) is namespace(fitted) and device(X) == device(fitted):
        return
    where = "NumPy" if f_numpy else f"{namespace(fitted).__name__} on {device(fitted)}"
    given = "NumPy" if x_numpy else f"{namespace(X).__name__} on {device(X)}"
    raise ValueError(
        f"Inputs passed to {type(det).__name__}.{method}() must use the same namespace and the "
        f"same device as those passed to fit(): fitted in {where}, given {given}. Move the "
        "input there, or refit the detector on arrays where they will be scored."
    )


def _column_mean(X, xp):
    """Column means of ``X`` summed in float64 on its device, chunk by chunk."""
    n, m = X.shape
    total = xp.zeros(m, dtype=xp.float64, device=device_of(X))
    for rows in row_chunks(n, 8 * m):
        total += xp.sum(xp.astype(X[rows, ...], xp.float64), axis=0)
    return to_numpy(total) / n


def fit_in_namespace(det, X, y, head, train_mean, calibrate, space):
    """``det.fit`` on an array of another namespace: the fitted arrays end in ``X``'s namespace.

    Parameters
    ----------
    det : BaseDetector
        With the tag ``array_api_support``; parameters validated and the
        arguments parsed by ``fit``.
    X : array of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or None
        The ID mask, or class labels for detectors that need them.
    head : Head or tuple (W, b) or None
    train_mean : array-like of shape (n_features,) or None
    calibrate : bool
    space : tuple (namespace, device)

    Returns
    -------
    det
    """
    xp, dev = space
    tags = detector_tags(det)
    name = type(det).__name__
    X = validate_rows(det, X, space, reset=True)
    n_features = X.shape[1]
    if train_mean is not None:
        if not tags.accepts_train_mean:
            raise ValueError(f"{name} does not accept train_mean.")
        train_mean = check_train_mean(to_numpy(train_mean), n_features)
    if head is not None:
        head = check_head(head, n_features, "X")
    elif tags.requires_head:
        raise missing_head_error(name)
    if y is not None:
        y = to_numpy(y)
        if tags.requires_class_labels:
            if y.ndim != 1 or y.shape[0] != X.shape[0]:
                raise ValueError(
                    f"y must be 1-D with one entry per row of X ({X.shape[0]}), got shape {y.shape}."
                )
        else:
            keep = check_id_mask(y, X.shape[0], name)
            if not keep.all():
                X = X[to_namespace(keep, xp, dev), ...]
            y = None
    elif tags.requires_class_labels:
        raise ValueError(f"{name}.fit needs class labels y.")
    if head is not None:
        det.weight_, det.bias_ = head.weight, head.bias
    if tags.fits_from_mean:
        # a function of the mean alone: one float64 column sum on the device
        mean = train_mean if train_mean is not None else _column_mean(X, xp)
        det.fit_statistics(None, None, head, mean)
    elif tags.uses_features:
        det.fit_statistics(to_numpy(X), y, head, train_mean)
    else:
        det.fit_statistics(None, y, head, train_mean)
    for key, value in list(vars(det).items()):
        # class labels that are not numbers (strings) stay NumPy, as scikit-learn's classes_ may
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            setattr(det, key, to_namespace(value, xp, dev))
    det.offset_ = np.nan
    if calibrate:
        scores = to_numpy(det.calibration_scores(X))
        det.offset_ = float(np.quantile(scores, 1.0 - det.tpr))
    return det


def score_in_namespace(X, score_block, width: int):
    """A row-wise score chunk by chunk on ``X``'s device: :func:`skdice._numeric.score_in_chunks` for any namespace.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    score_block : callable
        ``score_block(block)`` on a chunk in float64 for float64 input,
        float32 otherwise.
    width : int
        Columns of scratch per row besides the block (sizes the chunks).

    Returns
    -------
    array of shape (n_samples,), float64, in ``X``'s namespace and device

    Raises
    ------
    ValueError
        When a row holds NaN or infinity, or its score overflows.
    """
    xp = namespace(X)
    n, m = X.shape
    dtype = xp.float64 if X.dtype == xp.float64 else xp.float32
    itemsize = 8 if dtype == xp.float64 else 4
    out = xp.empty(n, dtype=xp.float64, device=device_of(X))
    for rows in row_chunks(n, itemsize * (m + 2 * max(m, width))):
        out[rows] = score_block(xp.astype(X[rows, ...], dtype, copy=False))
    # one check (one device synchronisation) for the whole input
    if n and not bool(xp.all(xp.isfinite(out))):
        bad = int(to_numpy(xp.nonzero(~xp.isfinite(out))[0])[0])
        row = to_numpy(xp.astype(X[bad : bad + 1, ...], dtype))
        raise_non_finite(row, to_numpy(out[bad : bad + 1]), bad)
    return out


def predict_class_in_namespace(det, X):
    """The argmax of ``det.classifier_block`` chunk by chunk on ``X``'s device.

    Parameters
    ----------
    det : BaseDetector
    X : array of shape (n_samples, n_features), validated

    Returns
    -------
    array of shape (n_samples,), int64, in ``X``'s namespace and device
    """
    xp = namespace(X)
    n, m = X.shape
    dtype = xp.float64 if X.dtype == xp.float64 else xp.float32
    out = xp.empty(n, dtype=xp.int64, device=device_of(X))
    width = det.block_width or m
    for rows in row_chunks(n, 8 * (m + 2 * max(m, width))):
        block = xp.astype(X[rows, ...], dtype, copy=False)
        out[rows] = xp.astype(xp.argmax(det.classifier_block(block), axis=1), xp.int64)
    return out
