"""Moves between folders cost no bytes (issue 14), against the real Dovecot.

A message a mail reader moves between two local folders is moved on the server
(``UID MOVE``: no upload); one moved on the server is renamed between the local
folders (no download).  Dovecot's logout counters prove that no body crossed the
wire.  A true copy stays a copy, two identical candidates are not guessed
between, a flag changed during the move is kept, and a kill -9 at any step of a
move neither loses nor doubles a message.
"""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter
from pathlib import Path

from support import summary
from support.imap import append, create_folder, expunge, server_snapshot, session, set_flags
from support.mail import make_message
from support.maildir import folder_messages, folder_path, local_snapshot, set_local_flags
from support.run import account_config, run_syncd, write_config
from test_switch_e2e import quiet_offset

from devserver.dovecot import DevServer, User
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions

BODY = 40_000  # bytes of filler per message: one body on the wire would show
N = 6


def _setup(tmp_path: Path, server: DevServer, user: User, n: int = N) -> tuple[Path, Path]:
    create_folder(server, user, "Archive")
    for i in range(n):
        append(
            server,
            user,
            "INBOX",
            make_message(subject=f"m{i}", message_id=f"<m{i}@t>", size_pad=BODY),
        )
    tmp_path.mkdir(parents=True, exist_ok=True)
    maildir = tmp_path / "Mail"
    config = write_config(tmp_path, {"t": account_config(server, user, maildir)})
    run_syncd("sync", config=config, check=True)
    return config, maildir


def _files(maildir: Path, folder: str) -> dict[str, Path]:
    """Message-ID -> file of a local folder."""
    return {
        str(v.message_id): v.path
        for v in folder_messages(folder_path(maildir, "maildir++", folder))
    }


def _move_here(maildir: Path, mids: list[str], src: str = "INBOX", dst: str = "Archive") -> None:
    """What a mail reader does: rename the files into the other folder."""
    files = _files(maildir, src)
    target = folder_path(maildir, "maildir++", dst)
    for mid in mids:
        path = files[mid]
        path.rename(target / "cur" / path.name)


def _move_on_server(server: DevServer, user: User, mids: list[str]) -> None:
    with session(server, user) as c:
        c.select_folder("INBOX")
        uids = [
            uid
            for uid, item in c.fetch(
                c.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
            ).items()
            if any(m.encode() in v for v in item.values() if isinstance(v, bytes) for m in mids)
        ]
        assert len(uids) == len(mids)
        c.move(uids, "Archive")


def _sync(config: Path, *args: str) -> str:
    proc = run_syncd("sync", *args, config=config, check=True)
    return proc.stdout + proc.stderr


def _same_both_sides(server: DevServer, user: User, maildir: Path) -> dict[str, Counter[str]]:
    remote, local = server_snapshot(server, user), local_snapshot(maildir, "maildir++")
    assert summary(remote) == summary(local)
    return {f: Counter(str(v.message_id) for v in views) for f, views in remote.items()}


