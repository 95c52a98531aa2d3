"""Pop3Client against a real Dovecot POP3 server (``pop3=True``), plus a scripted fake
peer for what Dovecot will not do on request: STLS missing or refused, ``-ERR`` to one
RETR, no UIDL, an OAuth2 exchange, a cut mid-message.

The POP3 INBOX is the IMAP INBOX: messages are put in with ``support.imap.append`` and
checked from the IMAP side after QUIT.
"""

from __future__ import annotations

import base64
import io
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.imap import append, folder_messages, session
from support.mail import make_message

import devserver.dovecot as devserver
from devserver.dovecot import DevServer, User
from syncd.errors import AccountError, MessageError, ProtocolError
from syncd.stores.pop3 import (
    LoginRefused,
    MessageRefused,
    MessageTooLarge,
    NoUidlError,
    Pop3Client,
)
from syncd.stores.pop3.wire import (
    SIZE_VALUE,
    UIDL_VALUE,
    Garbled,
    OverCap,
    Wire,
    apop_digest,
    parse_capa,
    parse_listing,
)


@dataclass(frozen=True)
class _Secret:
    value: str

    def password(self) -> str:
        return self.value


@pytest.fixture(scope="module")
def pop3d() -> Iterator[DevServer]:
    """This module's own Dovecot with TLS and POP3: STLS on 127.0.0.2 (plaintext
    login refused there, as from a remote host), plain POP3 on 127.0.0.1 (loopback,
    plaintext allowed) and implicit TLS on ``pop3s_port``.  Stopped here."""
    root = Path(tempfile.mkdtemp(prefix="syncd-pop3-"))
    root.chmod(0o755)  # Dovecot's mail processes (uid 65534) must reach it
    try:
        server = devserver.start(root, tls="starttls", pop3=True)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def user(pop3d: DevServer) -> User:
    return pop3d.add_user()


def _connect(server: DevServer, user: User, how: str = "stls", **kwargs: object) -> Pop3Client:
    assert server.pop3_port is not None and server.pop3s_port is not None
    target: dict[str, object] = {
        "stls": {"host": server.host, "port": server.pop3_port, "tls": "starttls"},
        "tls": {"host": server.cert_host, "port": server.pop3s_port, "tls": "tls"},
        "plain": {"host": "127.0.0.1", "port": server.pop3_port, "tls": "none"},
    }[how]  # type: ignore[assignment]
    args = {"user": user.name, "password": _Secret(user.password), "ca_file": server.ca_file}
    return Pop3Client.connect(**(args | target | kwargs))  # type: ignore[arg-type]


def _fill(server: DevServer, user: User, *raws: bytes) -> None:
    for raw in raws:
        append(server, user, "INBOX", raw)


def test_pop3_is_opt_in_on_the_dev_server(dovecot: DevServer, pop3d: DevServer) -> None:
    assert dovecot.pop3_port is None and dovecot.pop3s_port is None
    conf = dovecot.conf.read_text()
    assert "protocols = imap\n" in conf and "pop3_uidl_format" not in conf
    assert "protocols = imap pop3" in pop3d.conf.read_text()


# --- logging in ---------------------------------------------------------------------------


def test_user_pass_in_plaintext_on_loopback(pop3d: DevServer, user: User) -> None:
    with _connect(pop3d, user, "plain", auth="user") as pop:
        assert not pop.secure
        assert pop.stat() == (0, 0)


def test_stls_is_required_and_used_then_sasl_plain(pop3d: DevServer, user: User) -> None:
    # On 127.0.0.2 Dovecot offers no login before STLS, so logging in proves TLS is up.
    with _connect(pop3d, user, "stls", auth="plain") as pop:
        assert pop.secure
        assert pop.stat() == (0, 0)
    with _connect(pop3d, user, "stls") as pop:  # auto: SASL PLAIN is advertised after STLS
        assert pop.secure


def test_implicit_tls_verifies_the_certificate(pop3d: DevServer, user: User) -> None:
    with _connect(pop3d, user, "tls") as pop:
        assert pop.secure
    with pytest.raises(ProtocolError, match="certificate verify failed"):
        _connect(pop3d, user, "tls", ca_file=None)


def test_a_certificate_for_another_host_is_refused() -> None:
    root = Path(tempfile.mkdtemp(prefix="syncd-pop3-"))
    root.chmod(0o755)
    server = devserver.start(root, tls="tls", pop3=True, wrong_host_cert=True)
    try:
        user = server.add_user()
        with pytest.raises(ProtocolError, match="certificate verify failed") as err:
            _connect(server, user, "tls", host="localhost")
        assert "\n" not in str(err.value)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_nobody_listening_is_an_account_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(AccountError, match="cannot connect"):
            Pop3Client.connect(
                host="127.0.0.1", port=port, user="u", tls="none", password=_Secret("pw")
            )


