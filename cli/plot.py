"""``skdice plot``: the paper's figures from a feature store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import IdTestSplit, OodSplits, StoreArgument, TrainMeanInsteadOfTrain


#: the most histogram bins (docs/cli.md, "Ranges"): more draws nothing finer and allocates without bound
MAX_BINS = 10000


def register(app: typer.Typer) -> None:
    """Add the ``plot`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("plot")
    def plot(
        store: StoreArgument,
        id_split: IdTestSplit,
        ood: OodSplits,
        out: Annotated[Path, typer.Option("--out", help="Folder for the PNG files.")] = Path("."),
        train: Annotated[
            str | None, typer.Option("--train", help="Split whose mean feature defines the DICE mask.")
        ] = None,
        train_mean: TrainMeanInsteadOfTrain = None,
        p: Annotated[
            float,
            typer.Option("--p", help="DICE sparsity for the histograms and the covariance figure's boundary, in [0, 1)."),
        ] = 0.9,
        class_index: Annotated[
            int | None,
            typer.Option("--class", help="Class of the unit-contribution and covariance figures (default: the most frequent label, else the most predicted)."),
        ] = None,
        ps: Annotated[
            str,
            typer.Option("--ps", help="Comma-separated sparsities of the p sweep (0 = energy)."),
        ] = "0,0.1,0.3,0.5,0.7,0.9,0.99",
        bins: Annotated[int, typer.Option("--bins", min=1, max=MAX_BINS, help="Histogram bins.")] = 50,
        prefix: Annotated[str, typer.Option("--prefix", help="Prefix of the file names.")] = "",
    ) -> None:
        """Write histograms.png (Figure 4), contributions.png (Figures 1, 5), p_sweep.png (Table 4) and covariance.png (Figure 6)."""
        from skdice.plotting import plot_store

        try:
            grid = [float(v) for v in ps.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--ps must be comma-separated numbers, got {ps!r}.") from None
        paths = plot_store(
            store, out, id_split=id_split, ood_splits=ood, train_split=train,
            train_mean=train_mean, p=p, class_index=class_index, ps=grid, bins=bins, prefix=prefix,
        )
        for key, path in paths.items():
            if key != "data":  # one line per figure written, in the order plot_store wrote them
                typer.echo(str(path))
