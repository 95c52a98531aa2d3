"""The daemon's status file: what a running ``syncd daemon`` says about itself.

One file per daemon process, ``<state_dir>/daemon-<pid>.json`` (0600), replaced
atomically (written to a temporary file in the same directory, then renamed over
the old one) on every change of an account's state, so a reader never sees half a
file.  It lives next to the accounts' state databases because it belongs to the
config (two configs, two daemons, no clash) and ``syncd status`` already knows
where that is.  Removed when the daemon stops cleanly; a daemon killed outright
leaves it behind, so readers check that its pid is alive (and started before the
file was written: not another program given the pid since) before they believe it
(:func:`read_daemons`), and the next daemon removes stale ones.

Contents (the ``daemon`` part of ``syncd status --json``; the README's
"syncd status --json, schema 1")::

    {"schema": 1, "pid": 4242, "since": 1733500000.0, "version": "0.1.0",
     "updated": 1733500100.0,
     "accounts": {"work": {"state": "idle", "since": ..., "next_run": ...,
                           "error": null, "error_kind": null, "failures": 0,
                           "progress": null}}}

``progress`` (added in schema 1; absent in older files) is the copies of the sync
running now, or null: ``{"messages_done", "messages_total", "bytes_done",
"bytes_total", "rate" (bytes/s or null), "eta" (seconds or null), "elapsed",
"folder"}``, a :class:`~syncd.engine.progress.Snapshot`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from syncd import __version__
from syncd.engine.progress import Snapshot

logger = logging.getLogger("syncd.daemon")

RUNTIME_SCHEMA: Final = 1
_PREFIX, _SUFFIX = "daemon-", ".json"

#: Account states the daemon reports (``syncd status`` adds ``never synced``).
SYNCING, IDLE, BACKING_OFF, FAILING = "syncing", "idle", "backing off", "failing"


@dataclass(frozen=True)
class AccountRuntime:
    """One account as its daemon sees it now.  ``since``: when it entered ``state``;
    ``next_run``: when the daemon syncs it next (the end of a back-off, or the next
    scheduled full sync; None: unknown)."""

    state: str
    since: float
    next_run: float | None = None
    error: str | None = None
    error_kind: str | None = None
    failures: int = 0
    progress: Snapshot | None = None  # the copies of the sync running now


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    since: float
    version: str
    updated: float
    accounts: dict[str, AccountRuntime] = field(default_factory=dict)


def status_path(state_dir: Path, pid: int) -> Path:
    return state_dir / f"{_PREFIX}{pid}{_SUFFIX}"


class StatusFile:
    """The running daemon's file.  Thread-safe: account workers call :meth:`set`."""

    def __init__(self, state_dir: Path, *, pid: int | None = None) -> None:
        self.state_dir = state_dir
        self.pid = os.getpid() if pid is None else pid
        self.path = status_path(state_dir, self.pid)
        self.since = time.time()
        self._lock = threading.Lock()
        self._accounts: dict[str, AccountRuntime] = {}
        self._failed = False  # a write failed: said once, not per change

    def start(self) -> None:
        """Remove the files of daemons that are gone, then write ours."""
        for path in self.state_dir.glob(f"{_PREFIX}*{_SUFFIX}"):
            pid = _pid_of(path)
            with contextlib.suppress(OSError):  # gone meanwhile: nothing to do
                if pid is not None and pid != self.pid and not pid_alive(pid, path.stat().st_mtime):
                    path.unlink()
        with self._lock:
            self._write()

    def set(self, account: str, runtime: AccountRuntime) -> None:
        with self._lock:
            self._accounts[account] = runtime
            self._write()

    def set_progress(self, account: str, progress: Snapshot | None) -> None:
        """The copies of the account's running sync, as they go (None: none now)."""
        with self._lock:
            runtime = self._accounts.get(account)
            if runtime is None or runtime.progress == progress:
                return
            self._accounts[account] = dataclasses.replace(runtime, progress=progress)
            self._write()

    def get(self, account: str) -> AccountRuntime | None:
        with self._lock:
            return self._accounts.get(account)

    def drop(self, account: str) -> None:
        with self._lock:
            if self._accounts.pop(account, None) is not None:
                self._write()

    def remove(self) -> None:
        """The daemon is stopping: no file, no claim to be running."""
        with self._lock, contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _write(self) -> None:
        data = {
            "schema": RUNTIME_SCHEMA,
            "pid": self.pid,
            "since": self.since,
            "version": __version__,
            "updated": time.time(),
            "accounts": {name: asdict(rt) for name, rt in sorted(self._accounts.items())},
        }
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
            tmp.replace(self.path)
        except OSError as exc:  # a full disk must not stop the syncing itself
            if not self._failed:
                logger.warning(
                    "cannot write %s (%s); `syncd status` will not see this daemon's state",
                    self.path,
                    exc.strerror or exc,
                )
            self._failed = True
        else:
            self._failed = False


