"""``skdice demo``: the whole pipeline on scikit-learn's bundled digits."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer


def summary_table(result) -> str:
    """What ``skdice demo --format table`` prints: the chosen p, the ID accuracy, the table, its reading.

    Parameters
    ----------
    result : skdice.workflows.demo.DemoResult

    Returns
    -------
    str
    """
    from skdice.extract.demo import ID_CLASSES
    from skdice.workflows.demo import p_line, reading

    from ._console import render_report

    acc = result.id_accuracy
    return "\n".join(
        [
            p_line(result.best_p, result.p_reason),
            f"ID accuracy (digits {ID_CLASSES[0]}-{ID_CLASSES[-1]}): {acc['original']:.2f}% original head, "
            f"{acc['dice']:.2f}% DICE-masked head",
            "",
            render_report(result.report),
            *reading(result.report),
        ]
    )


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("demo")
    def demo(
        out: Annotated[
            Path,
            typer.Option("--out", metavar="DIR",
                         help="Folder for the store, results and figures [default: skdice-demo in "
                         "the system's temporary folder]", show_default=False),
        ] = Path(tempfile.gettempdir()) / "skdice-demo",
        seed: Annotated[
            int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the split, the OOD sets and training.")
        ] = 0,
        fmt: Annotated[
            str, typer.Option("--format", help="Table format: table, markdown, csv or json.")
        ] = "table",
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the results.")] = False,
    ) -> None:
        """Train a small classifier on digits 0-5, extract, tune p on noise and compare detectors.

        Runs offline (scikit-learn's load_digits) in well under a minute; writes
        digits.zarr, results.json, results.md and four PNG figures under --out.
        """
        if fmt not in ("table", "markdown", "csv", "json"):
            raise ValueError(f"--format must be table, markdown, csv or json, got {fmt!r}.")
        from skdice.exceptions import require

        require("torch", "extract")
        from skdice.workflows.demo import run_demo

        from ._console import Progress

        with Progress() as progress:
            result = run_demo(out, seed=seed, echo=None if quiet else progress)
        if fmt == "table":
            typer.echo(summary_table(result))
        elif fmt == "markdown":
            typer.echo(result.report.to_markdown())
        elif fmt == "csv":
            typer.echo(result.report.to_csv(), nl=False)
        else:
            typer.echo(result.report.to_json())
        if not quiet:
            typer.echo("\nwrote " + ", ".join(str(p) for p in result.files.values()), err=True)
