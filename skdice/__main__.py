"""``python -m skdice`` runs the command line."""

from skdice.cli import main

main()
