"""A split read block by block: the block source the streaming workflows and searches take.

Block reads with read-ahead are :mod:`._blocks`'; this module adds the split's
checks and one-line errors for a chunk that fails to decode or a file system
that refuses (:func:`damaged_store_error`).
"""

from __future__ import annotations

from ..exceptions import SkdiceError, StoreError
from ._blocks import iter_blocks

__all__ = ["SplitFeatures", "damaged_store_error", "explained_reads"]


def damaged_store_error(fs, split: str, exc: BaseException) -> Exception:
    """The error to raise when reading a split failed below skdice (a codec or the file system).

    Parameters
    ----------
    fs : FeatureStore
    split : str
    exc : BaseException
        What the read raised.

    Returns
    -------
    Exception
        An ``OSError`` naming the split when the file system refused (full
        disk, permissions: the data is not damaged and deleting it would be
        the wrong advice), else a :class:`~skdice.exceptions.StoreError`
        saying the store is damaged and how to rewrite the split.
    """
    if isinstance(exc, OSError) and exc.errno is not None:
        return OSError(exc.errno, f"{exc.strerror} (split {split!r} of {fs.path})", exc.filename)
    return StoreError(
        f"split {split!r} of {fs.path} could not be read ({type(exc).__name__}: {exc}): "
        "the store is damaged; delete the split's folder and re-run `skdice extract` for it."
    )


def explained_reads(fs, split: str, blocks):
    """``blocks`` (from :func:`skdice.store.iter_blocks`) with a failed read explained.

    A codec error in a damaged chunk or a file-system refusal is raised as
    :func:`damaged_store_error`'s one-line error, not as the codec's traceback.

    Parameters
    ----------
    fs : FeatureStore
    split : str
    blocks : generator of (int, ndarray)

    Yields
    ------
    start : int
    block : ndarray
    """
    try:
        while True:
            try:
                item = next(blocks)
            except StopIteration:
                return
            except SkdiceError:
                raise
            except (RuntimeError, OSError, ValueError) as exc:
                raise damaged_store_error(fs, split, exc) from exc
            yield item
    finally:
        blocks.close()


class SplitFeatures:
    """A split's features, read block by block whenever they are iterated: a block source.

    What the streaming workflows hand to scoring and to the searches instead
    of the loaded split: each pass reads the split again in blocks of about
    8 MiB (:func:`skdice.store.iter_blocks`, reads kept ahead), so memory does
    not grow with its rows. The split is checked complete and against the
    schema when this is built, its chunks when they are read.

    Parameters
    ----------
    fs : FeatureStore
    split : str

    See Also
    --------
    FeatureStore.block_source : builds one.

    Attributes
    ----------
    shape : tuple of int
        ``(n_rows, n_features)``.
    dtype : numpy.dtype
    name : str
        ``"split 'NAME' of PATH"``, for the messages.

    Examples
    --------
    >>> rows = open_store("features.zarr").block_source("svhn")  # doctest: +SKIP
    >>> scores = np.concatenate([det.score_samples(b) for _, b in rows.iter_blocks()])  # doctest: +SKIP
    """

    def __init__(self, fs, split: str):
        self.fs, self.split = fs, split
        self.array = fs.array(split, "features")
        self.shape = tuple(int(v) for v in self.array.shape)
        self.dtype = self.array.dtype
        self.name = f"split {split!r} of {fs.path}"
        self.check = fs.digest_check(split, "features")  # each chunk against the manifest, as read

    def __len__(self) -> int:
        return self.shape[0]

    def iter_blocks(self):
        """Read the split's rows in blocks, in order.

        Yields
        ------
        start : int
            Index of the block's first row.
        block : ndarray of shape (rows, n_features)
        """
        return explained_reads(self.fs, self.split, iter_blocks(self.array, check=self.check))
