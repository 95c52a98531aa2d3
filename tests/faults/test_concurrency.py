"""Concurrent modification (RELIABILITY.md group C): another client or a mail reader
changes things during a sync, the two sides disagree, two syncs start at once.  The
proxy's ``on_command`` hook lets "another client" act at an exact moment of the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from faults.common import (
    config_for,
    converged,
    duplicates,
    idempotent,
    message,
    seed,
    settles,
)
from faults.proxy import front
from support.imap import append, server_snapshot, session
from support.maildir import deliver, folder_path, local_snapshot, set_local_flags
from support.run import run_syncd

from devserver.dovecot import DevServer, User


def _uid_of(server: DevServer, user: User, mid: str, folder: str = "INBOX") -> int:
    for view in server_snapshot(server, user)[folder]:
        if view.message_id == mid:
            return view.uid
    raise AssertionError(mid)


def _file_of(maildir: Path, mid: str) -> Path:
    for view in local_snapshot(maildir, "maildir++")["INBOX"]:
        if view.message_id == mid:
            return view.path
    raise AssertionError(mid)


def _flags(snapshot: dict[str, list[object]], mid: str) -> frozenset[str]:
    for view in snapshot["INBOX"]:
        if view.message_id == mid:  # type: ignore[attr-defined]
            return view.flags  # type: ignore[attr-defined,no-any-return]
    raise AssertionError(mid)


def _synced(tmp_path: Path, server: DevServer, user: User) -> tuple[Path, Path]:
    maildir = tmp_path / "Mail"
    seed(server, user, maildir)
    config = config_for(tmp_path, server, user, maildir)
    run_syncd("sync", config=config, check=True)
    return config, maildir


def _store(server: DevServer, user: User, uid: int, op: str, flags: list[bytes]) -> None:
    with session(server, user) as c:
        c.select_folder("INBOX")
        {"add": c.add_flags, "remove": c.remove_flags}[op]([uid], flags, silent=True)


def test_con01_02_flags_changed_on_both_sides_merge_three_way(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """CON-01: baseline \\Seen; locally +\\Flagged, on the server -\\Seen -> \\Flagged.
    CON-02: baseline \\Seen; locally -\\Seen, on the server +\\Flagged -> \\Flagged; stable."""
    config, maildir = _synced(tmp_path, dovecot, account)
    a, b = "<far1@faults.test>", "<far3@faults.test>"  # both \Seen at baseline
    set_local_flags(_file_of(maildir, a), "FS")
    _store(dovecot, account, _uid_of(dovecot, account, a), "remove", [b"\\Seen"])
    set_local_flags(_file_of(maildir, b), "")
    _store(dovecot, account, _uid_of(dovecot, account, b), "add", [b"\\Flagged"])
    run_syncd("sync", config=config, check=True)
    converged(dovecot, account, maildir)
    remote = server_snapshot(dovecot, account)
    assert _flags(remote, a) == {"\\Flagged"}  # type: ignore[arg-type]
    assert _flags(remote, b) == {"\\Flagged"}  # type: ignore[arg-type]
    idempotent(config)


def test_con03_04_05_change_wins_over_deletion_and_double_delete(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """CON-03: expunged on the server, flagged locally -> kept (re-uploaded).
    CON-04: deleted locally, flagged on the server -> kept (restored locally).
    CON-05: deleted on both sides -> gone, no error."""
    config, maildir = _synced(tmp_path, dovecot, account)
    c3, c4, c5 = "<far0@faults.test>", "<far2@faults.test>", "<far4@faults.test>"
    set_local_flags(_file_of(maildir, c3), "F")
    _file_of(maildir, c4).unlink()
    _file_of(maildir, c5).unlink()
    with session(dovecot, account) as c:
        c.select_folder("INBOX")
        uids = [_uid_of(dovecot, account, m) for m in (c3, c5)]
        c.add_flags(uids, [b"\\Deleted"], silent=True)
        c.uid_expunge(uids)
    _store(dovecot, account, _uid_of(dovecot, account, c4), "add", [b"\\Flagged"])
    done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 0, done.stderr
    end = converged(dovecot, account, maildir)
    mids = {m for m, _h, _f in end["INBOX"]}
    assert c3 in mids and c4 in mids and c5 not in mids
    idempotent(config)


def test_con06_07_another_client_expunges_flags_and_delivers_during_the_fetch(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """CON-06/07: while syncd fetches bodies, another client expunges one of them,
    flags another and delivers a new message.  The run ends cleanly; the next one
    converges with all three changes."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    gone, flagged = "<far2@faults.test>", "<far4@faults.test>"
    gone_uid, flagged_uid = _uid_of(dovecot, account, gone), _uid_of(dovecot, account, flagged)
    acted: list[str] = []

    def other_client(command: str) -> None:
        if "BODY.PEEK[]" in command and "INBOX" not in acted:
            acted.append("INBOX")
            with session(dovecot, account) as c:
                c.select_folder("INBOX")
                c.add_flags([flagged_uid], [b"\\Flagged"], silent=True)
                c.add_flags([gone_uid], [b"\\Deleted"], silent=True)
                c.uid_expunge([gone_uid])
                c.append("INBOX", message("during"))

    with front(dovecot, on_command=other_client) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, max_connections=1)
        first = run_syncd("sync", config=config, timeout=60)
        assert acted
        assert "Traceback" not in first.stderr
        end = settles(dovecot, account, maildir, config, timeout=60)
    mids = {m: f for m, _h, f in end["INBOX"]}
    assert gone not in mids
    assert "<during@faults.test>" in mids
    assert "\\Flagged" in mids[flagged]


