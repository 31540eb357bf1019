"""The optional ``dask.distributed`` cluster a workflow runs on.

skdice never starts a scheduler: a run uses an existing cluster when its
address is given (``--scheduler``) or set in ``SKDICE_SCHEDULER``, and the
single-machine path otherwise.
"""

from __future__ import annotations

import os
import socket
import struct
from contextlib import contextmanager, nullcontext

from ..exceptions import require

__all__ = ["SCHEDULER_ENV", "dask_client", "probe_scheduler", "resolve_scheduler"]

#: Environment variable naming a dask.distributed scheduler (``tcp://host:8786``).
SCHEDULER_ENV = "SKDICE_SCHEDULER"

#: How long dask_client tries to reach a scheduler.
_CONNECT_TIMEOUT = "10s"

#: How long the probe waits for the connection and for the scheduler's greeting (seconds).
PROBE_TIMEOUT_S = 5.0

#: A scheduler's greeting is a small message; a first frame size above this is not one.
_MAX_GREETING = 1 << 24


def probe_scheduler(address: str, *, origin: str = SCHEDULER_ENV, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Check that a ``tcp://`` address answers like a dask scheduler, within ``timeout`` seconds.

    A dask scheduler greets each new connection first: an 8-byte
    little-endian size, then a small message. Anything else (an HTTP server
    that waits for a request, or answers ``HTTP/1.0 ...``) is refused here
    with one line, before ``distributed`` waits on it or reads a size from
    its reply. Addresses of other protocols (``tls://``, ``ucx://``,
    ``inproc://``) are left to ``distributed``.

    Parameters
    ----------
    address : str
        ``tcp://host:port``, ``host:port`` or ``host`` (port 8786).
    origin : str, default="SKDICE_SCHEDULER"
        Where the address came from, for the message.
    timeout : float, default=5.0
        Seconds to wait for the connection, then for the greeting.

    Raises
    ------
    ValueError
        When nothing answers, nothing greets, or the greeting is not a scheduler's.
    """
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme != "tcp":
        return
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not colon or not port.isdigit():
        host, port = rest.rstrip("/"), "8786"
    host = host.strip("[]")
    where = f"{address!r} (from {origin})"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.settimeout(timeout)
            first = b""
            while len(first) < 8:
                part = conn.recv(8 - len(first))
                if not part:
                    break
                first += part
    except socket.timeout:
        first = None
    except (OSError, ValueError, OverflowError) as exc:
        raise ValueError(f"could not connect to the dask scheduler at {where}: {exc}") from None
    if not first:
        raise ValueError(
            f"{where} is not a dask scheduler: it sent nothing within {timeout:g} s of connecting "
            "(a scheduler greets first; is this the dashboard's or another server's port? "
            "a scheduler listens on 8786 by default)."
        )
    size = struct.unpack("<Q", first)[0] if len(first) == 8 else None
    if size is None or not 0 < size <= _MAX_GREETING:
        raise ValueError(f"{where} is not a dask scheduler: it answered {first!r} instead of a scheduler's greeting.")


def resolve_scheduler(scheduler: str | None = None) -> str | None:
    """The dask.distributed scheduler to use: the argument, else ``SKDICE_SCHEDULER``.

    Parameters
    ----------
    scheduler : str, default=None
        An address such as ``tcp://10.0.0.5:8786``. An empty string means none.

    Returns
    -------
    str or None
        None means the single-machine path (no dask cluster).
    """
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV)
    scheduler = (scheduler or "").strip()
    return scheduler or None


@contextmanager
def dask_client(scheduler: str | None = None, *, timeout: str | None = None):
    """Connect to an existing ``dask.distributed`` cluster for the duration of a block.

    Within the block, dask computations (``.compute()``, ``dask.compute``) run
    on that cluster. Without an address (and without ``SKDICE_SCHEDULER``)
    nothing is started and ``None`` is yielded: the single-machine path.
    skdice never starts a scheduler of its own.

    Parameters
    ----------
    scheduler : str, default=None
        Scheduler address, or a ``distributed.Client`` to use as is.
    timeout : str, default=None
        How long to try to connect; 10 seconds by default.

    Yields
    ------
    distributed.Client or None
    """
    if scheduler is not None and not isinstance(scheduler, str):
        with nullcontext(scheduler):
            yield scheduler
        return
    address = resolve_scheduler(scheduler)
    if address is None:
        yield None
        return
    distributed = require("distributed", "dask")
    probe_scheduler(address, origin="the scheduler= argument" if scheduler else SCHEDULER_ENV)
    try:
        client = distributed.Client(
            address, timeout=timeout or _CONNECT_TIMEOUT, set_as_default=True
        )
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"could not connect to the dask scheduler at {address!r} "
            f"(from {'the scheduler= argument' if scheduler else SCHEDULER_ENV}): {exc}"
        ) from None
    try:
        yield client
    finally:
        client.close()
