"""The decision rule of the searches: informative, or the fallback.

From each candidate's validation scores (kept as placements,
:class:`CandidateResults`) a paired bootstrap gives every candidate's FPR
and AUROC an interval and its gap to the leader an interval; :func:`choose`
applies the rule (docs/tuning.md): the choice is *informative* when the OOD
set is separated from ID at some eligible candidate and some eligible
candidate is worse than the leader beyond sampling noise; otherwise the
fallback (:func:`fallback_index`: the detector's defaults, or the eligible
candidate nearest them) is returned. The searches (:mod:`skdice._search`)
fill the results and read the choice; nothing here scores anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter

import numpy as np
from scipy.stats import rankdata

from ._bootstrap import Placement, bootstrap_placements, rank_of_tpr
from ._search_grid import is_number, same_value

__all__ = ["CandidateResults", "Choice", "choose", "decide", "fallback_index"]

METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")


def decide(*, metric, point, replicates, auroc_replicates, eligible, tie_order, fallback, confidence):
    """Apply the informativeness rule; returns the chosen index and the record of why."""
    alpha = 1.0 - confidence
    q = [alpha / 2, 1 - alpha / 2]
    G = point.size
    # "better" is lower FPR or higher AUROC: work with the metric as a loss
    loss = point if metric == "fpr95" else -point
    loss_rep = replicates if metric == "fpr95" else -replicates
    pool = np.flatnonzero(eligible) if eligible.any() else np.arange(G)
    best = loss[pool].min()
    tied = pool[loss[pool] == best]
    leader = int(tied[np.argmin(tie_order[tied])])
    gap_rep = loss_rep - loss_rep[leader]
    gap_lo, gap_hi = np.quantile(gap_rep, q, axis=1)
    auc_lo = np.quantile(auroc_replicates, alpha / 2, axis=1)
    separated = auc_lo > 0.5
    worse = (gap_lo > 0) & eligible
    worse[leader] = False
    label = "FPR" if metric == "fpr95" else "AUROC"
    level = f"{100 * confidence:g}%"
    if not eligible.any():
        reason = "every candidate breaks the classifier: the ID-accuracy guard flags all of them"
        informative = False
    elif not separated[eligible].any():
        reason = (
            f"the OOD validation set is not separated from ID at any candidate: no AUROC {level} "
            f"interval lies above 50% (the highest lower end is {100 * auc_lo[eligible].max():.1f}%)"
        )
        informative = False
    elif not worse.any():
        others = int(eligible.sum()) - 1
        reason = (
            "only one candidate passes the ID-accuracy guard"
            if others == 0
            else f"every candidate is within sampling noise of the best: the {level} paired-bootstrap "
            f"interval of each {label} difference includes 0"
        )
        informative = False
    else:
        reason = (
            f"the best candidate beats {int(worse.sum())} of {int(eligible.sum()) - 1} others beyond "
            f"sampling noise: {level} paired-bootstrap intervals of the {label} differences above 0"
        )
        informative = True
    chosen = leader if informative else fallback
    return chosen, leader, informative, reason, gap_rep, gap_lo, gap_hi, separated, worse


def fallback_index(candidates, defaults, tie_order, eligible):
    """The eligible candidate equal to the default parameters, else the nearest eligible one.

    Nearest: the smallest sum over the parameters of ``|value - default|``
    divided by the parameter's span in the grid (a non-numeric value counts
    1 unless it equals the default); ties by the tie rule. When no candidate
    is eligible, all of them are considered.
    """
    pool = np.flatnonzero(eligible) if eligible.any() else np.arange(len(candidates))
    distance = np.zeros(len(candidates))
    for name in candidates[0]:
        values = [c[name] for c in candidates]
        default = defaults.get(name)
        if is_number(default) and all(is_number(v) for v in values):
            span = float(max(values) - min(values)) or 1.0
            distance += np.abs(np.asarray(values, dtype=np.float64) - float(default)) / span
        else:
            distance += np.array([0.0 if same_value(v, default) else 1.0 for v in values])
    nearest = pool[distance[pool] == distance[pool].min()]
    return int(nearest[np.argmin(tie_order[nearest])])



class CandidateResults:
    """What the search keeps of each candidate: placements, scores, metrics, times, guard figures."""

    def __init__(self, n_sets):
        self.n_sets = n_sets
        self.id_scores, self.places = [], []
        self.metrics = {k: [] for k in METRICS}
        self.fit_time, self.score_time, self.accuracy, self.n_kept = [], [], [], []

    def add(self, s_id, s_noise, tpr, fit_time, accuracy, n_kept):
        places = [Placement(s_id, s) for s in s_noise]
        k = rank_of_tpr(s_id.size, tpr)
        # every metric from the sorted orders the bootstrap reuses (equal to
        # skdice.metrics, which a test checks), not four more sorts per set
        point = np.array([(*place.metrics(k), *place.average_precisions()) for place in places])
        for key, column in zip(METRICS, point.mean(axis=0)):
            self.metrics[key].append(column)
        self.id_scores.append(s_id)
        self.places.append(places)
        self.fit_time.append(fit_time)
        self.score_time.append(0.0)
        self.accuracy.append(accuracy)
        self.n_kept.append(n_kept)


@dataclass
class Choice:
    """What :func:`choose` decides: the indices, the verdict and the columns of ``cv_results_``."""

    chosen: int
    leader: int
    fallback: int
    informative: bool
    reason: str
    test_score: np.ndarray
    columns: dict
    bootstrap_time: float


def choose(results, candidates, defaults, tie_order, *, metric, tpr, guard, max_accuracy_drop,
           dense_accuracy, n_bootstrap, confidence, fallback, random_state):
    """Apply the rule to every candidate's results: the choice and the columns of ``cv_results_``.

    Parameters
    ----------
    results : CandidateResults
    candidates : list of dict
    defaults : dict
        The detector's default parameters (the fallback's target).
    tie_order : ndarray of shape (n_candidates,)
        Lower wins a tie.
    metric, tpr, guard, max_accuracy_drop, n_bootstrap, confidence, fallback, random_state
        The search's parameters of the same names.
    dense_accuracy : float or None
        The dense head's ID accuracy (None: the guard did not run).

    Returns
    -------
    Choice
    """
    G = len(candidates)
    metrics = {k: np.asarray(v, dtype=np.float64) for k, v in results.metrics.items()}
    test_score = -metrics["fpr95"] if metric == "fpr95" else metrics["auroc"].copy()
    rank = rankdata(-test_score, method="min").astype(np.int32)
    accuracy = np.asarray(results.accuracy)
    if dense_accuracy is not None:
        flagged = dense_accuracy - accuracy > max_accuracy_drop + 1e-12
    else:
        flagged = np.zeros(G, dtype=bool)
    eligible = ~flagged if guard else np.ones(G, dtype=bool)

    start = perf_counter()
    fpr_rep, auc_rep = bootstrap_placements(results.places, tpr, n_bootstrap, random_state)
    fallback_at = fallback_index(candidates, defaults, tie_order, eligible)
    replicates = fpr_rep if metric == "fpr95" else auc_rep
    chosen, leader, informative, reason, _, gap_lo, gap_hi, separated, worse = decide(
        metric=metric, point=metrics[metric], replicates=replicates,
        auroc_replicates=auc_rep, eligible=eligible, tie_order=tie_order,
        fallback=fallback_at, confidence=confidence,
    )
    bootstrap_time = perf_counter() - start
    if not informative and not fallback:
        chosen = leader
    alpha = 1 - confidence
    q = [alpha / 2, 1 - alpha / 2]
    fpr_lo, fpr_hi = np.quantile(fpr_rep, q, axis=1)
    auc_lo, auc_hi = np.quantile(auc_rep, q, axis=1)
    point = metrics[metric]
    gap = point - point[leader] if metric == "fpr95" else point[leader] - point
    columns = {
        "split0_test_score": test_score,
        "mean_test_score": test_score.copy(),
        "std_test_score": np.zeros(G),
        "rank_test_score": rank,
        **metrics,
        "fpr95_ci_low": fpr_lo,
        "fpr95_ci_high": fpr_hi,
        "auroc_ci_low": auc_lo,
        "auroc_ci_high": auc_hi,
        "gap": gap,
        "gap_ci_low": gap_lo,
        "gap_ci_high": gap_hi,
        "worse": worse,
        "separated": separated,
        "id_accuracy": accuracy,
        "flagged": flagged,
        "n_kept": np.asarray(results.n_kept, dtype=np.int64),
    }
    return Choice(int(chosen), int(leader), int(fallback_at), bool(informative), reason,
                  test_score, columns, bootstrap_time)
