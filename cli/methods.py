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

        registry = available_detectors()
        width = max(len(name) for name in registry)
        for name, cls in registry.items():
            typer.echo(f"{name:<{width}}  {cls.summary}")
