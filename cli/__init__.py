"""skdice.cli: the ``skdice`` command line (needs the ``cli`` extra).

:func:`main` is the console script's entry point (``skdice =
"skdice.cli:main"``) and ``python -m skdice``'s. Without the ``cli`` extra it
prints one line naming the extra to install, not a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

#: the modules the command line needs that only the ``cli`` extra installs
CLI_EXTRA_MODULES = ("typer", "click", "rich")


def main(argv: list[str] | None = None) -> None:
    """Run the command line; without the ``cli`` extra, one line naming it and exit 1.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    try:
        from .app import main as run
    except ImportError as exc:
        if exc.name not in CLI_EXTRA_MODULES:
            raise
        sys.stderr.write(f'skdice: error: {exc.name} is not installed: pip install "skdice[cli]"\n')
        sys.exit(1)
    run(argv)
