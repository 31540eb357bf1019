"""``skdice methods``: list the detector catalogue."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``methods`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("methods")
    def methods() -> None:
        """List every detector name with a one-line description."""
        from skdice import available_detectors

        from ._console import render_table

        rows = [(name, cls.summary) for name, cls in available_detectors().items()]
        typer.echo(render_table(("method", "summary"), rows, show_header=False))
