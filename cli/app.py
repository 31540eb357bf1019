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

from skdice._version import __version__

from ._names import METHOD_NAMES, MODEL_PRESETS, complete_from

app = typer.Typer(
    name="skdice",
    help="DICE out-of-distribution detection: extract features, fit, tune, evaluate, plot.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}

# One module per command group (see STYLE.md); each defines register(app).
_COMMAND_MODULES = [
    "demo",
    "extract",
    "import_arrays",
    "info",
    "methods",
    "evaluate",
    "benchmark",
    "tune",
    "fit_score",
    "plot",
    "verify",
]


def _version_callback(value: bool):
    if value:
        typer.echo(f"skdice {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
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
    # which command runs: its table of flags puts library errors in its words (errors.py)
    _state["command"] = ctx.invoked_subcommand


for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}").register(app)


def _flag_without_type(get_help_option):
    def wrapped(ctx):
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""  # --help takes no value: no <bool> beside it
        return option

    return wrapped


#: options whose value is a split of the command's STORE: completed from the store
SPLIT_OPTIONS = frozenset({"split", "id", "ood", "train", "noise", "id_split", "ood_splits",
                           "train_split", "tune_id", "tune_noise"})


#: options whose value is one of a fixed list of names (``cli/_names.py``)
_NAMED_VALUES = {"method": METHOD_NAMES, "model": MODEL_PRESETS}


#: what an option takes, in docs/cli.md's words: by option, then by command and option
_PLACEHOLDERS = {"weights": "FILE", "train_mean": "FILE", "detector": "FILE", "batch_size": "N",
                 "workers": "N", "limit": "N", "n_bootstrap": "N", "bins": "N", "seed": "N",
                 "positive": "id|ood", "fmt": "table|markdown|csv|json", "class_index": "CLASS",
                 "ps": "P,P,...", "max_accuracy_drop": "POINTS"}
_COMMAND_PLACEHOLDERS = {("extract", "out"): "STORE", ("fit", "out"): "FILE", ("plot", "out"): "DIR",
                         ("tune", "fmt"): "table|json",
                         ("benchmark", "fmt"): "table|json|csv|markdown|html", ("benchmark", "out"): "FILE",
                         ("benchmark", "protocol"): "FILE|NAME", ("benchmark", "check"): "RESULT.json",
                         ("benchmark", "figure"): "FILE"}


def placeholder(command_name: str, param_name: str) -> str:
    """The placeholder an option's value is shown as in help: SPLIT, FILE, DIR, N or its choices.

    Parameters
    ----------
    command_name : str
        The command (``"fit"``).
    param_name : str
        The option's parameter name (``"train"``).

    Returns
    -------
    str
        ``SPLIT`` for a split of the store, the choices for a closed list
        (``table|json``), else a word in capitals, never a type.
    """
    if param_name in SPLIT_OPTIONS:
        return "SPLIT"
    return _COMMAND_PLACEHOLDERS.get((command_name, param_name)) or _PLACEHOLDERS.get(param_name) \
        or param_name.upper()


def complete_split(ctx, param, incomplete: str):
    """Shell completion of a split name from the store named earlier on the line.

    Cheap: one listing of the store's groups; nothing when the store is not
    given yet or cannot be opened.

    Parameters
    ----------
    ctx : click.Context
    param : click.Parameter
    incomplete : str
        What has been typed of the value so far.

    Returns
    -------
    list of click.shell_completion.CompletionItem
    """
    import os
    import shlex
    from pathlib import Path

    store = ctx.params.get("store")
    if not store:
        # the parser drops what precedes an option still waiting for its value; every
        # shell click completes for passes the words typed so far in COMP_WORDS
        try:
            words = shlex.split(os.environ.get("COMP_WORDS", ""))
        except ValueError:
            words = []
        store = next((w for w in words if (Path(w) / "zarr.json").is_file()), None)
    if not store:
        return []
    try:
        from skdice.store import open_store

        splits = open_store(store).splits
    except Exception:  # completion never fails loudly: nothing to offer
        return []
    try:
        from typer._click.shell_completion import CompletionItem  # typer >= 0.29 vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click.shell_completion import CompletionItem

    return [CompletionItem(name) for name in splits if name.startswith(incomplete)]


def command():
    """The click command behind ``skdice``, with help written in placeholders, not types.

    Options that take a value show an upper-case placeholder (``--split
    SPLIT``, ``--out DIR`` where a command names one), flags show none, and
    arguments show their name (``STORE``) instead of a type tag such as
    ``<path>`` or ``<bool>``.

    Returns
    -------
    click.Command
    """
    root = typer.main.get_command(app)
    stack = [root]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        cmd.get_help_option = _flag_without_type(cmd.get_help_option)
        for param in cmd.params:
            if param.param_type_name == "argument":
                param.metavar = param.metavar or param.name.upper()
                # the name says what it is; typer would add its type (<path>) beside it,
                # and write a required one as {STORE} in the usage line
                param.display_type_rich = lambda ctx: None
                name = param.metavar + ("..." if param.nargs != 1 else "")
                param._usage_display_name = lambda name=name: name
            elif getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
                continue
            if param.name in SPLIT_OPTIONS and any(p.name == "store" for p in cmd.params):
                param.shell_complete = lambda ctx, incomplete, param=param: complete_split(ctx, param, incomplete)
            elif param.name in _NAMED_VALUES:
                names = _NAMED_VALUES[param.name] + (("all",) if cmd.name == "evaluate" else ())
                param.shell_complete = lambda ctx, incomplete, names=names: complete_from(names, incomplete)
            if param.param_type_name == "argument":
                continue
            if param.metavar is None:
                param.metavar = placeholder(cmd.name, param.name)
    return root


def main(argv: list[str] | None = None) -> None:
    """Run the command line; library errors become one line and exit code 1.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    from .errors import run_app

    run_app(command(), argv, _state)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
