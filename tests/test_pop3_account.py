"""POP3 accounts end to end against Dovecot's POP3 server (issue 13): download
once by UIDL, keep or delete on the server, delete after N days, new mail between
runs, a refused RETR, a wrong password, STLS missing, ``syncd status``.

The module starts its own Dovecot with POP3 (``pop3=True``) whose UIDLs are the
plain IMAP UIDs (``pop3_uidl_format = %u``): "1", "2", ... -- numeric strings, which
an INTEGER state column would have turned into numbers.  The POP3 INBOX is the IMAP
INBOX, so mail is put in and checked with ``support.imap``.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faults.proxy import Fault, Proxy
from support import StartServer
from support.imap import append, folder_messages, session
from support.mail import make_message
from support.maildir import deliver
from support.maildir import folder_messages as local_messages
from support.run import run_syncd, write_config

import devserver.dovecot as devserver
from devserver.dovecot import DevServer, User
from syncd.account.pop3 import Pop3Syncer
from syncd.config import Config, load_config
from syncd.engine.options import RunOptions
from syncd.engine.state import StateDB
from syncd.stores.pop3.client import MessageRefused, Pop3Client

DAY = 86400.0


@pytest.fixture(scope="module")
def pop3d() -> Iterator[DevServer]:
    """This module's Dovecot: plain IMAP and POP3 on 127.0.0.1, UIDL = the UID."""
    root = Path(tempfile.mkdtemp(prefix="syncd-pop3acct-"))
    root.chmod(0o755)  # Dovecot's mail processes (uid 65534) must reach it
    try:
        server = devserver.start(root, pop3=True, extra_conf="pop3_uidl_format = %u\n")
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def user(pop3d: DevServer) -> User:
    return pop3d.add_user()


def pop3_table(server: DevServer, user: User, maildir: Path, **extra: Any) -> dict[str, Any]:
    assert server.pop3_port is not None
    return {
        "protocol": "pop3",
        "host": server.host,
        "port": server.pop3_port,
        "tls": "none",
        "user": user.name,
        "password_command": ["printf", "%s", user.password],
        "maildir": str(maildir),
        **extra,
    }


def config_for(tmp_path: Path, server: DevServer, user: User, **extra: Any) -> Path:
    return write_config(tmp_path, {"p": pop3_table(server, user, tmp_path / "Mail", **extra)})


def put(server: DevServer, user: User, tag: str, n: int) -> list[str]:
    ids = [f"<{tag}-{i}@pop3.test>" for i in range(n)]
    for mid in ids:
        append(server, user, "INBOX", make_message(subject=f"{tag}", message_id=mid))
    return ids


def on_server(server: DevServer, user: User) -> list[str | None]:
    with session(server, user) as client:
        return sorted(m.message_id or "" for m in folder_messages(client, "INBOX"))


def local_ids(tmp_path: Path) -> Counter[str | None]:
    return Counter(m.message_id for m in local_messages(tmp_path / "Mail"))


def in_new(tmp_path: Path) -> int:
    return len(list((tmp_path / "Mail" / "new").iterdir()))


def syncer(config: Path, clock: list[float] | None = None) -> Pop3Syncer:
    cfg: Config = load_config(config)
    if clock is None:
        return Pop3Syncer(cfg, cfg.accounts["p"])
    return Pop3Syncer(cfg, cfg.accounts["p"], now=lambda: clock[0])


