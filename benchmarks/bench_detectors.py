"""Any registered detector's ``score_samples`` against the bare float32 GEMM ``H @ W``.

    python benchmarks/bench_detectors.py --method line --method vra [--quick] [--rounds 3]
    python benchmarks/bench_detectors.py --method "bats:lam=1.0" --method all

Issue 25's speed target: each method's ``score_samples`` within 2x the bare
GEMM at n = 50,000, m = 2048, C = 1000 (``--quick``: 10,000 rows), or the
measured reason it cannot be. Each ``--method`` is a method spec
``NAME[:key=value,...]`` (as ``skdice evaluate --method``; ``all`` for every
registered detector). Each detector is fitted once, outside the timing, on
``--fit-rows`` separate training rows of the same distribution (class labels
are the head's argmax, for detectors that need labels), then timed.

Every ratio is the median over rounds of ``time(score_samples) / time(H @ W)``
with the two run interleaved round by round (``bench_core.interleaved``), so
the load of a shared machine shifts both alike. The features are
``bench_core``'s synthetic CNN-like ones (non-negative, per-unit scales
log-normal).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import C, M, N, interleaved, machine, print_table, synthetic_problem  # noqa: E402

#: the issue's target: score_samples within this multiple of the bare GEMM
TARGET = 2.0


def _fit(detector, H_fit, W, b):
    """Fit ``detector`` on training rows, with class labels when its tags need them."""
    from skdice import Head, detector_tags

    tags = detector_tags(detector)
    head = Head(W, b)
    if tags.requires_class_labels:
        labels = np.argmax(H_fit @ W + b, axis=1)
        return detector.fit(H_fit, labels, head=head)
    return detector.fit(H_fit, head=head)


def run(methods, rounds: int = 3, quick: bool = False, fit_rows: int = 10_000,
        n: int | None = None, m: int = M, n_classes: int = C) -> list[dict]:
    """Time each method's ``score_samples`` against ``H @ W``; table rows ``{name, ratio, target, note}``.

    Parameters
    ----------
    methods : sequence of str
        Method specs ``NAME[:key=value,...]``, or ``"all"``.
    rounds : int, default=3
        Interleaved rounds; the median ratio is reported.
    quick : bool, default=False
        10,000 scored rows instead of 50,000 (ignored when ``n`` is given).
    fit_rows : int, default=10_000
        Training rows the detectors are fitted on (not timed).
    n, m, n_classes : int
        The scored rows, the feature width and the classes (the issue's sizes by default).

    Returns
    -------
    list of dict
    """
    from skdice.workflows.methods import build_detector, expand_methods, parse_method

    warnings.simplefilter("ignore")  # synthetic features: degenerate-fit warnings are not timed
    n = n if n is not None else (10_000 if quick else N)
    H, W, b = synthetic_problem(n=n + fit_rows, m=m, C=n_classes)
    H_fit, H = H[n:], H[:n]
    specs = [parse_method(s) if isinstance(s, str) else s for s in expand_methods(methods)]
    dets = {}
    for spec in specs:
        label = spec.name + "".join(f":{k}={v!r}" for k, v in spec.params.items())
        dets[label] = _fit(build_detector(spec), H_fit, W, b)

    res = interleaved(
        lambda: H @ W,
        {label: (lambda det=det: det.score_samples(H)) for label, det in dets.items()},
        rounds,
    )
    base = res["baseline"]["seconds"]
    rows = [{
        "name": "bare float32 GEMM H @ W",
        "ratio": 1.0, "target": "",
        "note": f"n={n:,}, m={m}, C={n_classes}; median {base:.3f} s",
    }]
    for label in dets:
        r = res[label]
        rows.append({
            "name": f"{label}: score_samples / H @ W",
            "ratio": r["ratio"], "target": f"<= {TARGET:g}",
            "note": f"median {r['seconds']:.3f} s; rounds "
                    + ", ".join(f"{x:.2f}" for x in r["ratios"])
                    + f"; fitted on {fit_rows:,} rows",
        })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", action="append", required=True,
                        help="method spec NAME[:key=value,...] or 'all' (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 50,000")
    parser.add_argument("--fit-rows", type=int, default=10_000,
                        help="training rows each detector is fitted on (not timed)")
    args = parser.parse_args(argv)
    print(machine())
    print_table(run(args.method, args.rounds, args.quick, args.fit_rows))


if __name__ == "__main__":
    main()
