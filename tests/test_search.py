"""When validation cannot choose: the paired bootstrap, the informativeness rule, the guard, the fallback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

import skdice._bootstrap as bootstrap_module
from skdice._masked import masked_head_scores
from skdice import DICEDetector, Head
from skdice.exceptions import UninformativeValidationWarning, UnlabelledValidationWarning
from skdice.tuning import DEFAULT_GRID, HyperparameterSearch, SparsitySearch, paired_bootstrap


def _problem(n_id, n_noise, seed=0, m=24, C=4, n_train=200, noise_scale=1.0):
    """ID features on the first half of the units, a head that classifies them, and noise on
    the other half, whose weights DICE drops only at larger p: p matters, and strongly."""
    rng = np.random.default_rng(seed)
    live = m // 2
    centres = np.zeros((C, m))
    centres[:, :live] = np.maximum(rng.normal(0, 1, (C, live)), 0) * 3
    centres[:, live:] = 0.05  # silent units: tiny contributions on ID
    W = np.zeros((m, C))
    W[:live] = centres[:, :live].T / 3
    W[live:] = rng.normal(0, 1, (m - live, C))

    def id_rows(n):
        y = rng.integers(0, C, n)
        X = centres[y] + np.abs(rng.normal(0, 0.5, (n, m))) * (np.arange(m) < live)
        return X.astype(np.float32), y

    X_train, _ = id_rows(n_train)
    X_id, y_id = id_rows(n_id)
    X_noise = np.abs(rng.normal(0, 0.5, (n_noise, m)))
    X_noise[:, live:] = np.abs(rng.normal(0, noise_scale, (n_noise, m - live)))
    return X_train, X_id, y_id, X_noise.astype(np.float32), Head(W, np.zeros(C))


def _quiet(fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fit()
    return out, [w for w in caught if issubclass(w.category, UninformativeValidationWarning)]


# ------------------------------------------------------------ the bootstrap
def _sklearn_fpr_at_tpr(s_id, s_ood, tpr):
    y = np.r_[np.ones(s_id.size), np.zeros(s_ood.size)]
    fpr, tpr_curve, _ = roc_curve(y, np.r_[s_id, s_ood], drop_intermediate=False)
    return fpr[np.searchsorted(tpr_curve, tpr, side="left")]


@pytest.mark.parametrize("seed", range(40))
def test_resample_kernel_equals_sklearn_metrics_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_id, n_ood = rng.integers(1, 50, 2)
    # integer scores make ties within and across the two sets
    s_id = rng.integers(0, 6, n_id).astype(float) if seed % 2 else rng.normal(size=n_id)
    s_ood = rng.integers(0, 6, n_ood).astype(float) if seed % 3 else rng.normal(size=n_ood)
    tpr = [0.95, 0.5, 0.8, 1.0][seed % 4]
    place = bootstrap_module.Placement(s_id, s_ood)
    ones = (np.ones((n_id, 1), np.float32), np.ones((n_ood, 1), np.float32))
    fpr, auc = bootstrap_module.resampled_metrics(place, *ones, bootstrap_module.rank_of_tpr(n_id, tpr))
    assert fpr[0] == pytest.approx(_sklearn_fpr_at_tpr(s_id, s_ood, tpr), abs=1e-12)
    both = np.r_[s_id, s_ood]
    expected_auc = roc_auc_score(np.r_[np.ones(n_id), np.zeros(n_ood)], both)
    assert auc[0] == pytest.approx(expected_auc, abs=1e-12)
    # the sample's own metrics, without running sums
    point = place.metrics(bootstrap_module.rank_of_tpr(n_id, tpr))
    assert point == pytest.approx((fpr[0], expected_auc), abs=1e-12)
    y = np.r_[np.ones(n_id), np.zeros(n_ood)]
    assert place.average_precisions() == pytest.approx(
        (average_precision_score(y, both), average_precision_score(1 - y, -both)), abs=1e-12)


@pytest.mark.parametrize("where", ["spread", "all on the top row"])
def test_resampled_threshold_from_the_low_tail_equals_the_whole_sum(where):
    # 2000 ID rows: the running sum covers only the lowest ~190 (5% and a margin),
    # and falls back to every row when a resample draws nothing there
    rng = np.random.default_rng(5)
    s_id, s_ood = rng.normal(1, 1, 2000), rng.normal(0, 1, 300)
    if where == "spread":
        c_id = rng.multinomial(2000, np.ones(2000) / 2000)
    else:
        c_id = np.zeros(2000, dtype=int)
        c_id[np.argmax(s_id)] = 2000
    c_ood = rng.multinomial(300, np.ones(300) / 300)
    place = bootstrap_module.Placement(s_id, s_ood)
    fpr, _ = bootstrap_module.resampled_metrics(
        place, c_id[:, None].astype(np.float32), c_ood[:, None].astype(np.float32),
        bootstrap_module.rank_of_tpr(2000, 0.95))
    drawn_id, drawn_ood = np.repeat(s_id, c_id), np.repeat(s_ood, c_ood)
    assert fpr[0] == pytest.approx(_sklearn_fpr_at_tpr(drawn_id, drawn_ood, 0.95), abs=1e-12)


def test_a_resample_scores_like_its_drawn_rows():
    rng = np.random.default_rng(3)
    s_id, s_ood = rng.integers(0, 9, 30).astype(float), rng.integers(0, 9, 40).astype(float)
    c_id, c_ood = rng.multinomial(30, np.ones(30) / 30), rng.multinomial(40, np.ones(40) / 40)
    place = bootstrap_module.Placement(s_id, s_ood)
    fpr, auc = bootstrap_module.resampled_metrics(
        place, c_id[:, None].astype(np.float32), c_ood[:, None].astype(np.float32),
        bootstrap_module.rank_of_tpr(30, 0.95),
    )
    drawn_id, drawn_ood = np.repeat(s_id, c_id), np.repeat(s_ood, c_ood)
    assert fpr[0] == pytest.approx(_sklearn_fpr_at_tpr(drawn_id, drawn_ood, 0.95), abs=1e-12)
    y = np.r_[np.ones(30), np.zeros(40)]
    assert auc[0] == pytest.approx(roc_auc_score(y, np.r_[drawn_id, drawn_ood]), abs=1e-12)


def test_bootstrap_is_seeded_paired_and_averages_the_sets():
    rng = np.random.default_rng(0)
    s_id = rng.normal(1, 1, 80)
    sets = [rng.normal(0, 1, 60), rng.normal(-1, 1, 70)]
    one = paired_bootstrap([s_id, s_id + 0.0], [sets, sets], n_bootstrap=50, random_state=7)
    again = paired_bootstrap([s_id, s_id + 0.0], [sets, sets], n_bootstrap=50, random_state=7)
    other = paired_bootstrap([s_id, s_id + 0.0], [sets, sets], n_bootstrap=50, random_state=8)
    np.testing.assert_array_equal(one[0], again[0])
    assert not np.array_equal(one[1], other[1])
    # the same resamples for every candidate: identical candidates never differ
    np.testing.assert_array_equal(one[0][0], one[0][1])
    np.testing.assert_array_equal(one[1][0], one[1][1])
    # several sets: a resample's metric is the mean over the sets
    mean_auc = one[1][0].mean()
    separate = [paired_bootstrap([s_id], [[s]], n_bootstrap=400, random_state=1)[1].mean() for s in sets]
    assert mean_auc == pytest.approx(np.mean(separate), abs=0.02)


# ----------------------------------------------------------------- the rule
def _real(n, seed):
    """A second draw of the problem's outliers, passed as the real OOD set."""
    return _problem(n, n, seed=seed)[3]


