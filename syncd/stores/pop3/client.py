"""One POP3 connection (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034).

Built on stdlib :mod:`poplib` for the socket and the implicit-TLS wrapper; the
rest is hand-written (here and in :mod:`syncd.stores.pop3.wire`) because poplib
cannot be trusted with it: it has no SASL at all; ``retr`` reads a whole message
into memory with no size cap (a hostile server can exhaust memory) and loses
whether a line ended in CRLF; ``stls`` falls back to an *unverified* context when
given none and leaves its caller to decide what a missing ``STLS`` means; and EOF
is reported as the server text ``-ERR EOF``, indistinguishable from a real ``-ERR``.

Errors: an unreachable server, a lost or timed-out connection, a refused login
raise ``AccountError`` (``LoginRefused``); a server we refuse to trust (TLS
failure, STLS missing or refused, plaintext credentials to a remote host,
garbled answers) raises ``ProtocolError``; ``-ERR`` to RETR or DELE of one
message raises ``MessageError`` (``MessageRefused``) and the connection stays usable.
After an ``AccountError`` the connection is closed and every later call raises.
Server text is decoded and escaped (one log line stays one line); no message
here contains a credential or a message body.

Deletions: DELE only marks.  The server removes marked messages when QUIT is
answered ``+OK`` (:meth:`Pop3Client.quit`); a connection that ends any other way
(:meth:`Pop3Client.close`, a crash, a cut link) deletes nothing (RFC 1939 §6).
"""

from __future__ import annotations

import base64
import logging
import poplib
import re
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, TypeVar

from syncd.auth.credentials import PasswordSource
from syncd.config import is_loopback_host
from syncd.errors import AccountError, MessageError, ProtocolError
from syncd.logsetup import add_secret
from syncd.stores.pop3.wire import (
    SIZE_VALUE,
    UIDL_VALUE,
    ConnectionLost,
    Garbled,
    OverCap,
    Plain,
    Tls,
    Wire,
    apop_digest,
    clean,
    err_text,
    is_challenge,
    oauth_status,
    parse_capa,
    parse_listing,
)
from syncd.stores.tls import cert_problem as _cert_problem
from syncd.stores.tls import ssl_context as _ssl_context

logger = logging.getLogger("syncd.pop3.client")
T = TypeVar("T")

TlsMode = Literal["tls", "starttls", "none"]
#: ``auto``: SASL PLAIN when the server advertises it, else USER/PASS.
AuthMethod = Literal["auto", "user", "plain", "apop", "oauth2"]
DEFAULT_PORTS: Final[Mapping[TlsMode, int]] = MappingProxyType(
    {"tls": 995, "starttls": 110, "none": 110}
)
DEFAULT_MAX_MESSAGE: Final = 64 * 1024 * 1024

_MAX_AUTH_LINE: Final = 255  # RFC 5034 §4: longer initial responses go separately


class LoginRefused(AccountError):
    """The server refused the credentials (or the token)."""


class NoUidlError(AccountError):
    """The server has no UIDL: there is no way to tell new mail from old, so the
    caller must refuse ``keep_on_server = true`` (download-and-delete only)."""


class MessageRefused(MessageError):
    """``-ERR`` to RETR or DELE of one message: skip it; the session is still usable."""

    def __init__(self, text: str, number: int) -> None:
        super().__init__(text)
        self.number = number


class MessageTooLarge(MessageRefused):
    """A message exceeded the caller's size cap while it was read; skipped."""


