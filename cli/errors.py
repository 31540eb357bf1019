"""Map library exceptions to one line on stderr and an exit code.

The library speaks Python: its messages name keyword arguments with a
placeholder value (``pass train=SPLIT``, ``pass overwrite=True``), never a
command-line flag. Each command says, in :data:`COMMAND_FLAGS`, how the
parameters of the library calls it makes are spelled on its command line:
an explicit table from a library phrase (``"train=SPLIT"``) to the flag the
user typed (``"--train SPLIT"``). :func:`run_app` learns the command being run
from the root callback (``_state["command"]``) and prints the library's
message with that command's phrases replaced (:func:`in_flag_words`). A phrase
no table names stays as the library wrote it (a method spec's ``p=0.5``, a
``threshold=...`` the library means as Python).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import traceback

import typer

from skdice.exceptions import SkdiceError

#: exceptions a user can fix from the message alone; OSError covers the file system's
#: refusals (a file where a folder is wanted, a full disk, a read-only folder, ...).
#: Anything else (a KeyError, a TypeError) is a bug and keeps its traceback.
USER_ERRORS = (SkdiceError, ValueError, OSError)

#: the phrases every command shares (the store's "pass overwrite=True to replace it")
_COMMON = {"overwrite=True": "--overwrite"}
_TRAINING = {"train=SPLIT": "--train SPLIT", "train_mean=PATH": "--train-mean PATH",
             "train_mean=FILE.npy": "--train-mean FILE.npy"}
_OOD = {"ood_splits=[SPLIT, ...]": "--ood SPLIT"}
_SCHEDULER = {"the scheduler= argument": "--scheduler"}

#: per command: library phrase -> the command's flag (see the module docstring)
COMMAND_FLAGS: dict[str, dict[str, str]] = {
    "extract": {"weights=FILE": "--weights FILE", "another store path": "another --out",
                "another split name": "another --split"},
    "demo": {"another out_dir": "another --out"},
    "fit": {**_TRAINING, "the p= argument": "--p"},
    "score": {**_TRAINING, **_SCHEDULER},
    "evaluate": {**_TRAINING, **_OOD, **_SCHEDULER, "tune_id=": "--tune-id", "tune_noise=": "--tune-noise",
                 "tune_ood=": "--tune-ood", "noise_splits=[SPLIT, ...]": "--tune-noise SPLIT",
                 "ood_val_splits=[SPLIT, ...]": "--tune-ood SPLIT"},
    "tune": {**_TRAINING, "noise_splits=[SPLIT, ...]": "--noise SPLIT", "ood_val_splits=[SPLIT, ...]": "--ood-val SPLIT",
             "guard=False": "--no-guard", "method=": "--method ", "unknown method '": "unknown --method '"},
    "plot": {**_TRAINING, **_OOD, "train_split=SPLIT": "--train SPLIT", "prefix=": "--prefix ",
             "out_dir": "--out"},
}


def in_flag_words(message: str, flags: dict[str, str] | None = None) -> str:
    """A library message in a command's words: each library phrase becomes its flag.

    Parameters
    ----------
    message : str
        The library's message.
    flags : dict of str to str, default=None
        Library phrase -> flag phrase (one of :data:`COMMAND_FLAGS`'s tables);
        the phrases every command shares (``overwrite=True``) are always
        replaced. Longer phrases are replaced first.

    Returns
    -------
    str
    """
    table = {**_COMMON, **(flags or {})}
    for phrase in sorted(table, key=len, reverse=True):
        message = message.replace(phrase, table[phrase])
    return message


#: a method name typed in another case (``DICE``): the registry's names are lower case
_UNKNOWN_METHOD = re.compile(r"unknown method '([^']+)';")
#: a sparsity over 1 in a method spec (``dice:p=90``): sklearn's range message
_P_OUT_OF_RANGE = re.compile(r"The 'p' parameter of \w+ must be a float in the range \[0\.0, 1\.0\)\. Got ([0-9.]+) instead\.")
#: several splits in one value (``--ood ood,gauss``): the store's "has no split"
_COMMA_SPLIT = re.compile(r"has no split '([^']*,[^']*)': .*$")


def with_hints(message: str) -> str:
    """A library message with the hint a command-line user needs added.

    ``unknown method 'DICE'`` gains "did you mean 'dice'?"; sklearn's range
    message for ``dice:p=90`` gains "p is a fraction: 0.9 for 90%"; a split
    name with commas that is not in the store (``--ood ood,gauss``) is told
    to repeat the flag instead of a near name.

    Parameters
    ----------
    message : str

    Returns
    -------
    str
    """
    from ._names import METHOD_NAMES

    unknown = _UNKNOWN_METHOD.search(message)
    if unknown and unknown.group(1).lower() in METHOD_NAMES:
        return message.replace(unknown.group(0), f"unknown method {unknown.group(1)!r}: did you mean "
                               f"{unknown.group(1).lower()!r}? Method names are lower case;", 1)
    p = _P_OUT_OF_RANGE.search(message)
    if p and 1 <= float(p.group(1)) <= 100:
        return f"{message.rstrip('.')} (p is a fraction: {float(p.group(1)) / 100:g} for {float(p.group(1)):g}%)."
    several = _COMMA_SPLIT.search(message)
    if several:
        repeat = " ".join(f"--ood {name}" for name in several.group(1).split(",") if name)
        return message[:several.start()] + (f"has no split {several.group(1)!r}: one --ood names one split; "
                                             f"repeat it for several ({repeat}).")
    return message


def run_app(app, argv, state) -> None:
    """Invoke the Typer app, turning user errors into ``skdice: error: ...`` and exit 1.

    A command stopped by Ctrl-C (SIGINT) or SIGTERM exits with the shell's
    status for that signal, 130 or 143 (``cli/_process.py``), after the
    library's own clean-up (``extract`` prints how to resume); a command
    started with stdout closed fails at its first write of results.

    Parameters
    ----------
    app : typer.Typer or click.Command
        The application (a click command is run as it is, with skdice's own
        help formatting; see :func:`skdice.cli.app.command`).
    argv : list of str or None
    state : dict
        Shared state; ``state["debug"]`` is set by the ``--debug`` option,
        ``state["signal"]`` by a signal received.
    """
    from ._process import guard_stdout, signals_as_interrupts

    guard_stdout()
    state.pop("signal", None)
    try:
        with signals_as_interrupts(state):
            code = _invoke(app, argv, state)
            _flush_results()
    except KeyboardInterrupt:  # raised outside the command (click proper turns it into Abort)
        code = 130
    if state.get("signal") is not None or code == 130:
        _interrupted(state)
    sys.exit(code)


def _invoke(app, argv, state) -> int:
    """Run the app; the exit status (errors printed), without exiting."""
    try:
        code = app.main(args=argv, standalone_mode=False, prog_name="skdice") if hasattr(app, "main") \
            else app(args=argv, standalone_mode=False)
    except USER_ERRORS as exc:
        if state.get("debug"):
            traceback.print_exc()
        flags = COMMAND_FLAGS.get(state.get("command"), {})
        typer.echo(f"skdice: error: {with_hints(in_flag_words(str(exc), flags))}", err=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        if state.get("signal") is not None:
            return 130
        typer.echo("Aborted.", err=True)
        return 1
    except Exception as exc:  # usage errors: typer >= 0.29 vendors click, older ones use click
        show = getattr(exc, "show", None)
        if isinstance(exc, typer.TyperException) or _is_click_exception(exc):
            if show is not None:
                show()
            else:  # pragma: no cover - a TyperException without show()
                typer.echo(f"skdice: error: {exc}", err=True)
            return getattr(exc, "exit_code", 2)
        raise
    # without standalone mode, typer returns the status of a typer.Exit raised in a
    # command (130 for Ctrl-C) and the command's return value (None) otherwise
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _flush_results() -> None:
    """Flush stdout now, so a failed write of results (a full disk) is one error line and exit 1."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        typer.echo(f"skdice: error: the results could not be written to standard output: {exc}", err=True)
        try:  # nothing more to write there: the interpreter's own flush at exit must not fail again
            sys.stdout = open(os.devnull, "w")
        except OSError:  # pragma: no cover
            pass
        sys.exit(1)


def _interrupted(state) -> None:
    """The exit of a command stopped by a signal: one line on stderr, status 128 + the signal's number."""
    from ._process import HANDLED, exit_status

    signum = state.get("signal") or signal.SIGINT
    try:
        typer.echo(f"skdice: interrupted by {HANDLED.get(signum, signum)}.", err=True)
    except (OSError, ValueError):  # pragma: no cover - stderr gone too
        pass
    sys.exit(exit_status(signum))


def _is_click_exception(exc) -> bool:
    try:
        import click
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, click.ClickException)