def test_noise_alone_never_moves_the_defaults_however_clearly_it_separates():
    # p = 0.1 beats the default's neighbour beyond noise on this noise (the next test), but
    # synthetic outliers may only confirm a move: the defaults stay, with one warning
    X_train, X_id, _, X_noise, head = _problem(300, 300, seed=0)
    s, caught = _quiet(lambda: SparsitySearch(grid=[0.1, 0.3]).fit(X_train, head=head, X_id=X_id, X_noise=X_noise))
    assert s.cv_results_["fpr95"][0] < s.cv_results_["fpr95"][1] and s.cv_results_["worse"][1]
    assert s.informative_ is False and s.best_params_ == {"p": 0.3} and s.decided_by_ is None
    assert s.at_defaults_ is False  # DICE's default 0.9 is not in this grid: its nearest stands in
    assert "no real OOD validation set was given" in s.informative_reason_
    assert s.validation_sets_ == [{"name": "noise", "kind": "synthetic"}]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and "no real OOD" in message and "p=0.3" in message
    assert message.endswith("returning the fallback p=0.3 (the candidate nearest the method's default).")
    d, caught = _quiet(lambda: SparsitySearch(grid=[0.1, 0.9]).fit(X_train, head=head, X_id=X_id, X_noise=X_noise))
    assert d.best_params_ == {"p": 0.9} and d.at_defaults_ is True
    assert not d.informative_ and str(caught[0].message).endswith("returning the fallback p=0.9 (the method's default).")
    # the same with real OOD rows alone: a move needs both kinds to agree
    r, caught = _quiet(lambda: SparsitySearch(grid=[0.1, 0.3]).fit(X_train, head=head, X_id=X_id, X_ood=X_noise))
    assert not r.informative_ and r.best_params_ == {"p": 0.3} and "no synthetic outlier set" in r.informative_reason_
    assert r.validation_sets_ == [{"name": "ood", "kind": "real"}] and len(caught) == 1


