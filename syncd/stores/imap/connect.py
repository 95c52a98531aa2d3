"""Opening an IMAP connection: socket, TLS, STARTTLS strictness, login, CAPABILITY.

The imaplib objects made here cap every literal before allocating it (gh-119511) and
record each untagged response in arrival order, which the command runner
(:mod:`syncd.stores.imap.runner`) reads.  Only :meth:`ImapSession.connect
<syncd.stores.imap.session.ImapSession.connect>` calls these functions.  Nothing logged
or raised here contains a credential.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
from pathlib import Path
from typing import Any, Literal

import imapclient
from imapclient import imap4, tls
from imapclient.exceptions import LoginError

from syncd.auth.credentials import Authenticator
from syncd.errors import AccountError, ProtocolError
from syncd.stores.imap.parse import LiteralTooLarge, clean_text, read_literal
from syncd.stores.tls import cert_problem as _cert_problem
from syncd.stores.tls import ssl_context as _ssl_context

# The session's logger: users' log filters use that name.
logger = logging.getLogger("syncd.imap.session")

TlsMode = Literal["tls", "starttls", "none"]


#: Bytes per socket write; the socket timeout applies to each (see ``_Recorder.send``).
_SEND_CHUNK = 64 * 1024


class _Recorder:
    """Mixed into imaplib's IMAP4 classes.  ``read`` refuses literals over the cap
    before allocating (gh-119511); ``_append_untagged`` also records each response in
    arrival order."""

    max_literal: int
    ordered: list[tuple[str, Any]]
    refused_literal: str | None
    file: Any

    def _init_recorder(self, max_literal: int) -> None:
        self.max_literal = max_literal
        self.ordered = []
        self.refused_literal = None

    def read(self, size: int) -> bytes:
        try:
            return read_literal(self.file, size, self.max_literal)
        except LiteralTooLarge as exc:
            # imaplib re-raises aborts as plain aborts ("command: X => ..."): remember.
            self.refused_literal = str(exc)
            raise

    def _append_untagged(self, typ: str, dat: Any) -> None:
        super()._append_untagged(typ, dat)  # type: ignore[misc]
        self.ordered.append((typ, b"" if dat is None else dat))

    def send(self, data: bytes) -> None:
        # socket.sendall's timeout bounds the whole call (Python >= 3.5), so one large
        # APPEND literal over a slow link timed out while bytes were still moving
        # (NET-07).  Sending in chunks makes the timeout apply per chunk: idle-based.
        view = memoryview(data)
        for start in range(0, len(view), _SEND_CHUNK):
            super().send(view[start : start + _SEND_CHUNK])  # type: ignore[misc]


class _PlainIMAP4(_Recorder, imap4.IMAP4WithTimeout):  # type: ignore[misc]  # imapclient is untyped
    def __init__(self, host: str, port: int, timeout: float | None, max_literal: int) -> None:
        self._init_recorder(max_literal)
        super().__init__(host, port, timeout)


class _TlsIMAP4(_Recorder, tls.IMAP4_TLS):  # type: ignore[misc]  # imapclient is untyped
    def __init__(
        self, host: str, port: int, ctx: ssl.SSLContext, timeout: float | None, max_literal: int
    ) -> None:
        self._init_recorder(max_literal)
        super().__init__(host, port, ctx, timeout)


class Client(imapclient.IMAPClient):  # type: ignore[misc]  # imapclient is untyped
    """IMAPClient whose imaplib object is one of the above (created before the greeting
    is read, so even the greeting's literals are capped)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        use_tls: bool,
        ctx: ssl.SSLContext | None,
        timeout: float,
        max_literal: int,
    ) -> None:
        self._syncd_max_literal = max_literal
        super().__init__(host, port, ssl=use_tls, ssl_context=ctx, timeout=timeout)

    def _create_IMAP4(self) -> imaplib.IMAP4:
        connect_timeout = self._timeout.connect
        if self.ssl:
            return _TlsIMAP4(
                self.host, self.port, self.ssl_context, connect_timeout, self._syncd_max_literal
            )
        return _PlainIMAP4(self.host, self.port, connect_timeout, self._syncd_max_literal)


