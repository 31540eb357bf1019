"""The input checks every layer shares: one definition of each.

Arrays in, checked arrays (or a clear ``ValueError``) out. The estimators, the
p search, the theory helpers and the store workflows all call these, so a
sparsity, a training mean, an ID mask or a head is refused with the same words
wherever it enters.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data as _sklearn_validate_data

from ._head import Head
from ._tensors import as_numpy, is_torch_tensor

__all__ = [
    "FLOAT_DTYPES",
    "as_numpy",
    "check_features",
    "check_rows",
    "check_grid",
    "check_head",
    "missing_head_error",
    "check_id_mask",
    "check_sparsity",
    "check_train_mean",
    "is_block_source",
    "is_dask",
    "raise_non_finite",
    "resolve_head",
    "validate_data",
]

#: Feature dtypes accepted as they are; anything else is converted to float64 by
#: scikit-learn's validation (the heavy products then run in float32).
FLOAT_DTYPES = [np.float32, np.float64, np.float16]


def validate_data(estimator, X, **kwargs):
    """scikit-learn's ``validate_data``, with a torch tensor read as it comes.

    The estimators' one entry for feature rows: a tensor is detached, moved to
    the CPU and a bfloat16 or float16 one widened to float32
    (:func:`skdice._tensors.as_numpy`) before scikit-learn checks it.

    Parameters
    ----------
    estimator : BaseDetector
    X : array-like or torch.Tensor of shape (n_samples, n_features)
    **kwargs
        Passed to :func:`sklearn.utils.validation.validate_data`.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    return _sklearn_validate_data(estimator, as_numpy(X), **kwargs)


def is_dask(X) -> bool:
    """Whether ``X`` is a dask collection (checked without importing dask).

    Parameters
    ----------
    X : object

    Returns
    -------
    bool
    """
    return type(X).__module__.split(".")[0] == "dask"


def is_block_source(X) -> bool:
    """Whether ``X`` is a block source: rows read block by block, not an array in memory.

    A block source has a 2-D ``shape`` and a method ``iter_blocks()`` that
    yields ``(start, block)`` pairs covering its rows in order, each block an
    ndarray of shape ``(rows, n_features)``
    (:class:`skdice.workflows.resolve.SplitFeatures` reads a store split so).
    The validation sets of the searches may be given so; every pass over them
    then holds one block in memory, whatever the number of rows.

    Parameters
    ----------
    X : object

    Returns
    -------
    bool
    """
    return (
        not isinstance(X, np.ndarray)
        and callable(getattr(X, "iter_blocks", None))
        and len(getattr(X, "shape", ())) == 2
    )


def check_sparsity(p, name: str = "p", *, allow_none: bool = False):
    """Check a sparsity: a real number in [0, 1) (a fraction, not a percent).

    Parameters
    ----------
    p : object
        The value to check.
    name : str, default="p"
        Its name in the message.
    allow_none : bool, default=False
        Accept ``None`` (meaning "the method's default") and return it.

    Returns
    -------
    float or None

    Raises
    ------
    ValueError
        For a boolean, a non-number, or a value outside [0, 1); a whole number
        in (1, 100] gets the hint that p is a fraction.
    """
    if p is None and allow_none:
        return None
    if isinstance(p, bool) or not isinstance(p, (Real, np.floating, np.integer)) or not 0 <= p < 1:
        percent = isinstance(p, Real) and not isinstance(p, bool) and 1 < p <= 100 and float(p).is_integer()
        hint = f" ({name} is a fraction: {p / 100:g} for {p:g}%)" if percent else ""
        raise ValueError(f"{name} must be in [0, 1), got {p!r}{hint}.")
    return float(p)


