"""``skdice info``: what a feature store holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def describe_store(path) -> str:
    """A few lines on a store: model, head shape, and a table of its splits.

    The table has one row per split: its rows, completeness, source and,
    when there are any, the scores written back into it (``(incomplete)``
    when a scoring was interrupted).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    from skdice.store import open_store

    store = open_store(path)
    head = store.head
    sha = store.attrs.get("weights_sha256")
    lines = [
        f"store    {store.path}",
        f"model    {store.model}" + (f" (weights sha256 {sha[:16]}...)" if sha else ""),
        f"head     W {head.weight.shape} (features x classes), b ({head.n_classes},)",
        f"feature  {store.attrs.get('feature_layer')}",
    ]
    splits = store.splits
    if not splits:
        lines.append("splits   none yet: add one with `skdice extract`")
        return "\n".join(lines)
    from ._console import render_table

    rows, incomplete = [], False
    for name in splits:
        info = store.split_info(name)
        if info["complete"]:
            state = "complete"
        else:
            incomplete = True
            state = f"INCOMPLETE ({info['written_chunks']} of {info.get('n_chunks', '?')} chunks)"
        scores = store.score_names(name)
        listed = ", ".join(k if done else f"{k} (incomplete)" for k, done in scores.items())
        rows.append((name, str(info["count"]), state, str(info.get("source", "?")), listed))
    columns = ["split", "rows", "state", "source", "scores"]
    if not any(row[-1] for row in rows):  # no scores written anywhere: no empty column
        columns, rows = columns[:-1], [row[:-1] for row in rows]
    table = render_table(columns, rows, justify=["left", "right"] + ["left"] * (len(columns) - 2))
    lines.append("splits")
    lines += [f"  {line}" for line in table.splitlines()]
    if incomplete:
        lines.append("re-run the same `skdice extract` to resume an INCOMPLETE split.")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``info`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("info")
    def info(
        store: Annotated[Path, typer.Argument(help="Feature store folder written by `skdice extract`.")],
    ) -> None:
        """List a store's model, head shape and splits with their counts and completeness."""
        typer.echo(describe_store(store))
