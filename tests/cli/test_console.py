"""The CLI's one progress display and one table renderer (``skdice.cli._console``)."""

from __future__ import annotations

import io
import re

import pytest

pytest.importorskip("rich")

from rich.console import Console  # noqa: E402

from skdice.cli._console import Progress, render_report, render_table  # noqa: E402
from skdice.metrics import Report, ReportRow  # noqa: E402

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _terminal_console():
    buffer = io.StringIO()
    return buffer, Console(file=buffer, force_terminal=True, width=150, color_system=None)


# ------------------------------------------------------------------ progress
def test_progress_is_silent_when_stderr_is_not_a_terminal(capsys):
    with Progress("fitting") as progress:
        assert not progress.enabled
        progress("reading splits")
        progress(5, 10)
        progress(10, 10)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_follows_isatty_of_stderr_not_force_color(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not Progress().enabled
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert Progress().enabled


def test_progress_draws_message_steps_on_a_terminal():
    buffer, console = _terminal_console()
    with Progress(console=console) as progress:
        progress("reading splits of toy.zarr")
        progress("fitting dice")
    drawn = _ANSI.sub("", buffer.getvalue())
    assert "reading splits of toy.zarr" in drawn and "fitting dice" in drawn


def test_progress_bar_variant_gets_done_and_total():
    buffer, console = _terminal_console()
    with Progress("scoring test", console=console) as progress:
        progress(30, 120)
    final = _ANSI.sub("", buffer.getvalue())
    assert "scoring test" in final and "30/120" in final


def test_progress_bar_restarts_when_counting_starts_again():
    buffer, console = _terminal_console()
    with Progress("extracting", console=console) as progress:
        progress(50, 50)
        progress(4, 40)  # another pass: a second bar, the first one stays complete
    final = _ANSI.sub("", buffer.getvalue()).rsplit("\r", 1)[-1]
    assert "50/50" in final and "4/40" in final


def test_progress_leaves_stdout_alone(capsys):
    # stdout may be piped into jq: the display must not capture or move what is printed there
    buffer, console = _terminal_console()
    with Progress(console=console) as progress:
        progress("a step")
        print("result line")
    assert capsys.readouterr().out == "result line\n"


# ------------------------------------------------------------------ tables
def test_table_keeps_every_column_and_row_in_order():
    columns = ("name", "n", "value", "note")
    rows = [("alpha", "1", "12.50", "x"), ("b", "200", "3.00", "longer note"), ("gamma", "3", "100.00", "")]
    text = render_table(columns, rows, justify=["left", "right", "right", "left"], color=False)
    lines = text.splitlines()
    assert lines[0].split() == list(columns)
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert [line.split(None, 3) for line in lines[2:]] == [
        ["alpha", "1", "12.50", "x"], ["b", "200", "3.00", "longer note"], ["gamma", "3", "100.00"],
    ]
    assert all(line == line.rstrip() for line in lines) and not text.endswith("\n")


def test_table_right_justified_columns_end_together():
    text = render_table(("k", "v"), [("a", "1.5"), ("b", "100.25")], justify=["left", "right"], color=False)
    header, _, *rows = text.splitlines()
    assert len({len(line) for line in [header, *rows]}) == 1


def test_table_prints_cells_literally_and_never_wraps():
    cell = "[bold]not markup[/bold] " + "w" * 300
    text = render_table(("a", "b"), [("x", cell)], color=False)
    assert text.splitlines()[2].split(None, 1) == ["x", cell]


def test_table_has_colour_only_when_asked():
    plain = render_table(("a",), [("1",)], bold_rows=[0], color=False)
    coloured = render_table(("a",), [("1",)], bold_rows=[0], color=True)
    assert "\x1b[" not in plain and "\x1b[1m" in coloured
    assert _ANSI.sub("", coloured) == plain


def test_table_colour_follows_stdout_by_default(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert "\x1b[" not in render_table(("a",), [("1",)])


def test_table_without_header_is_only_the_rows():
    assert render_table(("a", "b"), [("x", "1"), ("yy", "2")], show_header=False, color=False) == "x   1\nyy  2"


def test_table_rejects_a_row_of_the_wrong_length():
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        render_table(("a", "b"), [("x", "1"), ("y",)], color=False)


def test_report_table_has_the_cells_of_report_to_table():
    report = Report(
        [ReportRow("dice", 0.9, "ood_a", 86.25, 72.6875, 82.37, 62.234),
         ReportRow("energy", None, "average", 100.0, 35.5, 57.24, 28.88)],
        extra={"fpr_at_tpr": 0.9},
    )
    ours = [line.split() for line in render_report(report, color=False).splitlines()]
    library = [line.split() for line in report.to_table().splitlines()]
    del ours[1], library[1]  # the rules under the headers differ in look only
    assert ours == library
    assert ours[0][3] == "FPR@90TPR"


def test_progress_stopped_by_an_error_leaves_the_last_step_unticked():
    buffer, console = _terminal_console()
    with pytest.raises(RuntimeError):
        with Progress(console=console) as progress:
            progress("first step")
            progress("failing step")
            raise RuntimeError
    final = _ANSI.sub("", buffer.getvalue()).rsplit("\r", 1)[-1]
    assert "✓ first step" in final and "✓ failing step" not in final and "failing step" in final
