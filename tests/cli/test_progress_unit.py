"""The progress display's rate names what it counts (issue 22, item 8): verify counts chunks."""

from __future__ import annotations

import io
import re
import time

import pytest

pytest.importorskip("rich")

from rich.console import Console  # noqa: E402

from skdice.cli._console import Progress  # noqa: E402

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _drawn(**kwargs):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=150, color_system=None)
    with Progress("verifying toy.zarr", console=console, **kwargs) as progress:
        for done in range(0, 11, 2):
            progress(done, 10)
            time.sleep(0.02)
    return _ANSI.sub("", buffer.getvalue())


def test_the_rate_names_the_unit():
    drawn = _drawn(unit="chunks")
    assert "chunks/s" in drawn and "rows/s" not in drawn
    assert "rows/s" in _drawn()  # the default: extraction, fitting and scoring count rows


def test_verify_counts_chunks(tmp_path, monkeypatch):
    import numpy as np
    from stores import write_store
    from typer.testing import CliRunner

    from skdice import Head
    from skdice.cli import _console
    from skdice.cli.app import app

    made = []

    class Recording(Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(_console, "Progress", Recording)
    rng = np.random.default_rng(0)
    write_store(tmp_path / "s.zarr", Head(rng.normal(size=(4, 3))), {"id": rng.normal(size=(20, 4))}, chunk_rows=8)
    result = CliRunner().invoke(app, ["verify", str(tmp_path / "s.zarr")])
    assert result.exit_code == 0, result.output
    assert [bar.unit for bar in made] == ["chunks"]