def open_client(
    host: str,
    port: int,
    *,
    tls: TlsMode,
    ca_file: Path | None,
    timeout: float,
    max_literal: int,
    where: str,
) -> tuple[Client, ssl.SSLContext | None]:
    """Connect (and for ``tls="tls"`` handshake); returns the client, greeting read,
    and the TLS context for a later STARTTLS.  Raises ``ProtocolError`` or
    ``AccountError`` naming ``where``."""
    ctx = _ssl_context(ca_file) if tls != "none" else None
    try:
        client = Client(
            host, port, use_tls=tls == "tls", ctx=ctx, timeout=timeout, max_literal=max_literal
        )
    except ssl.SSLCertVerificationError as exc:
        raise ProtocolError(f"{where}: {_cert_problem(exc, ca_file)}") from exc
    except ssl.SSLError as exc:
        raise ProtocolError(f"{where}: TLS handshake failed: {exc.reason or exc}") from exc
    except LiteralTooLarge as exc:
        raise ProtocolError(f"{where}: {exc} in the greeting") from exc
    except imaplib.IMAP4.abort as exc:
        raise AccountError(f"{where}: connection lost: {clean_text(exc)}") from exc
    except imaplib.IMAP4.error as exc:
        raise AccountError(f"{where}: server refused the connection: {clean_text(exc)}") from exc
    except OSError as exc:
        raise AccountError(f"{where}: cannot connect: {exc.strerror or exc}") from exc
    imap: Any = client._imap
    # IMAPClient sets debug=5, which logs every line read, literals (bodies) included.
    imap.debug = 0
    return client, ctx


def secure_and_login(
    client: Client,
    imap: Any,
    where: str,
    *,
    tls_mode: TlsMode,
    ctx: ssl.SSLContext | None,
    auth: Authenticator,
) -> frozenset[str]:
    """STARTTLS when ``tls_mode`` says so (strictly: refused rather than skipped), then
    log in unless the greeting was PREAUTH; returns the CAPABILITY asked afresh after
    login.  Raises ``ProtocolError`` or ``AccountError`` naming ``where``."""
    preauth = imap.state == "AUTH"
    try:
        if tls_mode == "starttls":
            if preauth:
                raise ProtocolError(
                    f"{where}: server greeted with PREAUTH, so STARTTLS "
                    "is impossible; refusing to continue without TLS"
                )
            if "STARTTLS" not in imap.capabilities:
                raise ProtocolError(
                    f"{where}: server does not offer STARTTLS; refusing to continue without TLS"
                )
            imap.untagged_responses.clear()
            try:
                client.starttls(ctx)
            except ssl.SSLCertVerificationError as exc:
                raise ProtocolError(f"{where}: {_cert_problem(exc, None)}") from exc
            except ssl.SSLError as exc:
                raise ProtocolError(f"{where}: TLS handshake failed: {exc.reason or exc}") from exc
            except (imaplib.IMAP4.abort, OSError):
                raise
            except imaplib.IMAP4.error as exc:
                raise ProtocolError(
                    f"{where}: STARTTLS refused ({clean_text(exc)}); "
                    "refusing to continue without TLS"
                ) from exc
            # RFC 3501 §6.2.1: nothing from the plaintext phase may be trusted.
            imap.untagged_responses.clear()
            imap.ordered.clear()
            client._cached_capabilities = None
            imap._get_capabilities()
        if not preauth and tls_mode == "none" and "LOGINDISABLED" in imap.capabilities:
            # RFC 3501 §6.2.3: the server forbids LOGIN here; any other way would
            # still send the password in the clear (RELIABILITY.md SEC-09).
            raise ProtocolError(
                f"{where}: the server refuses plaintext login (LOGINDISABLED); "
                'set tls = "starttls" or "tls"'
            )
        if not preauth:
            try:
                auth.authenticate(client)
            except LoginError as exc:
                raise AccountError(f"{where}: login refused: {clean_text(exc)}") from exc
        elif tls_mode == "none":
            logger.warning("%s: PREAUTH greeting on a plaintext connection", where)
        imap.untagged_responses.clear()
        imap.ordered.clear()
        typ, data = imap.capability()
        if typ != "OK" or not data or not isinstance(data[-1], bytes):
            raise ProtocolError(f"{where}: no CAPABILITY response after login")
        caps = frozenset(data[-1].decode("ascii", "replace").upper().split())
        client._cached_capabilities = tuple(c.encode() for c in caps)
        imap.untagged_responses.clear()
        imap.ordered.clear()
        return caps
    except (imaplib.IMAP4.abort, OSError) as exc:
        if imap.refused_literal is not None:
            raise ProtocolError(f"{where}: {imap.refused_literal}") from exc
        raise AccountError(f"{where}: connection lost while logging in: {clean_text(exc)}") from exc
    except imaplib.IMAP4.error as exc:
        raise AccountError(f"{where}: {clean_text(exc)}") from exc


def close_quietly(client: Any) -> None:
    """Close the socket without a word to the server; never raises."""
    with contextlib.suppress(OSError, imaplib.IMAP4.error, AttributeError, ValueError):
        client.shutdown()