def _pid_of(path: Path) -> int | None:
    digits = path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX)
    return int(digits) if digits.isdigit() else None


def pid_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether ``pid`` is a live process (not a zombie).  With ``started_by`` (a time
    the process is known to have been running at, e.g. when it wrote its file), a
    process that started later is another program that was given a dead one's pid;
    where ``/proc`` cannot tell, ``kill(pid, 0)`` is trusted."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        boot = _boot_time()
    except OSError:
        return not Path("/proc/self/stat").exists()  # gone meanwhile; or no /proc here
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may hold blanks
    if not fields or fields[0] in ("Z", "X"):
        return False  # exited, not yet reaped
    if started_by is None or boot is None or len(fields) < 20:
        return True
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= started_by + 2.0  # the boot time is whole seconds


def _boot_time() -> float | None:
    for line in Path("/proc/stat").read_text(encoding="ascii").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def read_daemons(state_dir: Path) -> list[DaemonInfo]:
    """The daemons running on ``state_dir``, by pid; files of dead ones and files that
    cannot be read are skipped."""
    found: list[DaemonInfo] = []
    for path in sorted(state_dir.glob(f"{_PREFIX}*{_SUFFIX}")):
        pid = _pid_of(path)
        try:
            info = _parse(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # vanished meanwhile, or not ours
        if pid == info.pid and pid_alive(pid, started_by=info.since):
            found.append(info)
    return found


def _parse(data: dict[str, Any]) -> DaemonInfo:
    accounts = {
        str(name): AccountRuntime(
            state=str(rt["state"]),
            since=float(rt["since"]),
            next_run=None if rt.get("next_run") is None else float(rt["next_run"]),
            error=None if rt.get("error") is None else str(rt["error"]),
            error_kind=None if rt.get("error_kind") is None else str(rt["error_kind"]),
            failures=int(rt.get("failures", 0)),
            progress=_progress(rt.get("progress")),
        )
        for name, rt in dict(data["accounts"]).items()
    }
    return DaemonInfo(
        pid=int(data["pid"]),
        since=float(data["since"]),
        version=str(data["version"]),
        updated=float(data["updated"]),
        accounts=accounts,
    )


def _progress(data: Any) -> Snapshot | None:
    if not isinstance(data, dict):
        return None
    rate, eta = data.get("rate"), data.get("eta")
    return Snapshot(
        messages_done=int(data["messages_done"]),
        messages_total=int(data["messages_total"]),
        bytes_done=int(data["bytes_done"]),
        bytes_total=int(data["bytes_total"]),
        rate=None if rate is None else float(rate),
        eta=None if eta is None else float(eta),
        elapsed=float(data.get("elapsed", 0.0)),
        folder=None if data.get("folder") is None else str(data["folder"]),
    )


def lock_holder(state_dir: Path, account: str) -> int | None:
    """The pid of the live syncd that holds ``account``'s lock (syncing it now), or
    None.  Reads the pid the holder wrote into the lock file (cleared when it lets
    go); never takes the lock, which would make a sync starting meanwhile exit 75."""
    path = state_dir / f"{account}.lock"
    try:
        text = path.read_text(encoding="ascii").strip()
        written = path.stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid_alive(pid, started_by=written) else None
