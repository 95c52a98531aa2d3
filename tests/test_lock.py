"""One syncd per account: the lock, between real processes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.account.lock import AccountLock
from syncd.errors import AccountError, LockedError

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from syncd.account.lock import AccountLock

    lock = AccountLock(Path(sys.argv[1]), sys.argv[2])
    lock.acquire()
    print("locked", flush=True)
    sys.stdin.readline()  # hold it until the test says so (or kills us)
    lock.release()
    print("released", flush=True)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of account "work" in tmp_path/state."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "state"), "work"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "locked\n"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def test_second_process_is_refused_with_the_holders_pid(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = AccountLock(tmp_path / "state", "work")
    with pytest.raises(LockedError) as raised:
        lock.acquire()
    assert str(raised.value) == (
        f"account work is being synced by another syncd process (pid {holder.pid})"
    )
    assert not lock.held
    with pytest.raises(LockedError), AccountLock(tmp_path / "state", "work"):
        pass


def test_other_accounts_are_independent(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with AccountLock(tmp_path / "state", "home") as lock:
        assert lock.held


def test_lock_is_free_once_the_holder_releases_it(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.stdout.readline() == "released\n"
    with AccountLock(tmp_path / "state", "work") as lock:
        assert lock.held
        assert (tmp_path / "state" / "work.lock").read_text() == f"{os.getpid()}\n"


def test_waiting_acquire_gets_the_lock_when_the_holder_lets_go(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    lock = AccountLock(tmp_path / "state", "work")
    lock.acquire(wait=None)
    assert lock.held
    lock.release()


def test_waiting_acquire_gives_up_after_the_wait(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LockedError, match=f"pid {holder.pid}"):
        AccountLock(tmp_path / "state", "work").acquire(wait=0.3)


def test_a_killed_holder_leaves_no_stale_lock(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    with AccountLock(tmp_path / "state", "work") as lock:
        assert lock.held


def test_two_locks_in_one_process_conflict_too(tmp_path: Path) -> None:
    with AccountLock(tmp_path, "work"), pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        AccountLock(tmp_path, "work").acquire()


def test_release_and_reacquire(tmp_path: Path) -> None:
    lock = AccountLock(tmp_path, "work")
    lock.acquire()
    lock.acquire()  # idempotent while held
    lock.release()
    lock.release()  # and release is too
    assert not lock.held
    assert (tmp_path / "work.lock").read_text() == ""  # no stale pid
    with lock:
        assert lock.held
    assert not lock.held


def test_file_and_directory_modes(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        with AccountLock(tmp_path / "a" / "state", "work"):
            pass
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a" / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "state" / "work.lock").stat().st_mode) == 0o600


def test_symlinked_lock_file_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("precious\n")
    (tmp_path / "work.lock").symlink_to(target)
    with pytest.raises(AccountError) as raised:
        AccountLock(tmp_path, "work").acquire()
    assert str(raised.value) == (
        f"account work: cannot open lock file {tmp_path / 'work.lock'}: "
        "Too many levels of symbolic links"
    )
    assert target.read_text() == "precious\n"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x"])
def test_account_names_that_are_paths_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not an account name"):
        AccountLock(tmp_path, name)


class _LockProbe:
    """Hooks that try to take the account's lock from inside the sync."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.state_dir, self.name = state_dir, name
        self.seen: list[str] = []

    def _probe(self, when: str) -> None:
        probe = AccountLock(self.state_dir, self.name)
        try:
            probe.acquire(wait=0)
        except LockedError:
            self.seen.append(f"{when}: held")
        else:
            probe.release()
            self.seen.append(f"{when}: free")

    def before_account(self, *, account: object) -> None:
        self._probe("before")

    def before_folder(self, *, account: object, session: object, folder: str) -> list[str]:
        return []

    def folder_started(self, *, folder: str, session: object) -> None:
        return None

    def folder_finished(self, *, folder: str, session: object) -> None:
        return None

    def after_account(self, *, account: object, report: object) -> None:
        self._probe("after")


def test_after_sync_hooks_run_with_the_account_lock_held(tmp_path: Path) -> None:
    """The ``syncd_after_sync`` hookspec promises the lock is still held (a plugin
    running ``notmuch new`` there must not race the next sync); a sync refused
    because another syncd holds the account runs no hook at all."""
    from support.run import write_config

    from syncd.account.syncer import AccountSyncer
    from syncd.config import load_config
    from syncd.engine.options import RunOptions

    # Nothing listens on port 9: the sync fails to connect, inside the lock.
    path = write_config(
        tmp_path,
        {
            "a": {
                "host": "127.0.0.1",
                "port": 9,
                "tls": "none",
                "user": "u",
                "password_command": ["printf", "x"],
                "maildir": str(tmp_path / "Mail"),
            }
        },
    )
    config = load_config(path)
    hooks = _LockProbe(config.state_dir, "a")
    syncer = AccountSyncer(config, config.accounts["a"], hooks=hooks)  # type: ignore[arg-type]
    try:
        report = syncer.sync(RunOptions())
        assert report.error is not None
        assert hooks.seen == ["before: held", "after: held"]

        hooks.seen.clear()
        other = AccountLock(config.state_dir, "a")
        other.acquire(wait=0)
        try:
            report = syncer.sync(RunOptions())
        finally:
            other.release()
        assert report.locked
        assert hooks.seen == []
    finally:
        syncer.close()
