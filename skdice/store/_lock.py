"""Lock files that keep a second writer out of a split, a store's creation or a score array."""

from __future__ import annotations

import errno
import json
import os
import socket
from contextlib import suppress
from pathlib import Path

from ..exceptions import StoreError
from ._schema import RERUN, validate_score_name, validate_split_name

# --------------------------------------------------------------------------- lock


def _lock_path(store: Path, split: str) -> Path:
    # Beside the store, not inside it: Zarr warns about unknown files in a group's folder.
    return store.parent / f"{store.name}.{split}.lock"


def scores_lock(store: Path, split: str, method: str) -> "SplitLock":
    """The lock file that keeps two scoring runs out of ``<split>/scores/<method>``.

    Parameters
    ----------
    store : Path
    split, method : str

    Returns
    -------
    SplitLock
        Not yet acquired; ``acquire()`` raises StoreError while another live
        process holds it.

    Raises
    ------
    StoreError
        When ``split`` or ``method`` is not a valid name (checked before the
        lock file's path is built from them).
    """
    validate_split_name(split)
    validate_score_name(method)
    return SplitLock(
        store,
        split,
        path=store.parent / f"{store.name}.{split}.scores-{method}.lock",
        what=f"scores {split}/scores/{method} of {store}",
        rerun="re-run the same `skdice score` command (it resumes from the last written block)",
    )


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # not a pid we can probe (0 and -1 would signal whole groups): not stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class SplitLock:
    """An exclusive lock file created with O_CREAT | O_EXCL, holding pid and host.

    A lock left behind by a process that died on this host (its pid is gone)
    is stale and taken over; a lock held by a live process or by another host
    is refused, with the lock file named so the user can delete it. The file
    exists exactly while the lock is held: ``release()`` removes it.

    Notes
    -----
    Why not ``filelock.FileLock(timeout=0)``: both were run on a SIGKILLed
    writer, a live second writer, the same process twice, a full 64 KiB tmpfs,
    a read-only mount and release/reacquire (filelock 3.12.4, 3.32.7, 4.3.1).
    Both took over the killed writer's lock and refused the live one. But
    filelock leaves its file on disk after release, still holding the last pid,
    where the store's users read "the file exists" as "held"; it takes a lock
    file naming a live writer on another host, since only the kernel's flock
    counts and flock is not shared between hosts on every network file system
    (NFS mounted with local_lock=flock, Lustre with -o localflock); and 3.12.4 truncates
    the file on each refused attempt (O_TRUNC), so a refusal could no longer
    name the holder. The one defect measured here, a full disk leaving an
    empty lock file that refused every later writer as "an unknown process",
    is fixed in ``acquire`` by removing the file when writing into it fails.
    """

    def __init__(
        self,
        store: Path,
        split: str,
        *,
        path: Path | None = None,
        what: str | None = None,
        rerun: str = RERUN,
    ):
        self.path = _lock_path(store, split) if path is None else path
        self.what = f"split {split!r} of {store}" if what is None else what
        self.rerun = rerun
        self._held = False

    def acquire(self) -> None:
        """Take the lock or refuse.

        Raises
        ------
        StoreError
            While a live process on this host, or any process on another host,
            holds it ("a second writer is refused", naming the lock file).
        OSError
            When the lock file cannot be written: a full disk or a read-only
            folder. Not a StoreError, so callers that wait for a held lock do
            not wait for these; nothing is left behind that would block a later
            writer.
        """
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                here = owner is not None and owner.get("host") == socket.gethostname()
                if here and not _pid_alive(owner.get("pid")):
                    try:
                        self.path.unlink(missing_ok=True)  # stale: its process is gone
                    except OSError as exc:
                        raise self._unwritable(exc) from exc
                    continue
                who = f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "an unknown process"
                raise StoreError(
                    f"{self.what} is being written by {who} "
                    f"(lock file {self.path}); a second writer is refused. If no such run is "
                    f"going on, delete the lock file and {self.rerun}."
                ) from None
            except OSError as exc:
                raise self._unwritable(exc) from exc
            try:
                try:
                    os.write(fd, me)
                finally:
                    os.close(fd)  # NFS may report a full disk only here
            except OSError as exc:
                # O_EXCL already made the file: left empty, it would name no holder and
                # refuse every later writer (measured on a full 64 KiB tmpfs).
                with suppress(OSError):
                    self.path.unlink()
                raise self._unwritable(exc) from exc
            self._held = True
            return
        raise StoreError(f"could not take the lock {self.path}: it keeps reappearing.")

    def _unwritable(self, exc: OSError) -> OSError:
        folder = self.path.parent
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            why = f"the disk holding {folder} is full (or over quota); free some space and {self.rerun}"
        elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            why = (f"{folder} is read-only or not writable by this user; the lock file lives "
                   f"beside the store, so write the store to a folder you can write to")
        else:
            why = exc.strerror or str(exc)
        # OSError(errno, ...) keeps the subclass (PermissionError for EACCES, ...).
        return OSError(exc.errno, f"cannot take the lock {self.path} for {self.what}: {why}.")

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False
