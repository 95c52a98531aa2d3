"""``syncd status`` without a server: the error kinds, the attempt record and its
migration, the daemon's status file (atomic, stale after its daemon died), the
daemon's treatment of an error only the user can end, and the one-line form."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from support.run import write_config

from syncd.account.outcome import (
    CONNECTION,
    FOLDER,
    HELD,
    KEYRING,
    LOGIN,
    MAILDIR,
    OAUTH2,
    PASSWORD,
    PROTOCOL,
    QUOTA,
    SERVER,
    TLS,
    error_kind,
    partial_error,
)
from syncd.account.syncer import AccountReport
from syncd.config import AccountConfig, Config, load_config
from syncd.daemon.queue import Tuning
from syncd.daemon.runner import AccountRunner
from syncd.engine.options import RunOptions
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.errors import AccountError, CredentialError, ProtocolError
from syncd.status.collect import collect
from syncd.status.render import ago, can_print, short_line
from syncd.status.runtime import (
    FAILING,
    AccountRuntime,
    StatusFile,
    lock_holder,
    read_daemons,
)

DEADLINE = 30.0


def _raised(exc: Exception, cause: BaseException | None = None) -> Exception:
    try:
        raise exc from cause
    except Exception as caught:
        return caught


class LoginError(Exception):  # imapclient's name: the classification goes by name
    pass


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (
            _raised(
                AccountError("work (127.0.0.1:1): cannot connect: Connection refused"),
                ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            ),
            CONNECTION,
        ),
        (
            _raised(
                AccountError("work (h:143): login refused: [AUTHENTICATIONFAILED] failed."),
                LoginError("[AUTHENTICATIONFAILED]"),
            ),
            LOGIN,
        ),
        (
            _raised(
                AccountError("work (h:143): login refused: [UNAVAILABLE] Temporary failure"),
                LoginError("[UNAVAILABLE]"),
            ),
            SERVER,  # a moment's failure of the server: backed off, not waiting for the user
        ),
        (
            CredentialError(
                "account work: the OAuth2 refresh token was refused (expired or revoked); "
                "run `syncd login work`"
            ),
            OAUTH2,
        ),
        (AccountError("account work: OAuth2 refresh failed: timed out"), OAUTH2),
        (CredentialError("account work: cannot read the keyring (D-Bus ...)"), KEYRING),
        (CredentialError("account work: password_command 'pass' failed: exit 1"), PASSWORD),
        (ProtocolError("work (h:993): TLS handshake failed: WRONG_VERSION"), TLS),
        (ProtocolError("work (h:143): server greeted with garbage"), PROTOCOL),
        (AccountError("the Maildir /m is missing (unmounted disk?)"), MAILDIR),
    ],
)
def test_the_kind_of_an_account_error(exc: Exception, kind: str) -> None:
    assert error_kind(exc) == kind


def test_a_partial_attempt_names_the_first_failing_folder_then_messages_then_held() -> None:
    ok = FolderReport("Archive")
    assert partial_error([ok]) is None
    bad = FolderReport("INBOX", error="mass delete refused\n(use --allow-mass-delete)")
    line, kind = partial_error([ok, bad, FolderReport("X", error="e")]) or ("", "")
    assert kind == FOLDER and "\n" not in line
    assert line.startswith("INBOX: mass delete refused (use") and "1 more" in line
    quota = FolderReport("Sent", failed=2, problem="not uploaded: [OVERQUOTA] Quota exceeded")
    assert partial_error([ok, quota]) == (
        "2 messages could not be synced (Sent): not uploaded: [OVERQUOTA] Quota exceeded",
        QUOTA,
    )
    assert (partial_error([FolderReport("Sent", held=1)]) or ("", ""))[1] == HELD


# --------------------------------------------------------------------------- the record


def test_attempts_carry_the_last_success_and_count_a_run_of_failures(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "a.db")
    assert db.last_attempt() is None
    db.record_attempt(100.0, "ok", None, None, finished=110.0)
    db.record_attempt(200.0, "failed", "cannot connect", CONNECTION, finished=201.0)
    third = db.record_attempt(300.0, "failed", "login refused", LOGIN, finished=301.0)
    assert (third.last_success, third.failing_since, third.failures) == (110.0, 200.0, 2)
    assert db.last_attempt() == third
    back = db.record_attempt(400.0, "partial", "1 held back", HELD, finished=402.0)
    assert (back.last_success, back.failing_since, back.failures) == (402.0, None, 0)
    db.close()


def test_a_state_database_of_schema_1_gains_the_attempts_table(tmp_path: Path) -> None:
    """An existing database (no account_attempts table) opens, keeps its folders, and
    records attempts from then on."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE folders (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
        " uidvalidity INTEGER, highestmodseq INTEGER, uidnext INTEGER, near_signature TEXT,"
        " last_sync REAL, last_error TEXT, far_count INTEGER, near_count INTEGER);"
        "INSERT INTO folders(name, uidvalidity, last_sync, far_count, near_count)"
        " VALUES ('INBOX', 7, 1000.0, 3, 3);"
        "PRAGMA user_version=1;"
    )
    old.close()
    db = StateDB(path)
    [inbox] = db.folders()
    assert (inbox.name, inbox.uidvalidity, inbox.far_count) == ("INBOX", 7, 3)
    assert db.last_attempt() is None
    db.record_attempt(2000.0, "ok", None, None)
    assert db.last_attempt() is not None
    db.close()


