"""The one resolver of a store-driven run's inputs: store, splits, head, training data.

Every workflow opens its store, reads its splits and resolves a training mean
through these functions, so the same input is refused with the same words
whichever command it reached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._numeric import RunningMean
from .._validation import check_train_mean
from ..exceptions import SkdiceError
# SplitFeatures, damaged_store_error and explained_reads moved to the store
# (block reading of a split is the store's); importable from here as before
from ..store import FeatureStore, SplitFeatures, damaged_store_error, explained_reads, open_store

__all__ = [
    "SplitFeatures",
    "TrainingData",
    "check_split_lists",
    "check_validation_splits",
    "class_labels",
    "damaged_store_error",
    "explained_reads",
    "load_train_mean",
    "open_feature_store",
    "read_features",
    "resolve_train_mean",
    "stream_mean",
]


def open_feature_store(store) -> FeatureStore:
    """A :class:`~skdice.store.FeatureStore` from a path or an open store.

    Parameters
    ----------
    store : str, path-like or FeatureStore

    Returns
    -------
    FeatureStore
    """
    return store if isinstance(store, FeatureStore) else open_store(store)


def load_train_mean(path, n_features: int | None = None) -> np.ndarray:
    """Read a cached mean training feature from a ``.npy`` file (no pickle).

    The DICE authors ship such files (``*_feat_stat.npy``); they let DICE be
    fitted without the training features.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file holding a float array of shape ``(n_features,)`` (or
        ``(1, n_features)``).
    n_features : int, default=None
        Expected width, checked when given.

    Returns
    -------
    ndarray of shape (n_features,), float64

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a numeric ``.npy`` array of the expected width.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train mean file {path} does not exist.")
    try:
        mean = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a readable .npy array (train mean): {exc}") from None
    if not isinstance(mean, np.ndarray) or mean.dtype.kind not in "fiu":
        raise ValueError(
            f"{path} must hold one numeric .npy array (the mean training feature), "
            f"got {'an .npz archive' if not isinstance(mean, np.ndarray) else mean.dtype}."
        )
    if mean.ndim == 2 and 1 in mean.shape:
        mean = mean.reshape(-1)
    if mean.ndim != 1:
        raise ValueError(f"{path} must hold a 1-D mean feature, got shape {mean.shape}.")
    if n_features is not None and mean.shape[0] != n_features:
        raise ValueError(
            f"{path} holds a mean of {mean.shape[0]} features but the store's head has "
            f"{n_features}: it belongs to another model."
        )
    mean = mean.astype(np.float64)
    if not np.isfinite(mean).all():
        raise ValueError(f"{path} contains NaN or infinity.")
    return mean


def resolve_train_mean(train_mean, n_features: int) -> np.ndarray | None:
    """A training mean given as a ``.npy`` path (:func:`load_train_mean`) or an array, checked.

    Parameters
    ----------
    train_mean : array-like, str, path-like or None
    n_features : int
        The head's width.

    Returns
    -------
    ndarray of shape (n_features,), float64, or None when ``train_mean`` is None
    """
    if train_mean is None:
        return None
    if isinstance(train_mean, (str, bytes, Path)) or hasattr(train_mean, "__fspath__"):
        return load_train_mean(train_mean, n_features)
    return check_train_mean(train_mean, n_features)


def stream_mean(fs: FeatureStore, split: str) -> np.ndarray:
    """A split's mean feature, summed in float64 block by block (:class:`~skdice._numeric.RunningMean`).

    Parameters
    ----------
    fs : FeatureStore
    split : str

    Returns
    -------
    ndarray of shape (n_features,), float64

    Raises
    ------
    ValueError
        For an empty split.
    """
    stream = RunningMean(fs.head.n_features)
    # 8 MiB blocks with reads ahead: twice the speed of one store chunk per read
    for _, block in fs.block_source(split).iter_blocks():
        stream.update(block)
    if stream.n == 0:
        raise ValueError(f"split {split!r} of {fs.path} is empty: no training mean.")
    return stream.mean


def read_features(fs: FeatureStore, split: str, dask: bool = False):
    """A split's features, in memory or as a lazy dask array, with read failures explained.

    Parameters
    ----------
    fs : FeatureStore
    split : str
    dask : bool, default=False

    Returns
    -------
    ndarray of shape (n_samples, n_features) or dask.array.Array
    """
    try:
        return fs.features(split, dask=dask)
    except SkdiceError:
        raise
    except (RuntimeError, OSError, ValueError) as exc:  # a codec or file error in a chunk
        raise damaged_store_error(fs, split, exc) from exc