def _counts(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_a_local_move_is_moved_on_the_server_without_upload(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account)
    moved = ["<m0@t>", "<m1@t>", "<m2@t>"]
    _move_here(maildir, moved)
    offset = quiet_offset(dovecot, account)
    out = _sync(config)
    traffic = dovecot.traffic(account, offset)
    assert traffic.body_count == 0 and traffic.in_bytes < 5_000, (traffic, out)
    assert traffic.out_bytes < 20_000, traffic
    mids = _same_both_sides(dovecot, account, maildir)
    assert mids["Archive"] == Counter(moved)
    assert mids["INBOX"] == Counter(["<m3@t>", "<m4@t>", "<m5@t>"])
    assert "0 downloaded, 0 uploaded" in _counts(out), out
    assert "0 downloaded, 0 uploaded, 0 flag changes, 0 deleted here, 0 deleted on the server" in (
        _counts(_sync(config))
    )


def test_a_server_move_is_renamed_here_without_download(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account)
    names = {mid: p.name.split(":2,")[0] for mid, p in _files(maildir, "INBOX").items()}
    moved = ["<m3@t>", "<m4@t>"]
    _move_on_server(dovecot, account, moved)
    offset = quiet_offset(dovecot, account)
    out = _sync(config)
    traffic = dovecot.traffic(account, offset)
    assert traffic.body_count == 0 and traffic.out_bytes < 20_000, (traffic, out)
    mids = _same_both_sides(dovecot, account, maildir)
    assert mids["Archive"] == Counter(moved)
    # the same files, renamed: their unique names stay
    here = {mid: p.name.split(":2,")[0] for mid, p in _files(maildir, "Archive").items()}
    assert here == {mid: names[mid] for mid in moved}
    assert "0 downloaded, 0 uploaded" in _counts(out), out
    assert "0 downloaded, 0 uploaded, 0 flag changes" in _counts(_sync(config))


def test_a_message_moved_on_both_sides_is_not_copied_twice(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account)
    _move_here(maildir, ["<m1@t>"])  # the reader here...
    _move_on_server(dovecot, account, ["<m1@t>"])  # ...and another client there
    offset = quiet_offset(dovecot, account)
    out = _sync(config, "--dry-run")
    assert "moved on both sides" in out and "0 downloaded, 0 uploaded" in _counts(out), out
    out = _sync(config)
    assert dovecot.traffic(account, offset).body_count == 0
    assert "0 downloaded, 0 uploaded" in _counts(out), out
    assert _same_both_sides(dovecot, account, maildir)["Archive"] == Counter(["<m1@t>"])


def test_a_true_copy_stays_a_copy(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    config, maildir = _setup(tmp_path, dovecot, account)
    src = _files(maildir, "INBOX")["<m0@t>"]
    target = folder_path(maildir, "maildir++", "Archive") / "cur" / src.name
    target.write_bytes(src.read_bytes())  # copied, the original stays
    out = _sync(config)
    assert "0 downloaded, 1 uploaded" in _counts(out), out
    mids = _same_both_sides(dovecot, account, maildir)
    assert mids["INBOX"]["<m0@t>"] == 1 and mids["Archive"]["<m0@t>"] == 1


def test_a_second_delivery_of_one_message_id_is_not_taken_for_a_move(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """Expunged from INBOX on the server while a message with its Message-ID and its
    size -- but another Received line, another delivery -- arrives in Archive: not a
    move.  Renaming the local file would put the wrong bytes in Archive."""
    first = make_message(
        subject="twice", message_id="<dup@t>", size_pad=BODY,
        headers={"Received": "from a.example by mx.example; Mon, 1 Jan 2024 10:00:00 +0000"},
    )  # fmt: skip
    second = first.replace(b"from a.example by mx", b"from b.example by mx")
    assert len(second) == len(first)
    config, maildir = _setup(tmp_path, dovecot, account, n=1)
    append(dovecot, account, "INBOX", first)
    _sync(config)
    with session(dovecot, account) as c:
        c.select_folder("INBOX")
        uid = c.search(["HEADER", "Message-ID", "<dup@t>"])
    expunge(dovecot, account, "INBOX", uid)
    append(dovecot, account, "Archive", second)
    out = _sync(config)
    assert "1 downloaded, 0 uploaded, 0 flag changes, 1 deleted here" in _counts(out), out
    _same_both_sides(dovecot, account, maildir)  # bytes too: summary compares hashes
    (archived,) = local_snapshot(maildir, "maildir++")["Archive"]
    assert archived.message_id == "<dup@t>"
    assert b"from b.example" in archived.path.read_bytes()


def test_two_identical_candidates_are_not_guessed_between(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account)
    create_folder(dovecot, account, "Other")
    _sync(config)
    src = _files(maildir, "INBOX")["<m0@t>"]
    data = src.read_bytes()
    for folder in ("Archive", "Other"):  # two new files with the same content...
        (folder_path(maildir, "maildir++", folder) / "cur" / f"x{folder}:2,S").write_bytes(data)
    src.unlink()  # ...and the original gone: which one is the move? neither
    out = _sync(config)
    assert "0 downloaded, 2 uploaded, 0 flag changes, 0 deleted here, 1 deleted on the server" in (
        _counts(out)
    ), out
    mids = _same_both_sides(dovecot, account, maildir)
    assert mids["Archive"]["<m0@t>"] == 1 and mids["Other"]["<m0@t>"] == 1
    assert mids["INBOX"]["<m0@t>"] == 0


def test_a_flag_changed_during_the_move_is_kept(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account)
    # moved here and flagged here
    path = _files(maildir, "INBOX")["<m0@t>"]
    path = path.rename(folder_path(maildir, "maildir++", "Archive") / "cur" / path.name)
    set_local_flags(path, "FS")
    # and answered on the server before the move reaches it
    with session(dovecot, account) as c:
        c.select_folder("INBOX")
        uid = next(iter(c.search(["HEADER", "Message-ID", "<m0@t>"])))
    set_flags(dovecot, account, "INBOX", [uid], ["\\Answered"])
    offset = quiet_offset(dovecot, account)
    out = _sync(config)
    assert dovecot.traffic(account, offset).body_count == 0
    assert "0 downloaded, 0 uploaded" in _counts(out), out
    remote = server_snapshot(dovecot, account)
    (view,) = [v for v in remote["Archive"] if v.message_id == "<m0@t>"]
    assert view.flags == {"\\Seen", "\\Flagged", "\\Answered"}
    _same_both_sides(dovecot, account, maildir)


def test_dry_run_says_move_and_changes_nothing(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account)
    _move_here(maildir, ["<m0@t>"])
    before = server_snapshot(dovecot, account)
    out = _sync(config, "--dry-run")
    assert any(
        line.startswith("t/Archive: move far ")
        and line.endswith("from INBOX to Archive (moved here: no upload)")
        for line in out.splitlines()
    ), out
    # the plan reads as the run goes: no upload, no deletion
    assert "0 downloaded, 0 uploaded, 0 flag changes, 0 deleted here, 0 deleted on the server" in (
        _counts(out)
    ), out
    assert "[delete far" not in out and "[copy near" not in out, out
    assert server_snapshot(dovecot, account) == before
    assert "0 uploaded" in _counts(_sync(config))


def _pending_moves(tmp_path: Path) -> int:
    db = tmp_path / "state" / "t.db"
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM moves").fetchone()[0])


def _both_ways(tmp_path: Path, server: DevServer, user: User) -> tuple[Path, Path]:
    config, maildir = _setup(tmp_path, server, user)
    _move_here(maildir, ["<m0@t>", "<m1@t>"])
    _move_on_server(server, user, ["<m4@t>", "<m5@t>"])
    return config, maildir


def test_a_kill_at_every_step_of_a_move_loses_and_doubles_nothing(
    tmp_path: Path, dovecot: DevServer
) -> None:
    user = dovecot.add_user()
    config, maildir = _both_ways(tmp_path / "ref", dovecot, user)
    log = tmp_path / "steps.log"
    run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_LOG": str(log)}, check=True)
    steps = [line.split()[1] for line in log.read_text().splitlines()]
    assert "move-far" in steps and "move-near" in steps, steps
    expected = _same_both_sides(dovecot, user, maildir)
    move_steps = [n + 1 for n, name in enumerate(steps) if name.startswith("move-")]
    # intent, MOVE, state for the server move; intent, 2 renames, state for the local one
    assert len(move_steps) == 7, steps
    for n in move_steps:
        user = dovecot.add_user()
        home = tmp_path / f"n{n}"
        config, maildir = _both_ways(home, dovecot, user)
        crashed = run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_AT": str(n)})
        assert crashed.returncode == -signal.SIGKILL, (n, crashed.stderr)
        offset = quiet_offset(dovecot, user)
        out = _sync(config)
        assert dovecot.traffic(user, offset).body_count == 0, (n, steps[n - 1], out)
        assert _same_both_sides(dovecot, user, maildir) == expected, (n, steps[n - 1])
        assert "0 downloaded, 0 uploaded" in _counts(out), (n, steps[n - 1], out)
        assert _pending_moves(home) == 0


def test_a_targeted_run_holds_a_folder_whose_move_is_unsettled(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account)
    _move_here(maildir, ["<m0@t>"])
    # killed right after the UID MOVE, before the state knew
    crashed = run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_AT": "2"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    loaded = load_config(config)
    syncer = AccountSyncer(loaded, loaded.accounts["t"])
    try:
        report = syncer.sync(RunOptions(), folders=["Archive"])  # the daemon's IDLE run
    finally:
        syncer.close()
    (archive,) = report.folders
    assert archive.error is not None and "not settled" in archive.error
    assert archive.uploaded == archive.downloaded == 0
    assert _pending_moves(tmp_path) == 1
    out = _sync(config)  # a full run settles it
    assert "0 downloaded, 0 uploaded" in _counts(out), out
    mids = _same_both_sides(dovecot, account, maildir)
    assert mids["Archive"] == Counter(["<m0@t>"]) and _pending_moves(tmp_path) == 0
