"""``skdice verify``: check every chunk of every array of a feature store."""

from __future__ import annotations

import typer

from ._options import StoreFolderArgument


def verification_summary(report) -> list[str]:
    """The lines ``skdice verify`` prints on stdout for a store found sound.

    Parameters
    ----------
    report : skdice.store.StoreReport

    Returns
    -------
    list of str
    """
    lines = [f"verified {report.path}: {report.arrays} arrays, {report.chunks} chunks decoded, no damage found"]
    if report.unchecked:
        lines.append(
            f"unchecked: {', '.join(report.unchecked)} (written without checksums by an older skdice: "
            "missing chunks are found, damaged ones that still decode are not; extract again to add them)"
        )
    scores = [part for part in report.unmanifested if part.startswith("scores ")]
    others = [part for part in report.unmanifested if part not in scores]
    if others:
        lines.append(
            f"no manifest: {', '.join(others)} (written before manifests by an older skdice: "
            "a valid chunk in the wrong place is not found; extract again to add one)"
        )
    if scores:
        lines.append(
            f"no manifest: {', '.join(scores)} (written before score manifests by an older skdice: a valid "
            "chunk in the wrong place is not found; score again with --overwrite to add one)"
        )
    if report.incomplete:
        lines.append(
            f"incomplete: {', '.join(report.incomplete)} (only the metadata was checked; "
            "re-run the same `skdice extract` to finish, then verify again)"
        )
    return lines


def register(app: typer.Typer) -> None:
    """Add the ``verify`` command to the app.

    Parameters
    ----------
    app : typer.Typer
    """

    @app.command("verify")
    def verify(
        store: StoreFolderArgument,
    ) -> None:
        """Decode every chunk of every array of a store, checking checksums and missing chunks.

        Prints a summary when the store is sound. Otherwise lists one problem
        per line on stderr, then one error line with the remedy, and exits 1.
        """
        from skdice.exceptions import StoreError
        from skdice.store import verify_store

        from ._console import Progress

        with Progress(f"verifying {store}", unit="chunks") as bar:
            report = verify_store(store, progress=bar)
        if not report.ok:
            for problem in report.problems:
                typer.echo(problem, err=True)
            n = len(report.problems)
            raise StoreError(
                f"{report.path} is damaged ({n} problem{'s' if n != 1 else ''}, listed above): "
                + "; ".join(report.remedies or ["restore it from a copy"]) + "."
            )
        typer.echo("\n".join(verification_summary(report)))
