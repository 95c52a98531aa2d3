"""One syncd per account: an exclusive ``flock`` on ``<state_dir>/<account>.lock``.

``flock`` (not ``fcntl``/``F_SETLK`` record locks) because its lock belongs to
the open file, so two ``AccountLock`` objects conflict even inside one process,
and the kernel drops it when the holder exits, even after ``kill -9``: there is
no stale lock to clean up.  The file is never removed (removing it would let a
third process lock a fresh inode while the second still holds the old one);
it holds the holder's pid, for the error message only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Final

from syncd.errors import AccountError, LockedError

_POLL_INTERVAL: Final = 0.1


class AccountLock:
    """The lock that makes one process at a time sync *account*.

    ``acquire()`` creates *state_dir* (0700) and the lock file (0600) if needed.
    Use as a context manager (non-blocking) or call ``acquire``/``release``.
    """

    def __init__(self, state_dir: Path, account: str) -> None:
        if not account or "/" in account or "\0" in account or set(account) == {"."}:
            raise ValueError(f"not an account name: {account!r}")
        self.state_dir = Path(state_dir)
        self.account = account
        self.path = self.state_dir / f"{account}.lock"
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"AccountLock({str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: float | None = 0) -> None:
        """Take the lock, waiting up to *wait* seconds (``None``: as long as it takes).

        Raises ``LockedError`` ("account X is being synced by another syncd
        process (pid N)") when another process holds it after *wait*, and
        ``AccountError`` when the lock file cannot be created or opened.
        Idempotent while held.
        """
        if self._fd is not None:
            return
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # O_NOFOLLOW: a symlink planted in the state dir must not make us write elsewhere.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise AccountError(
                f"account {self.account}: cannot open lock file {self.path}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        try:
            self._lock(fd, wait)
            os.fchmod(fd, 0o600)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _lock(self, fd: int, wait: float | None) -> None:
        if wait is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        # flock has no timeout; polling is simpler than a blocking flock
        # interrupted by a signal timer, and the wait is rare and short.
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"account {self.account} is being synced by another syncd process "
                        f"(pid {self._holder_pid(fd)})"
                    ) from None
                time.sleep(min(_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
            else:
                return

    @staticmethod
    def _holder_pid(fd: int) -> str:
        try:
            text = os.pread(fd, 32, 0).decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return "unknown"
        return text if text.isdigit() else "unknown"

    def release(self) -> None:
        """Let go of the lock (no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # the pid of a process that let go means nothing
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> AccountLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
