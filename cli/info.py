"""``skdice info``: what a feature store holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def describe_store(path) -> str:
    """A few lines on a store: model, head shape, and each split's rows and completeness.

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
    lines.append("splits")
    width = max(len(name) for name in splits)
    for name in splits:
        info = store.split_info(name)
        if info["complete"]:
            state = "complete"
        else:
            state = (
                f"INCOMPLETE ({info['written_chunks']} of {info.get('n_chunks', '?')} chunks): "
                "re-run the same `skdice extract` to resume"
            )
        lines.append(f"  {name:<{width}}  {info['count']:>9} rows  {state}  [{info.get('source', '?')}]")
        scores = store.score_names(name)
        if scores:
            listed = ", ".join(k if done else f"{k} (incomplete)" for k, done in scores.items())
            lines.append(f"  {'':<{width}}  scores: {listed}")
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
