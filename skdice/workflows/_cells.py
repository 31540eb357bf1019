"""The cells of a benchmark table: four metrics of one method on one OOD set, and their spread.

A cell's value on one store is the metric of the ID scores against the OOD
set's scores (:mod:`skdice.metrics`). Its bootstrap resamples redraw the ID
rows and the OOD rows independently, with replacement, each set keeping its
size; a resample only changes how often each row counts, so the four metrics
of every resample come from running sums of draw counts along one sorted
order of the pooled scores (:class:`Pair`), never from re-sorting. Resample
``b`` of a set draws its rows from ``numpy.random.default_rng([seed, store,
set, b])`` (:func:`resample_rows`), so any resample can be redrawn on its own
(the tests compare with scikit-learn on the redrawn scores) and the values do
not depend on how many resamples are computed at a time.
"""

from __future__ import annotations

import numpy as np

from .._bootstrap import rank_of_tpr

__all__ = ["Pair", "draw_batch", "resample_rows", "summary"]

#: metric keys of a cell, in table order
METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")

# elements of one (distinct scores x resamples) matrix: 32 MiB of float64
_BUDGET = 2**22


def resample_rows(seed: int, store: int, which: int, b: int, n: int) -> np.ndarray:
    """The rows drawn by resample ``b`` of set ``which`` of store ``store``: ``n`` indices in ``[0, n)``.

    Parameters
    ----------
    seed : int
        The protocol's seed.
    store : int
        The store's position in the benchmark.
    which : int
        0 for the ID set (the ID test split, with the CSID splits appended in
        full-spectrum mode), ``j + 1`` for the ``j``-th OOD test split
        (near, then far).
    b : int
        The resample.
    n : int
        The set's size.

    Returns
    -------
    ndarray of shape (n,)
    """
    return np.random.default_rng([seed, store, which, b]).integers(0, n, size=n)


def draw_batch(seed: int, store: int, which: int, resamples: range, n: int) -> np.ndarray:
    """How often each row is drawn in each of ``resamples``: ``(n, len(resamples))`` float64.

    Parameters
    ----------
    seed, store, which : int
        As :func:`resample_rows`.
    resamples : range
    n : int

    Returns
    -------
    ndarray of shape (n, len(resamples))
    """
    counts = np.empty((n, len(resamples)))
    for j, b in enumerate(resamples):
        counts[:, j] = np.bincount(resample_rows(seed, store, which, b, n), minlength=n)
    return counts