def class_labels(fs: FeatureStore, split: str) -> np.ndarray:
    """Class labels of a split whose every row is labelled (class-conditional detectors).

    Parameters
    ----------
    fs : FeatureStore
    split : str

    Returns
    -------
    ndarray of shape (n_samples,), int64
    """
    labels = fs.labels(split)
    unknown = int(np.count_nonzero(labels < 0))
    if unknown:
        raise ValueError(
            f"split {split!r} has {unknown} rows without a class label (-1); "
            "class-conditional methods need every training row labelled."
        )
    return labels


def check_split_lists(id_split: str, ood_splits) -> list[str]:
    """Check an ID split against a list of OOD splits: at least one, no repeats, no overlap.

    Parameters
    ----------
    id_split : str
    ood_splits : sequence of str

    Returns
    -------
    list of str
    """
    ood_splits = list(ood_splits)
    if not ood_splits:
        raise ValueError("give at least one OOD split (ood_splits=[SPLIT, ...]).")
    repeated = sorted({name for name in ood_splits if ood_splits.count(name) > 1})
    if repeated:
        raise ValueError(f"OOD split {', '.join(map(repr, repeated))} is given more than once.")
    if id_split in ood_splits:
        raise ValueError(f"split {id_split!r} is given both as the ID split and as an OOD split.")
    return ood_splits


def check_validation_splits(id_split: str, noise_splits, test_splits=()) -> list[str]:
    """Check the splits of a tuning run: validation rows are neither test rows nor each other.

    Parameters
    ----------
    id_split : str
        The ID validation split.
    noise_splits : str or sequence of str
        The OOD validation split(s), synthetic and real alike.
    test_splits : sequence of str, default=()
        Splits the run evaluates on (``evaluate``'s ``--id`` and ``--ood``).

    Returns
    -------
    list of str
        The OOD validation splits.

    Raises
    ------
    ValueError
        For no OOD validation split, a repeated one, an ID validation split
        that is also an OOD one, or a validation split that is also a test
        split.
    """
    noise = [noise_splits] if isinstance(noise_splits, str) else list(noise_splits)
    if not noise:
        raise ValueError(
            "give at least one OOD validation split: synthetic (noise_splits=[SPLIT, ...]) or real "
            "(ood_val_splits=[SPLIT, ...])."
        )
    repeated = sorted({name for name in noise if noise.count(name) > 1})
    if repeated:
        raise ValueError(f"validation split {', '.join(map(repr, repeated))} is given more than once.")
    if id_split in noise:
        raise ValueError(
            f"split {id_split!r} is given both as the ID validation split and as an OOD validation split."
        )
    tests = set(test_splits)
    for name in (id_split, *noise):
        if name in tests:
            raise ValueError(
                f"split {name!r} is both a validation split and a test split: tune on rows "
                "the evaluation does not use."
            )
    return noise


class TrainingData:
    """The training information of a run: a store's training split and/or a mean.

    The split's features are read only when a method needs them in memory
    (:attr:`X`); mean-based methods stream the split instead.

    Parameters
    ----------
    fs : FeatureStore
    split : str or None
        Split of in-distribution training features; checked complete here.
    mean : array-like, str, path-like or None
        A cached mean training feature (array or ``.npy`` path).
    dask : bool, default=False
        Read :attr:`X` through dask (computed).

    Attributes
    ----------
    fs : FeatureStore
    split : str or None
    mean : ndarray of shape (n_features,) or None
        The resolved mean.
    head : Head
        The store's classifier head.
    """

    def __init__(self, fs: FeatureStore, split: str | None, mean=None, dask: bool = False):
        self.fs, self.split, self.dask = fs, split, dask
        self.head = fs.head
        self.mean = resolve_train_mean(mean, self.head.n_features)
        if split is not None:
            fs.array(split, "features")  # a missing or incomplete split fails here
        self._X = None

    @property
    def X(self):
        """The training split's features in memory (read once)."""
        if self._X is None:
            X = read_features(self.fs, self.split, self.dask)
            self._X = X.compute() if self.dask else X
        return self._X