# --------------------------------------------------------------------------- the daemon's file


def test_the_status_file_is_replaced_whole_0600_and_removed_at_stop(tmp_path: Path) -> None:
    status = StatusFile(tmp_path)
    status.start()
    status.set("work", AccountRuntime(state=FAILING, since=1.0, next_run=9.0, error="e"))
    assert status.path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [status.path.name]  # no temp file left
    data = json.loads(status.path.read_text())
    assert (data["schema"], data["pid"]) == (1, os.getpid())
    [me] = read_daemons(tmp_path)
    assert me.accounts["work"].state == FAILING and me.accounts["work"].next_run == 9.0
    status.remove()
    assert read_daemons(tmp_path) == []


def test_a_dead_daemons_file_is_not_read_as_running_and_the_next_daemon_removes_it(
    tmp_path: Path,
) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = StatusFile(tmp_path, pid=int(gone.stdout))
    dead.start()
    assert read_daemons(tmp_path) == []
    alive = StatusFile(tmp_path)
    alive.start()
    assert not dead.path.exists()
    assert [d.pid for d in read_daemons(tmp_path)] == [os.getpid()]


def test_a_lock_file_names_its_holder_only_while_that_syncd_lives(tmp_path: Path) -> None:
    (tmp_path / "work.lock").write_text(f"{os.getpid()}\n")
    os.utime(tmp_path / "work.lock", (0, 0))  # written before this process began: a reused pid
    assert lock_holder(tmp_path, "work") is None
    (tmp_path / "work.lock").write_text(f"{os.getpid()}\n")
    assert lock_holder(tmp_path, "work") == os.getpid()
    (tmp_path / "work.lock").write_text("")  # what a holder leaves when it lets go
    assert lock_holder(tmp_path, "work") is None


def test_an_account_whose_lock_a_live_syncd_holds_is_syncing(tmp_path: Path) -> None:
    config, _account = _config(tmp_path)
    config.state_dir.mkdir()
    (config.state_dir / "test.lock").write_text(f"{os.getpid()}\n")
    [account] = collect(config, ["test"]).accounts
    assert (account.state, account.syncing_pid, account.ok) == ("syncing", os.getpid(), True)
    assert short_line(collect(config, ["test"])) == "test ↻ syncing"


