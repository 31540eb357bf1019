"""The ``skdice`` command line: one Typer sub-module per command group.

Each module in ``_COMMAND_MODULES`` defines ``register(app)``; commands only
parse arguments and call the library. Library errors become one line on
stderr and exit code 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from skdice import __version__

app = typer.Typer(
    name="skdice",
    help="DICE out-of-distribution detection: extract features, fit, tune, evaluate, plot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}

# One module per command group (see STYLE.md); each defines register(app).
_COMMAND_MODULES = [
    "demo",
    "extract",
    "info",
    "methods",
    "evaluate",
    "tune",
    "fit_score",
    "plot",
]


def _version_callback(value: bool):
    if value:
        typer.echo(f"skdice {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version."),
    ] = False,
):
    """DICE out-of-distribution detection from the command line."""
    _state["debug"] = debug


for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; library errors become one line and exit code 1.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    from .errors import run_app

    run_app(app, argv, _state)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
