"""What the process does around a command: signals become exit statuses, a closed stdout an error.

* **Signals.** Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` as Python always
  does; :func:`signals_as_interrupts` makes SIGTERM take the same path (the
  handler raises ``KeyboardInterrupt``), so the same clean-up runs (locks
  released, ``extract``'s resume line printed) and the command exits with the
  shell's status for a signal, 128 + its number: 130 for SIGINT, 143 for
  SIGTERM (:func:`exit_status`). A signal the parent set to be ignored
  (``nohup``, a background job) stays ignored.
* **Standard output.** A command started with stdout closed (``>&-``) would
  drop its results and exit 0: :func:`guard_stdout` keeps file descriptor 1
  taken (so no file the command opens lands there) and makes the first write
  of results an error.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

__all__ = ["ClosedStdout", "exit_status", "guard_stdout", "signals_as_interrupts"]

#: the signals a command stops on cleanly, with their names for the message
HANDLED = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def exit_status(signum: int) -> int:
    """The exit status of a command stopped by a signal: 128 + the signal's number (POSIX shells' rule).

    Parameters
    ----------
    signum : int
        The signal's number.

    Returns
    -------
    int
        130 for SIGINT, 143 for SIGTERM.
    """
    return 128 + int(signum)


@contextmanager
def signals_as_interrupts(state: dict):
    """Within the block, SIGTERM (and SIGINT) raise ``KeyboardInterrupt`` and record themselves.

    ``state["signal"]`` is set to the number of the signal received, so the
    caller can exit with :func:`exit_status`. The former handlers come back
    when the block ends. A signal whose handler is ``SIG_IGN`` (``nohup``, a
    job started in the background) is left ignored.

    Parameters
    ----------
    state : dict
        Where the signal received is recorded (key ``"signal"``).

    Yields
    ------
    None
    """
    def interrupt(signum, frame):
        state["signal"] = signum
        raise KeyboardInterrupt(HANDLED.get(signum, str(signum)))

    former = {}
    for signum in HANDLED:
        try:
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN:
                continue
            former[signum] = signal.signal(signum, interrupt)
        except ValueError:  # not the main thread (a test runner's worker thread): leave signals alone
            continue
    try:
        yield
    finally:
        for signum, handler in former.items():
            signal.signal(signum, handler)


class ClosedStdout:
    """A stand-in for ``sys.stdout`` when the process was started with it closed: every write fails.

    The error is an ``OSError`` whose message says what happened, so the CLI
    prints it as its one error line and exits 1 instead of dropping the
    results.
    """

    encoding = "utf-8"
    errors = "strict"

    def write(self, text) -> int:
        """Refuse to write.

        Parameters
        ----------
        text : str

        Raises
        ------
        OSError
            Always: standard output is closed.
        """
        raise OSError("standard output is closed, so the results cannot be written: "
                      "redirect it to a file (> results.txt) or to /dev/null instead of closing it (>&-).")

    def flush(self) -> None:
        """Nothing to flush."""

    def isatty(self) -> bool:
        """Not a terminal.

        Returns
        -------
        bool
            False.
        """
        return False


def guard_stdout() -> bool:
    """When stdout is closed, keep file descriptor 1 taken and make writes of results fail.

    Returns
    -------
    bool
        True when stdout was closed (``sys.stdout`` is now a :class:`ClosedStdout`).
    """
    try:
        os.fstat(1)
        open_fd = True
    except OSError:
        open_fd = False
    if sys.stdout is not None and open_fd:
        return False
    if not open_fd:
        # descriptor 1 is free: the next file opened would get it, so /dev/null holds it
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 1:  # pragma: no cover - 1 was taken meanwhile
            os.close(fd)
    sys.stdout = ClosedStdout()
    return True