def test_a_status_file_that_cannot_be_written_does_not_stop_the_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    status = StatusFile(tmp_path / "file" / "state")  # its directory cannot exist
    status.start()
    status.set("work", AccountRuntime(state=FAILING, since=1.0))
    status.set("work", AccountRuntime(state=FAILING, since=2.0))
    assert sum("cannot write" in r.getMessage() for r in caplog.records) == 1


class FailingSyncer:
    """An AccountSyncer whose every attempt ends with ``error`` of ``kind``."""

    def __init__(self, error: str, kind: str) -> None:
        self.error, self.kind = error, kind
        self.calls = 0

    def sync(
        self, options: RunOptions, folders: Collection[str] | None = None, **kw: Any
    ) -> AccountReport:
        self.calls += 1
        return AccountReport("test", error=self.error, error_kind=self.kind)

    def close(self) -> None:
        pass


def _config(tmp_path: Path) -> tuple[Config, AccountConfig]:
    table = {
        "host": "127.0.0.1",
        "port": 1,
        "tls": "none",
        "user": "u",
        "password_command": ["true"],
        "maildir": str(tmp_path / "Mail"),
        "idle": [],
    }
    config = load_config(write_config(tmp_path, {"test": table}))
    return config, config.accounts["test"]


def test_a_refused_oauth2_token_keeps_the_account_failing_without_retrying_at_once(
    tmp_path: Path,
) -> None:
    """invalid_grant needs `syncd login`: the daemon does not retry at once (the usual
    answer to a stale connection) and says the account fails, why, and when it tries next."""
    line = (
        "account test: the OAuth2 refresh token was refused (expired or revoked); "
        "run `syncd login test`"
    )
    config, account = _config(tmp_path)
    syncer = FailingSyncer(line, OAUTH2)
    status = StatusFile(config.state_dir)
    status.start()
    runner = AccountRunner(
        config,
        account,
        scheduler=None,
        tuning=Tuning(backoff_initial=0.01, backoff_cap=3600),
        syncer_factory=lambda _c, _a, _h: syncer,  # type: ignore[arg-type,return-value]
        status=status,
    )
    runner.start()
    try:
        end = time.monotonic() + DEADLINE
        while (rt := status.get("test")) is None or rt.state != FAILING:
            assert time.monotonic() < end, "the daemon never reported the failure"
            time.sleep(0.01)
        time.sleep(0.5)  # room for a retry that must not come
        assert syncer.calls == 1
        assert rt.error == line and rt.error_kind == OAUTH2
        assert rt.next_run is not None and rt.next_run > time.time() + 3000
    finally:
        runner.request_stop()
        assert runner.join(time.monotonic() + DEADLINE)
        status.remove()
    # `syncd status` reads it the same way (here the state database has no attempt:
    # the scripted syncer records none, so the daemon's word is all there is).
    status.start()
    status.set("test", rt)
    [account_status] = collect(config, ["test"]).accounts
    assert (account_status.state, account_status.ok, account_status.error) == (FAILING, False, line)
    status.remove()


# --------------------------------------------------------------------------- the one line


def test_durations_in_their_largest_unit() -> None:
    assert [ago(s) for s in (0, 45, 60, 150, 3 * 3600 + 5, 2 * 86400)] == [
        "0s",
        "45s",
        "1m",
        "2m",
        "3h",
        "2d",
    ]


def test_the_one_line_falls_back_to_ascii(tmp_path: Path) -> None:
    config, _account = _config(tmp_path)
    db = StateDB(config.state_dir / "test.db")
    now = time.time()
    db.record_attempt(now - 3 * 3600, "failed", "test: login refused: no", LOGIN)
    db.close()
    snapshot = collect(config, ["test"])
    assert short_line(snapshot) == "test ✗ login refused 3h"
    assert short_line(snapshot, unicode=False) == "test FAIL login refused 3h"
    assert can_print("utf-8") and not can_print("ascii") and not can_print("latin-1")