def test_con08_mail_reader_renames_and_moves_files_during_the_sync(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """CON-08: while syncd talks to the server, a reader flags one file (rename) and
    moves another into a different folder.  No crash; next run: the flag reaches the
    server, the moved message ends up once, in its new folder."""
    config, maildir = _synced(tmp_path, dovecot, account)
    flagged, moved = "<far0@faults.test>", "<far4@faults.test>"
    archive = folder_path(maildir, "maildir++", "Archive")
    acted: list[bool] = []

    def reader(command: str) -> None:
        if " SELECT " in command and not acted:
            acted.append(True)
            set_local_flags(_file_of(maildir, flagged), "F")
            src = _file_of(maildir, moved)
            src.rename(archive / "cur" / src.name)

    deliver(maildir, message("trigger"))  # give the run something to do
    with front(dovecot, on_command=reader) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, max_connections=1)
        first = run_syncd("sync", config=config, timeout=60)
        assert acted
        assert "Traceback" not in first.stderr
        end = settles(dovecot, account, maildir, config, timeout=60)
    inbox = {m: f for m, _h, f in end["INBOX"]}
    assert inbox[flagged] == {"\\Flagged"}
    assert moved not in inbox
    assert [m for m, _h, _f in end["Archive"]].count(moved) == 1


def test_con09_file_copied_into_another_folder_keeping_its_name(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """CON-09: a reader copies a synced file into Archive under the same name: both
    folders hold it on the server; no identity confusion."""
    config, maildir = _synced(tmp_path, dovecot, account)
    src = _file_of(maildir, "<far5@faults.test>")
    archive = folder_path(maildir, "maildir++", "Archive")
    (archive / "cur" / src.name).write_bytes(src.read_bytes())
    run_syncd("sync", config=config, check=True)
    end = converged(dovecot, account, maildir)
    assert "<far5@faults.test>" in {m for m, _h, _f in end["INBOX"]}
    assert "<far5@faults.test>" in {m for m, _h, _f in end["Archive"]}
    idempotent(config)


def test_con10_two_syncs_started_at_once(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    """CON-10: `syncd sync` twice at the same moment: one syncs, the other waits or is
    refused with exit 75 naming the holder; never both writing; no duplicates."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir, n_far=40, n_near=30)
    config = config_for(tmp_path, dovecot, account, maildir)
    cmd = [sys.executable, "-m", "syncd", "--config", str(config), "sync"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 75]), results
    for code, err in results:
        if code == 75:
            assert "pid" in err.lower() or "running" in err.lower() or "lock" in err.lower(), err
    end = converged(dovecot, account, maildir)
    assert len(end["INBOX"]) == 70
    assert duplicates(server_snapshot(dovecot, account)) == {}
    idempotent(config)


def test_con14_other_clients_deleted_mail_is_not_expunged_by_us(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """CON-14: another client marked a message \\Deleted (not expunged); we expunge a
    message deleted locally: only ours goes."""
    config, maildir = _synced(tmp_path, dovecot, account)
    theirs, ours = "<far0@faults.test>", "<far2@faults.test>"
    _store(dovecot, account, _uid_of(dovecot, account, theirs), "add", [b"\\Deleted"])
    _file_of(maildir, ours).unlink()
    run_syncd("sync", config=config, check=True)
    remote = {v.message_id: v.flags for v in server_snapshot(dovecot, account)["INBOX"]}
    assert ours not in remote
    assert theirs in remote and "\\Deleted" in remote[theirs]
    append(dovecot, account, "INBOX", message("after"))  # and the account still syncs
    run_syncd("sync", config=config, check=True)
    converged(dovecot, account, maildir)
