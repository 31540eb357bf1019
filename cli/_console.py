"""What the CLI draws: one progress display on stderr and one table renderer, both on rich.

Progress goes to stderr and only when stderr is a terminal, so piped output
(``skdice evaluate ... --format json | jq``) and logs stay clean. Tables are
rendered to a string (plain ASCII, colour only when stdout is a terminal) and
printed by the command like any other output.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from io import StringIO

from skdice.exceptions import require

require("rich", "cli")

from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as _RichProgress  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

__all__ = ["Progress", "render_table", "render_report"]


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _OnlyForBars(ProgressColumn):
    """A column shown for a bar (a task with a total) and blank for a message step."""

    def __init__(self, column: ProgressColumn, *, while_running: bool = False):
        super().__init__()
        self.column = column
        self.while_running = while_running

    def render(self, task):
        if task.fields.get("step") or (self.while_running and task.finished):
            return Text("")
        return self.column.render(task)


class _Rate(ProgressColumn):
    """Items (rows, chunks) per second."""

    def __init__(self, unit: str = "rows"):
        super().__init__()
        self.unit = unit

    def render(self, task):
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f} {self.unit}/s")


class Progress:
    """The CLI's progress display: message steps and ``(done, total)`` bars on stderr.

    One object serves both callback conventions of the library:

    * ``progress("fitting dice")`` starts a step: a line with a spinner and
      the elapsed time, ticked off when the next step starts;
    * ``progress(done, total)`` draws a bar of the current step (or of a new
      step named ``label``) with the rows done, rows/s and the time left.

    It draws only when its console is a terminal (by default: when stderr is
    one); otherwise every call returns at once and nothing is written. The
    display starts at the first call and stops when the ``with`` block ends
    (or at :meth:`close`). Standard output is left alone (it holds the
    command's results and may be piped); whatever else is written to stderr
    meanwhile, a warning for instance, is printed above the display.

    Parameters
    ----------
    label : str, default="working"
        Name of the bar when ``progress(done, total)`` is called before any
        message.
    console : rich.console.Console, default=None
        Where to draw; None means a console on ``sys.stderr`` that counts as a
        terminal exactly when ``sys.stderr.isatty()``.
    unit : str, default="rows"
        What ``done`` and ``total`` count, shown in the rate (``rows/s``,
        ``chunks/s``).

    Attributes
    ----------
    enabled : bool
        Whether anything is drawn (the console is a terminal).

    Examples
    --------
    >>> with Progress("fitting on train") as progress:  # doctest: +SKIP
    ...     progress("reading the store")
    ...     progress(500, 1000)
    """

    def __init__(self, label: str = "working", *, console: Console | None = None, unit: str = "rows"):
        self.label = label
        self.unit = unit
        if console is None:
            # the rule is isatty() of stderr itself; FORCE_COLOR and the like do not override it
            console = Console(file=sys.stderr, force_terminal=_isatty(sys.stderr))
        self.console = console
        self.enabled = console.is_terminal
        self._display = None
        self._task = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close(finished=exc_type is None)
        return False

    def __call__(self, what, total: int | None = None) -> None:
        """Report a message step (``progress(text)``) or rows done (``progress(done, total)``).

        Parameters
        ----------
        what : str or int
            The step's message, or the rows done so far.
        total : int, default=None
            Rows in all; given exactly when ``what`` is a count.
        """
        if total is None:
            self.message(str(what))
        else:
            self.advance(int(what), int(total))

    def message(self, text: str) -> None:
        """Tick off the current step and start a new one named ``text``.

        Parameters
        ----------
        text : str
        """
        if not self.enabled:
            return
        display = self._start()
        self._finish_task()
        self._task = display.add_task(text, total=None, step=True)

    def advance(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` rows on the current step's bar.

        Parameters
        ----------
        done : int
            Rows done so far (not an increment).
        total : int
            Rows in all.
        """
        if not self.enabled:
            return
        display = self._start()
        if self._task is not None:
            task = self._current()
            if task.total is not None and (done < task.completed or total != task.total):
                # counting starts again (another pass, another split): a new bar, same name
                description = task.description
                self._finish_task()
                self._task = display.add_task(description, total=total, step=False)
        if self._task is None:
            self._task = display.add_task(self.label, total=total, step=False)
        display.update(self._task, completed=done, total=total, step=False)

    def close(self, finished: bool = True) -> None:
        """Stop drawing; the display's last state stays on screen.

        Parameters
        ----------
        finished : bool, default=True
            Tick off the last step; False (the work stopped on an error)
            leaves it unticked.
        """
        if self._display is not None:
            self._finish_task(finished)
            self._display.stop()
            self._display = None

    def _start(self) -> _RichProgress:
        if self._display is None:
            self._display = _RichProgress(
                SpinnerColumn(finished_text="[green]✓[/]"),
                TextColumn("{task.description}", markup=False),
                _OnlyForBars(BarColumn()),
                _OnlyForBars(MofNCompleteColumn()),
                _OnlyForBars(_Rate(self.unit)),
                TimeElapsedColumn(),
                _OnlyForBars(TimeRemainingColumn(), while_running=True),
                console=self.console,
                redirect_stdout=False,  # stdout may be piped: results only
                redirect_stderr=True,  # warnings print above the display
            )
            self._display.start()
        return self._display

    def _current(self):
        return next(task for task in self._display.tasks if task.id == self._task)

    def _finish_task(self, finished: bool = True) -> None:
        if self._task is None:
            return
        task = self._current()
        if finished and task.total is None:  # a message step: done when the next one starts
            self._display.update(self._task, total=1, completed=1)
        self._display.stop_task(self._task)
        self._task = None


# ASCII only, so a table survives any pipe, log or code page: one rule of
# dashes under the header, columns separated by spaces, no frame.
_PLAIN = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


def render_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    justify: Sequence[str] | None = None,
    bold_rows: Iterable[int] = (),
    show_header: bool = True,
    color: bool | None = None,
) -> str:
    """Render rows of text as an aligned table (rich), without a trailing newline.

    Parameters
    ----------
    columns : sequence of str
        Column headers.
    rows : iterable of sequence of str
        Cells, already formatted; printed as they are (no markup, no wrapping).
    justify : sequence of {"left", "right"}, default=None
        One per column; None puts every column on the left.
    bold_rows : iterable of int, default=()
        Indices of rows drawn in bold when colour is on (the content does not
        change, so mark a row in its cells too when it matters without colour).
    show_header : bool, default=True
        Print the header and the rule under it.
    color : bool, default=None
        Emit colour and bold; None means when stdout is a terminal (and
        ``NO_COLOR`` is not set).

    Returns
    -------
    str
        One line per row (after the header and rule), trailing spaces removed.
    """
    if color is None:
        color = _isatty(sys.stdout)
    justify = list(justify) if justify is not None else ["left"] * len(columns)
    if len(justify) != len(columns):
        raise ValueError(f"justify has {len(justify)} entries for {len(columns)} columns.")
    bold = set(bold_rows)
    table = Table(box=_PLAIN, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True,
                  show_header=show_header, header_style="bold", highlight=False)
    for name, side in zip(columns, justify):
        table.add_column(Text(name), justify=side, no_wrap=True)
    for i, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(f"row {i} has {len(row)} cells for {len(columns)} columns.")
        table.add_row(*(Text(str(cell)) for cell in row), style="bold" if i in bold else None)
    buffer = StringIO()
    # a width no table reaches, so no cell is ever wrapped or cut
    console = Console(file=buffer, width=100_000, force_terminal=color,
                      color_system="standard" if color else None, highlight=False)
    console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n"))