@pytest.mark.parametrize("n, informative", [(300, True), (30, False)])
def test_the_same_difference_is_real_on_many_rows_and_noise_on_few(n, informative):
    # one population: p = 0.1 beats p = 0.3 (the defaults' nearest) by about 8 points of FPR95
    X_train, X_id, _, X_noise, head = _problem(n, n, seed=0)
    s, caught = _quiet(lambda: SparsitySearch(grid=[0.1, 0.3]).fit(
        X_train, head=head, X_id=X_id, X_noise=X_noise, X_ood=_real(n, 5)))
    assert s.cv_results_["fpr95"][0] < s.cv_results_["fpr95"][1]
    assert s.informative_ is informative and len(caught) == (0 if informative else 1)
    assert s.best_params_ == ({"p": 0.1} if informative else {"p": 0.3})
    assert bool(s.cv_results_["beats_defaults"][0]) is informative
    assert s.decided_by_ in ("noise", "ood")  # the set with the narrowest margin, or the one that vetoed
    words = "beats the defaults p=0.3 beyond sampling noise on each of the 2" if informative else (
        "no candidate beats the defaults p=0.3")
    assert words in s.informative_reason_ and repr(s.decided_by_) in s.informative_reason_


def test_a_set_that_does_not_confirm_the_move_keeps_the_defaults_and_is_named():
    # the synthetic set prefers p = 0.1 beyond noise; the real one sees no difference
    X_train, X_id, _, X_noise, head = _problem(300, 300, seed=0)
    tied = X_id * 0.5  # p = 0.1 and p = 0.3 within half a point of each other here
    s, caught = _quiet(lambda: SparsitySearch(grid=[0.1, 0.3]).fit(
        X_train, head=head, X_id=X_id, X_noise={"pixels": X_noise}, X_ood={"held-out": tied}))
    assert not s.informative_ and s.best_params_ == {"p": 0.3} and len(caught) == 1
    assert s.decided_by_ == "held-out" and "'held-out'" in s.informative_reason_
    assert not s.cv_results_["beats_defaults"].any()


def _replicates(margins, B=400, seed=0):
    """Per-set resampled FPRs of two candidates (0: the defaults) whose difference is ``margins``."""
    rng = np.random.default_rng(seed)
    base = 0.5 + 0.01 * rng.standard_normal((len(margins), B))
    rival = base - np.asarray(margins)[:, None] + 0.01 * rng.standard_normal((len(margins), B))
    return np.stack([base, rival])


