"""Folder life-cycle (issue 15) against the real Dovecot, through the `syncd` command:
a folder renamed on either side is renamed on the other without moving a message body
(Dovecot's logout counters, both directions), also with a child folder and across a
crash between the server's RENAME and the state; a folder deleted on one side is
deleted on the other only when empty there or when the user allows it."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from support import summary
from support.imap import delete_folder, server_snapshot, session
from support.mail import make_message
from support.maildir import deliver, local_snapshot
from support.run import account_config, run_syncd, write_config
from test_switch_e2e import quiet_offset

from devserver.dovecot import DevServer, Traffic, User, populate
from syncd.stores.maildir.subscriptions import read_subscriptions

LAYOUTS = ["maildir++", "nested"]
FILLED = {"INBOX": 2, "Lists": 3, "Lists/python": 4, "Archive": 2}


def _setup(tmp_path: Path, server: DevServer, user: User, layout: str) -> tuple[Path, Path]:
    maildir = tmp_path / "Mail"
    config = write_config(tmp_path, {"test": account_config(server, user, maildir, layout=layout)})
    populate(server, user, folders=FILLED)
    proc = run_syncd("sync", config=config)
    assert proc.returncode == 0, proc.stderr
    return config, maildir


def _sync(
    server: DevServer, user: User, config: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[str, Traffic, int]:
    offset = quiet_offset(server, user)
    proc = run_syncd("sync", *args, config=config, env=env)
    return proc.stderr + proc.stdout, server.traffic(user, offset), proc.returncode


def _counts(snapshot: dict[str, list[object]]) -> dict[str, int]:
    return {name: len(messages) for name, messages in snapshot.items()}


def _in_step(server: DevServer, user: User, maildir: Path, layout: str) -> None:
    assert summary(local_snapshot(maildir, layout)) == summary(  # type: ignore[arg-type]
        server_snapshot(server, user)
    )


def _server_rename(server: DevServer, user: User, old: str, new: str) -> None:
    with session(server, user) as client:
        client.rename_folder(old, new)


def _no_body_moved(traffic: Traffic) -> None:
    # No BODY[] fetched, and far less sent than the 7 messages moved would be (an
    # APPEND would count every byte of each here).
    assert traffic.body_count == 0, traffic
    assert traffic.in_bytes < 2_000, traffic


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_server_rename_renames_the_local_folder_and_moves_no_body(
    tmp_path: Path, dovecot: DevServer, account: User, layout: str
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account, layout)
    _server_rename(dovecot, account, "Lists", "Old")  # its child moves with it
    out, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    assert "renamed on the server to Old: renamed here too, no message copied" in out
    _no_body_moved(traffic)
    local = _counts(local_snapshot(maildir, layout))  # type: ignore[arg-type]
    assert local == {"INBOX": 2, "Old": 3, "Old/python": 4, "Archive": 2}
    _in_step(dovecot, account, maildir, layout)
    again, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0 and "renamed" not in again and "gone" not in again, again
    assert traffic.body_count == 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_local_rename_renames_the_server_folder_and_moves_no_body(
    tmp_path: Path, dovecot: DevServer, account: User, layout: str
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account, layout)
    if layout == "nested":
        (maildir / "Lists").rename(maildir / "Old")  # the child moves with it
    else:
        (maildir / ".Lists").rename(maildir / ".Old")
        (maildir / ".Lists.python").rename(maildir / ".Old.python")
    out, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    assert "renamed here to Old: renamed on the server too, no message copied" in out
    _no_body_moved(traffic)
    remote = _counts(server_snapshot(dovecot, account))
    assert remote == {"INBOX": 2, "Old": 3, "Old/python": 4, "Archive": 2}
    _in_step(dovecot, account, maildir, layout)
    again, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0 and "renamed" not in again, again
    assert traffic.body_count == 0


def test_a_crash_between_the_server_rename_and_the_state_duplicates_nothing(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account, "maildir++")
    (maildir / ".Archive").rename(maildir / ".Kept")
    steps = tmp_path / "steps.log"
    _out, _traffic, rc = _sync(
        dovecot,
        account,
        config,
        env={"SYNCD_TEST_CRASH_AT": "1", "SYNCD_TEST_CRASH_LOG": str(steps)},
    )
    assert rc == -signal.SIGKILL
    assert steps.read_text(encoding="utf-8").split() == ["1", "folder-rename"]
    # the server renamed, the state still says Archive
    assert _counts(server_snapshot(dovecot, account))["Kept"] == 2
    out, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    _no_body_moved(traffic)
    assert _counts(server_snapshot(dovecot, account)) == {
        "INBOX": 2, "Lists": 3, "Lists/python": 4, "Kept": 2
    }  # fmt: skip
    _in_step(dovecot, account, maildir, "maildir++")


def test_a_dry_run_says_which_rename_it_would_make_and_makes_none(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account, "maildir++")
    _server_rename(dovecot, account, "Archive", "Kept")
    out, traffic, rc = _sync(dovecot, account, config, "--dry-run")
    assert rc == 0, out
    assert "rename near folder Archive -> Kept" in out
    assert traffic.body_count == 0
    assert (maildir / ".Archive" / "cur").is_dir() and not (maildir / ".Kept").exists()


def test_a_server_deletion_deletes_an_empty_local_folder_and_keeps_a_full_one(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account, "maildir++")
    populate(dovecot, account, folders={"Empty": 0})
    run_syncd("sync", config=config, check=True)
    assert (maildir / ".Empty" / "cur").is_dir()
    delete_folder(dovecot, account, "Empty")
    delete_folder(dovecot, account, "Archive")
    out, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    assert not (maildir / ".Empty").exists()
    assert "Empty: deleted on the server: the local folder (0 messages) is deleted too" in out
    lines = [line for line in out.splitlines() if "test/Archive" in line]
    assert len(lines) == 1 and "--allow-mass-delete" in lines[0], out
    assert len(local_snapshot(maildir, "maildir++")["Archive"]) == 2
    assert "Archive" not in server_snapshot(dovecot, account)  # not uploaded again
    assert traffic.in_bytes < 2_000
    out, _traffic, rc = _sync(dovecot, account, config, "--allow-mass-delete")
    assert rc == 0, out
    assert not (maildir / ".Archive").exists()
    _in_step(dovecot, account, maildir, "maildir++")


def test_a_local_deletion_deletes_an_empty_server_folder_or_when_allowed(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account, "nested")
    populate(dovecot, account, folders={"Empty": 0})
    run_syncd("sync", config=config, check=True)
    shutil.rmtree(maildir / "Empty")
    shutil.rmtree(maildir / "Archive")
    out, _traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    assert "Empty" not in server_snapshot(dovecot, account)  # empty there: deleted
    lines = [line for line in out.splitlines() if "test/Archive" in line and "gone" in line]
    assert len(lines) == 1 and "run `syncd sync --allow-mass-delete`" in lines[0], out
    assert len(local_snapshot(maildir, "nested")["Archive"]) == 2  # fetched again
    shutil.rmtree(maildir / "Archive")
    out, _traffic, rc = _sync(dovecot, account, config, "--allow-mass-delete")
    assert rc == 0, out
    remote = _counts(server_snapshot(dovecot, account))
    assert remote == {"INBOX": 2, "Lists": 3, "Lists/python": 4}
    assert "deleted here: the server folder (2 messages) is deleted too" in out
    _in_step(dovecot, account, maildir, "nested")


def test_inbox_and_trash_are_never_deleted(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    maildir = tmp_path / "Mail"
    config = write_config(
        tmp_path,
        {"test": account_config(dovecot, account, maildir, layout="nested", trash="Trash")},
    )
    populate(dovecot, account, folders={"INBOX": 2, "Trash": 1})
    run_syncd("sync", config=config, check=True)
    shutil.rmtree(maildir / "INBOX")
    shutil.rmtree(maildir / "Trash")
    out, _traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    assert "gone" in out and "--allow-mass-delete" not in out, out  # no hint for these
    shutil.rmtree(maildir / "INBOX")
    shutil.rmtree(maildir / "Trash")
    out, _traffic, rc = _sync(dovecot, account, config, "--allow-mass-delete")
    assert rc == 0, out
    assert _counts(server_snapshot(dovecot, account)) == {"INBOX": 2, "Trash": 1}
    _in_step(dovecot, account, maildir, "nested")


def test_a_crash_between_the_local_rename_and_the_state_duplicates_nothing(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    config, maildir = _setup(tmp_path, dovecot, account, "nested")
    _server_rename(dovecot, account, "Archive", "Kept")
    _out, _traffic, rc = _sync(dovecot, account, config, env={"SYNCD_TEST_CRASH_AT": "1"})
    assert rc == -signal.SIGKILL
    assert (maildir / "Kept" / "cur").is_dir() and not (maildir / "Archive").exists()
    out, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    _no_body_moved(traffic)
    local = _counts(local_snapshot(maildir, "nested"))
    assert local == {"INBOX": 2, "Lists": 3, "Lists/python": 4, "Kept": 2}
    _in_step(dovecot, account, maildir, "nested")


def test_a_renamed_folder_keeps_its_subscription_both_ways(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    maildir = tmp_path / "Mail"
    config = write_config(
        tmp_path,
        {"test": account_config(dovecot, account, maildir, layout="nested", subscribed_only=True)},
    )
    populate(dovecot, account, folders=FILLED)
    with session(dovecot, account) as client:
        for name in ("Lists", "Lists/python", "Archive"):
            client.subscribe_folder(name)
    run_syncd("sync", config=config, check=True)
    _server_rename(dovecot, account, "Lists", "Old")  # Dovecot leaves the subscriptions
    out, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    _no_body_moved(traffic)
    (maildir / "Archive").rename(maildir / "Kept")
    out, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    _no_body_moved(traffic)
    expected = {"Old", "Old/python", "Kept"}
    with session(dovecot, account) as client:
        assert {name for _f, _d, name in client.list_sub_folders()} == expected
    local_subs = read_subscriptions(maildir, layout="nested") or set()
    assert {"/".join(p) for p in local_subs} == expected
    local = _counts(local_snapshot(maildir, "nested"))
    assert local == {"INBOX": 2, "Old": 3, "Old/python": 4, "Kept": 2}


def test_a_local_parent_rename_takes_the_server_children_and_their_copies_along(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """maildir++ keeps a child apart (``.Lists.python``): renaming only ``.Lists`` here
    renames ``Lists/python`` on the server too (RENAME moves children), and the same
    run renames the child's local copy to match."""
    config, maildir = _setup(tmp_path, dovecot, account, "maildir++")
    (maildir / ".Lists").rename(maildir / ".Old")
    out, traffic, rc = _sync(dovecot, account, config)
    assert rc == 0, out
    _no_body_moved(traffic)
    local = _counts(local_snapshot(maildir, "maildir++"))
    assert local == {"INBOX": 2, "Old": 3, "Old/python": 4, "Archive": 2}
    _in_step(dovecot, account, maildir, "maildir++")


