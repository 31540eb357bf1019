"""``python -m skdice.cli`` runs the command line."""

from . import main

main()