@pytest.mark.parametrize("margins, moves, informative, decided_by", [
    # validation prefers what the held-out real set punishes: the defaults stay, and the mean
    # over the sets (a tie) agrees with them, so the verdict stands without a warning
    ([0.2, -0.2], False, True, "real"),
    ([-0.2, 0.2], False, True, "synthetic"),  # and the mirror image
    ([0.2, 0.05], True, True, "real"),  # both agree: the narrowest margin decided
    # better by the mean, but the real set cannot tell the two apart: the defaults stay, uninformative
    ([0.2, 0.0], False, False, "real"),
])
def test_the_rule_moves_only_when_every_set_agrees(margins, moves, informative, decided_by):
    from skdice._decision import decide

    reps = _replicates(margins)
    verdict = decide(
        metric="fpr95", point=reps.mean(axis=(1, 2)), set_replicates=reps, eligible=np.array([True, True]),
        tie_order=np.arange(2), anchor=0, confidence=0.95, kinds=["synthetic", "real"],
        names=["synthetic", "real"], spell=lambda i: f"candidate {i}",
    )
    assert verdict.informative is informative and verdict.chosen == (1 if moves else 0)
    assert ["synthetic", "real"][verdict.decided_by] == decided_by
    assert bool(verdict.beats_defaults[1]) is moves
    # AUROC as the criterion: the same decisions from the mirrored metric
    mirrored = decide(
        metric="auroc", point=1 - reps.mean(axis=(1, 2)), set_replicates=1 - reps,
        eligible=np.array([True, True]), tie_order=np.arange(2), anchor=0, confidence=0.95,
        kinds=["synthetic", "real"], names=["synthetic", "real"], spell=lambda i: f"candidate {i}",
    )
    assert mirrored.informative is informative and mirrored.chosen == verdict.chosen
    assert mirrored.decided_by == verdict.decided_by


def test_every_candidate_tied_keeps_the_defaults_and_says_the_evidence_agrees():
    rng = np.random.default_rng(1)
    W = np.abs(rng.normal(size=(6, 3))) + 0.1
    X_train, X_id, X_noise = rng.random((40, 6)) + 1, rng.random((30, 6)) + 5, np.zeros((30, 6))
    fit = dict(X_id=X_id, X_noise=X_noise, X_ood=np.zeros((20, 6)))
    s, caught = _quiet(lambda: SparsitySearch().fit(X_train, W, np.zeros(3), **fit))
    assert np.all(s.cv_results_["fpr95"] == 0) and s.cv_results_["separated"].all()
    assert not s.cv_results_["worse"].any() and not s.cv_results_["beats_defaults"].any()
    # the defaults tie the best: the evidence agrees with them, no warning
    assert s.best_params_ == {"p": 0.9} and s.leader_index_ == 0 and s.informative_ and not caught
    assert s.informative_reason_.startswith("the defaults p=0.9 are the best candidate by the mean")
    # without the real set the sets cannot decide: the same p, with the warning
    n, caught = _quiet(lambda: SparsitySearch().fit(X_train, W, np.zeros(3), X_id=X_id, X_noise=X_noise))
    assert n.best_params_ == {"p": 0.9} and not n.informative_ and len(caught) == 1
    # fallback=False then returns the best by the mean (ties: the smallest p), the warning stays
    s2, caught2 = _quiet(lambda: SparsitySearch(fallback=False).fit(X_train, W, np.zeros(3), X_id=X_id, X_noise=X_noise))
    assert s2.best_params_ == {"p": 0.1} and len(caught2) == 1 and "fallback=False" in str(caught2[0].message)


def test_an_informative_search_returns_the_best_agreed_candidate_and_records_the_intervals():
    X_train, X_id, _, X_noise, head = _problem(300, 300, seed=0)
    fit = dict(head=head, X_id=X_id, X_noise=X_noise, X_ood=_real(300, 5))
    s, caught = _quiet(lambda: SparsitySearch(grid=[0.1, 0.3, 0.5]).fit(X_train, **fit))
    res = s.cv_results_
    assert s.informative_ and not caught and "beyond sampling noise" in s.informative_reason_
    agreed = np.flatnonzero(res["beats_defaults"])
    assert s.best_index_ == agreed[np.argmin(res["fpr95"][agreed])] != s.fallback_index_
    assert np.all(res["fpr95_ci_low"] <= res["fpr95_ci_high"]) and np.all(res["auroc_ci_low"] <= res["auroc_ci_high"])
    np.testing.assert_allclose(res["gap"], res["fpr95"] - res["fpr95"][s.leader_index_])
    assert res["gap"][s.leader_index_] == 0 and res["gap_ci_low"][s.leader_index_] == 0
    # auroc as the criterion: the gap is the leader's AUROC minus each candidate's
    a, _ = _quiet(lambda: SparsitySearch(grid=[0.1, 0.3, 0.5], metric="auroc").fit(X_train, **fit))
    np.testing.assert_allclose(a.cv_results_["gap"], a.cv_results_["auroc"][a.leader_index_] - a.cv_results_["auroc"])


