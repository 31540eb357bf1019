"""The paired bootstrap behind the searches' verdict: metrics of resampled scores, never rescored.

Resampling the validation rows only changes how often each row counts, so
every resample's FPR and AUROC come from running sums of draw counts along
each candidate's sorted scores (:class:`Placement`); the sample's own
metrics, AUPR included, come from the same sorted orders. Every candidate is
measured on the same resamples (the differences are paired). Used by
:mod:`skdice._search`; :func:`paired_bootstrap` is public through
:mod:`skdice.tuning`.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "DEFAULT_N_BOOTSTRAP",
    "Placement",
    "bootstrap_placements",
    "draw_counts",
    "paired_bootstrap",
    "rank_of_tpr",
    "resampled_metrics",
]

#: Bootstrap resamples of the validation rows behind every interval (200: the
#: resampling then costs about a twentieth of a scoring pass per candidate on a
#: 2048 x 1000 head; benchmarks/bench_search.py).
DEFAULT_N_BOOTSTRAP = 200

# Elements of one (resamples x distinct scores) matrix of the bootstrap (32 MiB of float64).
_BOOTSTRAP_BUDGET = 2**22


class Placement:
    """Where each ID score of one candidate falls among the sorted OOD scores of one set.

    Resampling only changes how often each row is drawn, so every resample's
    metric comes from running sums of draw counts along these fixed orders,
    and the sample's own metrics from the orders alone.
    """

    def __init__(self, s_id, s_ood):
        # row indices in int32 below 2**31 rows: the placements of every candidate
        # and set stay in memory until the bootstrap, 20 bytes a row instead of 56
        index = np.int32 if max(s_id.size, s_ood.size) < 2**31 else np.int64
        ood_order = np.argsort(s_ood, kind="stable")
        sorted_ood = s_ood[ood_order]
        self.ood_order = ood_order.astype(index)
        del ood_order
        self.below = np.searchsorted(sorted_ood, s_id, side="left").astype(index)  # OOD < s_id
        upto = np.searchsorted(sorted_ood, s_id, side="right")  # OOD scores <= s_id
        self.ties = upto.astype(index) if np.any(upto != self.below) else None
        del upto
        id_order = np.argsort(s_id, kind="stable")  # ID scores, smallest first
        sorted_id = s_id[id_order]
        self.id_order = id_order.astype(index)
        self.below_sorted = self.below[id_order]
        del id_order
        self.n_id, self.n_ood = s_id.size, s_ood.size
        self._average_precisions = self._precisions(sorted_id, sorted_ood)

    def average_precisions(self):
        """AUPR-In and AUPR-Out of the sample, as :func:`skdice.metrics.aupr_in` and ``aupr_out``."""
        return self._average_precisions

    def _precisions(self, sorted_id, sorted_ood):
        """Average precision, ``sum over thresholds of (recall step) x precision``,
        one threshold per distinct score (ties move together), read off the
        two sorted score vectors (which are not kept)."""
        values, counts = _distinct(sorted_id[::-1])  # ID positive: largest first
        tp = np.cumsum(counts)
        fp = self.n_ood - np.searchsorted(sorted_ood, values, side="left")
        ap_in = np.sum(counts / self.n_id * tp / (tp + fp))
        values, counts = _distinct(sorted_ood)  # OOD positive, negated scores: smallest first
        tp = np.cumsum(counts)
        fp = np.searchsorted(sorted_id, values, side="right")
        ap_out = np.sum(counts / self.n_ood * tp / (tp + fp))
        return float(ap_in), float(ap_out)

    def metrics(self, k):
        """FPR at the TPR of the ``k``-th largest ID score, and AUROC, of the sample itself.

        Equal to :func:`skdice.metrics.fpr_at_tpr` and :func:`skdice.metrics.auroc`:
        every OOD score at or above the threshold is accepted, ties count half.
        """
        fpr = (self.n_ood - self.below_sorted[self.n_id - k]) / self.n_ood
        placed = self.below.sum(dtype=np.float64)
        if self.ties is not None:
            placed = 0.5 * (placed + self.ties.sum(dtype=np.float64))
        return float(fpr), float(placed / (self.n_id * self.n_ood))


def _distinct(sorted_values):
    """The distinct values of a sorted vector and how often each occurs."""
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    return sorted_values[starts], np.diff(np.r_[starts, sorted_values.size])


def resampled_metrics(place, c_id, c_ood, k):
    """FPR at the TPR of the ``k``-th largest drawn ID score, and AUROC, for each resample.

    ``c_id`` (n_id, resamples) and ``c_ood`` (n_ood, resamples) hold how often
    each row is drawn in each resample, every column summing to its set's
    size (columns of ones give :meth:`Placement.metrics`). Rows run down the
    first axis so that every running sum adds contiguous rows.
    """
    n_id, b = c_id.shape
    n_ood = c_ood.shape[0]
    # cum[j]: OOD draws among the j smallest OOD scores
    cum = np.zeros((n_ood + 1, b), dtype=c_ood.dtype)
    np.cumsum(c_ood[place.ood_order], axis=0, out=cum[1:])
    placed = cum[place.below]
    if place.ties is not None:
        placed = 0.5 * (placed + cum[place.ties])
    auc = np.einsum("ib,ib->b", c_id, placed, dtype=np.float64) / (n_id * n_ood)
    # the k-th largest of n_id draws is the r-th smallest: only the low tail of
    # the ID scores needs a running sum (about 1 - tpr of them, plus a margin)
    r = n_id - k + 1
    rows = min(n_id, r + int(6 * np.sqrt(r)) + 32)
    drawn = np.cumsum(c_id[place.id_order[:rows]], axis=0)
    if rows < n_id and np.any(drawn[-1] < r):
        drawn = np.cumsum(c_id[place.id_order], axis=0)
    position = (drawn < r).sum(axis=0)  # of the r-th smallest drawn ID score
    fpr = (n_ood - cum[place.below_sorted[position], np.arange(b)].astype(np.float64)) / n_ood
    return fpr, auc


def rank_of_tpr(n_id: int, tpr: float) -> int:
    """How many ID rows the threshold at ``tpr`` keeps: the smallest ``k`` with ``k / n_id >= tpr``.

    Compared in floating point as :func:`sklearn.metrics.roc_curve` does.

    Parameters
    ----------
    n_id : int
    tpr : float

    Returns
    -------
    int
    """
    return int(np.searchsorted(np.arange(1, n_id + 1) / n_id, tpr, side="left")) + 1


def draw_counts(rng, n_resamples, n_rows):
    """How often each row is drawn in each resample: ``(n_rows, n_resamples)``.

    Counts are float32, whose running sums of whole counts are exact below 2**24 rows
    (and whose sums down the first axis run several times faster than
    int32's); float64 above. One ``bincount`` per resample keeps its bins in
    cache (a single one over every resample scatters across all of them).

    Parameters
    ----------
    rng : numpy.random.Generator
    n_resamples, n_rows : int

    Returns
    -------
    ndarray of shape (n_rows, n_resamples)
    """
    index = np.int32 if n_rows < 2**31 else np.int64
    draws = rng.integers(0, n_rows, size=(n_resamples, n_rows), dtype=index)
    counts = np.empty((n_resamples, n_rows), dtype=np.float32 if n_rows < 2**24 else np.float64)
    for b in range(n_resamples):
        counts[b] = np.bincount(draws[b], minlength=n_rows)
    return counts.T.copy()


def paired_bootstrap(id_scores, ood_scores, *, tpr=0.95, n_bootstrap=DEFAULT_N_BOOTSTRAP, random_state=0):
    """FPR at ``tpr`` and AUROC of every candidate on the same bootstrap resamples.

    The ID rows and the rows of each OOD set are resampled independently
    (with replacement, each set keeping its size), and every candidate is
    measured on the same resamples, so that differences between candidates
    are paired. With several OOD sets a resample's metric is the mean over
    the sets. Only the scores are resampled: nothing is scored again.

    Parameters
    ----------
    id_scores : sequence of ndarray of shape (n_id,)
        Each candidate's scores of the ID validation rows.
    ood_scores : sequence of sequence of ndarray
        ``ood_scores[g][j]``: candidate ``g``'s scores of OOD set ``j``.
    tpr : float, default=0.95
    n_bootstrap : int, default=200
    random_state : int, RandomState instance or None, default=0

    Returns
    -------
    fpr : ndarray of shape (n_candidates, n_bootstrap)
    auroc : ndarray of shape (n_candidates, n_bootstrap)
    """
    places = [[Placement(np.asarray(s_id, dtype=np.float64), np.asarray(s, dtype=np.float64))
               for s in sets] for s_id, sets in zip(id_scores, ood_scores)]
    return bootstrap_placements(places, tpr, n_bootstrap, random_state)


def bootstrap_placements(places, tpr, n_bootstrap, random_state, *, per_set=False):
    """:func:`paired_bootstrap` from the candidates' :class:`Placement` objects.

    Resamples are drawn in batches whose count matrices stay within about
    32 MiB, so memory does not grow with ``n_bootstrap``.

    Parameters
    ----------
    places : list of list of Placement
        ``places[g][j]``: candidate ``g`` on OOD set ``j``.
    tpr : float
    n_bootstrap : int
    random_state : int, RandomState instance or None
    per_set : bool, default=False
        Return every OOD set's resampled metrics instead of their mean
        (the same resamples: the mean over the sets' axis is the default
        return).

    Returns
    -------
    fpr : ndarray of shape (n_candidates, n_bootstrap) or (n_candidates, n_sets, n_bootstrap)
    auroc : ndarray of the same shape
    """
    G, n_sets = len(places), len(places[0])
    n_id = places[0][0].n_id
    n_ood = [place.n_ood for place in places[0]]
    k = rank_of_tpr(n_id, tpr)
    step = max(1, min(n_bootstrap, _BOOTSTRAP_BUDGET // max(n_id, *n_ood)))
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    rng = np.random.default_rng(seed)
    fpr = np.zeros((G, n_sets, n_bootstrap))
    auc = np.zeros((G, n_sets, n_bootstrap))
    for start in range(0, n_bootstrap, step):
        b = min(step, n_bootstrap - start)
        c_id = draw_counts(rng, b, n_id)
        c_ood = [draw_counts(rng, b, n) for n in n_ood]
        for g in range(G):
            for j in range(n_sets):
                f, a = resampled_metrics(places[g][j], c_id, c_ood[j], k)
                fpr[g, j, start : start + b] = f
                auc[g, j, start : start + b] = a
    if per_set:
        return fpr, auc
    return fpr.mean(axis=1), auc.mean(axis=1)
