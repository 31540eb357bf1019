"""What a hyperparameter search costs, in scoring passes of the validation splits (issue 12).

    python benchmarks/bench_search.py [--rounds 3] [--quick]

A search over G candidates may cost at most G + 1 scoring passes of the
validation rows (ID validation + noise): one per candidate, plus the guard's
one dense pass over the labelled ID rows; the bootstrap behind the
informativeness rule resamples the scores and must stay cheap. Every figure
is a ratio of two timings taken in the same run, interleaved round by round
(the median of the per-round ratios; see ``bench_core.interleaved``):

- DICE's p search over the paper's 6 values (``SparsitySearch``, the
  bootstrap included) / one DICE scoring pass of the same rows, without and
  with ID labels (the guard's fused argmax and its dense pass);
- the bootstrap alone (``bootstrap_time_``) / one scoring pass;
- DICE+ReAct's declared 2-D grid (p x clip percentile, 6 x 4 = 24
  candidates, ``HyperparameterSearch("dice-react")``) / one DICE+ReAct
  scoring pass, with the share of the fits (a percentile of the training
  activations per candidate, which no validation pass includes) reported
  beside it.

The features are ``bench_core``'s synthetic CNN-like ones (m = 2048,
C = 1000): 25,000 ID + 25,000 noise validation rows (5,000 + 5,000 with
``--quick``), and 10,000 training rows for DICE+ReAct (2,000).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import interleaved, machine, print_table, synthetic_problem  # noqa: E402


def run(rounds: int = 3, quick: bool = False) -> list[dict]:
    """Measure every ratio; returns table rows ``{name, ratio, target, note}``."""
    from skdice import DICEDetector, DICEReActDetector, Head
    from skdice.tuning import DEFAULT_GRID, HyperparameterSearch, SparsitySearch, default_grid

    warnings.simplefilter("ignore")  # synthetic noise: the rule's verdict is not what is timed
    n = 10_000 if quick else 50_000
    n_train = n // 5
    H, W, b = synthetic_problem(n=n + n_train)
    X_train, H = H[:n_train], H[n_train:]
    half = n // 2
    quarter = half // 2  # the OOD rows as two sets, synthetic and "real": the rule's per-set path
    X_id, X_noise = H[:half], H[half:]
    rng = np.random.default_rng(1)
    X_noise = (X_noise * rng.random(X_noise.shape[1], dtype=np.float32)).astype(np.float32)
    y_id = rng.integers(0, W.shape[1], half)
    mu = X_train.astype(np.float64).mean(axis=0)
    head = Head(W, b)
    rows = []

    dice = DICEDetector(p=0.9).fit(head=head, train_mean=mu)

    def dice_pass():
        dice.score_samples(X_id)
        dice.score_samples(X_noise)

    searches = {}

    def search(labels):
        def fn():
            searches[labels] = SparsitySearch(DEFAULT_GRID).fit(
                head=head, train_mean=mu, X_id=X_id, X_noise=X_noise[:quarter], X_ood=X_noise[quarter:],
                y_id=y_id if labels else None
            )
        return fn

    from skdice._numeric import energy_scores
    from skdice._search import masked_heads
    from skdice.metrics import aupr_in, aupr_out, auroc, fpr_at_tpr

    def scores_and_metrics():  # what the search did before it had a rule: no bootstrap, no guard
        for _, _, weight in masked_heads(mu, head, DEFAULT_GRID):
            s_id, s_noise = energy_scores(X_id, weight, head.bias), energy_scores(X_noise, weight, head.bias)
            for metric in (fpr_at_tpr, auroc, aupr_in, aupr_out):
                metric(s_id, s_noise)

    res = interleaved(dice_pass, {"plain": search(False), "guard": search(True), "before": scores_and_metrics},
                      rounds)
    G = len(DEFAULT_GRID)
    rows.append({"name": f"the same {G} candidates' scores and metrics alone / one scoring pass",
                 "ratio": res["before"]["ratio"], "target": "reference",
                 "note": "what SparsitySearch computed before the rule: the figure the two rows above compare with"})
    note = (f"{half:,} ID + {n - half:,} OOD rows (two sets: synthetic and real), m = 2048, C = 1000, "
            f"grid {list(DEFAULT_GRID)}")
    rows.append({"name": f"DICE p search over {G} values / one scoring pass", "ratio": res["plain"]["ratio"],
                 "target": f"<= {G + 1}", "note": f"SparsitySearch, bootstrap of 200 included; {note}"})
    rows.append({"name": f"DICE p search over {G} values with ID labels (guard) / one scoring pass",
                 "ratio": res["guard"]["ratio"], "target": f"<= {G + 1}",
                 "note": "argmax from the scoring logits, plus one dense pass over the labelled ID rows"})
    boot = searches[False].bootstrap_time_ / res["baseline"]["seconds"]
    rows.append({"name": "bootstrap of the DICE search (200 resamples) / one scoring pass", "ratio": boot,
                 "target": "small", "note": "from the last timed search's bootstrap_time_"})

    grid = default_grid("dice-react")
    G2 = int(np.prod([len(v) for v in grid.values()]))
    react = DICEReActDetector(p=0.15).fit(X_train, head=head)

    def react_pass():
        react.score_samples(X_id)
        react.score_samples(X_noise)

    fitted = {}

    def search_2d():
        fitted["s"] = HyperparameterSearch("dice-react").fit(
            X_train, head=head, X_id=X_id, X_noise=X_noise[:quarter], X_ood=X_noise[quarter:])

    def react_search(labels):
        def fn():
            HyperparameterSearch("react").fit(X_train, head=head, X_id=X_id, X_noise=X_noise[:quarter],
                                              X_ood=X_noise[quarter:], y_id=y_id if labels else None)
        return fn

    res2 = interleaved(react_pass, {"2d": search_2d, "react": react_search(False),
                                    "react-guard": react_search(True)}, rounds)
    fit_share = float(np.sum(fitted["s"].cv_results_["mean_fit_time"])) / res2["baseline"]["seconds"]
    score_share = float(np.sum(fitted["s"].cv_results_["mean_score_time"])) / res2["baseline"]["seconds"]
    rows.append({"name": f"DICE+ReAct 2-D grid, {G2} candidates / one scoring pass", "ratio": res2["2d"]["ratio"],
                 "target": f"<= {G2 + 1} (scoring)",
                 "note": f"p {list(grid['p'])} x percentile {list(grid['percentile'])}; of which fits "
                         f"{fit_share:.2f} passes ({n_train:,} training rows: the clip percentile per candidate), "
                         f"scoring and metrics {score_share:.2f}"})
    G3 = len(default_grid("react")["percentile"])
    rows.append({"name": f"ReAct percentile search, {G3} candidates / one DICE+ReAct scoring pass",
                 "ratio": res2["react"]["ratio"], "target": f"<= {G3 + 1}",
                 "note": "no labels: the scores alone"})
    rows.append({"name": f"the same with ID labels (the guard: predict_class on the clipped features)",
                 "ratio": res2["react-guard"]["ratio"], "target": f"<= {G3 + 1}",
                 "note": "a classifier-changing detector without a mask: scores and classes from one read "
                         "of each block (two products), plus the dense pass"})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    parser.add_argument("--quick", action="store_true", help="10,000 validation rows instead of 50,000")
    args = parser.parse_args(argv)
    print(machine())
    print_table(run(args.rounds, args.quick))


if __name__ == "__main__":
    main()
