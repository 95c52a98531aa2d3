"""``syncd adopt ACCOUNT [--dry-run]`` (issue 10) with the real tools on the private
Dovecot: per folder what is paired (and how), what would be copied, and why anything
is not paired -- and a dry run changes nothing and moves no body.

The scenarios are the switch tests' (:mod:`test_switch_e2e`): a tool syncs a filled
account, both sides change afterwards, the tool's config is imported.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from support.imap import append, server_snapshot
from support.mail import make_message
from support.maildir import deliver
from support.run import run_syncd
from test_switch_e2e import (
    ETE,
    FOLDERS,
    VARIANTS,
    _uidvalidity_of_another_server,
    files,
    fill,
    import_config,
    local_folders,
    prepare,
    quiet_offset,
    run_tool,
    tool_env,
)

from devserver.dovecot import DevServer, User


def _lines(out: str, folder: str) -> list[str]:
    prefix = f"mail/{folder}: "
    return [
        line.removeprefix(prefix).strip() for line in out.splitlines() if line.startswith(prefix)
    ]


def _pairs_in_state(home: Path) -> int:
    db = home / ".local" / "state" / "syncd" / "mail.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM pairs").fetchone()[0])


def test_adopt_dry_run_says_what_is_paired_copied_and_why_not(
    dovecot: DevServer, tmp_path: Path
) -> None:
    variant = VARIANTS["mbsync-Verbatim"]
    user = dovecot.add_user()
    run = prepare(variant, dovecot, user, tmp_path)
    server_before = server_snapshot(dovecot, user)
    files_before = files(tmp_path / "Mail")
    offset = quiet_offset(dovecot, user)
    proc = run_syncd("adopt", "mail", "--dry-run", config=run.config, env=tool_env(tmp_path))
    traffic = dovecot.traffic(user, offset)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    inbox = _lines(proc.stdout, "INBOX")
    assert inbox[0] == "mbsync:"
    assert re.fullmatch(
        r"6 paired from mbsync's state \(UIDVALIDITY \d+, the server's\), its last-synced "
        r"flags as the baseline",
        inbox[1],
    ), inbox
    assert "1 server messages not paired: to be downloaded" in inbox
    assert "not paired: server UID 7: no local message left to compare with" in inbox
    assert "would copy 1 here, 0 to the server" in inbox
    assert any(line.startswith("plan: ") and "copy far 7 -> near" in line for line in inbox)
    # the local flag change since mbsync's last run is a flag change, not a conflict
    assert any(
        line.startswith("plan: ") and re.search(r"far \d+: \+\\Flagged", line) for line in inbox
    ), inbox

    archive = _lines(proc.stdout, "Archive")
    assert (
        "1 deleted here since mbsync's last run: to be deleted on the server "
        "(unless changed there since)"
    ) in archive
    assert any(line.startswith("plan: ") and "delete far " in line for line in archive), archive

    projets = _lines(proc.stdout, f"Projets/{ETE}")
    assert "1 local messages not paired: to be uploaded" in projets
    assert [line for line in projets if line.startswith("not paired: local ")] != [], projets
    assert "would copy 0 here, 1 to the server" in projets

    # a dry run: nothing written, nothing moved, no body fetched
    assert _pairs_in_state(tmp_path) == 0
    assert server_snapshot(dovecot, user) == server_before
    assert files(tmp_path / "Mail") == files_before
    assert traffic.body_count == 0 and traffic.in_bytes < 8_000, traffic

    # the same run for real adopts: then nothing is left to adopt
    done = run_syncd("adopt", "mail", config=run.config, env=tool_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # every message once: +1 new on each side, -1 deleted here
    assert _pairs_in_state(tmp_path) == sum(FOLDERS.values()) + 1
    again = run_syncd("adopt", "mail", "--dry-run", config=run.config, env=tool_env(tmp_path))
    assert again.returncode == 0, again.stderr
    for folder in FOLDERS:
        assert _lines(again.stdout, folder)[0] == (
            "nothing to adopt (synced by syncd before, or neither local mail nor a mbsync "
            "record): synced as usual"
        ), again.stdout


def test_adopt_dry_run_explains_a_state_for_another_uidvalidity(
    dovecot: DevServer, account: User, tmp_path: Path
) -> None:
    variant = VARIANTS["mbsync-Verbatim"]
    fill(dovecot, account)
    rc = run_tool(variant, dovecot, account, tmp_path)
    _uidvalidity_of_another_server(tmp_path)
    # one new message on each side of Archive, that nothing can pair
    deliver(
        local_folders(tmp_path / "Mail", "nested")["Archive"],
        make_message(subject="only here", message_id="<only-here@switch.test>"),
        "S",
    )
    append(dovecot, account, "Archive", make_message(message_id="<only-there@switch.test>"))
    config, imported = import_config(variant, tmp_path, rc)
    assert imported.returncode == 0, imported.stderr
    proc = run_syncd("adopt", "mail", "--dry-run", config=config, env=tool_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    archive = _lines(proc.stdout, "Archive")
    assert any(
        re.fullmatch(
            r"mbsync's state is for UIDVALIDITY \d+, the server's is \d+ \(another server, or "
            r"the folder was re-created\): its pairs are not used; pairing by content",
            line,
        )
        for line in archive
    ), archive
    assert (
        "4 paired by content (Message-ID and size, else the contents; X-TUID, X-OfflineIMAP, "
        "X-Keywords ignored)"
    ) in archive
    assert any(
        line.startswith("not paired: local ")
        and line.endswith(": no server message has its Message-ID <only-here@switch.test>")
        for line in archive
    ), archive
    assert any(
        re.fullmatch(
            r"not paired: server UID \d+: no local message has its Message-ID "
            r"<only-there@switch.test>",
            line,
        )
        for line in archive
    ), archive
    assert "would copy 1 here, 1 to the server" in archive
    assert _pairs_in_state(tmp_path) == 0


def test_adopt_needs_the_table(dovecot: DevServer, tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[accounts.mail]\nhost = "{dovecot.host}"\nport = {dovecot.port}\ntls = "none"\n'
        f'user = "u"\nmaildir = "{tmp_path}/Mail"\n',
        encoding="utf-8",
    )
    proc = run_syncd("adopt", "mail", "--dry-run", config=config, env=tool_env(tmp_path))
    assert proc.returncode == 2  # the config error exit code
    assert "no [accounts.mail.adopt] table" in proc.stderr
