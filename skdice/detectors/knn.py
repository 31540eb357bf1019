"""Deep nearest neighbours on L2-normalised features (Sun et al., 2022)."""

from __future__ import annotations

import importlib.util
import weakref
from numbers import Integral

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import BaseDetector
from ..exceptions import MissingExtraError

__all__ = ["KNNDetector"]

# the KNN authors' normaliser: x / (||x||_2 + 1e-10)
_NORM_EPS = 1e-10


def _normalise(X, dtype=np.float32) -> np.ndarray:
    X = np.asarray(X, dtype=dtype)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / (norms + X.dtype.type(_NORM_EPS))


def _negative_square(dist) -> np.ndarray:
    # the official score is minus faiss IndexFlatL2's *squared* distance
    dist = dist.astype(np.float64)
    return -(dist * dist)


def _faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


# faiss indexes by training array, so that scoring chunk after chunk searches one
# index instead of copying all training features into a new one per chunk. Kept
# outside the estimator (fitted state stays the documented attributes, which
# save_detector writes); an entry goes when its array does.
_FAISS_INDEXES: dict = {}


def _faiss_index(features: np.ndarray):
    key = id(features)
    hit = _FAISS_INDEXES.get(key)
    if hit is not None and hit[0]() is features:
        return hit[1]
    import faiss

    index = faiss.IndexFlatL2(features.shape[1])
    index.add(features)
    ref = weakref.ref(features, lambda _, key=key: _FAISS_INDEXES.pop(key, None))
    _FAISS_INDEXES[key] = (ref, index)
    return index