def batch_size(n_rows: int, n_resamples: int) -> int:
    """Resamples computed at a time so that one ``(n_rows, batch)`` matrix stays within the budget."""
    return max(1, min(n_resamples, _BUDGET // max(1, n_rows)))


class Pair:
    """The ID scores and one OOD set's scores of one method, pooled and sorted once.

    Parameters
    ----------
    s_id : ndarray of shape (n_id,)
    s_ood : ndarray of shape (n_ood,)

    Notes
    -----
    Every distinct score is a threshold (ties move together), as on
    scikit-learn's exact curves. For counts ``A`` of ID rows and ``O`` of OOD
    rows at each distinct score (ascending): AUROC is the sum of
    ``A (O below + O / 2)`` over ``n_id n_ood``; AUPR-In the mean over ID
    rows of the precision at their score (ID ``>=`` as positives); AUPR-Out
    the same for OOD rows (OOD ``<=``); FPR at ``tpr`` the share of the other
    class on the positive side of the threshold that keeps the first
    ``rank_of_tpr`` positives (the ``k``-th largest ID score with
    ``positive="id"``, the ``k``-th smallest OOD score with ``"ood"``).
    """

    def __init__(self, s_id, s_ood):
        s_id = np.asarray(s_id, dtype=np.float64)
        s_ood = np.asarray(s_ood, dtype=np.float64)
        self.n_id, self.n_ood = s_id.size, s_ood.size
        pooled = np.concatenate([s_id, s_ood])
        order = np.argsort(pooled, kind="stable")
        values = pooled[order]
        group = np.cumsum(np.r_[False, values[1:] != values[:-1]])  # distinct-score index of each row
        self.n_groups = int(group[-1]) + 1
        is_id = order < self.n_id
        self.id_rows, self.ood_rows = order[is_id], order[~is_id] - self.n_id
        # rows of each class at a distinct score <= g: the bounds of running sums along the sorted rows
        self.id_upto = np.searchsorted(group[is_id], np.arange(self.n_groups), side="right")
        self.ood_upto = np.searchsorted(group[~is_id], np.arange(self.n_groups), side="right")

    def _per_score(self, counts, rows, upto):
        cum = np.zeros((rows.size + 1, counts.shape[1]))
        np.cumsum(counts[rows], axis=0, out=cum[1:])
        at = cum[upto]  # rows of the class at a score <= each distinct score
        return np.diff(at, axis=0, prepend=0.0), at

    def metrics(self, c_id, c_ood, *, tpr: float = 0.95, positive: str = "id") -> np.ndarray:
        """The four metrics, in percent, of each resample given by draw counts.

        Parameters
        ----------
        c_id : ndarray of shape (n_id, B)
            How often each ID row is drawn in each resample (each column sums to ``n_id``).
        c_ood : ndarray of shape (n_ood, B)
        tpr : float, default=0.95
        positive : {"id", "ood"}, default="id"

        Returns
        -------
        ndarray of shape (4, B)
            FPR at ``tpr``, AUROC, AUPR-In, AUPR-Out (:data:`METRICS` order).
        """
        n_id, n_ood = self.n_id, self.n_ood
        A, cum_a = self._per_score(c_id, self.id_rows, self.id_upto)
        O, cum_o = self._per_score(c_ood, self.ood_rows, self.ood_upto)
        auroc = np.einsum("gb,gb->b", A, cum_o - 0.5 * O) / (n_id * n_ood)
        tp_in, fp_in = n_id - cum_a + A, n_ood - cum_o + O  # at or above each score
        with np.errstate(invalid="ignore", divide="ignore"):
            ap_in = np.where(A > 0, A * tp_in / (tp_in + fp_in), 0.0).sum(axis=0) / n_id
            ap_out = np.where(O > 0, O * cum_o / (cum_o + cum_a), 0.0).sum(axis=0) / n_ood
        cols = np.arange(A.shape[1])
        if positive == "id":
            g = (tp_in >= rank_of_tpr(n_id, tpr)).sum(axis=0) - 1  # tp_in falls as the score rises
            fpr = fp_in[g, cols] / n_ood
        else:
            g = (cum_o < rank_of_tpr(n_ood, tpr)).sum(axis=0)
            fpr = cum_a[g, cols] / n_id
        return 100 * np.stack([fpr, auroc, ap_in, ap_out])


def summary(per_store, replicates=None, confidence: float = 0.95) -> dict:
    """Mean, std and bootstrap interval of one cell.

    Parameters
    ----------
    per_store : ndarray of shape (4, n_stores)
        The cell's value on each store, in percent (:data:`METRICS` rows).
    replicates : ndarray of shape (4, B), default=None
        The mean over the stores of each bootstrap resample; None gives no interval.
    confidence : float, default=0.95

    Returns
    -------
    dict
        ``{metric: mean, metric + "_std": population std over the stores
        (NumPy's default, as OpenOOD's eval_ood.py), metric + "_ci_low",
        metric + "_ci_high"}`` (the percentile interval; None without
        resamples), for each metric.
    """
    per_store = np.asarray(per_store, dtype=np.float64)
    out = {}
    alpha = (1 - confidence) / 2
    for i, key in enumerate(METRICS):
        out[key] = float(np.mean(per_store[i]))
        out[f"{key}_std"] = float(np.std(per_store[i]))
    for i, key in enumerate(METRICS):
        if replicates is None:
            out[f"{key}_ci_low"] = out[f"{key}_ci_high"] = None
        else:
            low, high = np.quantile(replicates[i], [alpha, 1 - alpha])
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(low), float(high)
    return out
