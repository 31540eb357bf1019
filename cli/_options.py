"""The options several commands share, declared once: same flag, same type, same help.

Each alias is an ``Annotated[type, typer.Argument/Option(...)]`` that a
command uses as its parameter's annotation, with its default after ``=`` as
usual (Typer copies the declaration for every command). Only options that
are the same in every command that has them live here: where the help says
something particular to a command (``--train`` of ``fit`` and of ``plot``),
the command declares its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "ComputeScheduler",
    "IdTestSplit",
    "OodSplits",
    "OUTPUT_FORMAT",
    "ScoreScheduler",
    "Sparsity",
    "StoreArgument",
    "StoreFolderArgument",
    "TrainMeanInsteadOfTrain",
]

#: the STORE argument of the commands that read features (evaluate, tune, fit, score, plot)
StoreArgument = Annotated[Path, typer.Argument(help="Feature store written by `skdice extract`.")]

#: the STORE argument of the commands that inspect the store itself (info, verify)
StoreFolderArgument = Annotated[Path, typer.Argument(help="Feature store folder written by `skdice extract`.")]

#: ``--id``, the ID test split (evaluate, plot)
IdTestSplit = Annotated[str, typer.Option("--id", help="In-distribution test split.", show_default=False)]

#: ``--ood``, repeatable (evaluate, plot)
OodSplits = Annotated[
    list[str], typer.Option("--ood", help="OOD split; repeat for several.", show_default=False)
]

#: ``--p`` of the commands that build detectors by name (evaluate, fit); default None
Sparsity = Annotated[
    float | None, typer.Option("--p", help="Sparsity in [0, 1) for DICE-like methods (default 0.9).")
]

#: ``--train-mean`` where it replaces ``--train`` (tune, plot); default None
TrainMeanInsteadOfTrain = Annotated[
    Path | None, typer.Option("--train-mean", help="Cached mean training feature (.npy), instead of --train.")
]

#: ``--format``: each command annotates it with its own enum of formats
OUTPUT_FORMAT = typer.Option("--format", help="Output format.")


def _scheduler(work: str):
    return Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help=f"Address of a running dask.distributed scheduler to {work} on "
            "(default: $SKDICE_SCHEDULER, else this machine).",
        ),
    ]


#: ``--scheduler`` of ``evaluate``; default None
ComputeScheduler = _scheduler("compute")

#: ``--scheduler`` of ``score``; default None
ScoreScheduler = _scheduler("score")