def check_grid(grid, where: str = "grid") -> np.ndarray:
    """A 1-D float64 array of distinct sparsities in [0, 1).

    Parameters
    ----------
    grid : sequence of float
    where : str, default="grid"
        What the grid is, for the messages.

    Returns
    -------
    ndarray of shape (n_candidates,), float64
    """
    try:
        values = np.asarray(grid, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a sequence of numbers in [0, 1), got {grid!r}.") from None
    if values.size == 0:
        raise ValueError(f"{where} is empty: give at least one sparsity p in [0, 1).")
    bad = values[~((values >= 0) & (values < 1))]
    if bad.size:
        raise ValueError(f"{where}: every p must be in [0, 1), got {float(bad[0])!r}.")
    if np.unique(values).size != values.size:
        raise ValueError(f"{where} has repeated values: {values.tolist()}.")
    return values


def check_train_mean(train_mean, n_features: int) -> np.ndarray:
    """Check a mean training feature: numeric, finite, ``n_features`` entries.

    Parameters
    ----------
    train_mean : array-like of shape (n_features,) or (1, n_features)
    n_features : int

    Returns
    -------
    ndarray of shape (n_features,), float64
    """
    mean = np.asarray(as_numpy(train_mean))
    if mean.dtype.kind not in "fiu":
        raise ValueError(f"train_mean must be numeric, got dtype {mean.dtype}.")
    mean = mean.astype(np.float64)
    if mean.ndim == 2 and 1 in mean.shape:
        mean = mean.reshape(-1)
    if mean.shape != (n_features,):
        raise ValueError(
            f"train_mean must have shape ({n_features},), got {np.shape(train_mean)}."
        )
    if not np.isfinite(mean).all():
        raise ValueError("train_mean contains NaN or infinity.")
    return mean


def check_id_mask(y, n_rows: int, owner: str, *, require_id: bool = True) -> np.ndarray:
    """Check an ID mask ``y`` (1 = in-distribution, 0 = OOD, left out of a fit).

    Parameters
    ----------
    y : array-like of shape (n_rows,)
    n_rows : int
        Rows of the features it goes with.
    owner : str
        The estimator's name, for the messages.
    require_id : bool, default=True
        Refuse a mask with no ID row (a fit); ``partial_fit`` accepts a chunk
        of OOD rows only.

    Returns
    -------
    ndarray of shape (n_rows,), bool
        True for the rows to keep.

    Raises
    ------
    ValueError
        For a wrong shape, strings ("id"/"ood" would all count as ID), NaN, or
        no ID row at all.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise ValueError(
            f"y must be 1-D with one entry per row of X ({n_rows}), got shape {y.shape}."
        )
    if y.dtype.kind not in "biuf":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"y is the ID mask of {owner} (1 = ID, 0 = OOD, left "
                f"out); got non-numeric values such as {str(y[0])!r}."
            ) from None
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(
            f"y, the ID mask of {owner} (1 = ID, 0 = OOD), contains NaN "
            f"(first at row {int(np.flatnonzero(np.isnan(y))[0])})."
        )
    keep = y != 0
    if require_id and not keep.any():
        raise ValueError(
            "every row of X is marked y == 0 (OOD); fit needs in-distribution rows."
        )
    return keep


def check_features(X, name: str, n_features: int, where: str) -> np.ndarray:
    """Validate a 2-D float feature matrix of the head's width (float32 stays float32).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    name : str
        The argument's name, for the messages.
    n_features : int
        The head's width.
    where : str
        The calling function, for the messages.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    X = check_array(as_numpy(X), dtype=FLOAT_DTYPES, ensure_min_samples=1, input_name=name)
    if X.shape[1] != n_features:
        raise ValueError(
            f"{where}: {name} has {X.shape[1]} features but the head W has "
            f"{n_features} rows (n_features); W must be (n_features, n_classes)."
        )
    return X


def check_rows(X, name: str, n_features: int, where: str):
    """:func:`check_features` for an array; for a block source, its shape only.

    The blocks of a block source are checked as they are read (the scoring
    refuses NaN and infinity with the row's number).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or block source
    name : str
    n_features : int
    where : str

    Returns
    -------
    ndarray of shape (n_samples, n_features) or the block source itself
    """
    if not is_block_source(X):
        return check_features(X, name, n_features, where)
    n_rows, width = (int(v) for v in X.shape)
    if n_rows < 1:
        raise ValueError(f"{where}: {name} has no rows (a minimum of 1 is required).")
    if width != n_features:
        raise ValueError(
            f"{where}: {name} has {width} features but the head W has "
            f"{n_features} rows (n_features); W must be (n_features, n_classes)."
        )
    return X


def resolve_head(W, b, head, where: str) -> Head:
    """The head from ``W, b`` or ``head=``; a :class:`Head` passed as ``W`` is accepted.

    Parameters
    ----------
    W : array-like of shape (n_features, n_classes), Head or None
    b : array-like of shape (n_classes,) or None
    head : Head or None
    where : str
        The calling function, for the messages.

    Returns
    -------
    Head
    """
    if isinstance(W, Head):
        if head is not None or b is not None:
            raise TypeError(f"{where}: pass either head=Head(W, b) or W and b, not both.")
        return W
    if head is not None:
        if W is not None or b is not None:
            raise TypeError(f"{where}: pass either head=Head(W, b) or W and b, not both.")
        if not isinstance(head, Head):
            raise TypeError(f"{where}: head must be a skdice.Head, got {type(head).__name__}.")
        return head
    if W is None:
        raise ValueError(
            f"{where} needs the classifier head: pass W (n_features, n_classes) and b, "
            "or head=Head(W, b)."
        )
    return _head_from_raw(W, b)


def raise_non_finite(block, scores, start: int):
    """Raise the one error for a block whose scores are not all finite.

    Parameters
    ----------
    block : ndarray of shape (n_rows, n_features)
        The rows that were scored, in the dtype of the products
        (:func:`skdice._numeric.compute_dtype`).
    scores : ndarray of shape (n_rows,)
    start : int
        Index of the block's first row in the whole input.

    Raises
    ------
    ValueError
        "Input X contains NaN or infinity" when the features are at fault,
        else the overflow of the head's product in the block's dtype.
    """
    bad_row = int(np.flatnonzero(~np.isfinite(scores))[0])
    if not np.isfinite(block[bad_row]).all():
        raise ValueError(
            f"Input X contains NaN or infinity (first at row {start + bad_row})."
        )
    raise ValueError(
        f"the score of row {start + bad_row} is not finite: its features overflow "
        f"{block.dtype} in the head's product; rescale the features."
    )


def missing_head_error(owner: str) -> ValueError:
    """The one error of a ``fit`` called without the head a detector needs.

    Parameters
    ----------
    owner : str
        The detector's class name.

    Returns
    -------
    ValueError
        For the caller to raise.
    """
    return ValueError(
        f"{owner}.fit needs the classifier head: pass W (n_features, n_classes) and b, "
        "or head=Head(W, b)."
    )


def check_head(head, n_features: int, source: str = "X") -> Head:
    """Make a :class:`Head` from ``(W, b)`` (or check a given one) against the feature width.

    Parameters
    ----------
    head : Head or tuple (W, b)
    n_features : int
        The width of the features the head will see.
    source : str, default="X"
        What gave ``n_features`` (``"X"`` or ``"train_mean"``), for the messages.

    Returns
    -------
    Head

    Raises
    ------
    ValueError
        When ``W`` does not have ``n_features`` rows (with a hint when it is
        PyTorch's ``(n_classes, n_features)`` layout or was sliced by
        GridSearchCV), or ``b`` does not match ``W``'s classes, or ``W`` is a
        square torch tensor given bare (its layout cannot be told from its shape).
    """
    has = f"{source} has {n_features} " + ("features" if source == "X" else "entries")
    if isinstance(head, Head):
        W, b = head.weight, head.bias
    else:
        W, b = head
    shape = np.shape(W)
    if len(shape) == 2 and shape[0] != n_features:
        if shape[1] == n_features:
            raise ValueError(
                f"W has shape {shape} but {has}: W must be "
                f"(n_features, n_classes) = ({n_features}, {shape[0]}). This looks "
                "like PyTorch's fc.weight layout (n_classes, n_features): pass W.T "
                "or head=Head.from_torch(fc.weight, fc.bias)."
            )
        raise ValueError(
            f"W has shape {shape} but {has}: W must be "
            f"(n_features, n_classes) with n_features = {n_features}. If W went "
            "through GridSearchCV's fit params and has as many rows as there are "
            "samples, GridSearchCV slices it: pass head=Head(W, b) instead."
        )
    if isinstance(head, Head):
        return head
    if len(shape) == 2 and b is not None and np.ndim(b) == 1 and len(b) != shape[1]:
        raise ValueError(
            f"b has {len(b)} entries but W of shape {shape} has {shape[1]} classes. "
            "If b went through GridSearchCV's fit params and has as many entries "
            "as there are samples, GridSearchCV slices it: pass head=Head(W, b) instead."
        )
    return _head_from_raw(W, b)


def _head_from_raw(W, b) -> Head:
    """``Head(W, b)`` for a W given bare, refusing a square torch tensor.

    A square W (n_features == n_classes) fits either orientation, so its shape
    cannot tell a transposed one. A bare numpy W is read as documented,
    ``(n_features, n_classes)``; a bare square torch tensor is most likely
    ``fc.weight``, which is the transpose, so it is refused with the spellings
    that state the layout.
    """
    shape = tuple(np.shape(W))
    if is_torch_tensor(W) and len(shape) == 2 and shape[0] == shape[1]:
        n = shape[0]
        raise ValueError(
            f"W is a square torch tensor ({n}, {n}): its shape cannot tell (n_features, n_classes) "
            "from torch's (n_classes, n_features), so skdice does not guess. State it: "
            "head=Head.from_torch(fc) for the nn.Linear (or Head(W, b, layout='torch') for "
            "fc.weight as it is), head=Head(W, b) for a W already (n_features, n_classes)."
        )
    return Head(W, b)
