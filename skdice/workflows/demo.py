"""The digits demo as a workflow: a store extracted by :mod:`skdice.extract.demo`, then p, the table, the figures.

The steps after the extraction are the ones a user runs on a real model's store:

1. the extraction stage trains the digits classifier and writes its features
   (:func:`skdice.extract.demo.extract_digits`);
2. search DICE's sparsity ``p`` on Gaussian noise with
   :class:`skdice.tuning.SparsitySearch` (Section 4.1 of the paper), with the
   labelled ID validation digits so the accuracy guard runs; under the
   search's rule noise alone never moves ``p`` from a default that keeps
   accuracy (docs/tuning.md), and :attr:`DemoResult.p_reason` says why ``p``
   is what it is;
3. evaluate DICE against the dense energy score and other detectors of the
   catalogue on the held-out digits 6-9 (near OOD) and on three synthetic
   shifts of the ID test digits;
4. write the report and the four figures of :mod:`skdice.plotting`.

``skdice demo`` calls :func:`run_demo`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DemoResult", "run_demo", "reading", "p_line", "search_reason", "DEMO_METHODS"]

#: Detectors compared with DICE, in table order (those not in the catalogue are skipped).
DEMO_METHODS = ("energy", "msp", "maxlogit", "odin", "react", "knn", "mahalanobis")


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    report : skdice.metrics.Report
        One block of rows per method (per OOD set and their average).
    best_p : float
        The sparsity the search returned.
    search : skdice.tuning.SparsitySearch
        The fitted search (``cv_results_`` has every candidate).
    id_accuracy : dict
        ``{"original": ..., "dice": ...}`` accuracy in percent on the ID test
        digits, with the original head and with DICE's masked head.
    store : Path
        The feature store.
    p_reason : str
        Why the search returned ``best_p``, in words (the first line of the
        summary).
    files : dict
        Name to Path of everything written (``results.json``, ``results.md``,
        the four PNGs).
    """

    report: object
    best_p: float
    search: object
    id_accuracy: dict
    store: Path
    files: dict = field(default_factory=dict)
    p_reason: str = ""

    def to_text(self) -> str:
        """The summary printed by ``skdice demo``.

        Returns
        -------
        str
        """
        acc = self.id_accuracy
        return "\n".join(
            [
                p_line(self.best_p, self.p_reason),
                f"ID accuracy (digits 0-5): {acc['original']:.2f}% original head, "
                f"{acc['dice']:.2f}% DICE-masked head",
                "",
                self.report.to_table(),
                *reading(self.report),
            ]
        )


def reading(report) -> list[str]:
    """What the demo's table means, in two lines printed under it.

    Compares DICE's and energy's average FPR95 and says why the winner wins
    on this model (docs/demo.md, "Reading it honestly", has the long form).

    Parameters
    ----------
    report : skdice.metrics.Report
        The demo's report, with an ``average`` row for ``dice`` and ``energy``.

    Returns
    -------
    list of str
        An empty line and the two lines; empty when either average row is missing.
    """
    average = {r.method: r for r in report.rows if r.ood == "average"}
    if "dice" not in average or "energy" not in average:
        return []
    dice, energy = average["dice"], average["energy"]
    first = (f"Reading it: lower FPR95 is better; averaged over the OOD sets DICE (p={dice.p:g}) has "
             f"{dice.fpr95:.2f}, the dense head's energy {energy.fpr95:.2f}.")
    if dice.fpr95 <= energy.fpr95:
        second = ("DICE is ahead: pruning the weights that ID digits barely use removes noise "
                  "that OOD inputs add to the logits.")
    else:
        second = ("Energy is ahead: this 64-unit MLP uses most of its units for its 6 classes, so DICE "
                  "has little noise to remove; it helps wide layers (docs/demo.md).")
    return ["", first, second]


