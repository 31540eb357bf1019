"""NNGuide: nearest-neighbour guidance of the energy (Park et al., 2023)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._numeric import compute_dtype, logsumexp_rows, row_chunks

__all__ = ["NNGuideDetector"]

# torch.nn.functional.normalize's floor on the norm, as in the authors' extract_features
_NORM_FLOOR = 1e-12


def _unit_rows(X) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))[:, None]
    return X / np.maximum(norms, X.dtype.type(_NORM_FLOOR))


def _mean_of_top_k(S, k: int) -> np.ndarray:
    """Row means of the ``k`` largest entries of ``S`` (``S`` is overwritten)."""
    n_cols = S.shape[1]
    if k < n_cols:
        S = np.partition(S, n_cols - k, axis=1)[:, n_cols - k :]
    return S.mean(axis=1, dtype=np.float64)


class NNGuideDetector(BaseDetector):
    """NNGuide: the energy times the mean similarity to the k most guiding training features.

    Each training feature ``h_i`` in the bank is L2-normalised and scaled by
    its energy, ``g_i = E(h_i) h_i / ||h_i||`` with ``E = logsumexp(f)``, and

        ``S(x) = E(x) * mean_{k largest} ( z(x)^T g_i )``,   ``z = h / ||h||``,

    the k largest guided cosine similarities of the input with the bank
    (Park et al., 2023, Eq. 4-5). The energy measures confidence; the
    guidance is large only where the input lies near confident training
    features.

    Parameters
    ----------
    n_neighbors : int, default=10
        k. The authors' default (``configs/detector/nnguide.yaml``:
        ``knn_k: 10``); OpenOOD's ``nnguide.yml`` uses 100.
    tpr : float, default=0.95
        Fraction of the fitting samples kept as ID by ``predict``; see ``offset_``.

    Attributes
    ----------
    bank_ : ndarray of shape (n_train, n_features), float32
        The guided bank ``g_i``: normalised fitting features times their energy.
    weight_ : ndarray of shape (n_features, n_classes), float32
    bias_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
        Number of features seen during fit.
    offset_ : float
        The ``1 - tpr`` quantile of the fitting samples' scores, each fitting
        row scored without itself in the bank (leave-one-out, as
        :class:`~skdice.detectors.knn.KNNDetector`).

    Notes
    -----
    The authors' ``NNGuideOODDetector`` (``roomo7time/nnguide``) normalises
    with ``torch.nn.functional.normalize`` and searches the scaled bank with
    faiss ``IndexFlatIP`` (exact inner products), scoring ``mean(D) * energy``:
    the same score, same sign. OpenOOD's ``NNGuidePostprocessor`` is the same
    except for its normaliser ``x / ||x|| + 1e-10`` (the constant added to
    every coordinate), which moves a similarity by about ``1e-10 sum(g_i)``.
    Here the search is exact and brute force (one ``n x n_train`` product
    per chunk and a partial sort), so scores equal faiss's to float32
    rounding; ties among the k-th products may be broken differently, which
    leaves the mean unchanged.

    The bank holds every fitting row: fit on a sample of the training set
    (the paper's ImageNet bank is 1% of it, OpenOOD's ``alpha = 0.01``).
    Scoring costs ``n_train / n_classes`` times the head's product, so the
    bank's size sets the speed. A bank of training features does not stream:
    ``fit`` needs the rows.

    References
    ----------
    J. Park, Y. G. Jung and A. B. J. Teoh. Nearest neighbor guidance for
    out-of-distribution detection. ICCV 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from skdice.detectors.nnguide import NNGuideDetector
    >>> H = np.array([[3.0, 0.0], [0.0, 3.0], [2.0, 0.1]])
    >>> det = NNGuideDetector(n_neighbors=1).fit(H, np.eye(2), np.zeros(2))
    >>> bool(det.score_samples([[3.0, 0.1]])[0] > det.score_samples([[0.1, 0.1]])[0])
    True
    """

    name = "nnguide"
    summary = "NNGuide: energy times the mean guided similarity to the k nearest training features (Park et al., 2023)"
    #: the search grid (skdice.tuning.default_grid): k about the authors' 10 and OpenOOD's
    #: 100; values above the bank's rows are left out
    search_grid = {"n_neighbors": (1, 5, 10, 20, 50, 100, 200, 500)}

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_neighbors=10, *, tpr=0.95):
        self.n_neighbors = n_neighbors
        self.tpr = tpr

    def effective_params(self, n_features, n_classes=None, n_samples=None):
        """As :meth:`BaseDetector.effective_params`; ``n_neighbors`` may not exceed the fitting rows."""
        if n_samples is not None and self.n_neighbors > n_samples:
            raise ValueError(f"n_neighbors={self.n_neighbors} exceeds the {n_samples} fitting rows")
        return self.get_params()

    def fit_statistics(self, X, y, head, train_mean):
        n = X.shape[0]
        if self.n_neighbors > n:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} exceeds the number of fitting rows: got "
                f"{n} sample(s); NNGuide needs at least n_neighbors features in its bank."
            )
        bank = np.empty(X.shape, dtype=np.float32)
        for rows in row_chunks(n, 4 * (2 * X.shape[1] + self.weight_.shape[1])):
            block = np.asarray(X[rows], dtype=np.float32)
            energy = logsumexp_rows(self.classifier_block(block))
            bank[rows] = _unit_rows(block) * energy[:, None].astype(np.float32)
        self.bank_ = bank

    @property
    def block_width(self):
        return self.bank_.shape[0] + self.weight_.shape[1] + self.n_features_in_

    def _guidance(self, Z, leave_out=None):
        S = Z @ self.bank_.T.astype(Z.dtype, copy=False)
        if leave_out is not None:
            S[np.arange(S.shape[0]), leave_out] = -np.inf
        return _mean_of_top_k(S, self.n_neighbors)

    def score_block(self, X):
        energy = logsumexp_rows(self.classifier_block(X))
        return energy * self._guidance(_unit_rows(X))

    def calibration_scores(self, X):
        n = self.bank_.shape[0]
        if n <= self.n_neighbors or X.shape[0] != n:
            return self._score_all(X)
        scores = np.empty(n, dtype=np.float64)
        dtype = compute_dtype(X)
        for rows in row_chunks(n, dtype.itemsize * self.block_width):
            block = np.asarray(X[rows], dtype=dtype)
            energy = logsumexp_rows(self.classifier_block(block))
            # each fitting row is in the bank: leave it out, like a new ID input
            scores[rows] = energy * self._guidance(_unit_rows(block), np.arange(n)[rows])
        return scores
