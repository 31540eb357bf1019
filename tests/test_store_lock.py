"""The store's lock files: one writer per split, stale-lock takeover, and no lock left by a failed take."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from skdice.exceptions import StoreError
from skdice.store import _lock
from skdice.store._lock import SplitLock, scores_lock

_HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from skdice.store._lock import SplitLock
    SplitLock(Path(sys.argv[1]), "test").acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock of split 'test' of tmp_path/s.zarr until killed."""
    child = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path / "s.zarr")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield child
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_lock_of_a_killed_writer_is_taken_over(tmp_path, holder):
    lock = SplitLock(tmp_path / "s.zarr", "test")
    holder.send_signal(signal.SIGKILL)
    holder.wait()  # reaped: its pid is gone, as after any crash the shell has seen
    assert json.loads(lock.path.read_text())["pid"] == holder.pid  # left behind, no cleanup ran
    lock.acquire()
    assert json.loads(lock.path.read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
    lock.release()
    assert not lock.path.exists()


def test_live_writer_in_another_process_refuses_a_second_naming_the_holder(tmp_path, holder):
    lock = SplitLock(tmp_path / "s.zarr", "test")
    expected = (f"split 'test' of {tmp_path / 's.zarr'} is being written by pid {holder.pid} on "
                f"{socket.gethostname()} (lock file {lock.path}); a second writer is refused")
    with pytest.raises(StoreError) as info:
        lock.acquire()
    assert str(info.value).startswith(expected)
    assert json.loads(lock.path.read_text())["pid"] == holder.pid  # the refusal left the holder's record
    lock.release()  # releasing a lock never taken removes nothing
    assert lock.path.exists()


def test_same_process_cannot_take_a_held_lock_again(tmp_path):
    first = SplitLock(tmp_path / "s.zarr", "test")
    first.acquire()
    for again in (SplitLock(tmp_path / "s.zarr", "test"), first):
        with pytest.raises(StoreError, match=rf"being written by pid {os.getpid()} .*second writer is refused"):
            again.acquire()
    first.release()


def test_release_removes_the_file_and_the_lock_can_be_taken_again(tmp_path):
    lock = SplitLock(tmp_path / "s.zarr", "test")
    assert lock.path == tmp_path / "s.zarr.test.lock"  # beside the store, not inside it
    lock.acquire()
    lock.release()
    assert not lock.path.exists()
    lock.acquire()
    other = SplitLock(tmp_path / "s.zarr", "other")
    other.acquire()  # other splits are free
    other.release()
    lock.release()
    assert list(tmp_path.iterdir()) == []


def test_lock_of_another_host_is_refused_even_if_its_pid_is_free_here(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    lock = SplitLock(tmp_path / "s.zarr", "test")
    lock.path.write_text(json.dumps({"pid": pid, "host": "elsewhere"}))
    with pytest.raises(StoreError, match=rf"being written by pid {pid} on elsewhere .*delete the lock file"):
        lock.acquire()
    assert json.loads(lock.path.read_text())["host"] == "elsewhere"


def _full_disk(monkeypatch, call):
    """Make ``os.<call>`` inside the lock module fail with ENOSPC, as on a full disk."""
    real = getattr(os, call)

    def full(*args):
        if call == "close":
            real(*args)  # NFS reports ENOSPC from close(), after the descriptor is gone
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_lock.os, call, full)


@pytest.mark.parametrize("call", ["write", "close", "open"])
def test_full_disk_while_taking_the_lock_says_so_and_blocks_no_later_writer(tmp_path, monkeypatch, call):
    lock = SplitLock(tmp_path / "s.zarr", "test")
    with monkeypatch.context() as patch:
        _full_disk(patch, call)
        with pytest.raises(OSError) as info:
            lock.acquire()
    assert info.value.errno == errno.ENOSPC
    assert not isinstance(info.value, StoreError)  # create_store's wait for a held lock does not spin on it
    assert f"cannot take the lock {lock.path}" in str(info.value)
    assert f"the disk holding {tmp_path} is full" in str(info.value)
    assert not lock.path.exists()  # an empty file here refused every later writer as "an unknown process"
    later = SplitLock(tmp_path / "s.zarr", "test")
    later.acquire()
    assert json.loads(later.path.read_text())["pid"] == os.getpid()
    later.release()


def test_read_only_folder_is_a_clear_error(tmp_path, monkeypatch):
    lock = SplitLock(tmp_path / "s.zarr", "test")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(lock.path))

    monkeypatch.setattr(_lock.os, "open", read_only)
    with pytest.raises(OSError, match=rf"cannot take the lock .*: {tmp_path} is read-only or not writable") as info:
        lock.acquire()
    assert info.value.errno == errno.EROFS


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into a folder whatever its mode")
def test_folder_without_write_permission_is_a_clear_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=r"is read-only or not writable by this user"):
            SplitLock(folder / "s.zarr", "test").acquire()
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


def test_scores_lock_is_returned_untaken_beside_the_store(tmp_path):
    lock = scores_lock(tmp_path / "s.zarr", "train", "dice")
    assert lock.path == tmp_path / "s.zarr.train.scores-dice.lock"
    assert not lock.path.exists()
    lock.acquire()
    with pytest.raises(StoreError, match=r"scores train/scores/dice of .* a second writer is refused.*skdice score"):
        scores_lock(tmp_path / "s.zarr", "train", "dice").acquire()
    lock.release()
    assert not lock.path.exists()