def test_the_names_of_the_sets_must_differ():
    X_train, X_id, _, X_noise, head = _problem(60, 60, seed=0)
    with pytest.raises(ValueError, match=r"names repeat: \['a', 'a'\]"):
        SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise={"a": X_noise}, X_ood={"a": X_noise})
    with pytest.raises(ValueError, match=r"give OOD validation features: X_noise \(synthetic\) and/or X_ood \(real\)"):
        SparsitySearch().fit(X_train, head=head, X_id=X_id)


def test_intervals_follow_the_confidence_and_the_resample_count():
    X_train, X_id, _, X_noise, head = _problem(100, 100, seed=1)
    wide, _ = _quiet(lambda: SparsitySearch(confidence=0.99).fit(X_train, head=head, X_id=X_id, X_noise=X_noise))
    narrow, _ = _quiet(lambda: SparsitySearch(confidence=0.5).fit(X_train, head=head, X_id=X_id, X_noise=X_noise))
    width = lambda s: s.cv_results_["auroc_ci_high"] - s.cv_results_["auroc_ci_low"]  # noqa: E731
    assert np.all(width(wide) >= width(narrow)) and np.any(width(wide) > width(narrow))


# ---------------------------------------------------------------- the guard
def test_guard_flags_a_candidate_that_breaks_the_classifier_and_does_not_choose_it():
    X_train, X_id, y_id, X_noise, head = _problem(300, 300, seed=0)
    grid = [0.1, 0.5, 0.99]
    fit = dict(head=head, X_id=X_id, X_noise=X_noise, X_ood=_real(300, 5), y_id=y_id)
    s, _ = _quiet(lambda: SparsitySearch(grid=grid).fit(X_train, **fit))
    res = s.cv_results_
    assert res["fpr95"][2] == res["fpr95"].min()  # the best FPR95 ...
    assert s.dense_accuracy_ - res["id_accuracy"][2] > 0.05  # ... with a broken classifier
    np.testing.assert_array_equal(res["flagged"], [False, False, True])
    assert s.best_params_ == {"p": 0.1} and s.informative_
    assert s.fallback_index_ == 1  # the defaults' p = 0.9 is not in the grid: the nearest the guard leaves
    off, _ = _quiet(lambda: SparsitySearch(grid=grid, guard=False).fit(X_train, **fit))
    assert off.best_params_ == {"p": 0.99} and off.cv_results_["flagged"][2]  # reported, chosen
    # the tolerance is the parameter: wide enough, nothing is flagged
    loose, _ = _quiet(lambda: SparsitySearch(grid=grid, max_accuracy_drop=1.0).fit(X_train, **fit))
    assert not loose.cv_results_["flagged"].any() and loose.best_params_ == {"p": 0.99}


def test_guard_accuracies_are_those_of_the_masked_and_dense_heads():
    X_train, X_id, y_id, X_noise, head = _problem(120, 60, seed=2)
    head = Head(head.weight, np.array([8.0, 0.0, 0.0, 0.0]))  # a bias that moves the argmax
    y_id = y_id.copy()
    y_id[::7] = -1  # unknown labels are left out
    known = y_id >= 0
    s, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise=X_noise, y_id=y_id))
    dense = np.argmax(X_id[known] @ head.weight + head.bias, axis=1)
    assert s.dense_accuracy_ == pytest.approx(np.mean(dense == y_id[known]))
    assert s.n_labelled_ == known.sum()
    for i, p in enumerate(DEFAULT_GRID):
        det = DICEDetector(p=p).fit(X_train, head=head)
        expected = np.mean(det.predict_class(X_id[known]) == y_id[known])
        assert s.cv_results_["id_accuracy"][i] == pytest.approx(expected)
        # the scores are still DICE's: the argmax did not change the pass
        assert s.cv_results_["auroc"][i] == pytest.approx(
            roc_auc_score(np.r_[np.ones(len(X_id)), np.zeros(len(X_noise))],
                          np.r_[det.score_samples(X_id), det.score_samples(X_noise)]), abs=1e-9)


class _Blocks:
    """A block source over an array (rows in blocks of ``step``), counting its reads."""

    def __init__(self, X, step, name="X"):
        self.X, self.step, self.name, self.reads = X, step, name, 0
        self.shape = X.shape

    def iter_blocks(self):
        self.reads += 1
        for start in range(0, len(self.X), self.step):
            yield start, self.X[start : start + self.step].copy()


