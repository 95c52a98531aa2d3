"""Subscriptions against the real Dovecot, through the `syncd` command: SUBSCRIBE and
UNSUBSCRIBE on either side reach the other (the server's LSUB, the Maildir's
``subscriptions`` file), and ``subscribed_only = true`` syncs only subscribed folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import StartServer
from support.imap import session
from support.maildir import local_snapshot
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User, capabilities_without, populate
from syncd.stores.maildir.subscriptions import read_subscriptions, write_subscriptions

FOLDERS = {"INBOX": 1, "Archive": 2, "Lists/python": 1, "Drafts": 1}


def _config(tmp_path: Path, server: DevServer, user: User, **keys: object) -> tuple[Path, Path]:
    maildir = tmp_path / "Mail"
    account = account_config(server, user, maildir, layout="nested", **keys)
    return write_config(tmp_path, {"test": account}), maildir


def _server_subscribed(server: DevServer, user: User) -> set[str]:
    with session(server, user) as client:
        return {name for _flags, _delim, name in client.list_sub_folders()}


def _local(maildir: Path) -> set[str]:
    found = read_subscriptions(maildir, layout="nested")
    return {"/".join(p) for p in found or ()}


@pytest.mark.parametrize("listing", ["LIST (SUBSCRIBED)", "LSUB"])
def test_subscriptions_flow_both_ways(
    tmp_path: Path, dovecot_server: StartServer, listing: str
) -> None:
    # Without LIST-EXTENDED syncd asks LSUB instead.
    dovecot = (
        dovecot_server()
        if listing != "LSUB"
        else dovecot_server(capability=capabilities_without("LIST-EXTENDED"))
    )
    account = dovecot.add_user()
    populate(dovecot, account, folders=FOLDERS)
    with session(dovecot, account) as client:
        client.subscribe_folder("INBOX")
        client.subscribe_folder("Archive")
    config, maildir = _config(tmp_path, dovecot, account)
    run_syncd("sync", config=config, check=True)
    assert _local(maildir) == {"INBOX", "Archive"}
    # here: subscribe Lists/python, unsubscribe Archive; there: subscribe Drafts
    write_subscriptions(maildir, {("INBOX",), ("Lists", "python")})
    with session(dovecot, account) as client:
        client.subscribe_folder("Drafts")
    proc = run_syncd("sync", config=config, check=True)
    out = proc.stderr + proc.stdout
    assert "subscribed Lists/python on the server (subscribed here)" in out
    assert "unsubscribed Archive on the server (unsubscribed here)" in out
    expected = {"INBOX", "Lists/python", "Drafts"}
    assert _server_subscribed(dovecot, account) == expected
    assert _local(maildir) == expected
    # then the server unsubscribes one
    with session(dovecot, account) as client:
        client.unsubscribe_folder("Drafts")
    run_syncd("sync", config=config, check=True)
    assert _local(maildir) == {"INBOX", "Lists/python"}
    assert _server_subscribed(dovecot, account) == {"INBOX", "Lists/python"}
    # a dry run says what it would do and does nothing
    write_subscriptions(maildir, {("INBOX",)})
    dry = run_syncd("sync", "--dry-run", config=config, check=True)
    assert "would unsubscribe far Lists/python" in dry.stderr + dry.stdout
    assert _server_subscribed(dovecot, account) == {"INBOX", "Lists/python"}


def test_subscribed_only_syncs_only_subscribed_folders(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders=FOLDERS)
    with session(dovecot, account) as client:
        client.subscribe_folder("Archive")
    config, maildir = _config(tmp_path, dovecot, account, subscribed_only=True)
    run_syncd("sync", config=config, check=True)
    local = {name: len(msgs) for name, msgs in local_snapshot(maildir, "nested").items()}
    assert local == {"INBOX": 1, "Archive": 2}  # INBOX always
    # subscribing here brings the folder in on the next run
    write_subscriptions(maildir, {("Archive",), ("Drafts",)})
    run_syncd("sync", config=config, check=True)
    local = {name: len(msgs) for name, msgs in local_snapshot(maildir, "nested").items()}
    assert local == {"INBOX": 1, "Archive": 2, "Drafts": 1}
    assert _server_subscribed(dovecot, account) == {"Archive", "Drafts"}