def run_demo(
    out_dir,
    *,
    seed: int = 0,
    methods=DEMO_METHODS,
    echo: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Run the digits demo end to end and write its files under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created). Holds ``digits.zarr`` (the feature store),
        ``results.json``, ``results.md`` and the PNG figures. The store of an
        earlier demo run there is replaced; any other ``digits.zarr`` is
        refused (ValueError), never deleted.
    seed : int, default=0
        Seed of the data split, the synthetic OOD sets and the training.
    methods : sequence of str, default=DEMO_METHODS
        Detectors compared with DICE; names missing from the catalogue are
        skipped.
    echo : callable, default=None
        Called with a line of text at each step (the CLI passes ``typer.echo``).
    progress : callable, default=None
        Called as ``progress(rows_done, rows_total)`` while each split is
        extracted (the extraction stage's progress callback).

    Returns
    -------
    DemoResult
    """
    from skdice import available_detectors
    from skdice.evaluation import evaluate_store
    from skdice.exceptions import UninformativeValidationWarning
    from skdice.extract.demo import OOD_SPLITS, extract_digits
    from skdice.plotting import plot_store
    from skdice.store import open_store
    from skdice.tuning import SparsitySearch

    say = echo or (lambda line: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"the demo's output folder {out} exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "digits.zarr"
    if store_path.exists():
        _remove_previous_demo_store(store_path)

    extract_digits(store_path, seed=seed, echo=echo, progress=progress)
    store = open_store(store_path)

    with warnings.catch_warnings():
        # the search's "validation cannot choose" warning: p_reason says it in the summary
        warnings.simplefilter("ignore", UninformativeValidationWarning)
        search = SparsitySearch().fit(
            store.features("train"), head=store.head,
            X_id=store.features("val"), y_id=store.labels("val"), X_noise=store.features("noise"),
        )
    best_p = search.best_params_["p"]
    p_reason = search_reason(search)
    say(f"SparsitySearch on Gaussian noise: p = {best_p:g} "
        f"(FPR95 on noise by p: "
        + ", ".join(f"{p:g}: {100 * f:.1f}%" for p, f in zip(search.cv_results_["param_p"], search.cv_results_["fpr95"]))
        + ")")

    catalogue = available_detectors()
    names = ["dice", *[m for m in methods if m != "dice" and m in catalogue]]
    evaluation = evaluate_store(store, "test", OOD_SPLITS, names, p=best_p, train="train")
    report = evaluation.report
    acc = evaluation.id_accuracy
    dice_acc = next(item["accuracy"] for item in acc["masked"] if item["method"] == "dice")
    id_accuracy = {"original": acc["original"], "dice": dice_acc}
    report.extra["tuning"] = {
        "grid": [float(p) for p in search.cv_results_["param_p"]],
        "fpr95_noise": [100.0 * float(f) for f in search.cv_results_["fpr95"]],
        "best_p": best_p,
        "reason": p_reason,
    }

    say("writing figures")
    plots = plot_store(store, out, id_split="test", ood_splits=list(OOD_SPLITS),
                       train_split="train", p=best_p, class_index=0)
    result = DemoResult(report=report, best_p=best_p, search=search,
                        id_accuracy=id_accuracy, store=store_path, p_reason=p_reason)
    result.files = {k: plots[k] for k in ("histograms", "contributions", "p_sweep", "covariance")}
    (out / "results.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (out / "results.md").write_text(
        "# skdice demo: digits 0-5 in distribution\n\n"
        + p_line(best_p, p_reason) + "\n\n"
        + f"ID accuracy: {id_accuracy['original']:.2f}% (original head), "
        + f"{id_accuracy['dice']:.2f}% (DICE-masked head)\n\n"
        + report.to_markdown() + "\n"
    )
    result.files["results.json"] = out / "results.json"
    result.files["results.md"] = out / "results.md"
    return result


def p_line(best_p: float, reason: str) -> str:
    """The summary's first line: the demo's ``p`` and why.

    Parameters
    ----------
    best_p : float
        The sparsity the demo used.
    reason : str
        Why (:func:`search_reason`); empty for none.

    Returns
    -------
    str
        ``"p = 0.7: <reason>"``, or ``"p = 0.7"`` without a reason.
    """
    return f"p = {best_p:g}: {reason}" if reason else f"p = {best_p:g}"


def search_reason(search) -> str:
    """Why a fitted :class:`skdice.tuning.SparsitySearch` returned its ``p``, in one sentence.

    Parameters
    ----------
    search : skdice.tuning.SparsitySearch
        A fitted search.

    Returns
    -------
    str
        Validation's verdict when it chose (:attr:`informative_`); otherwise
        why it could not, and, when the guard put the default out of reach,
        the default's ID validation accuracy beside the dense head's.
    """
    from skdice import DICEDetector

    if search.informative_:
        return f"chosen on validation ({search.informative_reason_})"
    grid = [float(p) for p in search.cv_results_["param_p"]]
    best, default = float(search.best_params_["p"]), float(DICEDetector().p)
    said = f"validation cannot choose ({search.informative_reason_})"
    if best != default and default in grid and search.dense_accuracy_ is not None:
        accuracy = float(search.cv_results_["id_accuracy"][grid.index(default)])
        said += (f"; the default p = {default:g} keeps {100 * accuracy:.1f}% ID validation accuracy against "
                 f"{100 * search.dense_accuracy_:.1f}% dense (the guard allows a drop of "
                 f"{100 * search.max_accuracy_drop:g} points), so the nearest p within it")
    return said


def _remove_previous_demo_store(path: Path) -> None:
    """Delete the store of an earlier demo run, and nothing else."""
    import shutil

    from skdice.exceptions import StoreError
    from skdice.extract.demo import DEMO_MODEL_NAME
    from skdice.store import open_store

    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        return
    try:
        model = open_store(path).model
    except StoreError:
        model = None
    if model != DEMO_MODEL_NAME:
        raise ValueError(
            f"{path} exists and is not a store written by `skdice demo`; the demo replaces its "
            "own store only: choose another out_dir."
        )
    shutil.rmtree(path)