def test_apop(pop3d: DevServer, user: User) -> None:
    # Dovecot offers APOP (timestamp in the greeting) with auth_mechanisms = apop and
    # plaintext passwords in the passdb, which the dev server has.
    _fill(pop3d, user, make_message())
    with _connect(pop3d, user, "stls", auth="apop") as pop:
        assert pop.stat()[0] == 1


def test_no_plaintext_credentials_to_a_remote_host() -> None:
    with pytest.raises(ProtocolError) as err:
        Pop3Client.connect(host="192.0.2.1", user="u", tls="none", password=_Secret("pw"))
    assert "unencrypted" in str(err.value)
    assert "\n" not in str(err.value)


def test_wrong_password_is_one_line(pop3d: DevServer, user: User) -> None:
    for how, auth in (("stls", "auto"), ("plain", "user"), ("stls", "apop")):
        with pytest.raises(LoginRefused) as err:
            _connect(pop3d, user, how, auth=auth, password=_Secret("not-the-password"))
        text = str(err.value)
        assert "login refused" in text
        assert "\n" not in text
        assert "not-the-password" not in text
        assert "b'" not in text


# --- transaction --------------------------------------------------------------------------


def test_uidl_list_retr_give_back_what_was_appended(pop3d: DevServer, user: User) -> None:
    dotted = (
        b"From: a@example.org\r\nSubject: dots\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nend\r\n"
    )
    long_line = make_message(body="x" * 20_000 + "\n")  # longer than any response line
    raws = [make_message(subject="one"), dotted, long_line]
    _fill(pop3d, user, *raws)
    with _connect(pop3d, user) as pop:
        uidl = pop.uidl()
        assert sorted(uidl) == [1, 2, 3]
        assert len(set(uidl.values())) == 3
        assert pop.list_sizes() == {n: len(raw) for n, raw in enumerate(raws, 1)}
        for n, raw in enumerate(raws, 1):
            assert pop.retr(n) == raw
    with _connect(pop3d, user) as pop:
        assert pop.uidl() == uidl  # stable across sessions


def test_dele_takes_effect_at_quit(pop3d: DevServer, user: User) -> None:
    _fill(pop3d, user, make_message(subject="gone"), make_message(subject="kept"))
    pop = _connect(pop3d, user)
    kept = pop.uidl()[2]
    pop.dele(1)
    assert pop.uidl() == {2: kept}  # marked: no longer listed in this session
    pop.quit()
    with session(pop3d, user) as imap:
        assert [m.subject for m in folder_messages(imap, "INBOX")] == ["kept"]
    with _connect(pop3d, user) as again:
        assert list(again.uidl().values()) == [kept]


def test_dele_then_close_without_quit_deletes_nothing(pop3d: DevServer, user: User) -> None:
    _fill(pop3d, user, make_message(), make_message())
    with _connect(pop3d, user) as pop:
        before = pop.uidl()
        pop.dele(1)
        pop.dele(2)
    # leaving `with` closes without QUIT, as a crash would
    with _connect(pop3d, user) as pop:
        assert pop.uidl() == before


def test_retr_size_cap_skips_the_message_and_the_session_goes_on(
    pop3d: DevServer, user: User
) -> None:
    big, small = make_message(size_pad=200_000), make_message(subject="small")
    _fill(pop3d, user, big, small)
    with _connect(pop3d, user) as pop:
        with pytest.raises(MessageTooLarge) as err:
            pop.retr(1, max_bytes=100_000)
        assert isinstance(err.value, MessageError) and err.value.number == 1
        assert pop.retr(2, max_bytes=100_000) == small
        assert pop.retr(1, max_bytes=len(big)) == big


def test_retr_of_a_missing_message_is_a_message_error(pop3d: DevServer, user: User) -> None:
    _fill(pop3d, user, make_message())
    with _connect(pop3d, user) as pop:
        with pytest.raises(MessageRefused) as err:
            pop.retr(7)
        assert "b'" not in str(err.value)
        assert pop.stat()[0] == 1


# --- a scripted peer for what Dovecot will not do -----------------------------------------

Reply = Callable[[str], bytes | None]