def _both_renamed(tmp_path: Path, server: DevServer, user: User) -> tuple[Path, Path]:
    """Synced, then Lists renamed on the server, Archive renamed here, Empty deleted
    here, and one new local message in the renamed Archive."""
    tmp_path.mkdir(parents=True)
    config, maildir = _setup(tmp_path, server, user, "nested")
    populate(server, user, folders={"Empty": 0})
    run_syncd("sync", config=config, check=True)
    _server_rename(server, user, "Lists", "Old")
    (maildir / "Archive").rename(maildir / "Kept")
    shutil.rmtree(maildir / "Empty")
    deliver(maildir / "Kept", make_message(subject="new here"), "S")
    return config, maildir


def test_a_crash_at_every_step_of_a_folder_life_cycle_run(
    tmp_path: Path, dovecot: DevServer
) -> None:
    """Kill the run at each durable step in turn, run again: the end state is the
    uninterrupted run's, nothing twice, and no message body moved."""
    user = dovecot.add_user()
    config, maildir = _both_renamed(tmp_path / "ref", dovecot, user)
    log = tmp_path / "steps.log"
    run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_LOG": str(log)}, check=True)
    steps = log.read_text(encoding="utf-8").splitlines()
    names = [line.split()[1] for line in steps]
    assert names.count("folder-rename") == 2 and "folder-delete" in names, steps
    expected = _counts(server_snapshot(dovecot, user))
    assert expected == {"INBOX": 2, "Old": 3, "Old/python": 4, "Kept": 3}
    for n in range(1, len(steps) + 1):
        user = dovecot.add_user()
        config, maildir = _both_renamed(tmp_path / f"n{n}", dovecot, user)
        offset = quiet_offset(dovecot, user)
        crashed = run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_AT": str(n)})
        assert crashed.returncode == -signal.SIGKILL, (n, crashed.stderr)
        run_syncd("sync", config=config, check=True)
        # Only a crash right after the new message's APPEND reads a body: the upload's
        # recovery reads it back to recognise it.  No folder's messages move.
        appended = steps[n - 1].endswith("upload-append")
        assert dovecot.traffic(user, offset).body_count == int(appended), (n, steps[n - 1])
        snapshot = server_snapshot(dovecot, user)
        for folder, views in snapshot.items():
            assert len({v.sha256 for v in views}) == len(views), (n, folder)
        assert _counts(snapshot) == expected, (n, steps[n - 1])
        _in_step(dovecot, user, maildir, "nested")
