"""Mailbox ACLs (RFC 4314) against a real Dovecot with its ``acl`` plugin: a folder the
user may only read is synced server -> local with one line saying why, instead of
failing every cycle; the rights are asked once (MYRIGHTS) and kept in the state."""

from __future__ import annotations

from pathlib import Path

from faults.proxy import front
from support import StartServer
from support.imap import append, server_snapshot
from support.mail import make_message
from support.maildir import deliver, local_snapshot
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import populate
from syncd.account.rights import read_only


def test_a_read_only_folder_is_synced_one_way_without_failing(
    tmp_path: Path, dovecot_server: StartServer
) -> None:
    server = dovecot_server(acl=True)
    user = server.add_user()
    populate(server, user, folders={"INBOX": 1, "Shared": 2})
    server.set_rights(user, "Shared", "lr")
    maildir = tmp_path / "Mail"
    with front(server) as proxy:
        config = write_config(
            tmp_path, {"test": account_config(server, user, maildir, port=proxy.port)}
        )

        def sync() -> tuple[str, list[bytes]]:
            start = len(proxy.upstream_bytes)
            proc = run_syncd("sync", config=config)
            assert proc.returncode == 0, proc.stderr
            sent = bytes(proxy.upstream_bytes[start:]).split(b"\r\n")
            words = [line.split(b" ")[1].upper() for line in sent if line.count(b" ") >= 1]
            return proc.stderr + proc.stdout, words

        out, _ = sync()
        assert len(local_snapshot(maildir, "maildir++")["Shared"]) == 2
        # a local message and a new server message in the read-only folder
        deliver(maildir / ".Shared", make_message(subject="only here"), "S")
        server.set_rights(user, "Shared", "lrwstipekxa")  # another writer
        append(server, user, "Shared", make_message(subject="from the server"))
        server.set_rights(user, "Shared", "lr")
        for _ in range(2):  # not once, and not failing every cycle
            out, words = sync()
            lines = [line for line in out.splitlines() if "test/Shared: read-only" in line]
            assert len(lines) == 1, out
            assert (
                "read-only on the server (your rights: lr): synced from the server only"
                in (lines[0])
            )
            assert "error" not in out.lower() and "failed" not in out.lower(), out
            assert b"MYRIGHTS" not in words and b"APPEND" not in words, words
        assert len(local_snapshot(maildir, "maildir++")["Shared"]) == 4
        assert len(server_snapshot(server, user)["Shared"]) == 3


def test_which_rights_are_read_only() -> None:
    assert read_only("") and read_only("lr") and read_only("lrs") and read_only("lrsp")
    assert not read_only("lrswipkxtea") and not read_only("lri") and not read_only("lrw")
