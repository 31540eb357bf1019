"""The decision rule of the searches: keep the defaults unless real and synthetic outliers agree.

From each candidate's validation scores (kept as placements,
:class:`CandidateResults`) a paired bootstrap gives every candidate's FPR
and AUROC per OOD validation set on the same resamples; :func:`choose`
applies the rule (docs/tuning.md, "The rule"): the search starts from the
method's defaults (:func:`fallback_index`: the defaults, or the eligible
candidate nearest them) and moves to another candidate only when that
candidate beats the defaults beyond sampling noise on every validation set,
and the sets given include real OOD images and synthetic outliers. Such a
move is *informative*; otherwise the defaults stay and the reason names the
set that decided. The searches fill the results and read the choice;
nothing here scores anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter

import numpy as np
from scipy.stats import rankdata

from ._bootstrap import Placement, bootstrap_placements, rank_of_tpr
from ._search_grid import is_number, same_value, spell_params

__all__ = ["REAL", "SYNTHETIC", "CandidateResults", "Choice", "Verdict", "choose", "decide", "fallback_index"]

METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")


#: the kind of an OOD validation set: what the rule lets it do (docs/tuning.md, "The rule")
REAL, SYNTHETIC = "real", "synthetic"


@dataclass
class Verdict:
    """What :func:`decide` found: the chosen index, the leader, the verdict and the deciding set."""

    chosen: int
    leader: int
    informative: bool
    reason: str
    decided_by: int | None
    beats_defaults: np.ndarray
    margin_low: np.ndarray


def _points(x) -> str:
    return f"{100 * x:.1f}"


def decide(*, metric, point, set_replicates, eligible, tie_order, anchor, confidence, kinds, names,
           spell):
    """Apply the rule (docs/tuning.md): keep the defaults unless real and synthetic outliers agree.

    A candidate replaces ``anchor`` (the defaults, or the eligible candidate
    nearest them) only when the lower end of the ``confidence`` interval of
    its improvement over the anchor is above 0 on *every* validation set, and
    the sets include a real OOD set and a synthetic one. Among such
    candidates the best by the mean ``point`` metric (then ``tie_order``)
    is chosen.

    Parameters
    ----------
    metric : {"fpr95", "auroc"}
    point : ndarray of shape (n_candidates,)
        The metric, mean over the sets.
    set_replicates : ndarray of shape (n_candidates, n_sets, n_bootstrap)
        The metric on the paired resamples, per set.
    eligible : ndarray of bool of shape (n_candidates,)
        Not flagged by the guard.
    tie_order : ndarray of shape (n_candidates,)
        Lower wins a tie.
    anchor : int
        The defaults' index (:func:`fallback_index`).
    confidence : float
    kinds : sequence of {"real", "synthetic"}
        Each set's kind.
    names : sequence of str
        Each set's name, for the reason.
    spell : callable
        ``spell(index) -> str``: a candidate's parameters in words.

    Returns
    -------
    Verdict
    """
    alpha = 1.0 - confidence
    G = point.size
    # "better" is lower FPR or higher AUROC: work with the metric as a loss
    loss = point if metric == "fpr95" else -point
    loss_sets = set_replicates if metric == "fpr95" else -set_replicates
    pool = np.flatnonzero(eligible) if eligible.any() else np.arange(G)
    best = loss[pool].min()
    tied = pool[loss[pool] == best]
    leader = int(tied[np.argmin(tie_order[tied])])
    # how much better than the anchor each candidate is on each set, per resample
    margin = loss_sets[anchor][None] - loss_sets
    margin_low = np.quantile(margin, alpha / 2, axis=2)
    margin_high = np.quantile(margin, 1 - alpha / 2, axis=2)
    beats = (margin_low > 0).all(axis=1)
    beats[anchor] = False
    movable = beats & eligible
    level = f"{100 * confidence:g}%"
    label = "FPR" if metric == "fpr95" else "AUROC"
    kinds = list(kinds)
    have = set(kinds)

    def margin_words(c, j):
        mean = margin[c, j].mean()
        how = f"{_points(abs(mean))} points {'better' if mean >= 0 else 'worse'}"
        return (f"{label} {how} on {names[j]!r} ({level} interval of the improvement: "
                f"{_points(margin_low[c, j])} to {_points(margin_high[c, j])})")

    decided_by = None
    if not eligible.any():
        reason = "every candidate breaks the classifier: the ID-accuracy guard flags all of them"
    elif REAL not in have:
        reason = ("no real OOD validation set was given: synthetic outliers (noise, generated "
                  "pixels, corrupted ID images) can confirm a move from the defaults but not make one")
    elif SYNTHETIC not in have:
        reason = ("no synthetic outlier set was given: a move from the defaults needs a real OOD "
                  "set and a synthetic one to agree")
    elif movable.any():
        pick = np.flatnonzero(movable)
        pick = pick[loss[pick] == loss[pick].min()]
        chosen = int(pick[np.argmin(tie_order[pick])])
        decided_by = int(np.argmin(margin_low[chosen]))
        reason = (f"{spell(chosen)} beats the defaults {spell(anchor)} beyond sampling noise on each "
                  f"of the {len(names)} validation sets, real and synthetic; the narrowest margin: "
                  + margin_words(chosen, decided_by))
        return Verdict(chosen, leader, True, reason, decided_by, beats, margin_low)
    else:
        rest = np.setdiff1d(pool, [anchor])
        rival = int(rest[np.argmin(loss[rest])]) if rest.size else None
        if rival is None:
            reason = "only one candidate passes the ID-accuracy guard"
        elif eligible[anchor] and loss[anchor] == best:
            # the evidence agrees with the defaults: the best by the mean (a tie counts), and unbeaten
            decided_by = int(np.argmin(margin_low[rival]))
            reason = (f"the defaults {spell(anchor)} are the best candidate by the mean over the "
                      f"{len(names)} validation sets, real and synthetic; the closest rival, "
                      f"{spell(rival)}, is " + margin_words(rival, decided_by))
            return Verdict(anchor, leader, True, reason, decided_by, beats, margin_low)
        else:
            decided_by = int(np.argmin(margin_low[rival]))
            reason = (f"no candidate beats the defaults {spell(anchor)} beyond sampling noise on every "
                      f"validation set: the best candidate by the mean, {spell(rival)}, is "
                      + margin_words(rival, decided_by))
    return Verdict(anchor, leader, False, reason, decided_by, beats, margin_low)


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
    decided_by: int | None = None


def choose(results, candidates, defaults, tie_order, *, metric, tpr, guard, max_accuracy_drop,
           dense_accuracy, n_bootstrap, confidence, fallback, random_state, kinds, names):
    """Apply the rule to every candidate's results: the choice and the columns of ``cv_results_``.

    Parameters
    ----------
    results : CandidateResults
    candidates : list of dict
    defaults : dict
        The detector's default parameters (the anchor of the rule).
    tie_order : ndarray of shape (n_candidates,)
        Lower wins a tie.
    metric, tpr, guard, max_accuracy_drop, n_bootstrap, confidence, fallback, random_state
        The search's parameters of the same names.
    dense_accuracy : float or None
        The dense head's ID accuracy (None: the guard did not run).
    kinds : sequence of {"real", "synthetic"}
        The kind of each OOD validation set, in the order of the results.
    names : sequence of str
        Their names.

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
    fpr_sets, auc_sets = bootstrap_placements(results.places, tpr, n_bootstrap, random_state, per_set=True)
    fpr_rep, auc_rep = fpr_sets.mean(axis=1), auc_sets.mean(axis=1)
    anchor = fallback_index(candidates, defaults, tie_order, eligible)
    verdict = decide(
        metric=metric, point=metrics[metric], set_replicates=fpr_sets if metric == "fpr95" else auc_sets,
        eligible=eligible, tie_order=tie_order, anchor=anchor, confidence=confidence, kinds=kinds,
        names=names, spell=lambda i: spell_params(candidates[i]),
    )
    bootstrap_time = perf_counter() - start
    leader = verdict.leader
    chosen = verdict.chosen if verdict.informative or fallback else leader
    alpha = 1 - confidence
    q = [alpha / 2, 1 - alpha / 2]
    fpr_lo, fpr_hi = np.quantile(fpr_rep, q, axis=1)
    auc_lo, auc_hi = np.quantile(auc_rep, q, axis=1)
    replicates = fpr_rep if metric == "fpr95" else -auc_rep
    gap_rep = replicates - replicates[leader]
    gap_lo, gap_hi = np.quantile(gap_rep, q, axis=1)
    worse = (gap_lo > 0) & eligible
    worse[leader] = False
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
        "separated": auc_lo > 0.5,
        "beats_defaults": verdict.beats_defaults,
        "id_accuracy": accuracy,
        "flagged": flagged,
        "n_kept": np.asarray(results.n_kept, dtype=np.int64),
    }
    return Choice(int(chosen), int(leader), int(anchor), verdict.informative, verdict.reason,
                  test_score, columns, bootstrap_time, verdict.decided_by)