@pytest.mark.parametrize("labelled", [True, False])
def test_sparsity_search_reads_each_validation_split_once_and_equals_the_in_memory_search(labelled):
    """Every candidate (and the guard's dense head) scores a block before the next is read:
    one read of the ID split and one of each noise split, whatever the grid."""
    X_train, X_id, y_id, X_noise, head = _problem(60, 60, seed=2)
    y = y_id if labelled else None
    sources = [_Blocks(X_id, 7, "ID"), _Blocks(X_noise, 11, "noise a"), _Blocks(X_noise[::-1], 5, "b")]
    streamed, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=sources[0],
                                                      X_noise=sources[1:], y_id=y))
    assert [src.reads for src in sources] == [1, 1, 1]
    whole, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=X_id,
                                                   X_noise=[X_noise, X_noise[::-1]], y_id=y))
    for key in ("fpr95", "auroc", "aupr_in", "aupr_out", "id_accuracy", "n_kept", "threshold"):
        np.testing.assert_allclose(streamed.cv_results_[key], whole.cv_results_[key], rtol=1e-6)
    assert streamed.best_params_ == whole.best_params_
    assert streamed.dense_accuracy_ == whole.dense_accuracy_


@pytest.mark.parametrize("method, grid", [("dice-msp", {"p": [0.3, 0.9]}),  # fused guard pass
                                          ("react", {"percentile": [80, 95]})])  # score_samples
def test_hyperparameter_search_scores_block_sources_like_arrays(method, grid):
    X_train, X_id, y_id, X_noise, head = _problem(60, 60, seed=4)
    streamed, _ = _quiet(lambda: HyperparameterSearch(method, grid).fit(
        X_train, head=head, X_id=_Blocks(X_id, 9), X_noise={"n": _Blocks(X_noise, 13)}, y_id=y_id))
    whole, _ = _quiet(lambda: HyperparameterSearch(method, grid).fit(
        X_train, head=head, X_id=X_id, X_noise=X_noise, y_id=y_id))
    for key in ("fpr95", "auroc", "id_accuracy"):
        np.testing.assert_allclose(streamed.cv_results_[key], whole.cv_results_[key], rtol=1e-6)
    assert streamed.dense_accuracy_ == whole.dense_accuracy_


def test_a_non_finite_row_of_a_block_source_is_named_by_its_row_in_the_whole_source():
    X_train, X_id, y_id, X_noise, head = _problem(60, 20, seed=2)
    X_noise = X_noise.copy()
    X_noise[12, 3] = np.inf
    with pytest.raises(ValueError, match=r"^noise split contains NaN or infinity \(first at row 12\)"):
        SparsitySearch().fit(X_train, head=head, X_id=_Blocks(X_id, 7),
                             X_noise=_Blocks(X_noise, 5, "noise split"), y_id=y_id)


def test_a_block_source_of_the_wrong_width_is_refused_before_any_read():
    X_train, X_id, y_id, X_noise, head = _problem(60, 20, seed=2)
    source = _Blocks(X_id[:, :-1], 7)
    with pytest.raises(ValueError, match="X_id has .* features but the head W has"):
        SparsitySearch().fit(X_train, head=head, X_id=source, X_noise=X_noise)
    assert source.reads == 0


@pytest.mark.parametrize("grid", [[0.1], [0.99]])  # every unit kept; most units dropped
def test_guard_pass_reports_a_non_finite_row_like_the_detector(grid):
    X_train, X_id, y_id, X_noise, head = _problem(60, 20, seed=2)
    X_id = X_id.copy()
    X_id[7, -1] = np.nan  # a silent unit: dropped from the product at p = 0.99
    with pytest.raises(ValueError, match="Input X_id contains NaN"):
        SparsitySearch(grid=grid).fit(X_train, head=head, X_id=X_id, X_noise=X_noise, y_id=y_id)
    # the fused pass itself, as DICE's own scoring, names the first bad row
    det = DICEDetector(p=grid[0]).fit(X_train, head=head)
    with pytest.raises(ValueError, match=r"Input X contains NaN or infinity \(first at row 7\)"):
        masked_head_scores(det, X_id, classes=True)


