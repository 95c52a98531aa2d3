"""The `syncd` command as scripts see it: exit codes, one-line errors, status output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.imap import append
from support.mail import make_message
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User
from syncd import __version__
from syncd.account.lock import AccountLock


def test_version_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "syncd", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert __version__ in out
    help_text = subprocess.run(
        [sys.executable, "-m", "syncd", "sync", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--dry-run", "--allow-mass-delete", "Exit status"):
        assert option in help_text


def test_config_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text(
        '[accounts.work]\nhost = "imap.example.org"\nuser = "me"\nmaildir = "~/Mail"\ntls = "ssl"\n'
    )
    for command in (["check"], ["sync"], ["status"]):
        proc = run_syncd(*command, config=bad)
        assert proc.returncode == 2, (command, proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert lines and all(str(bad) in ln for ln in lines), proc.stderr
        assert "accounts.work.tls" in proc.stderr
    proc = run_syncd("check", config=tmp_path / "missing.toml")
    assert proc.returncode == 2 and "missing.toml" in proc.stderr


def test_plaintext_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        {
            "w": {
                "host": "imap.example.org",
                "user": "me",
                "tls": "none",
                "maildir": str(tmp_path / "M"),
                "password_command": "true",
            }
        },
    )
    proc = run_syncd("sync", config=cfg)
    assert proc.returncode == 2
    assert "accounts.w.tls" in proc.stderr and "allow_plaintext" in proc.stderr


def test_unknown_account_exit_2(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    cfg = write_config(tmp_path, {"a": account_config(dovecot, account, tmp_path / "M")})
    proc = run_syncd("sync", "nope", config=cfg)
    assert proc.returncode == 2 and "nope" in proc.stderr


def test_status_after_sync_and_json(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    append(dovecot, account, "INBOX", make_message())
    cfg = write_config(tmp_path, {"a": account_config(dovecot, account, tmp_path / "M")})
    assert "never synced" in run_syncd("status", config=cfg).stdout
    run_syncd("sync", config=cfg, check=True)
    text = run_syncd("status", config=cfg, check=True).stdout
    assert "INBOX" in text and "1 on server, 1 local" in text
    data = json.loads(run_syncd("status", "--json", config=cfg, check=True).stdout)
    [inbox] = [f for f in data["accounts"]["a"]["folders"] if f["folder"] == "INBOX"]
    assert (inbox["server"], inbox["local"], inbox["error"]) == (1, 1, None)


def test_locked_account_exits_75(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    cfg = write_config(tmp_path, {"a": account_config(dovecot, account, tmp_path / "M")})
    with AccountLock(tmp_path / "state", "a"):
        proc = run_syncd("sync", config=cfg)
    assert proc.returncode == 75
    assert "another syncd" in proc.stderr


def test_failed_account_exit_1_others_still_sync(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    append(dovecot, account, "INBOX", make_message(message_id="<ok@t>"))
    good = account_config(dovecot, account, tmp_path / "good")
    bad = account_config(dovecot, account, tmp_path / "bad", password_command=["false"])
    cfg = write_config(tmp_path, {"bad": bad, "good": good})
    proc = run_syncd("sync", config=cfg)
    assert proc.returncode == 1
    assert "bad" in proc.stderr and "false" in proc.stderr
    assert len(list((tmp_path / "good" / "cur").iterdir())) == 1


def test_check_validates_rules(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[accounts.w]\nhost = "127.0.0.1"\nuser = "me"\ntls = "none"\n'
        f'maildir = "{tmp_path / "M"}"\npassword_command = "true"\n'
        '[[accounts.w.rules]]\nsearch = "ALL"\naction = "explode"\n'
    )
    proc = run_syncd("check", config=cfg)
    assert proc.returncode == 2
    assert "accounts.w.rules[0].action" in proc.stderr
