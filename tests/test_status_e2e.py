"""``syncd status`` tells the truth (issue 15), end to end against a real Dovecot.

An account whose server refuses the connection, or the login, shows as failing in
the text, ``--json`` and ``--short`` forms, with its error line, and status exits 1;
a healthy one shows ok and exits 0.  A running daemon shows its pid, start and
version, and no longer after it was killed outright; an account the daemon cannot
reach shows ``backing off`` with the reason and the next attempt.  Waits poll with
a generous deadline; no timing is asserted.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from support.imap import append
from support.mail import make_message
from support.run import account_config, run_syncd, write_config
from test_daemon_e2e import DEADLINE, daemon, wait_for

from devserver.dovecot import DevServer, User
from syncd import __version__


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(config: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_syncd("status", *args, config=config, env=env)


def as_json(config: Path, *accounts: str) -> tuple[int, dict[str, Any]]:
    proc = status(config, "--json", *accounts)
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


BROKEN = {
    "connection": (
        lambda server, user: {"port": closed_port()},
        "cannot connect: Connection refused",
        "cannot connect",
    ),
    "login": (
        lambda server, user: {"password_command": ["printf", "%s", "not-the-password"]},
        "login refused",
        "login refused",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_failing_account_shows_failing_in_all_three_forms_and_exits_1(
    tmp_path: Path, dovecot: DevServer, account: User, kind: str
) -> None:
    overrides, line, short = BROKEN[kind]
    append(dovecot, account, "INBOX", make_message(message_id="<ok@status>"))
    config = write_config(
        tmp_path,
        {
            "home": account_config(
                dovecot, account, tmp_path / "Home", **overrides(dovecot, account)
            ),
            "work": account_config(dovecot, account, tmp_path / "Work"),
        },
    )
    assert run_syncd("sync", config=config).returncode == 1

    text = status(config)
    assert text.returncode == 1, text.stderr
    assert "daemon: not running" in text.stdout
    home = text.stdout.split("work:")[0]
    assert "home: failing since" in home, text.stdout
    assert line in home and "last success: never" in home, text.stdout
    assert "work: idle" in text.stdout and "1 on server, 1 local" in text.stdout

    code, data = as_json(config)
    assert code == 1 and data["ok"] is False and data["daemons"] == []
    home_json, work_json = data["accounts"]["home"], data["accounts"]["work"]
    assert (home_json["state"], home_json["ok"], home_json["error_kind"]) == (
        "failing",
        False,
        kind,
    )
    assert line in home_json["error"] and "\n" not in home_json["error"]
    assert home_json["last_attempt"]["outcome"] == "failed" and home_json["last_success"] is None
    assert (work_json["state"], work_json["ok"], work_json["error"]) == ("idle", True, None)
    assert work_json["last_success"] is not None

    one = status(config, "--short")
    assert one.returncode == 1
    assert one.stdout.startswith(f"home ✗ {short} "), one.stdout
    assert " · work ✓ " in one.stdout, one.stdout

    # The healthy account alone: exit 0; and an ASCII terminal gets ASCII.
    alone = status(config, "--short", "work", env={"PYTHONIOENCODING": "ascii"})
    assert alone.returncode == 0 and alone.stdout.startswith("work ok "), alone.stdout
    assert as_json(config, "work")[0] == 0


def test_a_failure_after_a_success_keeps_the_last_success_and_recovery_clears_the_error(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    good = account_config(dovecot, account, tmp_path / "M")
    config = write_config(tmp_path, {"a": good})
    assert status(config).stdout.splitlines()[1] == "a: never synced"
    assert status(config).returncode == 0  # never synced is not failing
    run_syncd("sync", config=config, check=True)
    _, first = as_json(config)
    success = first["accounts"]["a"]["last_success"]

    write_config(tmp_path, {"a": {**good, "port": closed_port()}})
    assert run_syncd("sync", config=config).returncode == 1
    assert run_syncd("sync", config=config).returncode == 1
    code, data = as_json(config)
    a = data["accounts"]["a"]
    assert code == 1 and a["state"] == "failing" and a["failures"] == 2
    assert a["last_success"] == success and a["failing_since"] > success

    write_config(tmp_path, {"a": good})
    run_syncd("sync", config=config, check=True)
    code, data = as_json(config)
    a = data["accounts"]["a"]
    assert code == 0 and (a["state"], a["error"], a["failing_since"]) == ("idle", None, None)
    assert a["last_success"] > success


#: The keys of ``syncd status --json`` (schema 1). Adding one is fine (add it here and
#: to docs-status.md); renaming or removing one breaks users: raise the schema instead.
TOP_KEYS = {"schema", "generated", "version", "ok", "daemons", "accounts"}
DAEMON_KEYS = {"pid", "since", "version", "updated", "accounts"}
ACCOUNT_KEYS = {
    "state", "ok", "error", "error_kind", "last_attempt", "last_success", "failing_since",
    "failures", "next_run", "daemon_pid", "syncing_pid", "held_back", "folders",
    "progress",  # added within schema 1 (issue 15): the daemon's running copies, or null
}  # fmt: skip
ATTEMPT_KEYS = {"started", "finished", "outcome"}
FOLDER_KEYS = {"folder", "last_sync", "server", "local", "error", "held_back"}


def test_the_json_format_is_versioned_and_its_keys_are_pinned(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    append(dovecot, account, "INBOX", make_message())
    config, _maildir = _setup(tmp_path, dovecot, account)
    run_syncd("sync", config=config, check=True)
    with daemon(config, tmp_path) as d:
        data = wait_for(lambda: _json_with_daemon(config), "the daemon in status", d)
        assert d.stop() == 0
    assert data["schema"] == 1
    assert set(data) == TOP_KEYS
    [running] = data["daemons"]
    assert set(running) == DAEMON_KEYS
    account_json = data["accounts"]["test"]
    assert set(account_json) == ACCOUNT_KEYS
    assert set(account_json["last_attempt"]) == ATTEMPT_KEYS
    [inbox] = [f for f in account_json["folders"] if f["folder"] == "INBOX"]
    assert set(inbox) == FOLDER_KEYS
    assert account_json["state"] in ("syncing", "idle", "backing off", "failing", "never synced")


def _setup(tmp_path: Path, server: DevServer, user: User, **overrides: Any) -> tuple[Path, Path]:
    maildir = tmp_path / "Mail"
    overrides.setdefault("interval", "1h")
    config = write_config(tmp_path, {"test": account_config(server, user, maildir, **overrides)})
    return config, maildir


def _json_with_daemon(config: Path) -> dict[str, Any] | None:
    proc = status(config, "--json")
    data: dict[str, Any] = json.loads(proc.stdout)
    account = data["accounts"]["test"]
    if data["daemons"] and account["state"] == "idle" and account["last_attempt"]:
        return data
    return None


def test_a_running_daemon_shows_pid_since_version_and_not_after_sigkill(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    append(dovecot, account, "INBOX", make_message())
    config, _maildir = _setup(tmp_path, dovecot, account)
    with daemon(config, tmp_path) as d:
        data = wait_for(lambda: _json_with_daemon(config), "the daemon's first sync", d)
        [running] = data["daemons"]
        assert running["pid"] == d.proc.pid and running["version"] == __version__
        assert running["accounts"] == ["test"] and running["since"] <= time.time()
        test = data["accounts"]["test"]
        assert test["daemon_pid"] == d.proc.pid and test["next_run"] > time.time() + 600
        text = status(config)
        assert text.returncode == 0, text.stdout
        assert f"daemon: running (pid {d.proc.pid}, since " in text.stdout
        assert f"syncd {__version__}" in text.stdout and "next run: " in text.stdout

        d.signal(signal.SIGKILL)
        d.proc.wait(DEADLINE)
        files = list((tmp_path / "state").glob("daemon-*.json"))
        assert files, "a killed daemon leaves its file behind"
        code, after = as_json(config)
        assert after["daemons"] == [] and after["accounts"]["test"]["daemon_pid"] is None
        assert after["accounts"]["test"]["state"] == "idle" and code == 0
        assert "daemon: not running" in status(config).stdout


def test_a_daemon_stopped_cleanly_removes_its_file(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, _maildir = _setup(tmp_path, dovecot, account)
    with daemon(config, tmp_path) as d:
        wait_for(lambda: _json_with_daemon(config), "the daemon's first sync", d)
        assert d.stop() == 0
    assert list((tmp_path / "state").glob("daemon-*.json")) == []
    assert as_json(config)[1]["daemons"] == []


def test_the_daemon_backs_off_an_unreachable_account_and_status_says_why_and_when(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, _maildir = _setup(tmp_path, dovecot, account, port=closed_port())

    def backing_off() -> dict[str, Any] | None:
        data: dict[str, Any] = json.loads(status(config, "--json").stdout)
        test = data["accounts"]["test"]
        return test if test["state"] == "backing off" and test["failures"] >= 2 else None

    with daemon(config, tmp_path) as d:
        test = wait_for(backing_off, "the account backing off", d)
        assert test["ok"] is False and test["error_kind"] == "connection"
        assert "cannot connect: Connection refused" in test["error"]
        assert test["next_run"] is not None and test["daemon_pid"] == d.proc.pid
        text = status(config)
        assert text.returncode == 1
        assert "test: backing off since " in text.stdout, text.stdout
        assert "Connection refused" in text.stdout and "next attempt: " in text.stdout
        one = status(config, "--short")
        assert one.returncode == 1 and one.stdout.startswith("test ✗ cannot connect"), one.stdout
        assert d.stop() == 0