def test_without_labels_the_guard_does_not_run():
    X_train, X_id, y_id, X_noise, head = _problem(60, 60, seed=2)
    for labels in (None, -np.ones(len(X_id), dtype=int)):
        s, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise=X_noise, y_id=labels))
        assert s.dense_accuracy_ is None and s.n_labelled_ == 0
        assert np.isnan(s.cv_results_["id_accuracy"]).all() and not s.cv_results_["flagged"].any()


def test_every_candidate_flagged_is_uninformative():
    X_train, X_id, y_id, X_noise, head = _problem(200, 200, seed=0)
    s, caught = _quiet(lambda: SparsitySearch(grid=[0.99], max_accuracy_drop=0.0).fit(
        X_train, head=head, X_id=X_id, X_noise=X_noise, y_id=y_id))
    assert not s.informative_ and "guard flags all of them" in s.informative_reason_ and caught


# ------------------------------------------------------------- the fallback
def test_fallback_is_the_nearest_unflagged_candidate_to_the_default():
    X_train, X_id, y_id, X_noise, head = _problem(200, 10)
    X_noise = 1.5 * X_id  # uninformative
    s, caught = _quiet(lambda: SparsitySearch(grid=[0.5, 0.95]).fit(X_train, head=head, X_id=X_id, X_noise=X_noise))
    assert s.best_params_ == {"p": 0.95} and "nearest" in str(caught[0].message)
    g, _ = _quiet(lambda: SparsitySearch(grid=[0.5, 0.9, 0.99], max_accuracy_drop=0.0).fit(
        X_train, head=head, X_id=X_id, X_noise=X_noise, y_id=y_id))
    # p = 0.9 loses a little accuracy: flagged at zero tolerance, so the fallback is the nearest
    # candidate the guard leaves, 0.5, not the flagged default
    np.testing.assert_array_equal(g.cv_results_["flagged"], [False, True, True])
    assert g.best_params_ == {"p": 0.5}
    react, _ = _quiet(lambda: HyperparameterSearch("react", {"percentile": [50, 80]}).fit(
        X_train, head=head, X_id=X_id, X_noise=X_noise))
    assert not react.informative_ and react.best_params_ == {"percentile": 80}  # nearest to ReAct's 90


def test_the_warning_is_a_user_warning_exported_with_the_library_errors():
    import skdice.exceptions
    import skdice.tuning

    assert issubclass(UninformativeValidationWarning, UserWarning)
    assert issubclass(UnlabelledValidationWarning, UserWarning)
    assert "UninformativeValidationWarning" in skdice.exceptions.__all__
    assert skdice.tuning.UninformativeValidationWarning is UninformativeValidationWarning
    X_train, X_id, _, _, head = _problem(60, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UninformativeValidationWarning)
        with pytest.raises(UninformativeValidationWarning):
            SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise=1.5 * X_id)


# ------------------------------------------------------ several noise sets
def test_several_noise_sets_are_averaged_with_equal_weight():
    X_train, X_id, _, X_a, head = _problem(150, 120, seed=1, noise_scale=1.0)
    X_b = _problem(150, 80, seed=4, noise_scale=2.0)[3]
    both, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise=[X_a, X_b]))
    named, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise={"a": X_a, "b": X_b}))
    a, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise=X_a))
    b, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise=X_b))
    for key in ("fpr95", "auroc", "aupr_in", "aupr_out"):
        np.testing.assert_allclose(both.cv_results_[key], (a.cv_results_[key] + b.cv_results_[key]) / 2)
        np.testing.assert_array_equal(both.cv_results_[key], named.cv_results_[key])
    # not the pooled rows: 120 and 80 rows count the same
    pooled, _ = _quiet(lambda: SparsitySearch().fit(X_train, head=head, X_id=X_id, X_noise=np.vstack([X_a, X_b])))
    assert not np.allclose(pooled.cv_results_["aupr_out"], both.cv_results_["aupr_out"])


def test_search_is_reproducible_given_its_seed():
    X_train, X_id, _, X_noise, head = _problem(80, 80, seed=1)
    runs = [_quiet(lambda: SparsitySearch(random_state=r).fit(X_train, head=head, X_id=X_id, X_noise=X_noise))[0]
            for r in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0].cv_results_["gap_ci_low"], runs[1].cv_results_["gap_ci_low"])
    assert not np.array_equal(runs[0].cv_results_["auroc_ci_low"], runs[2].cv_results_["auroc_ci_low"])