@dataclass
class Peer:
    """A fake POP3 server on 127.0.0.1 for one connection.  ``reply(command line)`` gives
    the raw answer, or None to hang up.  ``received`` is every command line sent."""

    reply: Reply
    greeting: bytes = b"+OK fake POP3 ready <1.2@fake>\r\n"
    received: list[str] = field(default_factory=list)
    hang_up_after: str | None = None

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(10)
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.sendall(self.greeting)
            for raw in lines:
                line = raw.decode().rstrip("\r\n")
                self.received.append(line)
                answer = self.reply(line)
                if answer is None:
                    return
                conn.sendall(answer)
                if line == self.hang_up_after:
                    return
                if line == "STLS" and answer.startswith(b"+OK"):
                    while conn.recv(4096):  # the client's TLS handshake: no TLS here
                        pass
                    return

    def close(self) -> None:
        self._listener.close()
        self._thread.join(5)


@pytest.fixture
def peer() -> Iterator[Callable[[Reply], Peer]]:
    peers: list[Peer] = []

    def make(reply: Reply) -> Peer:
        peers.append(Peer(reply))
        return peers[-1]

    yield make
    for p in peers:
        p.close()


_CAPA = b"+OK\r\nUSER\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\n.\r\n"
_MSG = b"Subject: two\r\n\r\n..dot\r\n"


def _script(**special: bytes | None) -> Reply:
    """Answers for a well-behaved server with two messages, except ``special``
    (keyed by the command line with spaces as ``_``)."""

    def reply(line: str) -> bytes | None:
        key = line.replace(" ", "_")
        if key in special:
            return special[key]
        if line == "CAPA":
            return _CAPA
        if line == "RETR 2":
            return b"+OK\r\n" + _MSG + b".\r\n"
        return b"+OK\r\n"

    return reply


