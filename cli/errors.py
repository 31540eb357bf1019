"""Map library exceptions to one line on stderr and an exit code."""

from __future__ import annotations

import re
import sys
import traceback

import typer

from skdice.exceptions import SkdiceError

#: exceptions a user can fix from the message alone; OSError covers the file system's
#: refusals (a file where a folder is wanted, a full disk, a read-only folder, ...).
#: Anything else (a KeyError, a TypeError) is a bug and keeps its traceback.
USER_ERRORS = (SkdiceError, ValueError, OSError)


#: library messages name a keyword argument with its flag beside it, ``overwrite=True
#: (--overwrite)`` or ``weights=PATH (CLI: --weights PATH)``: the CLI shows the flag alone
_KEYWORD_WITH_FLAG = re.compile(r"\b[a-z_]+=[^\s,;()]+ \((?:CLI: )?(--[a-z][a-z-]*(?: [A-Z][A-Z_]*)?)\)")


def in_flag_words(message: str) -> str:
    """A library message in the CLI's words: ``x=... (--flag)`` becomes ``--flag``.

    Parameters
    ----------
    message : str

    Returns
    -------
    str
    """
    return _KEYWORD_WITH_FLAG.sub(r"\1", message)


def run_app(app, argv, state) -> None:
    """Invoke the Typer app, turning user errors into ``skdice: error: ...`` and exit 1.

    Parameters
    ----------
    app : typer.Typer or click.Command
        The application (a click command is run as it is, with skdice's own
        help formatting; see :func:`skdice.cli.app.command`).
    argv : list of str or None
    state : dict
        Shared state; ``state["debug"]`` is set by the ``--debug`` option.
    """
    try:
        app.main(args=argv, standalone_mode=False, prog_name="skdice") if hasattr(app, "main") \
            else app(args=argv, standalone_mode=False)
    except USER_ERRORS as exc:
        if state.get("debug"):
            traceback.print_exc()
        typer.echo(f"skdice: error: {in_flag_words(str(exc))}", err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except Exception as exc:  # usage errors: typer >= 0.29 vendors click, older ones use click
        show = getattr(exc, "show", None)
        if isinstance(exc, typer.TyperException) or _is_click_exception(exc):
            if show is not None:
                show()
            else:  # pragma: no cover - a TyperException without show()
                typer.echo(f"skdice: error: {exc}", err=True)
            sys.exit(getattr(exc, "exit_code", 2))
        raise
    sys.exit(0)


def _is_click_exception(exc) -> bool:
    try:
        import click
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, click.ClickException)
