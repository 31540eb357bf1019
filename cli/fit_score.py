"""``skdice fit`` and ``skdice score``: fit once, save, score any split later."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import ScoreScheduler, Sparsity, StoreArgument


def _describe(detector) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(detector.get_params().items()))
    return f"{type(detector).name} ({params})"


def fit_summary(detector, store, train, train_mean, out) -> list[str]:
    """Lines ``skdice fit`` prints about a fitted and saved detector.

    Parameters
    ----------
    detector : BaseDetector
    store, train, train_mean, out
        What the command was given.

    Returns
    -------
    list of str
    """
    source = []
    if train is not None:
        source.append(f"split {train!r}")
    if train_mean is not None:
        source.append(f"the mean in {train_mean}")
    lines = [f"fitted {_describe(detector)} on {' and '.join(source)} of {store}"]
    mask = getattr(detector, "mask_", None)
    if mask is not None:
        lines.append(f"kept weights: {int(mask.sum())} of {mask.size} ({100 * mask.mean():.1f}%)")
    offset = getattr(detector, "offset_", float("nan"))
    if offset == offset:
        lines.append(f"threshold (offset_) at {100 * detector.tpr:g}% TPR: {offset:.6g}")
    else:
        lines.append("offset_ not calibrated (no training features): predict needs a fit with --train")
    lines.append(f"saved to {out}")
    return lines


def score_summary(summary: dict, store) -> list[str]:
    """Lines ``skdice score`` prints about one scored split.

    Parameters
    ----------
    summary : dict
        What :func:`skdice.evaluation.score_store` returns.
    store : path-like

    Returns
    -------
    list of str
    """
    lines = [
        f"scored {summary['n']} rows of split {summary['split']!r} with {summary['method']}",
        f"scores (higher = more in-distribution): mean {summary['mean']:.6g}, "
        f"std {summary['std']:.6g}, min {summary['min']:.6g}, max {summary['max']:.6g}",
    ]
    if summary["n_ood"] is not None:
        lines.append(
            f"flagged OOD at the saved threshold: {summary['n_ood']} "
            f"({100 * summary['fraction_ood']:.2f}%)"
        )
    if summary["written"]:
        reused = " (already there from this detector: nothing recomputed)" if not summary.get("computed", 1) else ""
        lines.append(f"written to {Path(store) / summary['written']}{reused}")
    return lines


def register(app: typer.Typer) -> None:
    """Add the ``fit`` and ``score`` commands to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("fit")
    def fit(
        store: StoreArgument,
        out: Annotated[
            Path,
            typer.Option("--out", help="File to save the fitted detector to (.npz).", show_default=False),
        ],
        train: Annotated[
            str | None, typer.Option("--train", help="Split of ID training features to fit on.")
        ] = None,
        method: Annotated[
            str,
            typer.Option("--method", help="Detector name (`skdice methods`), optionally NAME:key=value,..."),
        ] = "dice",
        p: Sparsity = None,
        train_mean: Annotated[
            Path | None,
            typer.Option(
                "--train-mean",
                help="Cached mean training feature (.npy) for DICE; with --train, "
                "--train calibrates the threshold.",
            ),
        ] = None,
    ) -> None:
        """Fit a detector on a store's training split and save it (no pickle)."""
        from skdice.evaluation import fit_from_store
        from skdice.persistence import save_detector

        from ._console import Progress, warning_lines

        with warning_lines(), Progress(f"fitting on {train}" if train else "fitting") as bar:
            detector = fit_from_store(store, method, train=train, p=p, train_mean=train_mean,
                                      progress=bar)
        save_detector(detector, out)
        typer.echo("\n".join(fit_summary(detector, store, train, train_mean, out)))

    @app.command("score")
    def score(
        store: StoreArgument,
        split: Annotated[str, typer.Option("--split", help="Split to score.", show_default=False)],
        detector: Annotated[
            Path,
            typer.Option("--detector", help="Detector saved by `skdice fit`.", show_default=False),
        ],
        name: Annotated[
            str | None,
            typer.Option("--name", help="Name of the score array; default: the method name."),
        ] = None,
        overwrite: Annotated[
            bool,
            typer.Option("--overwrite", help="Replace scores of that name written by another detector."),
        ] = False,
        scheduler: ScoreScheduler = None,
    ) -> None:
        """Score a split with a saved detector and write the scores into the store.

        The scores land in ``<split>/scores/<name>`` (float64, one per row).
        """
        from skdice.evaluation import score_store
        from skdice.persistence import load_detector

        from ._console import Progress

        fitted = load_detector(detector)
        try:
            with Progress(f"scoring {split}") as bar:
                summary = score_store(store, split, fitted, name=name, overwrite=overwrite,
                                      scheduler=scheduler, progress=bar)
        except KeyboardInterrupt:
            typer.echo(f"\ninterrupted: the scores of split {split!r} written so far are kept; "
                       "re-run the same command to resume.", err=True)
            raise
        typer.echo("\n".join(score_summary(summary, store)))