def render_report(report, *, color: bool | None = None) -> str:
    """Render a :class:`skdice.metrics.Report` with :func:`render_table`.

    The same columns, cells and row order as ``Report.to_table()``: method,
    p, ood, then the four metrics in percent with two decimals.

    Parameters
    ----------
    report : skdice.metrics.Report
    color : bool, default=None
        As in :func:`render_table`.

    Returns
    -------
    str
    """
    tpr = report.extra.get("fpr_at_tpr", 0.95)
    fpr = "FPR95" if tpr == 0.95 else f"FPR@{100 * tpr:g}TPR"
    columns = ("method", "p", "ood", fpr, "AUROC", "AUPR-In", "AUPR-Out")
    rows = [
        (r.method, "" if r.p is None else f"{r.p:g}", r.ood,
         *(f"{value:.2f}" for value in (r.fpr95, r.auroc, r.aupr_in, r.aupr_out)))
        for r in report.rows
    ]
    return render_table(columns, rows, justify=["left"] * 3 + ["right"] * 4, color=color)


def echo_warnings(caught) -> None:
    """Print caught warnings: skdice's own as one ``warning: ...`` line each on stderr.

    Parameters
    ----------
    caught : list of warnings.WarningMessage
        Other libraries' warnings are shown as Python shows them.
    """
    from skdice.exceptions import (
        DegenerateFitWarning,
        UninformativeValidationWarning,
        UnlabelledValidationWarning,
    )

    ours = (DegenerateFitWarning, UninformativeValidationWarning, UnlabelledValidationWarning)
    for item in caught:
        if issubclass(item.category, ours):
            text = " ".join(str(item.message).split())
            print(f"warning: {text}", file=sys.stderr)
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)


@contextmanager
def warning_lines():
    """Collect the warnings raised in the block and print them when it ends (:func:`echo_warnings`).

    They are printed even when the block fails, before its error line, and
    after any progress display of the block has closed.

    Examples
    --------
    >>> with warning_lines():  # doctest: +SKIP
    ...     result = evaluate_store(...)
    """
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:  # after the catch has ended: a warning while printing is not swallowed
        echo_warnings(caught)
