"""ImapSession against a real Dovecot (the shared fixtures), plus a few hostile *peers*:
tiny scripted TCP servers that misbehave on purpose, for the security cases a real
server will not produce (huge literals, STARTTLS stripping, codes in the wrong place)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import imapclient
import pytest
from support import StartServer
from support.imap import append as other_client_append
from support.imap import expunge as other_client_expunge
from support.imap import folder_messages, session
from support.imap import set_flags as other_client_set_flags
from support.mail import make_message

from devserver.dovecot import DevServer, User, capabilities_without
from syncd.auth.credentials import PasswordAuthenticator
from syncd.errors import AccountError, FolderError, ProtocolError
from syncd.stores.imap.session import AppendError, ImapSession


@dataclass(frozen=True)
class _Secret:
    value: str

    def password(self) -> str:
        return self.value


def _auth(user: User) -> PasswordAuthenticator:
    return PasswordAuthenticator(user.name, _Secret(user.password))


def _connect(server: DevServer, user: User, **kwargs: object) -> ImapSession:
    args: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "tls": server.tls,
        "ca_file": server.ca_file,
        "auth": _auth(user),
        "timeout": 20.0,
    }
    args.update(kwargs)
    return ImapSession.connect(**args)  # type: ignore[arg-type]


@pytest.fixture
def imap(dovecot: DevServer, account: User) -> Iterator[ImapSession]:
    s = _connect(dovecot, account)
    yield s
    s.logout()


def _msgs(n: int, **kw: object) -> list[tuple[bytes, frozenset[str], datetime | None]]:
    return [(make_message(subject=f"m{i}", **kw), frozenset(), None) for i in range(n)]  # type: ignore[arg-type]


# --- connecting ---------------------------------------------------------------------------


def test_connect_plain_reads_capabilities_and_enables_qresync(imap: ImapSession) -> None:
    assert {"IMAP4REV1", "UIDPLUS", "MOVE", "MULTIAPPEND", "QRESYNC"} <= imap.capabilities
    assert imap.has_qresync
    assert imap.has_condstore
    assert imap.has_uidplus
    assert imap.has_move
    assert imap.has_multiappend


def test_implicit_tls_verifies_with_the_configured_ca(dovecot_server: StartServer) -> None:
    server = dovecot_server(tls="tls")
    user = server.add_user()
    with _connect(server, user) as s:
        assert "INBOX" in [f.name for f in s.list_folders()]


def test_implicit_tls_refuses_an_untrusted_certificate(dovecot_server: StartServer) -> None:
    server = dovecot_server(tls="tls")
    user = server.add_user()
    with pytest.raises(ProtocolError) as err:
        _connect(server, user, ca_file=None)
    message = str(err.value)
    assert f"{server.host}:{server.port}" in message
    assert "certificate verify failed" in message
    assert "set ca_file" in message
    assert user.password not in message


def test_implicit_tls_refuses_a_certificate_for_another_host(
    dovecot_server: StartServer,
) -> None:
    server = dovecot_server(tls="tls", wrong_host_cert=True)
    user = server.add_user()
    with pytest.raises(ProtocolError, match="certificate verify failed: IP address mismatch"):
        _connect(server, user)


def test_starttls_upgrades_then_logs_in(dovecot_server: StartServer) -> None:
    server = dovecot_server(tls="starttls")
    user = server.add_user()
    with _connect(server, user) as s:
        assert "STARTTLS" not in s.capabilities  # the post-TLS, post-login list
        assert s.select("INBOX").exists == 0


def test_wrong_password_is_an_account_error_without_the_password(dovecot: DevServer) -> None:
    user = dovecot.add_user()
    wrong = User(user.name, "not-the-password-xyz")
    with pytest.raises(AccountError, match="login refused") as err:
        _connect(dovecot, wrong)
    assert not isinstance(err.value, ProtocolError)
    assert "not-the-password-xyz" not in str(err.value)


def test_nothing_listening_is_an_account_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(AccountError, match=rf"127.0.0.1:{port}: cannot connect"):
            ImapSession.connect(
                host="127.0.0.1",
                port=port,
                tls="none",
                ca_file=None,
                auth=_auth(User("u", "p")),
                timeout=5,
            )


# --- mailboxes ----------------------------------------------------------------------------


def test_list_delimiter_and_non_ascii_names_round_trip(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    imap.create_folder("Projets/Été")
    imap.create_folder("Projets/Été")  # already there: fine
    imap.create_folder("A & B")
    folders = {f.name: f for f in imap.list_folders()}
    assert {"INBOX", "Projets", "Projets/Été", "A & B"} <= set(folders)
    assert folders["Projets/Été"].delimiter == "/"
    assert "\\HasChildren" in folders["Projets"].flags
    assert imap.delimiter() == "/"
    assert imap.rejected_names == []
    with session(dovecot, account) as other:  # what the server really holds
        names = {name for _f, _d, name in other.list_folders()}
        other.folder_encode = False
        raw = {name for _f, _d, name in other.list_folders()}
    assert "Projets/Été" in names
    assert b"Projets/&AMk-t&AOk-" in raw
    assert b"A &- B" in raw
    uid = imap.append("Projets/Été", make_message(), flags=frozenset(), date=None)
    assert imap.select("Projets/Été").exists == 1
    assert imap.fetch_flags()[0].keys() == {uid}


def test_names_that_would_break_a_command_are_refused(imap: ImapSession) -> None:
    with pytest.raises(FolderError, match="control characters"):
        imap.create_folder("evil\r\nA1 DELETE INBOX")
    assert "INBOX" in [f.name for f in imap.list_folders()]


def test_status(imap: ImapSession) -> None:
    before = imap.status("INBOX")
    imap.append_many("INBOX", _msgs(3))
    after = imap.status("INBOX")
    assert (before.messages, after.messages) == (0, 3)
    assert after.uidvalidity == before.uidvalidity
    assert after.uidnext == before.uidnext + 3
    assert before.highestmodseq is not None
    assert after.highestmodseq is not None
    assert after.highestmodseq > before.highestmodseq
    with pytest.raises(FolderError, match="STATUS Nope"):
        imap.status("Nope")


def test_statuses_of_every_folder_in_one_command(imap: ImapSession) -> None:
    """LIST-STATUS (RFC 5819): the same figures as STATUS, for every mailbox but the
    selected one (whose figures may lag this session's view)."""
    imap.create_folder("Projets/Été")
    imap.append_many("Projets/Été", _msgs(2))
    imap.append_many("INBOX", _msgs(3))
    assert "LIST-STATUS" in imap.capabilities
    every = imap.statuses()
    assert every["INBOX"] == imap.status("INBOX")
    assert every["Projets/Été"] == imap.status("Projets/Été")
    assert (every["INBOX"].messages, every["Projets/Été"].messages) == (3, 2)
    imap.select("INBOX")
    assert "INBOX" not in imap.statuses()


def test_select_plain_and_missing(imap: ImapSession) -> None:
    imap.append_many("INBOX", _msgs(2))
    info = imap.select("INBOX")
    assert (info.exists, info.uidnext) == (2, 3)
    assert info.uidvalidity > 0
    assert info.highestmodseq is not None
    assert not info.readonly
    # Dovecot keeps any keyword (\*) in a writable mailbox, none in a read-only one.
    assert info.permanent_flags is not None and "\\*" in info.permanent_flags
    assert {"\\Seen", "\\Deleted"} <= info.permanent_flags
    examined = imap.select("INBOX", readonly=True)
    assert examined.readonly and examined.permanent_flags == frozenset()
    with pytest.raises(FolderError, match="SELECT Nope"):
        imap.select("Nope")
    assert imap.selected is None


def test_qresync_select_reports_what_another_client_changed(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    uids = imap.append_many("INBOX", _msgs(5))
    first = imap.select("INBOX")
    assert first.highestmodseq is not None
    imap.create_folder("Other")
    imap.select("Other")  # switch away, so the next select closes this one
    other_client_expunge(dovecot, account, "INBOX", [uids[1], uids[3]])
    other_client_set_flags(dovecot, account, "INBOX", [uids[0]], ["\\Seen", "work"], mode="add")
    again = imap.select("INBOX", qresync=(first.uidvalidity, first.highestmodseq, f"1:{uids[-1]}"))
    assert again.vanished == {uids[1], uids[3]}
    assert set(again.changed) == {uids[0]}
    assert again.changed[uids[0]].flags == {"\\Seen", "work"}
    assert again.highestmodseq is not None
    assert again.highestmodseq > first.highestmodseq
    assert again.exists == 3
    # Nothing about the previous mailbox leaked into this answer or the events.
    assert all(kind != "VANISHED" for kind, _ in imap.drain())


def test_fetch_flags_full_and_changedsince(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    flags = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Flagged", "$Forwarded"})]
    uids = imap.append_many("INBOX", [(make_message(), f, None) for f in flags])
    info = imap.select("INBOX")
    assert info.highestmodseq is not None
    full, vanished = imap.fetch_flags(with_size=True)
    assert {u: i.flags for u, i in full.items()} == dict(zip(uids, flags, strict=True))
    assert all(i.size and i.size > 100 and i.modseq for i in full.values())
    assert vanished == frozenset()
    other_client_set_flags(dovecot, account, "INBOX", [uids[0]], ["\\Answered"], mode="add")
    other_client_expunge(dovecot, account, "INBOX", [uids[2]])
    changed, vanished = imap.fetch_flags(changedsince=info.highestmodseq)
    assert {u: i.flags for u, i in changed.items()} == {uids[0]: {"\\Answered"}}
    assert vanished == {uids[2]}
    only, _ = imap.fetch_flags([uids[1]])
    assert set(only) == {uids[1]}


def test_search(imap: ImapSession) -> None:
    uids = imap.append_many(
        "INBOX",
        [(make_message(), frozenset({"\\Seen"}), None), (make_message(), frozenset(), None)],
    )
    imap.select("INBOX")
    assert imap.search("UNSEEN") == [uids[1]]
    assert imap.search(["ALL"]) == uids
    assert imap.search(f"UID {uids[1]}:*") == [uids[1]]
    with pytest.raises(ValueError, match="CR, LF"):
        imap.search("ALL\r\nA1 DELETE INBOX")


# --- appending ----------------------------------------------------------------------------


def test_append_returns_appenduid_and_stores_flags_and_date(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    validity = imap.select("INBOX").uidvalidity
    raw = make_message(subject="hello")
    when = datetime(2023, 5, 4, 3, 2, 1, tzinfo=UTC)
    uid = imap.append(
        "INBOX", raw, flags=frozenset({"\\Seen", "work"}), date=when, uidvalidity=validity
    )
    assert uid == 1
    [body] = list(imap.fetch_bodies([uid]))
    assert body.data == raw
    assert body.internaldate == when
    with session(dovecot, account) as other:
        [view] = folder_messages(other, "INBOX")
    assert (view.uid, view.flags) == (uid, {"\\Seen", "work"})


def test_append_with_another_uidvalidity_gives_no_uid(imap: ImapSession) -> None:
    validity = imap.select("INBOX").uidvalidity
    assert (
        imap.append("INBOX", make_message(), flags=frozenset(), date=None, uidvalidity=validity + 1)
        is None
    )
    assert imap.append_many("INBOX", _msgs(2), uidvalidity=validity + 1) == [None, None]
    assert imap.status("INBOX").messages == 3  # appended all the same


def test_append_many_uses_one_multiappend(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    uids = imap.append_many("INBOX", _msgs(4))
    assert uids == [1, 2, 3, 4]
    with session(dovecot, account) as other:
        assert [v.uid for v in folder_messages(other, "INBOX")] == uids


def test_append_to_a_missing_folder_is_a_message_error(imap: ImapSession) -> None:
    with pytest.raises(AppendError, match="APPEND to Nope refused") as err:
        imap.append_many("Nope", _msgs(2))
    assert err.value.appended == []


def test_append_sends_crlf_line_ends(imap: ImapSession) -> None:
    uid = imap.append("INBOX", b"Subject: lf\n\nbody\n", flags=frozenset(), date=None)
    imap.select("INBOX")
    assert uid is not None
    [body] = list(imap.fetch_bodies([uid]))
    assert body.data == b"Subject: lf\r\n\r\nbody\r\n"


# --- flags and expunge --------------------------------------------------------------------


def test_add_and_remove_flags(imap: ImapSession) -> None:
    uids = imap.append_many("INBOX", _msgs(5))
    imap.select("INBOX")
    imap.add_flags([uids[0], uids[1], uids[2], uids[4]], frozenset({"\\Flagged", "$Label1"}))
    imap.remove_flags([uids[1]], frozenset({"$Label1"}))
    imap.add_flags([], frozenset({"\\Seen"}))  # no-ops
    imap.add_flags(uids, frozenset())
    got = {u: i.flags for u, i in imap.fetch_flags()[0].items()}
    assert got == {
        uids[0]: {"\\Flagged", "$Label1"},
        uids[1]: {"\\Flagged"},
        uids[2]: {"\\Flagged", "$Label1"},
        uids[3]: set(),
        uids[4]: {"\\Flagged", "$Label1"},
    }


def test_uid_expunge_removes_exactly_the_given_uids(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    uids = imap.append_many("INBOX", _msgs(3))
    imap.select("INBOX")
    imap.add_flags(uids[:2], frozenset({"\\Deleted"}))  # uids[1]: another client's choice
    imap.uid_expunge([uids[0]])
    with session(dovecot, account) as other:
        views = {v.uid: v.flags for v in folder_messages(other, "INBOX")}
    assert views == {uids[1]: {"\\Deleted"}, uids[2]: set()}
    assert ("VANISHED", frozenset({uids[0]})) in imap.drain()


# --- downloading --------------------------------------------------------------------------


def test_fetch_bodies_is_byte_exact_in_batches(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    small = [make_message(subject=f"s{i}", body="é\n" * i) for i in range(5)]
    big = make_message(subject="big", size_pad=3 * 1024 * 1024)
    uids = imap.append_many("INBOX", [(m, frozenset(), None) for m in [*small, big]])
    imap.select("INBOX")
    other_client_expunge(dovecot, account, "INBOX", [uids[2]])
    bodies = list(imap.fetch_bodies([*uids, 999], batch_bytes=1024 * 1024))
    expected = dict(zip(uids, [*small, big], strict=True))
    del expected[uids[2]]
    assert {b.uid: b.data for b in bodies} == expected
    assert all(b.internaldate is not None for b in bodies)
    sizes = {u: i.size or 0 for u, i in imap.fetch_flags(with_size=True)[0].items()}
    again = list(imap.fetch_bodies(uids, sizes=sizes, batch_bytes=1))  # one per FETCH
    assert [b.uid for b in again] == [u for u in uids if u != uids[2]]


def test_fetch_headers(imap: ImapSession) -> None:
    uids = imap.append_many(
        "INBOX",
        [
            (make_message(subject="one", message_id="<1@x>"), frozenset(), None),
            (make_message(subject="two", message_id="<2@x>"), frozenset(), None),
        ],
    )
    imap.select("INBOX")
    got = imap.fetch_headers([*uids, 77], ["Message-ID", "Subject"])
    assert got == {
        uids[0]: b"Subject: one\r\nMessage-ID: <1@x>\r\n\r\n",
        uids[1]: b"Subject: two\r\nMessage-ID: <2@x>\r\n\r\n",
    }


def test_a_message_over_the_literal_cap_is_skipped(dovecot: DevServer, account: User) -> None:
    with _connect(dovecot, account, max_literal=100_000) as s:
        uids = s.append_many(
            "INBOX", [(make_message(size_pad=size), frozenset(), None) for size in (200_000, 1000)]
        )
        s.select("INBOX")
        assert [b.uid for b in s.fetch_bodies(uids)] == [uids[1]]
        # A size that lies does not get past the cap: the connection is dropped.
        with pytest.raises(ProtocolError, match=r"literal of 2[0-9]{5} bytes"):
            list(s.fetch_bodies(uids, sizes={uids[0]: 10, uids[1]: 10}))
        with pytest.raises(AccountError, match="connection closed"):
            s.noop()


# --- copy and move ------------------------------------------------------------------------


def test_copy_and_move_return_copyuid(imap: ImapSession, dovecot: DevServer, account: User) -> None:
    msgs = [make_message(subject=f"c{i}") for i in range(4)]
    uids = imap.append_many("INBOX", [(m, frozenset(), None) for m in msgs])
    imap.create_folder("Archive")
    target_validity = imap.status("Archive").uidvalidity
    imap.select("INBOX")
    copied = imap.copy(uids[:2], "Archive", uidvalidity=target_validity)
    assert copied == {uids[0]: 1, uids[1]: 2}
    moved = imap.move(uids[2:], "Archive")
    assert moved == {uids[2]: 3, uids[3]: 4}
    assert imap.copy([uids[0]], "Archive", uidvalidity=target_validity + 1) == {}
    with session(dovecot, account) as other:
        archive = folder_messages(other, "Archive")
        inbox = folder_messages(other, "INBOX")
    from support.imap import digest

    assert {v.uid: v.sha256 for v in archive} == {
        1: digest(msgs[0]),
        2: digest(msgs[1]),
        3: digest(msgs[2]),
        4: digest(msgs[3]),
        5: digest(msgs[0]),
    }
    assert [v.uid for v in inbox] == uids[:2]


# --- a server without the extensions ------------------------------------------------------


def test_without_uidplus_condstore_qresync_move_multiappend(
    dovecot_server: StartServer,
) -> None:
    server = dovecot_server(
        capability=capabilities_without(
            "UIDPLUS", "CONDSTORE", "QRESYNC", "MOVE", "MULTIAPPEND", "LITERAL+"
        )
    )
    user = server.add_user()
    with _connect(server, user) as s:
        assert not (
            s.has_uidplus or s.has_condstore or s.has_qresync or s.has_move or s.has_multiappend
        )
        # Dovecot still sends APPENDUID; without UIDPLUS in CAPABILITY it is not used.
        assert s.append("INBOX", make_message(), flags=frozenset(), date=None) is None
        assert s.append_many("INBOX", _msgs(2)) == [None, None]
        s.create_folder("Archive")
        info = s.select("INBOX", qresync=(1, 1, None))  # ignored without QRESYNC
        assert (info.exists, info.highestmodseq) == (3, None)
        assert info.vanished == frozenset()
        assert s.status("INBOX").highestmodseq is None
        flags, _ = s.fetch_flags()
        assert sorted(flags) == [1, 2, 3]
        assert all(i.modseq is None for i in flags.values())
        with pytest.raises(ValueError, match="CONDSTORE"):
            s.fetch_flags(changedsince=1)
        assert s.move([1], "Archive") == {}  # COPY + \Deleted; never a bare EXPUNGE
        after, _ = s.fetch_flags()
        assert after[1].flags == {"\\Deleted"}
        assert s.status("Archive").messages == 1
        with pytest.raises(FolderError, match="UIDPLUS"):
            s.uid_expunge([1])
        # Without LITERAL+ a refusal comes instead of the continuation: only that
        # message fails, the connection goes on.
        with pytest.raises(AppendError, match="APPEND to Nope refused"):
            s.append_many("Nope", _msgs(2))
        s.noop()


# --- events, IDLE, dead connections -------------------------------------------------------


def test_unsolicited_responses_become_bounded_events(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    imap.select("INBOX")
    other_client_append(dovecot, account, "INBOX", make_message())
    imap.noop()
    events = imap.drain()
    assert ("EXISTS", 1) in events
    assert imap.drain() == []
    assert imap._imap.untagged_responses == {}  # imaplib's dict does not grow


def test_idle_wait_returns_when_another_client_appends(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    imap.select("INBOX")
    timer = threading.Timer(0.3, other_client_append, (dovecot, account, "INBOX", make_message()))
    timer.start()
    try:
        events = imap.idle_wait(20.0)
    finally:
        timer.join()
    if not any(kind == "EXISTS" for kind, _ in events):  # woke on an early keep-alive
        imap.noop()
        events += imap.drain()
    assert ("EXISTS", 1) in events


def test_a_kicked_connection_raises_account_error(
    imap: ImapSession, dovecot: DevServer, account: User
) -> None:
    imap.select("INBOX")
    dovecot.kick(account)
    with pytest.raises(AccountError) as err:
        for _ in range(3):  # the BYE may be read by the first command or the next
            imap.noop()
            time.sleep(0.2)
    assert not isinstance(err.value, ProtocolError)
    with pytest.raises(AccountError):
        imap.fetch_flags()
    imap.logout()  # never raises
    imap.logout()


# --- hostile peers ------------------------------------------------------------------------

Reply = Callable[[str, str], str | None]


@dataclass
class Peer:
    """A scripted IMAP server on 127.0.0.1 for one connection.  ``reply(tag, command)``
    returns the raw response text (CRLF-terminated lines) or None to go silent.
    ``received`` is every byte the client sent."""

    greeting: str
    reply: Reply
    received: bytearray = field(default_factory=bytearray)
    sent: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(10)
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(0.2)
            self._send(conn, self.greeting)
            buf = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                self.received += chunk
                buf += chunk
                buf = self._commands(conn, buf)

    def _commands(self, conn: socket.socket, buf: bytes) -> bytes:
        while b"\r\n" in buf:
            line, rest = buf.split(b"\r\n", 1)
            m = re.search(rb"\{(\d+)(\+?)\}$", line)
            if m:  # a literal follows: wait for all of it
                size = int(m.group(1))
                if not m.group(2) and not getattr(self, "_cont", False):
                    self._cont = True
                    self._send(conn, "+ go\r\n")
                if len(rest) < size:
                    return buf
                self._cont = False
                buf = line + b"<lit>" + rest[size:]
                continue
            buf = rest
            text = line.decode("utf-8", "replace")
            tag, _, command = text.partition(" ")
            out = self.reply(tag, command)
            if out is None:
                self._stop.wait(30)
                return b""
            self._send(conn, out)
        return buf

    def _send(self, conn: socket.socket, text: str) -> None:
        data = text.encode("utf-8")
        self.sent += data
        with contextlib.suppress(OSError):
            conn.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


def _standard(
    tag: str,
    command: str,
    extra: Callable[[str, str], str | None] | None = None,
    caps: str = "IMAP4rev1 UIDPLUS MULTIAPPEND LITERAL+",
) -> str | None:
    name = command.split(" ", 1)[0].upper()
    if extra is not None:
        out = extra(tag, command)
        if out is not None:
            return out
    if name == "CAPABILITY":
        return f"* CAPABILITY {caps}\r\n{tag} OK done\r\n"
    if name in ("LOGIN", "NOOP", "LOGOUT"):
        bye = "* BYE bye\r\n" if name == "LOGOUT" else ""
        return f"{bye}{tag} OK done\r\n"
    if name == "SELECT":
        return (
            "* 2 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* OK [UIDNEXT 3] n\r\n"
            f"{tag} OK [READ-WRITE] done\r\n"
        )
    return f"{tag} BAD unexpected\r\n"


@contextlib.contextmanager
def _peer(reply: Reply, greeting: str = "* OK hostile ready\r\n") -> Iterator[Peer]:
    peer = Peer(greeting, reply)
    try:
        yield peer
    finally:
        peer.close()


def _peer_session(peer: Peer, tls: str = "none", **kw: object) -> ImapSession:
    return ImapSession.connect(
        host="127.0.0.1",
        port=peer.port,
        tls=tls,  # type: ignore[arg-type]
        ca_file=None,
        auth=_auth(User("alice", "s3cret-pw")),
        timeout=5,
        **kw,
    )  # type: ignore[arg-type]


def test_hostile_huge_literal_is_refused_before_it_is_read() -> None:
    def reply(tag: str, command: str) -> str | None:
        if command.startswith("UID FETCH"):
            return "* 1 FETCH (UID 1 BODY[] {4294967296}\r\nxxxx"
        return _standard(tag, command)

    with _peer(reply) as peer:
        s = _peer_session(peer)
        s.select("INBOX")
        start = time.monotonic()
        with pytest.raises(ProtocolError, match="literal of 4294967296 bytes"):
            list(s.fetch_bodies([1], sizes={1: 10}))
        assert time.monotonic() - start < 4  # refused at once, not after the 5 s timeout
        s.logout()


@pytest.mark.parametrize(
    ("greeting", "caps", "starttls_answer", "problem"),
    [
        ("* OK ready\r\n", "IMAP4rev1 AUTH=PLAIN", None, "does not offer STARTTLS"),
        ("* PREAUTH welcome\r\n", "IMAP4rev1 STARTTLS", None, "PREAUTH"),
        ("* OK ready\r\n", "IMAP4rev1 STARTTLS", "{tag} NO not today\r\n", "STARTTLS refused"),
        ("* OK ready\r\n", "IMAP4rev1 STARTTLS", "{tag} BAD what\r\n", "STARTTLS refused"),
    ],
)
def test_starttls_stripping_is_refused_before_credentials(
    greeting: str, caps: str, starttls_answer: str | None, problem: str
) -> None:
    def reply(tag: str, command: str) -> str | None:
        if command.upper() == "STARTTLS" and starttls_answer is not None:
            return starttls_answer.format(tag=tag)
        return _standard(tag, command, caps=caps)

    with _peer(reply, greeting) as peer:
        with pytest.raises(ProtocolError, match=problem):
            _peer_session(peer, tls="starttls")
        time.sleep(0.1)
        assert b"LOGIN" not in bytes(peer.received).upper()
        assert b"s3cret-pw" not in bytes(peer.received)


def test_appenduid_with_the_wrong_number_of_uids_pairs_nothing() -> None:
    answers = iter(
        ["[APPENDUID 5 7:9] three for two", "[APPENDUID 5 0] zero", "[APPENDUID 5 4,4] twice"]
    )

    def reply(tag: str, command: str) -> str | None:
        if command.startswith("APPEND"):
            return f"{tag} OK {next(answers)}\r\n"
        return _standard(tag, command)

    with _peer(reply) as peer:
        s = _peer_session(peer)
        assert s.append_many("INBOX", _msgs(2), uidvalidity=5) == [None, None]
        assert s.append("INBOX", make_message(), flags=frozenset(), date=None) is None
        assert s.append_many("INBOX", _msgs(2)) == [None, None]
        s.logout()


def test_response_codes_from_other_commands_are_never_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def reply(tag: str, command: str) -> str | None:
        if command.startswith("NOOP"):
            return (
                "* OK [APPENDUID 5 42] planted\r\n* OK [COPYUID 5 1 42] planted\r\n"
                "* OK [ALERT] \x1b[2Jcall +1 555\r\n"
                f"{tag} OK [APPENDUID 5 43] noop\r\n"
            )
        if command.startswith(("APPEND", "UID COPY")):
            return f"{tag} OK done\r\n"
        return _standard(tag, command)

    with _peer(reply) as peer:
        s = _peer_session(peer)
        s.select("INBOX")
        s.noop()
        assert s.append("INBOX", make_message(), flags=frozenset(), date=None) is None
        assert s.copy([1], "Other") == {}
        s.logout()
    alerts = [r.getMessage() for r in caplog.records if "alert" in r.getMessage()]
    assert alerts
    assert all("\x1b" not in a and "\n" not in a for a in alerts)


def test_a_forged_tagged_response_drops_the_connection() -> None:
    def reply(tag: str, command: str) -> str | None:
        if command.startswith("NOOP"):
            return f"Z9 OK [APPENDUID 5 1] forged\r\n{tag} OK done\r\n"
        return _standard(tag, command)

    with _peer(reply) as peer:
        s = _peer_session(peer)
        with pytest.raises(ProtocolError, match="garbled response to NOOP"):
            s.noop()
        with pytest.raises(AccountError, match="connection closed"):
            s.noop()


@pytest.mark.parametrize("reader", ["headers", "bodies"])
def test_a_garbled_fetch_response_drops_the_connection(reader: str) -> None:
    """Both readers that go through IMAPClient's FETCH parser (header fields, and a body
    the fast path cannot read) refuse what it cannot parse alike: a ProtocolError, then
    the session is closed."""

    def reply(tag: str, command: str) -> str | None:
        if command.startswith("UID FETCH"):
            item = "BODY[HEADER.FIELDS (SUBJECT)]" if "HEADER" in command else "BODY[]"
            return f"* 1 FETCH (UID 1 {item} {{3}}\r\nabc FLAGS)\r\n{tag} OK done\r\n"
        return _standard(tag, command)

    with _peer(reply) as peer:
        s = _peer_session(peer)
        s.select("INBOX")
        with pytest.raises(ProtocolError, match="garbled FETCH response: uneven number"):
            if reader == "headers":
                s.fetch_headers([1], ["Subject"])
            else:
                list(s.fetch_bodies([1], sizes={1: 3}))
        assert not s.alive
        with pytest.raises(AccountError, match=r"connection closed \(garbled FETCH response\)"):
            s.noop()


def test_fetch_data_not_asked_for_is_ignored() -> None:
    def reply(tag: str, command: str) -> str | None:
        if command.startswith("UID FETCH 1:2 (UID FLAGS"):
            return (
                "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n"
                "* 2 FETCH (UID 7 FLAGS (\\Flagged))\r\n"  # not asked for
                "* 3 FETCH (FLAGS (\\Draft))\r\n"  # no UID
                "* 4 FETCH (UID 0 FLAGS ())\r\n"  # UID 0
                f"{tag} OK done\r\n"
            )
        if command.startswith("UID FETCH 2 (UID INTERNALDATE BODY.PEEK[])"):
            return (
                "* 2 FETCH (UID 9 BODY[] {3}\r\nbad)\r\n"
                "* 3 FETCH (BODY[] {3}\r\nbad)\r\n"
                f"{tag} OK done\r\n"
            )
        return _standard(tag, command)

    with _peer(reply) as peer:
        s = _peer_session(peer)
        s.select("INBOX")
        flags, _ = s.fetch_flags("1:2")
        assert {u: i.flags for u, i in flags.items()} == {1: {"\\Seen"}}
        assert list(s.fetch_bodies([2], sizes={2: 3})) == []
        s.logout()


def test_a_silent_server_times_out_as_an_account_error() -> None:
    def reply(tag: str, command: str) -> str | None:
        if command.startswith("SELECT"):
            return None  # never answers
        return _standard(tag, command)

    with _peer(reply) as peer:
        s = ImapSession.connect(
            host="127.0.0.1",
            port=peer.port,
            tls="none",
            ca_file=None,
            auth=_auth(User("alice", "s3cret-pw")),
            timeout=0.5,
        )
        with pytest.raises(AccountError, match="timed out during SELECT"):
            s.select("INBOX")
        s.logout()


def test_a_mailbox_list_with_hostile_names_skips_them() -> None:
    listing = (
        '* LIST (\\HasNoChildren) "/" INBOX\r\n'
        '* LIST () "/" "Bad&AO"\r\n'
        '* LIST () "/" {5}\r\na\r\nb.\r\n'
        '* LIST () "/" "Entw&APw-rfe"\r\n'
        f'* LIST () "/" "{"x" * 1200}"\r\n'
        '* LIST () NIL "flat"\r\n'
    )

    def reply(tag: str, command: str) -> str | None:
        if command.startswith('LIST "" "*"'):
            return listing + f"{tag} OK done\r\n"
        return _standard(tag, command)

    with _peer(reply) as peer:
        s = _peer_session(peer)
        got = {f.name: f.delimiter for f in s.list_folders()}
        assert got == {"INBOX": "/", "Entwürfe": "/", "flat": None}
        assert len(s.rejected_names) == 3
        assert "\r" not in " ".join(s.rejected_names)
        s.logout()


def test_imapclient_is_the_version_the_workarounds_target() -> None:
    # LIBRARIES.md §1: these quirks were verified on 4.1.x; a new major may change them.
    assert imapclient.__version__.startswith("4.")