def test_keep_on_server_downloads_each_message_once(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    first = put(pop3d, user, "a", 3)
    config = config_for(tmp_path, pop3d, user)
    run = run_syncd("sync", config=config, check=True)
    assert "3 downloaded" in run.stderr
    assert local_ids(tmp_path) == Counter(first)
    assert in_new(tmp_path) == 3  # unread mail lands in new/
    assert on_server(pop3d, user) == sorted(first)  # kept
    again = run_syncd("sync", config=config, check=True)
    assert "0 downloaded" in again.stderr
    # New mail between runs: only it is downloaded.
    later = put(pop3d, user, "b", 2)
    third = run_syncd("sync", config=config, check=True)
    assert "2 downloaded" in third.stderr
    assert local_ids(tmp_path) == Counter(first + later)
    # The UIDLs are numeric strings; the state keeps them as strings.
    db = StateDB(tmp_path / "state" / "p.db")
    try:
        st = db.folder("INBOX")
        assert st is not None
        assert sorted(str(p.far) for p in db.pairs(st.id)) == ["1", "2", "3", "4", "5"]
        assert all(isinstance(p.far, str) for p in db.pairs(st.id))
    finally:
        db.close()


def test_a_message_read_or_deleted_locally_is_not_downloaded_again(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    put(pop3d, user, "r", 3)
    config = config_for(tmp_path, pop3d, user)
    run_syncd("sync", config=config, check=True)
    files = sorted((tmp_path / "Mail" / "new").iterdir())
    files[0].unlink()
    files[1].rename(tmp_path / "Mail" / "cur" / (files[1].name + ":2,S"))
    again = run_syncd("sync", config=config, check=True)
    assert "0 downloaded" in again.stderr and "0 deleted on the server" in again.stderr
    assert len(local_ids(tmp_path)) == 2
    assert len(on_server(pop3d, user)) == 3


def test_keep_on_server_false_deletes_what_is_stored(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    first = put(pop3d, user, "d", 4)
    config = config_for(tmp_path, pop3d, user, keep_on_server=False)
    run = run_syncd("sync", config=config, check=True)
    assert "4 downloaded" in run.stderr and "4 deleted on the server" in run.stderr
    assert on_server(pop3d, user) == []
    assert local_ids(tmp_path) == Counter(first)
    later = put(pop3d, user, "e", 2)
    run_syncd("sync", config=config, check=True)
    assert on_server(pop3d, user) == []
    # What left the server keeps its local copy.
    assert local_ids(tmp_path) == Counter(first + later)


def test_delete_after_days_counts_from_when_it_was_stored(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    old = put(pop3d, user, "o", 2)
    config = config_for(tmp_path, pop3d, user, delete_after_days=3)
    clock = [1_000_000.0]
    s = syncer(config, clock)
    try:
        assert s.sync(RunOptions()).ok
        assert on_server(pop3d, user) == sorted(old)
        clock[0] += 2 * DAY
        new = put(pop3d, user, "n", 1)
        report = s.sync(RunOptions())
        assert report.ok and report.folders[0].downloaded == 1
        assert report.folders[0].deleted_far == 0
        assert on_server(pop3d, user) == sorted(old + new)
        clock[0] += 1 * DAY  # three days after the first two were stored
        dry = s.sync(RunOptions(dry_run=True))
        assert dry.folders[0].planned == [
            "delete far 1 (stored here)",
            "delete far 2 (stored here)",
        ]
        report = s.sync(RunOptions())
        assert report.folders[0].deleted_far == 2
        assert on_server(pop3d, user) == sorted(new)
        clock[0] += 1 * DAY
        assert s.sync(RunOptions()).folders[0].deleted_far == 0
        clock[0] += 1 * DAY
        assert s.sync(RunOptions()).folders[0].deleted_far == 1
        assert on_server(pop3d, user) == []
        assert local_ids(tmp_path) == Counter(old + new)
    finally:
        s.close()


def test_a_refused_retr_is_skipped_and_retried_next_run(
    tmp_path: Path, pop3d: DevServer, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = put(pop3d, user, "x", 4)
    config = config_for(tmp_path, pop3d, user, keep_on_server=False)
    real = Pop3Client.retr

    def refuse_two(self: Pop3Client, number: int, max_bytes: int = 1 << 26) -> bytes:
        if number == 2:
            raise MessageRefused("RETR 2 refused: -ERR disk error", number)
        return real(self, number, max_bytes)

    monkeypatch.setattr(Pop3Client, "retr", refuse_two)
    s = syncer(config)
    try:
        report = s.sync(RunOptions())
        assert not report.ok  # one message failed: the run says so
        inbox = report.folders[0]
        assert (inbox.downloaded, inbox.failed, inbox.deleted_far) == (3, 1, 3)
        assert on_server(pop3d, user) == [ids[1]]  # only what was stored was deleted
        monkeypatch.setattr(Pop3Client, "retr", real)
        report = s.sync(RunOptions())
        assert report.ok and report.folders[0].downloaded == 1
    finally:
        s.close()
    assert on_server(pop3d, user) == []
    assert local_ids(tmp_path) == Counter(ids)


def test_wrong_password_is_one_error_and_changes_nothing(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    put(pop3d, user, "w", 1)
    config = config_for(
        tmp_path, pop3d, user, password_command=["printf", "%s", "not-the-password"]
    )
    run = run_syncd("sync", config=config)
    assert run.returncode == 1
    assert "p: failed:" in run.stderr and "not-the-password" not in run.stderr
    assert len(on_server(pop3d, user)) == 1
    assert not (tmp_path / "Mail" / "new").exists() or in_new(tmp_path) == 0


def test_status_shows_a_pop3_account(tmp_path: Path, pop3d: DevServer, user: User) -> None:
    put(pop3d, user, "s", 2)
    config = config_for(tmp_path, pop3d, user)
    run_syncd("sync", config=config, check=True)
    status = run_syncd("status", "--json", config=config, check=True)
    rows = json.loads(status.stdout)["accounts"]["p"]["folders"]
    assert [(r["folder"], r["server"], r["local"], r["error"]) for r in rows] == [
        ("INBOX", 2, 2, None)
    ]
    text = run_syncd("status", config=config, check=True)
    assert "INBOX" in text.stdout


class _NoStlsPeer:
    """A POP3 peer that offers no STLS and records what it was sent."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"+OK ready\r\n")
            for line in lines:
                self.received.append(line)
                if line.upper().startswith(b"CAPA"):
                    conn.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
                elif line.upper().startswith(b"QUIT"):
                    conn.sendall(b"+OK bye\r\n")
                    return
                else:
                    conn.sendall(b"-ERR no\r\n")

    def close(self) -> None:
        self.sock.close()


def test_stls_missing_is_refused_before_any_credential(tmp_path: Path) -> None:
    peer = _NoStlsPeer()
    try:
        table = {
            "protocol": "pop3",
            "host": "127.0.0.1",
            "port": peer.port,
            "tls": "starttls",
            "user": "someone",
            "password_command": ["printf", "%s", "s3cret"],
            "maildir": str(tmp_path / "Mail"),
        }
        run = run_syncd("sync", config=write_config(tmp_path, {"p": table}))
        assert run.returncode == 1
        assert "STLS" in run.stderr
        peer.thread.join(5)
        sent = b"".join(peer.received)
        assert b"USER" not in sent and b"PASS" not in sent and b"s3cret" not in sent
    finally:
        peer.close()


def test_a_link_cut_mid_retr_stores_nothing_twice(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    """POP3 has no partial fetch: the cut message is fetched again next run; what the
    cut run already stored is adopted, not stored again; nothing was deleted."""
    ids = [f"<cut-{i}@pop3.test>" for i in range(5)]
    for i, mid in enumerate(ids):
        append(pop3d, user, "INBOX", make_message(subject=f"cut {i}", message_id=mid))
    assert pop3d.pop3_port is not None
    cut = Fault("cut", direction="down", after=b"Subject: cut 3", extra=40)
    with Proxy(pop3d.pop3_port, upstream_host=pop3d.host, fault=cut) as proxy:
        table = pop3_table(pop3d, user, tmp_path / "Mail", port=proxy.port, keep_on_server=False)
        config = write_config(tmp_path, {"p": table})
        first = run_syncd("sync", config=config)
        assert proxy.fired == 1
        assert first.returncode == 1, first.stderr
        assert on_server(pop3d, user) == sorted(ids)  # no QUIT: nothing deleted
        assert max(local_ids(tmp_path).values(), default=1) == 1
        run_syncd("sync", config=config, check=True)
    assert local_ids(tmp_path) == Counter(ids)
    assert on_server(pop3d, user) == []


class _NoUidlMaildrop:
    """A POP3 maildrop without UIDL (CAPA lacks it, UIDL answers -ERR): enough of
    RFC 1939 for syncd -- USER/PASS, LIST, RETR, DELE, QUIT.  ``drop_quit``: the
    next QUIT is answered by a cut link (its deletions are then not made)."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = list(messages)
        self.drop_quit = False
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        marked: set[int] = set()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"+OK maildrop\r\n")
            for raw in lines:
                cmd, _, arg = raw.strip().decode().partition(" ")
                cmd = cmd.upper()
                if cmd == "CAPA":
                    conn.sendall(b"+OK\r\nUSER\r\nTOP\r\n.\r\n")
                elif cmd in ("USER", "PASS", "NOOP"):
                    conn.sendall(b"+OK\r\n")
                elif cmd == "LIST":
                    body = b"".join(
                        b"%d %d\r\n" % (n, len(m))
                        for n, m in enumerate(self.messages, 1)
                        if n not in marked
                    )
                    conn.sendall(b"+OK\r\n" + body + b".\r\n")
                elif cmd == "RETR" and arg.isdigit() and 0 < int(arg) <= len(self.messages):
                    data = self.messages[int(arg) - 1].replace(b"\r\n.", b"\r\n..")
                    conn.sendall(b"+OK\r\n" + data + b".\r\n")
                elif cmd == "DELE" and arg.isdigit():
                    marked.add(int(arg))
                    conn.sendall(b"+OK\r\n")
                elif cmd == "QUIT":
                    if self.drop_quit:
                        self.drop_quit = False
                        return
                    self.messages = [m for n, m in enumerate(self.messages, 1) if n not in marked]
                    conn.sendall(b"+OK bye\r\n")
                    return
                else:
                    conn.sendall(b"-ERR not here\r\n")

    def close(self) -> None:
        self.sock.close()


def _maildrop_config(tmp_path: Path, port: int, **extra: Any) -> Path:
    tmp_path.mkdir()
    table = {
        "protocol": "pop3",
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "user": "u",
        "password_command": ["printf", "%s", "pw"],
        "maildir": str(tmp_path / "Mail"),
        **extra,
    }
    return write_config(tmp_path, {"p": table})


def test_a_server_without_uidl(tmp_path: Path) -> None:
    """keep_on_server = true is refused with one clear line; with allow_no_uidl and
    keep_on_server = false everything is downloaded and deleted -- once, also when
    the deletion of a run did not happen (content digests recognise the mail)."""
    msgs = [make_message(subject=f"nu {i}", message_id=f"<nu-{i}@t>") for i in range(3)]
    drop = _NoUidlMaildrop(msgs)
    try:
        keep = run_syncd("sync", config=_maildrop_config(tmp_path / "keep", drop.port))
        assert keep.returncode == 1
        assert "keep_on_server = true is refused" in keep.stderr
        assert "allow_no_uidl = true" in keep.stderr
        assert len(drop.messages) == 3
        config = _maildrop_config(
            tmp_path / "drain", drop.port, keep_on_server=False, allow_no_uidl=True
        )
        drop.drop_quit = True
        cut = run_syncd("sync", config=config)
        assert cut.returncode == 1 and len(drop.messages) == 3  # QUIT lost: nothing deleted
        drop.messages.append(make_message(subject="nu 3", message_id="<nu-3@t>"))
        run = run_syncd("sync", config=config, check=True)
        assert "1 downloaded" in run.stderr and "4 deleted on the server" in run.stderr
        assert drop.messages == []
        got = Counter(m.message_id for m in local_messages(tmp_path / "drain" / "Mail"))
        assert got == Counter(f"<nu-{i}@t>" for i in range(4))
    finally:
        drop.close()


def test_the_daemon_polls_a_pop3_account_on_its_interval(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    from syncd.daemon.core import Daemon

    first = put(pop3d, user, "dm", 2)
    config = load_config(config_for(tmp_path, pop3d, user, interval=1, keep_on_server=False))
    daemon = Daemon(config)
    daemon.start()
    try:
        runner = daemon.runners["p"]
        assert runner.listeners == []  # no IDLE over POP3
        _wait(lambda: local_ids(tmp_path) == Counter(first), "the start-up sync")
        later = put(pop3d, user, "dn", 1)
        _wait(lambda: local_ids(tmp_path) == Counter(first + later), "a poll")
        _wait(lambda: on_server(pop3d, user) == [], "the deletion")
        assert not runner.watcher.started  # local changes need no POP3 session
    finally:
        assert daemon.stop() == []


def _wait(done: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_mail_already_in_the_maildir_is_paired_not_downloaded_again(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    """A Maildir filled by getmail before: the first sync pairs by Message-ID."""
    msgs = [make_message(subject=f"g {i}", message_id=f"<g-{i}@pop3.test>") for i in range(3)]
    for raw in msgs:
        append(pop3d, user, "INBOX", raw)
    for raw in msgs[:2]:
        deliver(tmp_path / "Mail", raw.replace(b"\r\n", b"\n"), "S")
    config = config_for(tmp_path, pop3d, user)
    run = run_syncd("sync", config=config, check=True)
    assert "1 downloaded" in run.stderr, run.stderr
    assert local_ids(tmp_path) == Counter(f"<g-{i}@pop3.test>" for i in range(3))


def _collect_config(
    tmp_path: Path, server: DevServer, user: User, target: User, **extra: Any
) -> Path:
    from support.run import account_config

    imap = account_config(server, target, tmp_path / "Work", **extra.pop("imap", {}))
    pop3 = pop3_table(server, user, tmp_path / "Mail", collect_into="w/Collected/POP", **extra)
    return write_config(tmp_path, {"p": pop3, "w": imap})


def _collected(server: DevServer, target: User) -> list[tuple[str | None, datetime]]:
    with session(server, target) as client:
        client.select_folder("Collected/POP", readonly=True)
        data = client.fetch(client.search("ALL"), ["INTERNALDATE", "BODY.PEEK[HEADER]"])
        out = []
        for item in data.values():
            mid = item[b"BODY[HEADER]"].split(b"Message-ID: ", 1)[1].split(b"\r\n")[0]
            out.append((mid.decode(), item[b"INTERNALDATE"]))
        return sorted(out, key=lambda t: t[0] or "")


def test_collect_into_an_imap_folder_once_keeping_the_date(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    target = pop3d.add_user()
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    ids = [f"<c-{i}@pop3.test>" for i in range(3)]
    for mid in ids:
        append(pop3d, user, "INBOX", make_message(message_id=mid, date=when))
    # The IMAP account is unreachable at first: nothing leaves the POP3 server.
    config = _collect_config(
        tmp_path, pop3d, user, target, keep_on_server=False, imap={"port": _closed_port()}
    )
    first = run_syncd("sync", "p", config=config)
    assert first.returncode == 1 and "collect_into w/Collected/POP" in first.stderr
    assert on_server(pop3d, user) == sorted(ids)
    assert local_ids(tmp_path) == Counter(ids)
    config = _collect_config(tmp_path, pop3d, user, target, keep_on_server=False)
    run = run_syncd("sync", "p", config=config, check=True)
    assert "3 uploaded" in run.stderr and "3 deleted on the server" in run.stderr
    got = _collected(pop3d, target)
    assert [m for m, _ in got] == ids
    # IMAPClient gives INTERNALDATE as naive local time.
    assert {d for _, d in got} == {when.astimezone().replace(tzinfo=None)}
    later = put(pop3d, user, "c2", 1)
    run_syncd("sync", "p", config=config, check=True)
    assert [m for m, _ in _collected(pop3d, target)] == sorted(ids + later)
    assert on_server(pop3d, user) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_switching_a_pop3_account_to_imap_keeps_its_maildir(
    tmp_path: Path, pop3d: DevServer, user: User
) -> None:
    """protocol "pop3" -> "imap": the Maildir stays; the first IMAP sync pairs what
    both sides hold (nothing deleted here, nothing downloaded twice) and, shown by a
    dry run first, uploads what exists only here."""
    from support.run import account_config

    ids = put(pop3d, user, "sw", 3)
    config = config_for(tmp_path, pop3d, user)
    run_syncd("sync", config=config, check=True)
    deliver(tmp_path / "Mail", make_message(message_id="<sw-local@pop3.test>"), "S")
    imap = account_config(pop3d, user, tmp_path / "Mail")
    config = write_config(tmp_path, {"p": imap})
    dry = run_syncd("sync", "--dry-run", config=config, check=True)
    assert "new here [copy near" in dry.stdout and "delete" not in dry.stdout, dry.stdout
    assert "another protocol (POP3)" in dry.stderr
    run = run_syncd("sync", config=config, check=True)
    assert "0 downloaded, 1 uploaded" in run.stderr and "0 deleted here" in run.stderr
    everything = Counter([*ids, "<sw-local@pop3.test>"])
    assert local_ids(tmp_path) == everything
    assert Counter(on_server(pop3d, user)) == everything
    again = run_syncd("sync", config=config, check=True)
    assert "0 downloaded, 0 uploaded" in again.stderr


@pytest.mark.parametrize("tls", ["starttls", "tls"])
def test_a_pop3_account_over_tls_verifies_the_server(
    tmp_path: Path, dovecot_server: StartServer, tls: str
) -> None:
    """STLS on 110-style plain port, or implicit TLS: the account's ca_file is what
    the certificate is checked against (without it, the private CA is refused)."""
    server = dovecot_server(tls="starttls", pop3=True)
    user = server.add_user()
    ids = put(server, user, "tls", 2)
    assert server.ca_file is not None and server.pop3s_port is not None
    # STLS is served on the server's host (127.0.0.2), implicit TLS on 127.0.0.1.
    where = (
        (server.host, server.pop3_port) if tls == "starttls" else ("127.0.0.1", server.pop3s_port)
    )
    table = pop3_table(server, user, tmp_path / "Mail", tls=tls, host=where[0], port=where[1])
    untrusted = run_syncd("sync", config=write_config(tmp_path, {"p": table}))
    assert untrusted.returncode == 1 and "certificate" in untrusted.stderr.lower()
    assert not (tmp_path / "Mail" / "new").exists() or in_new(tmp_path) == 0
    table["ca_file"] = str(server.ca_file)
    run_syncd("sync", config=write_config(tmp_path, {"p": table}), check=True)
    assert local_ids(tmp_path) == Counter(ids)


@pytest.mark.parametrize("login", ["apop", "user", "plain"])
def test_pop3_login_chooses_the_login_method(
    tmp_path: Path, pop3d: DevServer, user: User, login: str
) -> None:
    """pop3_login = "apop" logs in with APOP (RFC 1939: the password never crosses the
    wire), "user" with USER/PASS, "plain" with SASL PLAIN (RFC 5034); Dovecot's log
    names the mechanism it saw."""
    put(pop3d, user, f"login-{login}", 1)
    before = pop3d.log_offset()
    run_syncd("sync", config=config_for(tmp_path, pop3d, user, pop3_login=login), check=True)
    assert local_ids(tmp_path).total() == 1
    expected = {"apop": "APOP", "user": "PLAIN", "plain": "PLAIN"}[login]
    log = ""
    for _ in range(50):  # Dovecot writes its log a moment later
        log = pop3d.log_file.read_bytes()[before:].decode("utf-8", "replace")
        if f"user=<{user.name}>, method=" in log:
            break
        time.sleep(0.1)
    assert f"Login: user=<{user.name}>, method={expected}" in log, log
