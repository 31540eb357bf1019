"""Map library exceptions to one line on stderr and an exit code."""

from __future__ import annotations

import sys
import traceback

import typer

from skdice.exceptions import SkdiceError

#: exceptions a user can fix from the message alone
USER_ERRORS = (SkdiceError, ValueError, FileNotFoundError, PermissionError, KeyError)


def run_app(app: typer.Typer, argv, state) -> None:
    """Invoke the Typer app, turning user errors into ``skdice: error: ...`` and exit 1.

    Parameters
    ----------
    app : typer.Typer
    argv : list of str or None
    state : dict
        Shared state; ``state["debug"]`` is set by the ``--debug`` option.
    """
    try:
        app(args=argv, standalone_mode=False)
    except USER_ERRORS as exc:
        if state.get("debug"):
            traceback.print_exc()
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        typer.echo(f"skdice: error: {message}", err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except Exception as exc:  # click's own usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(0)
