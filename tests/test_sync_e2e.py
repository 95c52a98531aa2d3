"""End to end: the real `syncd` command against a real Dovecot, checked on both sides
by content, count and flags, as a user would check them."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from faults.proxy import front
from support import contents, summary
from support.imap import append, create_folder, expunge, server_snapshot, session, set_flags
from support.mail import make_message
from support.maildir import deliver, folder_messages, folder_path, local_snapshot, set_local_flags
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User, populate
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions
from syncd.stores.imap.session import ImapSession

LAYOUTS = ["maildir++", "nested"]
SAMPLE = {"INBOX": 12, "Archive": 6, "Lists/python": 5, "Projets/Été": 4}


def setup(
    tmp_path: Path, server: DevServer, user: User, layout: str = "maildir++", **overrides: object
) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    maildir = tmp_path / "Mail"
    config = write_config(
        tmp_path, {"test": account_config(server, user, maildir, layout=layout, **overrides)}
    )
    return config, maildir


def sync(config: Path, *args: str, ok: bool = True) -> str:
    proc = run_syncd("sync", *args, config=config)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc.stderr + proc.stdout


def assert_in_step(server: DevServer, user: User, maildir: Path, layout: str) -> None:
    remote = summary(server_snapshot(server, user))
    local = summary(local_snapshot(maildir, layout))  # type: ignore[arg-type]
    assert local == remote


@pytest.mark.parametrize("layout", LAYOUTS)
def test_initial_sync_then_noop(
    tmp_path: Path, dovecot: DevServer, account: User, layout: str
) -> None:
    populate(dovecot, account, folders=SAMPLE)
    config, maildir = setup(tmp_path, dovecot, account, layout)
    sync(config)
    local = local_snapshot(maildir, layout)  # type: ignore[arg-type]
    assert {k: len(v) for k, v in local.items()} == SAMPLE
    assert_in_step(dovecot, account, maildir, layout)
    expected_dir = maildir / (".Projets.Été" if layout == "maildir++" else "Projets/Été")
    assert (expected_dir / "cur").is_dir()
    files_before = sorted(p for p in maildir.rglob("*") if p.is_file())
    out = sync(config)
    assert "0 downloaded, 0 uploaded, 0 flag changes" in out
    assert sorted(p for p in maildir.rglob("*") if p.is_file()) == files_before
    assert_in_step(dovecot, account, maildir, layout)


def test_a_noop_run_needs_one_connection_and_selects_nothing(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """With CONDSTORE and LIST-STATUS, a run with nothing to do logs in once and asks
    one LIST-STATUS: no SELECT, no per-folder STATUS, no extra connections. A change
    in one server folder then selects that folder only."""
    populate(dovecot, account, folders=SAMPLE)
    with front(dovecot) as proxy:
        config, _maildir = setup(tmp_path, dovecot, account, port=proxy.port)
        sync(config)
        sync(config)  # the first run's directory signatures may still have been unsettled

        def commands() -> list[bytes]:
            start = len(proxy.upstream_bytes)
            sync(config)
            sent = bytes(proxy.upstream_bytes[start:]).split(b"\r\n")
            return [line.split(b" ")[1].upper() for line in sent if line.count(b" ") >= 1]

        noop = commands()
        assert noop.count(b"LOGIN") == 1, noop
        assert b"SELECT" not in noop and b"STATUS" not in noop, noop
        append(dovecot, account, "Archive", make_message("new on the server"))
        changed = commands()
        assert changed.count(b"SELECT") == 1, changed


@pytest.mark.parametrize("layout", LAYOUTS)
def test_changes_flow_both_ways(
    tmp_path: Path, dovecot: DevServer, account: User, layout: str
) -> None:
    populate(dovecot, account, folders={"INBOX": 6, "Projets/Été": 4})
    config, maildir = setup(tmp_path, dovecot, account, layout)
    sync(config)
    lay = layout  # type: ignore[assignment]
    ete = folder_path(maildir, lay, "Projets/Été")  # type: ignore[arg-type]
    inbox = folder_path(maildir, lay, "INBOX")  # type: ignore[arg-type]
    # Local changes: a new message in a non-INBOX folder, a flag change, a deletion,
    # and a brand-new folder.
    deliver(ete, make_message(subject="écrit hors ligne", message_id="<local-1@t>"), "S")
    # In UID order (by Message-ID), not file name order: unique names do not sort in
    # delivery order (`...M99998...` sorts after `...M100003...`), and the messages
    # changed here must not be those changed on the server below.
    uid_of = {m.message_id: m.uid for m in server_snapshot(dovecot, account)["INBOX"]}
    inbox_files = [
        v.path for v in sorted(folder_messages(inbox), key=lambda v: uid_of[v.message_id])
    ]
    set_local_flags(inbox_files[0], "FS")
    inbox_files[1].unlink()
    deliver(folder_path(maildir, lay, "Local/New"), make_message(message_id="<local-2@t>"))  # type: ignore[arg-type]
    # Server changes: a new message, a flag change, an expunge, a new folder.
    append(dovecot, account, "Projets/Été", make_message(message_id="<srv-1@t>"), ["\\Seen"])
    with session(dovecot, account) as c:
        c.select_folder("INBOX")
        uids = sorted(c.search("ALL"))
    set_flags(dovecot, account, "INBOX", [uids[-1]], ["\\Answered"])
    expunge(dovecot, account, "INBOX", [uids[-2]])
    create_folder(dovecot, account, "Server/New")
    append(dovecot, account, "Server/New", make_message(message_id="<srv-2@t>"))

    out = sync(config)
    assert_in_step(dovecot, account, maildir, layout)
    remote = server_snapshot(dovecot, account)
    assert len(remote["INBOX"]) == 4  # 6 - one deleted locally - one expunged on the server
    assert len(remote["Projets/Été"]) == 6
    assert {m.message_id for m in remote["Local/New"]} == {"<local-2@t>"}
    local = local_snapshot(maildir, layout)  # type: ignore[arg-type]
    assert {m.message_id for m in local["Server/New"]} == {"<srv-2@t>"}
    flagged = [m for m in remote["INBOX"] if "\\Flagged" in m.flags]
    assert len(flagged) == 1 and "\\Seen" in flagged[0].flags
    assert any("\\Answered" in m.flags for m in local["INBOX"])
    assert "2 uploaded" in out or "uploaded" in out
    # and once more: nothing to do
    assert (
        "0 downloaded, 0 uploaded, 0 flag changes, 0 deleted here, 0 deleted on the server"
        in sync(config)
    )


def test_change_wins_over_deletion(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    for i in range(3):
        append(dovecot, account, "INBOX", make_message(message_id=f"<m{i}@t>"))
    config, maildir = setup(tmp_path, dovecot, account)
    sync(config)
    with session(dovecot, account) as c:
        c.select_folder("INBOX")
        uids = sorted(c.search("ALL"))
    # flagged on the server, deleted locally: the flag wins, the message comes back
    set_flags(dovecot, account, "INBOX", [uids[0]], ["\\Flagged"])
    local = {v.message_id: v.path for v in local_snapshot(maildir, "maildir++")["INBOX"]}
    local["<m0@t>"].unlink()
    # flagged locally, expunged on the server: the flag wins, the message is uploaded again
    set_local_flags(local["<m1@t>"], "F")
    expunge(dovecot, account, "INBOX", [uids[1]])
    sync(config)
    assert_in_step(dovecot, account, maildir, "maildir++")
    remote = {m.message_id: m.flags for m in server_snapshot(dovecot, account)["INBOX"]}
    assert remote == {
        "<m0@t>": frozenset({"\\Flagged"}),
        "<m1@t>": frozenset({"\\Flagged"}),
        "<m2@t>": frozenset(),
    }


def test_dry_run_changes_nothing(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    populate(dovecot, account, folders={"INBOX": 3, "Archive": 2})
    config, maildir = setup(tmp_path, dovecot, account)
    proc = run_syncd("sync", "--dry-run", config=config)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("copy far") == 5
    assert not any(p.is_file() for p in maildir.rglob("*")) if maildir.exists() else True
    assert {k: len(v) for k, v in server_snapshot(dovecot, account).items()} == {
        "INBOX": 3,
        "Archive": 2,
    }


def test_mass_delete_brake(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    populate(dovecot, account, folders={"INBOX": 4, "Archive": 8})
    config, maildir = setup(tmp_path, dovecot, account)
    sync(config)
    archive = folder_path(maildir, "maildir++", "Archive")
    for f in (archive / "cur").iterdir():
        f.unlink()  # emptied, directory kept
    proc = run_syncd("sync", config=config)
    assert proc.returncode == 1
    assert "Archive" in proc.stderr and "--allow-mass-delete" in proc.stderr
    remote = server_snapshot(dovecot, account)
    assert len(remote["Archive"]) == 8 and len(remote["INBOX"]) == 4  # INBOX still synced
    proc = run_syncd("sync", "--allow-mass-delete", config=config)
    assert proc.returncode == 0, proc.stderr
    assert len(server_snapshot(dovecot, account)["Archive"]) == 0


def test_wiped_local_folder_comes_back(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    populate(dovecot, account, folders={"INBOX": 2, "Lists/python": 7})
    config, maildir = setup(tmp_path, dovecot, account, "nested")
    sync(config)
    shutil.rmtree(maildir / "Lists" / "python")
    out = sync(config)
    assert "gone" in out
    assert_in_step(dovecot, account, maildir, "nested")
    assert len(server_snapshot(dovecot, account)["Lists/python"]) == 7


def test_missing_maildir_root_refuses_account(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 3})
    config, maildir = setup(tmp_path, dovecot, account)
    sync(config)
    shutil.rmtree(maildir)
    proc = run_syncd("sync", config=config)
    assert proc.returncode == 1
    assert "missing" in proc.stderr and str(maildir) in proc.stderr
    assert len(server_snapshot(dovecot, account)["INBOX"]) == 3
    assert not maildir.exists()


def test_junk_in_cur_is_skipped_rest_syncs(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    append(dovecot, account, "INBOX", make_message(message_id="<srv@t>"))
    config, maildir = setup(tmp_path, dovecot, account)
    sync(config)
    cur = maildir / "cur"
    (cur / "empty:2,S").write_bytes(b"")
    (cur / "a-directory").mkdir()
    os.symlink("/etc/passwd", cur / "evil:2,S")
    (cur / "stray.txt~").write_bytes(b"")
    # a valid message with an odd name (no info part, spaces) is still synced
    (cur / "odd name without info").write_bytes(
        make_message(message_id="<odd@t>").replace(b"\r\n", b"\n")
    )
    proc = run_syncd("sync", config=config)
    assert proc.returncode == 0, proc.stderr
    for junk in ("empty:2,S", "a-directory", "evil:2,S"):
        assert junk in proc.stderr
    remote = {m.message_id for m in server_snapshot(dovecot, account)["INBOX"]}
    assert remote == {"<srv@t>", "<odd@t>"}
    assert "root:" not in str(server_snapshot(dovecot, account))  # /etc/passwd not uploaded


def test_uidvalidity_change_repairs_without_duplicates(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 5, "Archive": 5})
    config, maildir = setup(tmp_path, dovecot, account)
    sync(config)
    before = contents(local_snapshot(maildir, "maildir++"))
    # Dovecot gives the folder a new UIDVALIDITY and new UIDs when its uidlist is lost.
    with session(dovecot, account) as c:
        old = c.folder_status("Archive", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    dovecot.kick(account)
    for control in (dovecot.maildir(account) / ".Archive").glob("dovecot*"):
        if control.is_file():
            control.unlink()
    with session(dovecot, account) as c:
        assert c.folder_status("Archive", ["UIDVALIDITY"])[b"UIDVALIDITY"] != old
    out = sync(config)
    assert "UIDVALIDITY changed" in out and "re-paired 5 of 5" in out
    assert contents(local_snapshot(maildir, "maildir++")) == before
    assert_in_step(dovecot, account, maildir, "maildir++")
    assert "0 downloaded, 0 uploaded" in sync(config)


def test_untrusted_certificate_refused_then_trusted(
    tmp_path: Path,
    dovecot_server,
) -> None:  # type: ignore[no-untyped-def]
    server = dovecot_server(tls="tls")
    user = server.add_user()
    append(server, user, "INBOX", make_message(message_id="<tls@t>"))
    config, maildir = setup(tmp_path / "a", server, user, ca_file=None)
    proc = run_syncd("sync", config=config)
    assert proc.returncode == 1
    assert "certificate" in proc.stderr.lower()
    assert not list(maildir.rglob("*:2,*"))
    config, maildir = setup(tmp_path / "b", server, user)  # ca_file set by account_config
    sync(config)
    assert [m.message_id for m in local_snapshot(maildir, "maildir++")["INBOX"]] == ["<tls@t>"]


def test_trash_moves_instead_of_deleting(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    for i in range(4):
        append(dovecot, account, "INBOX", make_message(message_id=f"<t{i}@t>"))
    config, maildir = setup(tmp_path, dovecot, account, trash="Trash")
    sync(config)
    victim = next(
        v for v in local_snapshot(maildir, "maildir++")["INBOX"] if v.message_id == "<t0@t>"
    )
    victim.path.unlink()
    sync(config)
    sync(config)  # the Trash folder created by the first run is synced by the next
    remote = server_snapshot(dovecot, account)
    assert {m.message_id for m in remote["INBOX"]} == {"<t1@t>", "<t2@t>", "<t3@t>"}
    assert [m.message_id for m in remote["Trash"]] == ["<t0@t>"]
    assert_in_step(dovecot, account, maildir, "maildir++")


def test_pull_and_push_only(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    append(dovecot, account, "INBOX", make_message(message_id="<srv@t>"))
    pull, pull_dir = setup(tmp_path / "pull", dovecot, account, sync="pull")
    deliver(pull_dir, make_message(message_id="<only-local@t>"))
    sync(pull)
    assert {v.message_id for v in local_snapshot(pull_dir, "maildir++")["INBOX"]} == {
        "<srv@t>",
        "<only-local@t>",
    }
    assert [m.message_id for m in server_snapshot(dovecot, account)["INBOX"]] == ["<srv@t>"]
    # a local deletion in pull mode is not propagated, nor downloaded again
    next(
        v for v in local_snapshot(pull_dir, "maildir++")["INBOX"] if v.message_id == "<srv@t>"
    ).path.unlink()
    sync(pull)
    assert [m.message_id for m in server_snapshot(dovecot, account)["INBOX"]] == ["<srv@t>"]
    assert [v.message_id for v in local_snapshot(pull_dir, "maildir++")["INBOX"]] == [
        "<only-local@t>"
    ]

    push, push_dir = setup(tmp_path / "push", dovecot, account, sync="push")
    deliver(push_dir, make_message(message_id="<pushed@t>"))
    sync(push)
    assert [v.message_id for v in local_snapshot(push_dir, "maildir++")["INBOX"]] == ["<pushed@t>"]
    assert {m.message_id for m in server_snapshot(dovecot, account)["INBOX"]} == {
        "<srv@t>",
        "<pushed@t>",
    }


def _age_directories(maildir: Path) -> None:
    """Make every folder directory look untouched for a minute (as in real life)."""
    old = time.time() - 60
    for d in [maildir, *maildir.rglob("*")]:
        if d.is_dir():
            os.utime(d, (old, old))


def test_status_fast_path_skips_unchanged_folders_but_sees_changes(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 4, "Archive": 3})
    config, maildir = setup(tmp_path, dovecot, account)
    sync(config)
    _age_directories(maildir)
    sync(config)  # records the (now settled) local signatures
    out = run_syncd("-v", "sync", config=config).stderr
    assert out.count("unchanged on both sides since the last sync") == 2
    # a local flag change (a rename) is seen although the server did not change
    path = next(
        p for p in (maildir / ".Archive" / "cur").iterdir() if "F" not in p.name.split(":2,")[1]
    )
    set_local_flags(path, "FS")
    out = run_syncd("-v", "sync", config=config).stderr
    assert out.count("unchanged on both sides") == 1
    assert any("\\Flagged" in m.flags for m in server_snapshot(dovecot, account)["Archive"])
    # a server change is seen although the Maildir did not change
    _age_directories(maildir)
    sync(config)
    with session(dovecot, account) as c:
        c.select_folder("INBOX")
        uid = sorted(c.search("ALL"))[0]
    set_flags(dovecot, account, "INBOX", [uid], ["\\Answered"])
    out = run_syncd("-v", "sync", config=config).stderr
    assert "INBOX: 0 downloaded, 0 uploaded, 1 flag changes" in out
    assert_in_step(dovecot, account, maildir, "maildir++")


def test_a_message_over_the_literal_cap_is_a_failure_every_run(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server message larger than the session's literal cap (64 MiB; 100 kB here) is
    not downloaded; the run says so and is not ok (exit 1), and so is the next one --
    a CONDSTORE delta must not let it drop out of sight after the first warning."""
    real = ImapSession.connect

    def small_cap(cls: type[ImapSession], **kwargs: Any) -> ImapSession:
        return real(**{**kwargs, "max_literal": 100_000})

    monkeypatch.setattr(ImapSession, "connect", classmethod(small_cap))
    append(dovecot, account, "INBOX", make_message("small", message_id="<s@t>"))
    append(dovecot, account, "INBOX", make_message("big", message_id="<b@t>", body="x" * 200_000))
    config_path, maildir = setup(tmp_path, dovecot, account)
    config = load_config(config_path)
    syncer = AccountSyncer(config, config.accounts["test"])
    try:
        reports = [syncer.sync(RunOptions()) for _ in range(2)]
    finally:
        syncer.close()
    for report in reports:
        [inbox] = [f for f in report.folders if f.name == "INBOX"]
        assert inbox.failed == 1 and not report.ok
    assert [f.downloaded for f in reports[0].folders if f.name == "INBOX"] == [1]
    local = local_snapshot(maildir, "maildir++")["INBOX"]
    assert [v.message_id for v in local] == ["<s@t>"]


def test_list_status_is_asked_for_full_runs_not_for_a_few_targeted_folders(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """A targeted sync of two folders (what the daemon's IDLE and watcher ask) does not
    make the server compute the STATUS of every mailbox; a full run asks it once."""
    populate(dovecot, account, folders=SAMPLE)
    with front(dovecot) as proxy:
        config_path, _maildir = setup(tmp_path, dovecot, account, port=proxy.port)
        config = load_config(config_path)
        syncer = AccountSyncer(config, config.accounts["test"])
        try:
            syncer.sync(RunOptions())

            def list_status_commands(folders: list[str] | None) -> int:
                start = len(proxy.upstream_bytes)
                assert syncer.sync(RunOptions(), folders).ok
                return bytes(proxy.upstream_bytes[start:]).upper().count(b"RETURN (STATUS")

            assert list_status_commands(["INBOX", "Archive"]) == 0
            assert list_status_commands(None) == 1
        finally:
            syncer.close()
