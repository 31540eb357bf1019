"""``skdice evaluate``: the paper's table from a feature store."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ._options import OUTPUT_FORMAT, ComputeScheduler, IdTestSplit, OodSplits, Sparsity, StoreArgument


class Format(str, Enum):
    """Output formats of ``skdice evaluate``."""

    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


class Positive(str, Enum):
    """FPR95 conventions (docs/metrics.md)."""

    id = "id"
    ood = "ood"


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("evaluate")
    def evaluate(
        store: StoreArgument,
        id_split: IdTestSplit,
        ood: OodSplits,
        method: Annotated[
            list[str] | None,
            typer.Option(
                "--method",
                help="Detector name (`skdice methods`), optionally NAME:key=value,...; "
                "repeat for several; `all` runs every registered method. Default: dice and energy.",
                show_default=False,
            ),
        ] = None,
        p: Sparsity = None,
        train: Annotated[
            str | None,
            typer.Option("--train", help="Split of ID training features the methods are fitted on."),
        ] = None,
        train_mean: Annotated[
            Path | None,
            typer.Option(
                "--train-mean",
                help="Cached mean training feature (.npy) for the mean-based methods (DICE and "
                "its variants); with --train as well, they take the mean and the others the split.",
            ),
        ] = None,
        positive: Annotated[
            Positive, typer.Option("--positive", help="FPR95 convention: ID or OOD as positive class.",
                                   case_sensitive=False)
        ] = Positive.id,
        tune_id: Annotated[
            str | None,
            typer.Option(
                "--tune-id",
                help="ID validation split: tune every method that declares a grid on it (against "
                "--tune-noise and --tune-ood) before the evaluation; not a test split.",
            ),
        ] = None,
        tune_noise: Annotated[
            list[str] | None,
            typer.Option(
                "--tune-noise",
                help="Synthetic OOD validation split of the tuning (noise, generated, corrupted ID); "
                "repeatable. It confirms a move from the defaults, never makes one.",
                show_default=False,
            ),
        ] = None,
        tune_ood: Annotated[
            list[str] | None,
            typer.Option(
                "--tune-ood",
                help="Real OOD validation split of the tuning (held out from --ood); repeatable. A move "
                "from a method's defaults needs one --tune-ood and one --tune-noise split to agree.",
                show_default=False,
            ),
        ] = None,
        fmt: Annotated[Format, OUTPUT_FORMAT] = Format.table,
        scheduler: ComputeScheduler = None,
    ) -> None:
        """Fit detectors and print FPR95, AUROC, AUPR-In and AUPR-Out per OOD split.

        One row per OOD split and an average row per method, as in the DICE
        paper's tables, then the ID accuracy with the original head and with
        each masked head (when the ID split has labels).
        """
        from skdice.evaluation import DEFAULT_METHODS, evaluate_store

        from skdice.streaming import dask_client

        from ._console import Progress, warning_lines

        # no scheduler address: no dask, the in-memory path
        with warning_lines(), dask_client(scheduler) as client, Progress() as progress:
            result = evaluate_store(
                store,
                id_split,
                ood,
                methods=method or DEFAULT_METHODS,
                p=p,
                train=train,
                train_mean=train_mean,
                positive=positive.value,
                dask=client is not None,
                progress=progress,
                tune_id=tune_id,
                tune_noise=tune_noise or (),
                tune_ood=tune_ood or (),
            )
        from skdice.workflows.evaluate import EvaluationReport

        report = EvaluationReport(result)
        if fmt is Format.table:
            from ._console import render_table

            text = report.to_table(render_table)
        else:
            text = {"markdown": report.to_markdown, "csv": report.to_csv, "json": report.to_json}[fmt.value]()
        typer.echo(text, nl=not text.endswith("\n"))