class KNNDetector(BaseDetector):
    """Negative squared distance to the k-th nearest training feature, after L2 normalisation.

    ``S(x) = -|| z(x) - z_(k) ||_2^2`` with ``z = h / (||h||_2 + 1e-10)`` and
    ``z_(k)`` the k-th nearest of the normalised training features: the
    *squared* Euclidean distance, which is what the KNN authors' code and
    OpenOOD score (faiss ``IndexFlatL2`` returns squared L2 distances). No head
    is needed.

    Parameters
    ----------
    n_neighbors : int, default=50
        k. The KNN paper's CIFAR-10 setting (``run_cifar.py``: k = 50 on the
        full CIFAR-10 training set). For ImageNet the authors' ``run_imagenet.py``
        uses k = 1000 on the full ImageNet training set (sampling ratio
        ``ALPHA = 1.00``, 1,281,167 rows); the paper's ablation also pairs
        smaller samples of the training set with smaller k.
    backend : {"auto", "sklearn", "faiss"}, default="auto"
        ``"sklearn"``: exact brute-force search with
        :class:`sklearn.neighbors.NearestNeighbors` (chunked by scikit-learn's
        ``working_memory``). ``"faiss"``: exact search with ``faiss.IndexFlatL2``
        (faster on many rows; needs ``pip install faiss-cpu``). ``"auto"``: faiss
        when it is importable, else scikit-learn. Both give the same scores
        (squared distances) up to float32 rounding.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    train_features_ : ndarray of shape (n_train, n_features), float32
        The L2-normalised fitting features (the search index).
    weight_, bias_ : ndarray of shape (n_features, n_classes) and (n_classes,)
        The classifier head, only when one was given to ``fit``. The score
        does not use it; it is kept so that scoring a feature store can check
        that the store belongs to the same model.
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores (the same
        squared distances), each fitting row
        scored *without itself* (leave-one-out), so that the threshold matches
        what new ID inputs get. Needs more than ``n_neighbors`` fitting rows;
        with exactly ``n_neighbors`` rows each row counts as its own neighbour.

    Notes
    -----
    The detector stores the normalised training features: memory grows with
    the fitting set, so fit on a subsample for very large sets (the KNN
    paper's ablation does so with a smaller k; its headline ImageNet numbers
    use the full training set). The KNN authors' ``run_cifar.py`` and OpenOOD's
    ``KNNPostprocessor`` score ``-D[:, -1]`` with ``D`` the squared distances
    of faiss ``IndexFlatL2`` on normalised features: the same score as this
    one. Their normalisers differ in the placement of ``1e-10``
    (``run_cifar.py`` divides by ``||h|| + 1e-10`` as here; ``run_imagenet.py``
    and OpenOOD add it after the division), which moves no score by more than
    about ``1e-9``. Negative rounding residues of the squared distance are
    clipped to 0. pytorch-ood's ``KNN`` returns the (unsquared) distance
    itself with the opposite sign: it ranks like this score only with
    ``norm_features=True`` and the same k (its defaults are no normalisation
    and k = 1).

    References
    ----------
    Y. Sun, Y. Ming, X. Zhu and Y. Li. Out-of-distribution detection with deep
    nearest neighbors. ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.knn import KNNDetector
    >>> H = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> det = KNNDetector(n_neighbors=1).fit(H)
    >>> det.score_samples([[5.0, 0.0], [-1.0, 0.0]]).round(3)  # only the direction counts
    array([-0., -2.])
    """

    name = "knn"
    summary = "Negative k-th nearest-neighbour distance of normalised features (Sun et al., 2022)"
    #: the search grid (skdice.tuning.default_grid): the KNN paper's ablation of k
    #: (CIFAR-10 setting 50, ImageNet 1000; OpenOOD sweeps 50-1000); values above
    #: the training rows are left out
    search_grid = {"n_neighbors": (1, 10, 20, 50, 100, 200, 500, 1000)}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "backend": [StrOptions({"auto", "sklearn", "faiss"})],
    }

    def __init__(self, n_neighbors=50, *, backend="auto", tpr=0.95):
        self.n_neighbors = n_neighbors
        self.backend = backend
        self.tpr = tpr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.detector_tags.requires_head = False
        return tags

    def effective_params(self, n_features, n_classes=None, n_samples=None):
        """As :meth:`BaseDetector.effective_params`; ``n_neighbors`` may not exceed the fitting rows."""
        if n_samples is not None and self.n_neighbors > n_samples:
            raise ValueError(f"n_neighbors={self.n_neighbors} exceeds the {n_samples} fitting rows")
        return self.get_params()

    def fit_statistics(self, X, y, head, train_mean):
        n = X.shape[0]
        if self.n_neighbors > n:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} exceeds the number of fitting rows: "
                f"got {n} sample(s); KNN needs at least n_neighbors training features."
            )
        if self.backend == "faiss" and not _faiss_available():
            raise MissingExtraError(
                "backend='faiss' needs faiss: pip install faiss-cpu (or use backend='sklearn')."
            )
        self.train_features_ = np.ascontiguousarray(_normalise(X))
        # read-only: a faiss index of this very array may be cached for scoring
        self.train_features_.setflags(write=False)

    @property
    def block_width(self):
        return self.train_features_.shape[0]

    def _use_faiss(self) -> bool:
        return self.backend == "faiss" or (self.backend == "auto" and _faiss_available())

    def score_block(self, X):
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            # NaN at the bad rows: the caller reports the first one by its row
            return np.where(bad, np.nan, 0.0)
        Z = _normalise(X, X.dtype)
        k = self.n_neighbors
        if self._use_faiss():
            index = _faiss_index(self.train_features_)
            sq, _ = index.search(np.ascontiguousarray(Z), k)
            return -np.maximum(sq[:, -1].astype(np.float64), 0.0)
        # algorithm="brute" only stores the array: rebuilding it per chunk is cheap
        nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(self.train_features_)
        dist, _ = nn.kneighbors(Z)
        return _negative_square(dist[:, -1])

    def calibration_scores(self, X):
        k = self.n_neighbors
        if self.train_features_.shape[0] <= k:
            return self._score_all(X)
        nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(self.train_features_)
        # kneighbors() without X leaves each row out of its own neighbours
        dist, _ = nn.kneighbors()
        return _negative_square(dist[:, -1])
