"""skdice.cli: the ``skdice`` command line (needs the ``cli`` extra)."""

from .app import main

__all__ = ["main"]
