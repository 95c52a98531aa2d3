"""Put together what ``syncd status`` reports, from three sources:

- each account's state database: the last attempt (by a one-shot ``syncd sync`` or
  the daemon), its outcome and error, the last success, and the folders;
- the account lock file: the pid of a live syncd syncing the account right now;
- the status files of the running daemons (:mod:`syncd.status.runtime`): backing
  off or failing, the next run, and the daemon itself (pid, since, version).

The result's :func:`as_json` is the documented, versioned ``--json`` format
(the README's "syncd status --json, schema 1"); keep it stable: add keys, never
rename or remove them without raising :data:`STATUS_SCHEMA`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from syncd import __version__
from syncd.engine.progress import Snapshot
from syncd.engine.state import Attempt, StateDB
from syncd.status.runtime import (
    BACKING_OFF,
    FAILING,
    IDLE,
    SYNCING,
    DaemonInfo,
    lock_holder,
    read_daemons,
)

if TYPE_CHECKING:
    from syncd.config import Config

#: The version of the ``syncd status --json`` format.
STATUS_SCHEMA: Final = 1
NEVER_SYNCED: Final = "never synced"
#: Every state an account can be in, in ``state``.
STATES: Final = (SYNCING, IDLE, BACKING_OFF, FAILING, NEVER_SYNCED)


@dataclass(frozen=True)
class HeldBack:
    message: str
    size: int
    reason: str


@dataclass(frozen=True)
class FolderStatus:
    folder: str
    last_sync: float | None
    server: int | None
    local: int | None
    error: str | None
    held_back: list[HeldBack] = field(default_factory=list)


@dataclass(frozen=True)
class AccountStatus:
    """One account.  ``ok`` is False when its last attempt failed or was partial
    (what makes ``syncd status`` exit 1)."""

    name: str
    state: str
    ok: bool
    error: str | None
    error_kind: str | None
    attempt: Attempt | None
    last_success: float | None
    next_run: float | None
    daemon_pid: int | None
    syncing_pid: int | None
    folders: list[FolderStatus] = field(default_factory=list)
    progress: Snapshot | None = None  # the copies of the daemon's sync running now

    @property
    def held_back(self) -> int:
        return sum(len(f.held_back) for f in self.folders)


@dataclass(frozen=True)
class Status:
    generated: float
    daemons: list[DaemonInfo]
    accounts: list[AccountStatus]

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.accounts)


def collect(config: Config, names: list[str]) -> Status:
    """The status of the accounts ``names`` of ``config``."""
    daemons = read_daemons(config.state_dir) if config.state_dir.is_dir() else []
    return Status(time.time(), daemons, [_account(config.state_dir, n, daemons) for n in names])


def _account(state_dir: Path, name: str, daemons: list[DaemonInfo]) -> AccountStatus:
    attempt, folders = _from_state(state_dir / f"{name}.db")
    daemon = next((d for d in daemons if name in d.accounts), None)
    runtime = daemon.accounts[name] if daemon is not None else None
    holder = lock_holder(state_dir, name)
    failed = attempt is not None and attempt.outcome == "failed"
    if holder is not None or (runtime is not None and runtime.state == SYNCING):
        state = SYNCING
    elif (
        runtime is not None
        and runtime.state in (BACKING_OFF, FAILING)
        and (attempt is None or failed)
    ):
        # The daemon's word, unless a later one-shot sync got through meanwhile.
        state = runtime.state
    elif failed:
        state = FAILING
    elif attempt is None and not any(f.last_sync for f in folders):
        state = NEVER_SYNCED
    else:
        state = IDLE
    error = attempt.error if attempt is not None else None
    kind = attempt.error_kind if attempt is not None else None
    if attempt is None and runtime is not None and runtime.error:
        error, kind = runtime.error, runtime.error_kind
    if attempt is not None:
        last_success = attempt.last_success
    else:  # a database from before attempts were recorded: its folders tell
        last_success = max((f.last_sync for f in folders if f.last_sync), default=None)
    return AccountStatus(
        name=name,
        state=state,
        ok=state not in (BACKING_OFF, FAILING) and (attempt is None or attempt.outcome == "ok"),
        error=error,
        error_kind=kind,
        attempt=attempt,
        last_success=last_success,
        next_run=runtime.next_run if runtime is not None else None,
        daemon_pid=daemon.pid if daemon is not None else None,
        syncing_pid=holder,
        folders=folders,
        progress=runtime.progress
        if state == SYNCING and runtime is not None and runtime.state == SYNCING
        else None,
    )


def _from_state(path: Path) -> tuple[Attempt | None, list[FolderStatus]]:
    if not path.exists():
        return None, []
    db = StateDB(path)
    try:
        folders = [
            FolderStatus(
                folder=f.name,
                last_sync=f.last_sync,
                server=f.far_count,
                local=f.near_count,
                error=f.last_error,
                held_back=[
                    HeldBack(r.name, r.size, r.reason)
                    for r in sorted(db.refusals(f.id).values(), key=lambda r: r.name)
                ],
            )
            for f in db.folders()
        ]
        return db.last_attempt(), folders
    finally:
        db.close()


def as_json(status: Status) -> dict[str, Any]:
    """The ``syncd status --json`` document (schema :data:`STATUS_SCHEMA`)."""
    return {
        "schema": STATUS_SCHEMA,
        "generated": status.generated,
        "version": __version__,
        "ok": status.ok,
        "daemons": [
            {
                "pid": d.pid,
                "since": d.since,
                "version": d.version,
                "updated": d.updated,
                "accounts": sorted(d.accounts),
            }
            for d in status.daemons
        ],
        "accounts": {a.name: _account_json(a) for a in status.accounts},
    }


def _account_json(a: AccountStatus) -> dict[str, Any]:
    attempt = a.attempt
    return {
        "state": a.state,
        "ok": a.ok,
        "error": a.error,
        "error_kind": a.error_kind,
        "last_attempt": None
        if attempt is None
        else {"started": attempt.started, "finished": attempt.finished, "outcome": attempt.outcome},
        "last_success": a.last_success,
        "failing_since": attempt.failing_since if attempt is not None else None,
        "failures": attempt.failures if attempt is not None else 0,
        "next_run": a.next_run,
        "daemon_pid": a.daemon_pid,
        "syncing_pid": a.syncing_pid,
        "held_back": a.held_back,
        "progress": _progress_json(a.progress),
        "folders": [
            {
                "folder": f.folder,
                "last_sync": f.last_sync,
                "server": f.server,
                "local": f.local,
                "error": f.error,
                "held_back": [
                    {"message": h.message, "size": h.size, "reason": h.reason} for h in f.held_back
                ],
            }
            for f in a.folders
        ],
    }


def _progress_json(p: Snapshot | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "folder": p.folder,
        "messages_done": p.messages_done,
        "messages_total": p.messages_total,
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
        "rate": p.rate,
        "eta": p.eta,
        "elapsed": p.elapsed,
    }