def _fake_connect(p: Peer, **kwargs: object) -> Pop3Client:
    args: dict[str, object] = {"host": "127.0.0.1", "port": p.port, "user": "u"}
    if "oauth2_token" not in kwargs:
        args |= {"tls": "none", "password": _Secret("secret-pw")}
    return Pop3Client.connect(**(args | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "special",
    [
        {"CAPA": b"+OK\r\nUSER\r\nUIDL\r\n.\r\n"},  # STLS stripped from CAPA
        {"CAPA": b"-ERR no CAPA here\r\n"},  # a server (or MITM) without CAPA
        {"CAPA": b"+OK\r\nSTLS\r\n.\r\n", "STLS": b"-ERR not now\r\n"},
    ],
    ids=["stls-missing", "no-capa", "stls-refused"],
)
def test_stls_missing_or_refused_never_falls_back(
    peer: Callable[[Reply], Peer], special: dict[str, bytes]
) -> None:
    p = peer(_script(**special))
    with pytest.raises(ProtocolError) as err:
        _fake_connect(p, tls="starttls")
    assert "refusing to continue without TLS" in str(err.value)
    assert "\n" not in str(err.value)
    assert not [c for c in p.received if c.split()[0] in ("USER", "PASS", "AUTH", "APOP")]


def test_err_to_one_retr_leaves_the_session_usable(peer: Callable[[Reply], Peer]) -> None:
    p = peer(_script(RETR_1=b"-ERR [SYS/TEMP] cannot read message 1\r\n"))
    with _fake_connect(p, auth="user") as pop:
        with pytest.raises(MessageRefused) as err:
            pop.retr(1)
        assert err.value.number == 1
        assert "cannot read message 1" in str(err.value)
        assert pop.retr(2) == b"Subject: two\r\n\r\n.dot\r\n"


def test_a_cut_mid_message_is_an_account_error(peer: Callable[[Reply], Peer]) -> None:
    p = peer(_script(RETR_1=b"+OK\r\nSubject: cut\r\n\r\nhalf a lin"))
    p.hang_up_after = "RETR 1"
    pop = _fake_connect(p, auth="user")
    with pytest.raises(AccountError) as err:
        pop.retr(1)
    assert not isinstance(err.value, MessageError)
    assert "connection" in str(err.value)
    with pytest.raises(AccountError, match="closed"):
        pop.retr(2)


def test_no_uidl_is_reported_so_the_caller_can_refuse_keep(
    peer: Callable[[Reply], Peer],
) -> None:
    p = peer(_script(CAPA=b"+OK\r\nUSER\r\n.\r\n"))
    with _fake_connect(p, auth="user") as pop:
        assert not pop.has_uidl
        with pytest.raises(NoUidlError):
            pop.uidl()
    p2 = peer(_script(CAPA=b"-ERR\r\n", UIDL=b"-ERR unknown command\r\n"))
    with _fake_connect(p2, auth="user") as pop, pytest.raises(NoUidlError):
        pop.uidl()


def test_oauth2_sends_the_token_from_the_callable(peer: Callable[[Reply], Peer]) -> None:
    token = "ya29." + "t" * 300  # too long for one 255-octet AUTH line
    expected = base64.b64encode(f"user=u\1auth=Bearer {token}\1\1".encode()).decode()
    p = peer(_script(AUTH_XOAUTH2=b"+ \r\n"))
    with _fake_connect(p, auth="oauth2", oauth2_token=lambda: token, tls="none") as pop:
        pop.noop()
    assert p.received[1:3] == ["AUTH XOAUTH2", expected]


def test_oauth2_rejected_token_is_a_login_refusal(peer: Callable[[Reply], Peer]) -> None:
    status = base64.b64encode(b'{"status":"invalid_token"}')
    answers = iter([b"+ " + status + b"\r\n", b"-ERR [AUTH] Authentication failed\r\n"])
    p = peer(lambda line: _CAPA if line == "CAPA" else next(answers))
    with pytest.raises(LoginRefused) as err:
        _fake_connect(p, auth="oauth2", oauth2_token=lambda: "tok", tls="none")
    assert "invalid_token" in str(err.value)
    assert p.received[-1] == ""  # XOAUTH2: an empty line acknowledges the error report


@pytest.mark.parametrize(
    "after_ok", [b"", b"* plaintext injected after the +OK\r\n"], ids=["silence", "injection"]
)
def test_stls_acknowledged_then_no_tls_is_refused(
    peer: Callable[[Reply], Peer], after_ok: bytes
) -> None:
    # NET-03 (fetchmail hung for a week) and SEC-07: nothing of the plaintext phase is
    # used, nothing is sent in the clear, and the handshake cannot hang.
    p = peer(_script(CAPA=b"+OK\r\nSTLS\r\nUSER\r\n.\r\n", STLS=b"+OK begin TLS\r\n" + after_ok))
    with pytest.raises(AccountError) as err:
        _fake_connect(p, tls="starttls", timeout=1.0)
    assert "\n" not in str(err.value)
    assert p.received == ["CAPA", "STLS"]


def test_oauthbearer_is_preferred_when_offered(peer: Callable[[Reply], Peer]) -> None:
    p = peer(_script(CAPA=b"+OK\r\nSASL XOAUTH2 OAUTHBEARER\r\nUIDL\r\n.\r\n"))
    with _fake_connect(p, auth="oauth2", oauth2_token=lambda: "tok", tls="none", user="a,b"):
        pass
    mech, response = p.received[1].split()[1:]
    assert mech == "OAUTHBEARER"
    assert base64.b64decode(response) == b"n,a=a=2Cb,\1auth=Bearer tok\1\1"


def test_no_command_injection_through_the_user_name(peer: Callable[[Reply], Peer]) -> None:
    p = peer(_script())
    with pytest.raises(ProtocolError, match="CR, LF or NUL"):
        _fake_connect(p, auth="user", user="u\r\nDELE 1")
    assert not [c for c in p.received if c.startswith(("USER", "DELE"))]


# --- the line layer, bytes in, values out -------------------------------------------------


def _wire(data: bytes) -> Wire:
    wire = Wire()
    wire.file = io.BytesIO(data)
    return wire


def test_message_unstuffs_only_at_line_starts_and_keeps_line_endings() -> None:
    body = b"a\r\n..b.\r\nc\n" + b"." * 70_000 + b"\r\n.\r\nafter"
    expected = b"a\r\n.b.\r\nc\n" + b"." * 69_999 + b"\r\n"
    assert _wire(body).message(1_000_000) == expected
    with pytest.raises(OverCap):  # read to its end, so the session can go on
        _wire(b"x" * 150 + b"\r\n.\r\n").message(100)
    with pytest.raises(Garbled):  # but not forever
        _wire(body).message(100)


def test_listing_and_capa_parsers() -> None:
    lines = iter([b"1 abc", b"2 def"])
    assert parse_listing(lines, "UIDL", UIDL_VALUE) == {1: b"abc", 2: b"def"}
    with pytest.raises(Garbled):
        parse_listing(iter([b"1 " + b"x" * 71]), "UIDL", UIDL_VALUE)
    with pytest.raises(Garbled):
        parse_listing(iter([b"one 12"]), "LIST", SIZE_VALUE)
    assert parse_capa(iter([b"SASL PLAIN XOAUTH2", b"uidl", b"STLS"])) == {
        "SASL": "PLAIN XOAUTH2",
        "UIDL": "",
        "STLS": "",
    }


def test_apop_digest_matches_rfc_1939() -> None:
    greeting = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
    assert apop_digest(greeting, "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb"
    assert apop_digest(b"+OK ready", "x") is None
