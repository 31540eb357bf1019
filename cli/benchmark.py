"""``skdice benchmark``: a protocol's near-, far- and covariate-shift table over one or several stores."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ._options import OUTPUT_FORMAT, Sparsity

#: skdice.workflows._protocol.MAX_RESAMPLES, written here so that the CLI starts without
#: importing the workflows (tests/cli/test_benchmark_cli.py checks that the two agree)
MAX_RESAMPLES = 100_000


class Format(str, Enum):
    """Output formats of ``skdice benchmark``."""

    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    html = "html"


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``benchmark`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("benchmark")
    def benchmark(
        stores: Annotated[
            list[Path] | None,
            typer.Argument(metavar="STORE", help="Feature stores, one per run (seed) of the same model family; "
                                "each holds every split the protocol names.", show_default=False),
        ] = None,
        protocol: Annotated[
            str | None,
            typer.Option("--protocol", help="Protocol file (TOML, docs/benchmark.md) or a shipped protocol's "
                                            "name, e.g. cifar10-openood-v1.5.", show_default=False),
        ] = None,
        method: Annotated[
            list[str] | None,
            typer.Option("--method", help="Detector name (`skdice methods`), optionally NAME:key=value,...; "
                                          "repeat for several. Default: every registered method.",
                         show_default=False),
        ] = None,
        full_spectrum: Annotated[
            bool, typer.Option("--full-spectrum", help="Count the protocol's CSID splits as ID (OpenOOD's "
                                                       "full-spectrum mode).")
        ] = False,
        train: Annotated[
            str | None,
            typer.Option("--train", help="Split of ID training features the methods are fitted on "
                                         "(default: the protocol's id.train)."),
        ] = None,
        train_mean: Annotated[
            Path | None,
            typer.Option("--train-mean", help="Cached mean training feature (.npy) for the mean-based methods."),
        ] = None,
        p: Sparsity = None,
        n_bootstrap: Annotated[
            int | None,
            typer.Option("--n-bootstrap", help="Bootstrap resamples behind each interval (default: the "
                                               "protocol's metrics.n_bootstrap, else 1000); 0: none.",
                         min=0, max=MAX_RESAMPLES, show_default=False),
        ] = None,
        fmt: Annotated[Format, OUTPUT_FORMAT] = Format.table,
        out: Annotated[
            Path | None, typer.Option("--out", help="Write the output to this file instead of stdout.")
        ] = None,
        figure: Annotated[
            Path | None,
            typer.Option("--figure", help="Also write the leaderboard figure here (.png or .svg); the Markdown "
                                          "page links it instead of embedding it."),
        ] = None,
        check: Annotated[
            Path | None,
            typer.Option("--check", help="Re-run the benchmark a JSON result records and compare byte for byte; "
                                         "exit 1 when they differ.", show_default=False),
        ] = None,
    ) -> None:
        """Run a benchmark protocol: every method per OOD set, per group (near, far) and overall.

        Each method is tuned on the protocol's validation splits (when it
        names them), fitted, and scored once per split; several stores give
        the mean and std of each cell, every cell a bootstrap interval.
        """
        from skdice.workflows.benchmark import DEFAULT_BENCHMARK_METHODS, benchmark_stores, check_benchmark
        from skdice.workflows._benchmark_report import BenchmarkReport

        from ._console import Progress, warning_lines

        if check is not None:
            if stores or protocol or method:
                raise ValueError("--check re-runs what the result records: give no STORE, --protocol or --method "
                                 "with it.")
            with warning_lines(), Progress() as progress:
                found = check_benchmark(check, progress=progress)
            if not found.identical:
                for line in found.differences:
                    typer.echo(line, err=True)
                raise ValueError(f"the re-run differs from {check} (differences listed above).")
            n = len(found.rerun.record["results"])
            typer.echo(f"reproduced {check} byte for byte ({n} rows, "
                       f"{len(found.rerun.record['stores'])} store(s)).")
            return
        if not stores:
            raise ValueError("give at least one STORE (or --check RESULT.json).")
        if protocol is None:
            raise ValueError("give --protocol FILE or the name of a shipped protocol (docs/benchmark.md).")
        with warning_lines(), Progress() as progress:
            result = benchmark_stores(
                stores, protocol, method or DEFAULT_BENCHMARK_METHODS, full_spectrum=full_spectrum,
                train=train, train_mean=train_mean, p=p, n_bootstrap=n_bootstrap, progress=progress,
            )
        report = BenchmarkReport(result)
        if figure is not None:
            figure.parent.mkdir(parents=True, exist_ok=True)
            figure.write_bytes(report.figure("svg" if figure.suffix.lower() == ".svg" else "png"))
        if fmt is Format.table:
            from ._console import render_table

            text = report.to_table(render_table if out is None else None)
        elif fmt is Format.json:
            text = result.to_json()
        elif fmt is Format.markdown:
            link = None
            if figure is not None:
                link = str(figure if out is None else Path(_relative(figure, out.parent)))
            text = report.to_markdown(figure=link)
        else:
            text = {"csv": report.to_csv, "html": report.to_html}[fmt.value]()
        _write(text, out)


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())
