"""``skdice info``: what a feature store holds."""

from __future__ import annotations

import typer

from ._options import StoreFolderArgument


def describe_store(path) -> str:
    """A few lines on a store: model, head shape, and a table of its splits.

    The table has one row per split: its rows, completeness, source and,
    when there are any, the scores written back into it (``(incomplete)``
    when a scoring was interrupted). Each split is checked the way the
    readers check it, from its metadata and chunk files without decoding a
    chunk (``skdice verify`` decodes them all): a split that would be refused
    reads ``DAMAGED`` and the reason follows the table; one written before
    checksums existed reads ``complete, unchecked``. Memory stays constant in
    the number of chunks: written chunks are counted from the flag files.
    ``skdice info`` prints this, then exits 1 when anything reads ``DAMAGED``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    return "\n".join(_summary(path)[0])


def _summary(path) -> tuple[list[str], list[str]]:
    """The lines of :func:`describe_store`, and the parts it marks DAMAGED in words.

    The parts are ``"the head"`` and ``"split 'NAME'"`` for each damaged split,
    in the table's order; an INCOMPLETE split (still being extracted, or
    interrupted) is not damage.
    """
    from skdice.store import open_store

    store = open_store(path)
    sha = store.attrs.get("weights_sha256")
    lines = [
        f"store    {store.path}",
        f"model    {store.model}" + (f" (weights sha256 {sha[:16]}...)" if sha else ""),
    ]
    damage = store.check_head()
    parts = ["the head"] if damage else []
    if damage:
        lines.append("head     DAMAGED (see below)")
    else:
        m, c = store.head_shape
        unchecked = "" if store.checksums else "; unchecked (written without checksums)"
        lines.append(f"head     W ({m}, {c}) (features x classes), b ({c},){unchecked}")
    lines.append(f"feature  {store.attrs.get('feature_layer')}")
    splits = store.splits
    if not splits:
        lines.append("splits   none yet: add one with `skdice extract`")
        lines += [f"damaged: {problem}" for problem in damage]
        return lines, parts
    from skdice.exceptions import StoreError

    from ._console import render_table

    rows, incomplete, unchecked = [], False, False
    for name in splits:
        problems = store.check_split(name)
        try:
            info = store.split_info(name)
            scores = store.score_names(name)
        except StoreError:
            info, scores = {"count": "?", "complete": True}, {}
        if problems:
            state = "DAMAGED"
            damage += problems
            parts.append(f"split {name!r}")
        elif info["complete"]:
            state = "complete" if info.get("checksums") else "complete, unchecked"
            unchecked = unchecked or not info.get("checksums")
        else:
            incomplete = True
            state = f"INCOMPLETE ({info['written_chunks']} of {info.get('n_chunks', '?')} chunks)"
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
    if unchecked:
        lines.append(
            "unchecked: written without checksums (by an older skdice); missing chunks are still "
            "found, damaged ones that decode are not. Extract again to add checksums."
        )
    lines += [f"damaged: {problem}" for problem in damage]
    return lines, parts


def register(app: typer.Typer) -> None:
    """Add the ``info`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("info")
    def info(
        store: StoreFolderArgument,
    ) -> None:
        """List a store's model, head shape and splits with their counts, completeness and damage.

        Exits 0 when nothing is damaged (an INCOMPLETE split is still being
        extracted, or was interrupted: not damage). When the head or a split
        is DAMAGED, prints the whole listing, then one error line on stderr
        naming the damaged parts, and exits 1.
        """
        from skdice.exceptions import StoreError

        lines, parts = _summary(store)
        typer.echo("\n".join(lines))
        if parts:
            raise StoreError(
                f"{store} is damaged: {', '.join(parts)} (each `damaged:` line above says why and how to "
                f"repair it); `skdice verify {store}` decodes every chunk and lists all the damage."
            )
