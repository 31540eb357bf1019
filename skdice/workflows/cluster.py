"""The optional ``dask.distributed`` cluster a workflow runs on.

skdice never starts a scheduler: a run uses an existing cluster when its
address is given (``--scheduler``) or set in ``SKDICE_SCHEDULER``, and the
single-machine path otherwise.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext

from ..exceptions import require

__all__ = ["SCHEDULER_ENV", "dask_client", "resolve_scheduler"]

#: Environment variable naming a dask.distributed scheduler (``tcp://host:8786``).
SCHEDULER_ENV = "SKDICE_SCHEDULER"

#: How long dask_client tries to reach a scheduler.
_CONNECT_TIMEOUT = "10s"


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