class Pop3Client:
    """A logged-in POP3 session (TRANSACTION state).  Not thread-safe.

    Build it with :meth:`connect`.  End it with :meth:`quit` to commit deletions or
    :meth:`close` to drop them; ``with`` closes *without* QUIT, so an exception
    inside the block never deletes anything.  Message numbers are those of this
    session (1-based, stable until it ends); UIDLs are the durable keys.
    """

    def __init__(self, *, where: str, ca_file: Path | None) -> None:
        """Use :meth:`connect`."""
        self._wire: Wire | None = None
        self._where = where
        self._ca_file = ca_file
        #: CAPA after TLS and login: upper-case name -> its argument text.  Empty
        #: when the server does not know CAPA.
        self.capabilities: Mapping[str, str] = MappingProxyType({})

    # -- connecting ----------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        *,
        host: str,
        user: str,
        port: int | None = None,
        tls: TlsMode = "tls",
        ca_file: Path | None = None,
        password: PasswordSource | None = None,
        oauth2_token: Callable[[], str] | None = None,
        auth: AuthMethod = "auto",
        timeout: float = 60.0,
        label: str = "",
    ) -> Pop3Client:
        """Connect, secure, authenticate; return the session.

        ``tls="tls"``: implicit TLS (port 995); ``"starttls"``: STLS is required
        (port 110): no ``STLS`` in CAPA or ``-ERR`` to it is refused before any
        credential is sent -- never a plaintext fallback; ``"none"``: plaintext,
        allowed only to a loopback host.  Certificates and host names are verified
        against the system CAs plus ``ca_file``.  ``timeout`` bounds the connect,
        the TLS handshake and every read.

        ``auth``: ``"auto"`` (SASL PLAIN when advertised, else USER/PASS),
        ``"user"``, ``"plain"``, ``"apop"`` (needs ``password``) or ``"oauth2"``
        (``oauth2_token`` is called once for a bearer token; OAUTHBEARER or XOAUTH2,
        whichever the server offers).  Secrets are fetched at login and not kept.
        """
        if port is None:
            port = DEFAULT_PORTS[tls]
        where = f"{label} ({host}:{port})" if label else f"{host}:{port}"
        if tls == "none" and not is_loopback_host(host):
            raise ProtocolError(
                f"{where}: refusing to send credentials unencrypted to a remote host; "
                'use tls = "tls" or "starttls"'
            )
        if (auth == "oauth2") != (oauth2_token is not None) or (
            auth != "oauth2" and password is None
        ):
            raise ValueError("auth='oauth2' takes oauth2_token, every other method a password")
        ctx = _ssl_context(ca_file) if tls != "none" else None
        client = cls(where=where, ca_file=ca_file)

        def open_and_login() -> None:
            try:
                client._wire = (
                    Tls(host, port, timeout=timeout, context=ctx)
                    if tls == "tls"
                    else Plain(host, port, timeout=timeout)
                )
            except ssl.SSLError:
                raise  # _run names the TLS problem
            except OSError as exc:
                raise AccountError(f"{where}: cannot connect: {exc.strerror or exc}") from exc
            client._login(tls, ctx, host, user, password, oauth2_token, auth)

        try:
            client._run(open_and_login)
        except BaseException:
            client.close()
            raise
        logger.debug("%s: logged in; CAPA %s", where, " ".join(sorted(client.capabilities)))
        return client

    def _login(  # noqa: PLR0917 - private, called once, with all of connect's choices
        self,
        tls: TlsMode,
        ctx: ssl.SSLContext | None,
        host: str,
        user: str,
        password: PasswordSource | None,
        oauth2_token: Callable[[], str] | None,
        auth: AuthMethod,
    ) -> None:
        wire = self._live()
        greeting: bytes = wire.welcome
        caps = self._capa()
        if tls == "starttls":
            if "STLS" not in caps:
                raise ProtocolError(
                    f"{self._where}: server does not offer STLS; refusing to continue without TLS"
                )
            try:
                wire.command("STLS")
            except poplib.error_proto as exc:
                raise ProtocolError(
                    f"{self._where}: STLS refused ({err_text(exc)}); "
                    "refusing to continue without TLS"
                ) from exc
            assert ctx is not None
            # A new reader: whatever the plaintext phase left buffered is dropped
            # (RFC 2595 §4: nothing from before TLS is trusted, CAPA is asked again).
            wire.sock = ctx.wrap_socket(wire.sock, server_hostname=host)
            wire.file = wire.sock.makefile("rb")
            caps = self._capa()
        sasl = caps.get("SASL", "").upper().split()
        if auth == "oauth2":
            assert oauth2_token is not None
            self._oauth2(user, oauth2_token, sasl, known=bool(caps))
        else:
            assert password is not None
            secret = password.password()
            add_secret(secret)  # so a stray traceback or trace line shows *** instead
            if auth == "apop":
                self._apop(greeting, user, secret)
            elif auth == "plain" or (auth == "auto" and "PLAIN" in sasl):
                response = base64.b64encode(f"\0{user}\0{secret}".encode()).decode("ascii")
                add_secret(response)
                self._sasl("PLAIN", response)
            else:
                try:
                    wire.command(f"USER {user}")
                    wire.command(f"PASS {secret}")
                except poplib.error_proto as exc:
                    raise self._refused(exc) from exc
        self.capabilities = MappingProxyType(self._capa())  # may differ after login

    def _apop(self, greeting: bytes, user: str, secret: str) -> None:
        digest = apop_digest(greeting, secret)
        if digest is None:
            raise ProtocolError(f"{self._where}: the server does not offer APOP (no timestamp)")
        try:
            self._live().command(f"APOP {user} {digest}")
        except poplib.error_proto as exc:
            raise self._refused(exc) from exc

    def _oauth2(
        self, user: str, token_of: Callable[[], str], sasl: list[str], *, known: bool
    ) -> None:
        token = token_of()
        add_secret(token)
        if "OAUTHBEARER" in sasl:  # RFC 7628; a failure is answered with \x01
            authzid = user.replace("=", "=3D").replace(",", "=2C")  # RFC 5801 saslname
            mech, raw, abort = "OAUTHBEARER", f"n,a={authzid},\1auth=Bearer {token}\1\1", "AQ=="
        elif "XOAUTH2" in sasl or not known:
            mech, raw, abort = "XOAUTH2", f"user={user}\1auth=Bearer {token}\1\1", ""
        else:
            raise ProtocolError(f"{self._where}: the server offers no OAuth2 login (SASL {sasl})")
        encoded = base64.b64encode(raw.encode()).decode("ascii")
        add_secret(encoded)
        self._sasl(mech, encoded, abort=abort)

    def _sasl(self, mech: str, response: str, *, abort: str = "*") -> None:
        """AUTH with a one-step mechanism (RFC 5034): the response goes with the
        command when the line fits in 255 octets, else after an empty ``+``.  A
        challenge after the response reports a failure: answered with ``abort``."""
        wire = self._live()
        detail = ""
        try:
            if len(f"AUTH {mech} {response}") <= _MAX_AUTH_LINE:
                answer = wire.command(f"AUTH {mech} {response}")
            else:
                answer = wire.command(f"AUTH {mech}")
                if is_challenge(answer):
                    answer = wire.command(response)
            if is_challenge(answer):
                detail = oauth_status(answer[2:])
                wire.command(abort)  # the server must now say -ERR
                raise ProtocolError(f"{self._where}: AUTH {mech} did not finish{detail}")
        except poplib.error_proto as exc:
            raise LoginRefused(f"{self._where}: login refused{detail}: {err_text(exc)}") from exc

    def _refused(self, exc: poplib.error_proto) -> LoginRefused:
        return LoginRefused(f"{self._where}: login refused: {err_text(exc)}")

    def _capa(self) -> dict[str, str]:
        """CAPA as name -> arguments; empty when the server answers ``-ERR``."""
        wire = self._live()
        try:
            wire.command("CAPA")
        except poplib.error_proto:
            return {}
        return parse_capa(wire.multiline())

    # -- transaction state -----------------------------------------------------------------

    @property
    def secure(self) -> bool:
        """Whether the connection is encrypted (implicit TLS or after STLS)."""
        return self._wire is not None and isinstance(self._wire.sock, ssl.SSLSocket)

    @property
    def has_uidl(self) -> bool:
        """False when CAPA was answered without UIDL (:meth:`uidl` would raise)."""
        return not self.capabilities or "UIDL" in self.capabilities

    def stat(self) -> tuple[int, int]:
        """``(message count, total octets)`` of the maildrop as of login."""
        answer = self._run(lambda: self._live().command("STAT"))
        fields = answer.split()
        if len(fields) < 3 or not fields[1].isdigit() or not fields[2].isdigit():
            self.close()
            raise ProtocolError(f"{self._where}: garbled STAT answer {clean(answer)!r}")
        return int(fields[1]), int(fields[2])

    def uidl(self) -> dict[int, str]:
        """Message number -> UIDL for every message not marked deleted.

        Raises :class:`NoUidlError` when the server has no UIDL (CAPA without it,
        or ``-ERR`` to the command; the session stays usable for download-and-delete);
        ``ProtocolError`` for a malformed or duplicated UIDL (RFC 1939 §7: 1-70
        printable ASCII characters, unique in the maildrop).
        """
        if not self.has_uidl:
            raise NoUidlError(f"{self._where}: the server does not support UIDL")
        pairs = self._run(
            lambda: self._listing("UIDL", UIDL_VALUE),
            on_err=lambda text: NoUidlError(f"{self._where}: UIDL refused: {text}"),
        )
        result = {n: value.decode("ascii") for n, value in pairs.items()}
        if len(set(result.values())) != len(result):
            self.close()
            raise ProtocolError(f"{self._where}: the server lists the same UIDL twice")
        return result

    def list_sizes(self) -> dict[int, int]:
        """Message number -> size in octets as the server counts it (CRLF lines)."""
        pairs = self._run(lambda: self._listing("LIST", SIZE_VALUE))
        return {n: int(value) for n, value in pairs.items()}

    def retr(self, number: int, max_bytes: int = DEFAULT_MAX_MESSAGE) -> bytes:
        """The whole message, byte-stuffing undone, line endings as received.

        Raises :class:`MessageRefused` on ``-ERR`` (skip it; the session goes on) and
        :class:`MessageTooLarge` past ``max_bytes`` (the rest is read and dropped so
        the session goes on; a server that keeps sending is cut off).  A connection
        lost mid-message is an ``AccountError``: nothing partial is returned.
        """
        self._run(
            lambda: self._live().command(f"RETR {number}"),
            on_err=lambda text: MessageRefused(
                f"{self._where}: RETR {number} refused: {text}", number
            ),
        )
        try:
            return self._run(lambda: self._live().message(max_bytes))
        except OverCap:
            raise MessageTooLarge(
                f"{self._where}: message {number} is larger than the {max_bytes}-byte cap; skipped",
                number,
            ) from None

    def dele(self, number: int) -> None:
        """Mark a message deleted.  Nothing is removed until :meth:`quit` succeeds."""
        self._run(
            lambda: self._live().command(f"DELE {number}"),
            on_err=lambda text: MessageRefused(
                f"{self._where}: DELE {number} refused: {text}", number
            ),
        )

    def noop(self) -> None:
        """Keep the session alive; ``AccountError`` when it is gone."""
        self._run(lambda: self._live().command("NOOP"))

    def quit(self) -> None:
        """QUIT: the server now removes the messages marked by :meth:`dele`.

        ``ProtocolError`` when it answers ``-ERR`` (RFC 1939: some deletions may
        not have happened) -- list again next time rather than assume either way.
        ``AccountError`` when the connection is lost before the answer: deletions
        are then unknown too.  The connection is closed in every case.
        """
        try:
            self._run(
                lambda: self._live().command("QUIT"),
                on_err=lambda text: ProtocolError(
                    f"{self._where}: QUIT failed, deletions not confirmed: {text}"
                ),
            )
        finally:
            self.close()

    def close(self) -> None:
        """Drop the connection without QUIT: every DELE of this session is undone by
        the server.  Idempotent, never raises."""
        wire, self._wire = self._wire, None
        if wire is not None:
            try:
                wire.close()
            except OSError as exc:
                logger.debug("%s: closing: %s", self._where, exc)

    def __enter__(self) -> Pop3Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _live(self) -> Wire:
        if self._wire is None:
            raise AccountError(f"{self._where}: the connection is closed")
        return self._wire

    def _run(self, fn: Callable[[], T], on_err: Callable[[str], Exception] | None = None) -> T:
        """Run one exchange.  ``-ERR`` raises ``on_err(server text)`` and the session
        goes on; without ``on_err`` it is an ``AccountError``.  Anything else that
        goes wrong closes the connection (``AccountError`` or ``ProtocolError``)."""
        try:
            return fn()
        except poplib.error_proto as exc:
            if on_err is not None:
                raise on_err(err_text(exc)) from exc
            failure = AccountError(f"{self._where}: {err_text(exc)}")
        except ConnectionLost as exc:
            failure = AccountError(f"{self._where}: connection lost: {exc}")
        except Garbled as exc:
            failure = ProtocolError(f"{self._where}: {exc}")
        except ssl.SSLCertVerificationError as exc:
            failure = ProtocolError(f"{self._where}: {_cert_problem(exc, self._ca_file)}")
        except ssl.SSLError as exc:
            failure = ProtocolError(f"{self._where}: TLS failed: {exc.reason or exc}")
        except TimeoutError:
            failure = AccountError(f"{self._where}: the server stopped answering")
        except OSError as exc:
            failure = AccountError(f"{self._where}: connection lost: {exc.strerror or exc}")
        except AccountError:
            self.close()
            raise
        self.close()
        raise failure

    def _listing(self, command: str, value: re.Pattern[bytes]) -> dict[int, bytes]:
        wire = self._live()
        wire.command(command)
        return parse_listing(wire.multiline(), command, value)


