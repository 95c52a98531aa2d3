"""One IMAP connection, with a typed API over IMAPClient 4.1 / imaplib.

This module is the only place in syncd that touches IMAPClient or imaplib
internals (``client._imap``): the rest of syncd uses :class:`ImapSession`.
See /work/shared/LIBRARIES.md §1 for the library quirks worked around here
(``fetch("1:*")`` raising, no QRESYNC select, response codes left in imaplib's
dict, unsolicited responses piling up, no literal cap in CPython 3.11.7).

Every untagged response is recorded in arrival order (imaplib's dict loses the
order across types); each command reads what belongs to it from that record and
files the rest (EXISTS, EXPUNGE, VANISHED, FETCH, HIGHESTMODSEQ...) as events in
a bounded queue that :meth:`ImapSession.drain` empties.

Errors: a dead or timed-out connection raises ``AccountError``; a server we
refuse to trust (TLS failure, STARTTLS stripped, oversized literal, garbled
response) raises ``ProtocolError``; a command refused for one mailbox raises
``FolderError``; an APPEND refused for a message raises ``MessageError``.
After an ``AccountError`` the session is closed: every later call raises too.
Nothing logged or raised here contains a credential or a message body.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import select
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import imapclient
from imapclient import imap4, tls
from imapclient.datetime_util import datetime_to_INTERNALDATE
from imapclient.exceptions import LoginError
from imapclient.exceptions import ProtocolError as IMAPClientProtocolError
from imapclient.imapclient import _literal
from imapclient.response_parser import parse_fetch_response, parse_response

from syncd.auth.credentials import Authenticator
from syncd.errors import AccountError, FolderError, MessageError, ProtocolError
from syncd.stores.imap.parse import (
    MAX_UID,
    FetchEntry,
    FlagInfo,
    LiteralTooLarge,
    UidSetError,
    check_mailbox_name,
    chunk_uid_sets,
    clean_text,
    decode_flags,
    decode_mailbox_name,
    encode_mailbox_name,
    flags_to_text,
    format_uid_set,
    group_fetch_entries,
    in_ranges,
    is_flag_atom,
    parse_appenduid,
    parse_body_fetch,
    parse_copyuid,
    parse_flag_fetches,
    parse_vanished,
    read_literal,
    request_set_ranges,
    response_code,
)

# The name it had before the package split: users\' log filters use it.

logger = logging.getLogger("syncd.imap.session")

TlsMode = Literal["tls", "starttls", "none"]
Event = tuple[str, object]
T = TypeVar("T")

#: Events kept between two drain() calls; past this the oldest are dropped and an
#: ("OVERFLOW", n) event tells the caller to resynchronise instead.
MAX_EVENTS = 10_000

#: Messages per FETCH when no sizes are known.
_MAX_BATCH_COUNT = 500

_HEADER_FIELD_RE = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 field name: printable, no ':'
_CRLF_RE = re.compile(rb"\r\n|\r(?!\n)|\n")


# ---------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class FolderInfo:
    """One LIST entry: the decoded name, the hierarchy delimiter (None for a flat
    namespace) and the mailbox attributes (``\\Noselect``, ``\\HasChildren``, ``\\Trash``...)."""

    name: str
    delimiter: str | None
    flags: frozenset[str]


@dataclass(frozen=True)
class StatusInfo:
    """STATUS of a mailbox; ``highestmodseq`` is None without CONDSTORE."""

    messages: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int | None


@dataclass(frozen=True)
class SelectInfo:
    """The result of SELECT/EXAMINE.

    ``highestmodseq`` is None when the server has no CONDSTORE or said NOMODSEQ.
    ``vanished`` and ``changed`` are filled only by a QRESYNC select: UIDs expunged and
    messages changed since the given modseq (empty when the given UIDVALIDITY no longer
    matches: then the caller must do a full resync anyway).  ``readonly`` is True for
    EXAMINE or when the server opened the mailbox read-only.
    """

    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None
    vanished: frozenset[int]
    changed: dict[int, FlagInfo]
    readonly: bool = False
    sticky: bool = True  # False after "NO [UIDNOTSTICKY]" (RFC 4315 §3): UIDs do not last
    # PERMANENTFLAGS as sent, ``\\*`` included; None when the server sent none (then
    # every flag is permanent, RFC 3501 §7.1).
    permanent_flags: frozenset[str] | None = None


@dataclass(frozen=True)
class Body:
    """One downloaded message: exactly the bytes of the BODY[] literal."""

    uid: int
    data: bytes
    internaldate: datetime | None


class AppendError(MessageError):
    """The server refused an APPEND.  ``appended`` holds the results (UID or None) of
    the messages of the batch that *were* appended before the refusal, in order: retry
    only ``messages[len(appended):]``.  With MULTIAPPEND it is always empty (RFC 3502:
    all or nothing).  ``code`` is the response code of the refusal, upper-cased
    (``"TOOBIG"``, ``"LIMIT"``, ``"OVERQUOTA"``...), or None; ``reason`` the server's
    text (cleaned for a log line)."""

    def __init__(
        self,
        message: str,
        appended: list[int | None],
        code: str | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.appended = appended
        self.code = code
        self.reason = reason


# ---------------------------------------------------------------------------------------
# imaplib with a literal cap and an ordered record of untagged responses


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


class _Client(imapclient.IMAPClient):  # type: ignore[misc]  # imapclient is untyped
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


# ---------------------------------------------------------------------------------------
# the session


class ImapSession:
    """A logged-in IMAP connection.  Not thread-safe: one thread uses it at a time.

    Build it with :meth:`connect`; always call :meth:`logout` (it never raises).
    Mailbox names are Unicode ``str`` (modified UTF-7 is done here), flags are
    ``frozenset[str]`` of IMAP flag names without ``\\Recent``.
    """

    def __init__(
        self, client: _Client, *, where: str, capabilities: frozenset[str], enabled: frozenset[str]
    ) -> None:
        """Use :meth:`connect`."""
        self._client = client
        self._imap: Any = client._imap
        self._where = where
        self.capabilities = capabilities
        self.enabled = enabled
        self.rejected_names: list[str] = []
        self._events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._dropped = 0
        self._dead: str | None = None
        self._bye: str | None = None
        self._delimiter: tuple[str | None] | None = None
        self._selected: str | None = None

    # -- connecting ----------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        *,
        host: str,
        port: int,
        tls: TlsMode,
        ca_file: Path | None,
        auth: Authenticator,
        timeout: float = 60.0,
        max_literal: int = 64 * 1024 * 1024,
        label: str = "",
    ) -> ImapSession:
        """Connect, secure, authenticate and ENABLE; return the ready session.

        ``tls="tls"``: implicit TLS; ``"starttls"``: STARTTLS is required (a missing
        STARTTLS capability, a NO/BAD answer or a PREAUTH greeting is refused before
        any credential is sent); ``"none"``: plaintext (the config decides when that is
        allowed).  Certificates and host names are always verified, against the system
        CAs plus ``ca_file``.  ``timeout`` applies to the connect, to every read and to
        each 64 KiB written (so it is idle-based, not a bound on a big upload).  Raises
        ``ProtocolError`` (insecure or hostile server) or ``AccountError``
        (unreachable, refused login), with a one-line message naming ``host:port``.
        """
        where = f"{label} ({host}:{port})" if label else f"{host}:{port}"
        ctx = _ssl_context(ca_file) if tls != "none" else None
        try:
            client = _Client(
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
            raise AccountError(
                f"{where}: server refused the connection: {clean_text(exc)}"
            ) from exc
        except OSError as exc:
            raise AccountError(f"{where}: cannot connect: {exc.strerror or exc}") from exc
        imap: Any = client._imap
        # IMAPClient sets debug=5, which logs every line read, literals (bodies) included.
        imap.debug = 0
        try:
            caps = cls._secure_and_login(client, imap, where, tls_mode=tls, ctx=ctx, auth=auth)
            session = cls(client, where=where, capabilities=caps, enabled=frozenset())
            session._enable()
        except BaseException:
            _close_quietly(client)
            raise
        logger.debug("%s: connected; capabilities %s", where, " ".join(sorted(caps)))
        return session

    @staticmethod
    def _secure_and_login(
        client: _Client,
        imap: Any,
        where: str,
        *,
        tls_mode: TlsMode,
        ctx: ssl.SSLContext | None,
        auth: Authenticator,
    ) -> frozenset[str]:
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
                    raise ProtocolError(
                        f"{where}: TLS handshake failed: {exc.reason or exc}"
                    ) from exc
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
            raise AccountError(
                f"{where}: connection lost while logging in: {clean_text(exc)}"
            ) from exc
        except imaplib.IMAP4.error as exc:
            raise AccountError(f"{where}: {clean_text(exc)}") from exc

    def _enable(self) -> None:
        if "ENABLE" not in self.capabilities:
            return
        wanted = [c for c in ("QRESYNC", "CONDSTORE") if c in self.capabilities]
        if not wanted:
            return
        # QRESYNC implies CONDSTORE; ENABLE CONDSTORE alone makes unsolicited FETCH
        # responses carry MODSEQ, which is harmless.
        want = ["QRESYNC"] if "QRESYNC" in wanted else wanted
        typ, data, responses = self._command("ENABLE", "ENABLE", *want)
        if typ != "OK":
            logger.warning(
                "%s: ENABLE %s refused: %s",
                self._where,
                " ".join(want),
                clean_text(data[0] if data else b""),
            )
        enabled: set[str] = set()
        for rtyp, dat in responses:
            if rtyp == "ENABLED" and isinstance(dat, bytes):
                enabled.update(dat.decode("ascii", "replace").upper().split())
        self._file_events(r for r in responses if r[0] != "ENABLED")
        self.enabled = frozenset(enabled)

    # -- capabilities --------------------------------------------------------------------

    @property
    def has_qresync(self) -> bool:
        """QRESYNC offered *and* enabled (VANISHED replaces EXPUNGE on this session)."""
        return "QRESYNC" in self.enabled

    @property
    def has_condstore(self) -> bool:
        """MODSEQ / CHANGEDSINCE / HIGHESTMODSEQ are available."""
        return "CONDSTORE" in self.capabilities or self.has_qresync

    @property
    def has_uidplus(self) -> bool:
        """From CAPABILITY only: servers send APPENDUID even when they hide UIDPLUS."""
        return "UIDPLUS" in self.capabilities

    @property
    def has_move(self) -> bool:
        return "MOVE" in self.capabilities

    @property
    def has_multiappend(self) -> bool:
        return "MULTIAPPEND" in self.capabilities

    @property
    def append_limit(self) -> int | None:
        """The server-wide ``APPENDLIMIT=<n>`` (RFC 7889) in octets, or None."""
        for cap in self.capabilities:
            if cap.startswith("APPENDLIMIT="):
                value = cap.partition("=")[2]
                return int(value) if value.isdigit() else None
        return None

    @property
    def has_idle(self) -> bool:
        return "IDLE" in self.capabilities

    @property
    def selected(self) -> str | None:
        """The mailbox selected now, or None."""
        return self._selected

    # -- mailboxes -----------------------------------------------------------------------

    def list_folders(self) -> list[FolderInfo]:
        """``LIST "" "*"``: every mailbox, decoded.

        Names that are undecodable (bad modified UTF-7, 8-bit or control bytes) or
        longer than 1000 bytes are skipped with a warning; ``self.rejected_names`` then
        holds one line per skipped name (reason and escaped raw name).
        """
        typ, data, responses = self._command("LIST", "LIST", '""', '"*"')
        self._check(typ, data, "LIST")
        self.rejected_names = []
        out: list[FolderInfo] = []
        entries = [dat for rtyp, dat in responses if rtyp == "LIST"]
        for group in group_fetch_entries(entries):
            try:
                parsed = parse_response(group)
            except (IMAPClientProtocolError, ValueError):
                self._reject(repr(group[0])[:80], "unparsable LIST response")
                continue
            if len(parsed) != 3 or not isinstance(parsed[0], tuple):
                self._reject(repr(group[0])[:80], "unparsable LIST response")
                continue
            attrs, delim, raw = parsed
            raw_name = str(raw).encode("ascii") if isinstance(raw, int) else raw
            if not isinstance(raw_name, bytes):
                self._reject(repr(raw)[:80], "missing name")
                continue
            try:
                name = decode_mailbox_name(raw_name)
            except ValueError as exc:
                self._reject(clean_text(raw_name, 80), str(exc))
                continue
            delimiter = _delimiter_text(delim)
            flags = frozenset(a.decode("ascii", "replace") for a in attrs if isinstance(a, bytes))
            out.append(FolderInfo(name, delimiter, flags))
        self._file_events(r for r in responses if r[0] != "LIST")
        return out

    def _reject(self, shown: str, reason: str) -> None:
        line = f"{reason}: {shown}"
        logger.warning("%s: skipping a mailbox the server listed (%s)", self._where, line)
        self.rejected_names.append(line)

    def delimiter(self) -> str | None:
        """The hierarchy delimiter (``LIST "" ""``); None for a flat namespace.  Cached."""
        if self._delimiter is None:
            typ, data, responses = self._command("LIST", "LIST", '""', '""')
            self._check(typ, data, "LIST")
            delim: str | None = None
            for rtyp, dat in responses:
                if rtyp == "LIST" and isinstance(dat, bytes):
                    try:
                        parsed = parse_response([dat])
                    except (IMAPClientProtocolError, ValueError):
                        continue
                    if len(parsed) >= 2:
                        delim = _delimiter_text(parsed[1])
            self._file_events(r for r in responses if r[0] != "LIST")
            self._delimiter = (delim,)
        return self._delimiter[0]

    def status(self, name: str) -> StatusInfo:
        """STATUS (MESSAGES UIDNEXT UIDVALIDITY [HIGHESTMODSEQ]).  FolderError when the
        mailbox does not exist or the answer lacks a field."""
        if self._selected is not None and name == self._selected:
            # A server answers STATUS on the selected mailbox from this session's
            # view, which only moves on a command: NOOP first (Dovecot does this).
            self.noop()
        wire = self._wire_name(name)
        typ, data, responses = self._command("STATUS", "STATUS", wire, f"({self._status_items})")
        self._check(typ, data, f"STATUS {name}")
        values: dict[bytes, int] = {}
        encoded = encode_mailbox_name(name)
        for rtyp, dat in responses:
            got = _status_response(rtyp, dat)
            if got is None:
                continue
            if got[0] == encoded or _both_inbox(got[0], encoded):
                values.update(got[1])
        self._file_events(r for r in responses if r[0] != "STATUS")
        info = _status_info(values)
        if info is None:
            missing = next(k for k in (b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY") if k not in values)
            raise FolderError(f"{self._where}: STATUS {name} lacks {missing.decode()}")
        return info

    @property
    def _status_items(self) -> str:
        return "MESSAGES UIDNEXT UIDVALIDITY" + (" HIGHESTMODSEQ" if self.has_condstore else "")

    def statuses(self) -> dict[str, StatusInfo]:
        """The STATUS of every mailbox in one round trip (``LIST ... RETURN (STATUS
        ...)``, RFC 5819), by decoded name; empty without LIST-STATUS.  The mailbox
        selected on this session is left out: a server may answer for it from this
        session's view, which only a command moves on (:meth:`status` NOOPs first).
        Entries the server got wrong are left out too: their folders fall back to
        :meth:`status`."""
        if "LIST-STATUS" not in self.capabilities:
            return {}
        typ, data, responses = self._command(
            "LIST", "LIST", '""', '"*"', "RETURN", f"(STATUS ({self._status_items}))"
        )
        self._check(typ, data, "LIST-STATUS")
        out: dict[str, StatusInfo] = {}
        for rtyp, dat in responses:
            got = _status_response(rtyp, dat)
            if got is None:
                continue
            try:
                name = decode_mailbox_name(got[0])
            except ValueError:
                continue
            info = _status_info(got[1])
            if info is not None and name != self._selected:
                out[name] = info
        self._file_events(r for r in responses if r[0] not in ("STATUS", "LIST"))
        return out

    def select(
        self,
        name: str,
        *,
        qresync: tuple[int, int, str | None] | None = None,
        readonly: bool = False,
    ) -> SelectInfo:
        """SELECT (or EXAMINE when ``readonly``) ``name``.

        ``qresync=(uidvalidity, modseq, known_uids or None)`` is sent only when QRESYNC
        is enabled; then ``vanished``/``changed`` report what changed since ``modseq``.
        Responses about the previously selected mailbox (before ``OK [CLOSED]``) are
        not mixed in.  A missing UIDNEXT is computed from the highest UID.  Raises
        FolderError when the server refuses (no mailbox is selected then).
        """
        wire = self._wire_name(name)
        args: list[str | bytes] = [wire]
        if qresync is not None and self.has_qresync:
            uv, modseq, known = qresync
            if uv < 1 or modseq < 1:
                raise ValueError(f"QRESYNC needs a uidvalidity and a modseq > 0, got {qresync}")
            known_part = ""
            if known:
                request_set_ranges(known)  # raises ValueError for a malformed set
                known_part = " " + known
            args.append(f"(QRESYNC ({uv} {modseq}{known_part}))")
        command = "EXAMINE" if readonly else "SELECT"
        self._imap.is_readonly = readonly
        self._selected = None
        typ, data, responses = self._command(command, command, *args)
        if typ != "OK":
            self._imap.state = "AUTH"
            self._file_events(_before_closed(responses)[0])
            raise FolderError(
                f"{self._where}: {command} {name} failed: {clean_text(data[0] if data else b'')}"
            )
        self._imap.state = "SELECTED"
        old, mine = _before_closed(responses)
        self._file_events(old)
        exists = 0
        uidvalidity = uidnext = highestmodseq = None
        nomodseq = False
        sticky = True
        permanent: frozenset[str] | None = None
        vanished: set[int] = set()
        fetches: list[FetchEntry] = []
        rest: list[tuple[str, Any]] = []
        for rtyp, dat in mine:
            if rtyp == "EXISTS":
                exists = _int(dat, exists)
            elif rtyp == "OK" and isinstance(dat, bytes):
                code = response_code(dat)
                if code is None:
                    continue
                key, value = code
                if key == "UIDVALIDITY":
                    uidvalidity = _int(value, None)
                elif key == "UIDNEXT":
                    uidnext = _int(value, None)
                elif key == "HIGHESTMODSEQ":
                    highestmodseq = _int(value, None)
                elif key == "NOMODSEQ":
                    nomodseq = True
                elif key == "PERMANENTFLAGS":
                    permanent = _permanent_flags(value)
                elif key == "ALERT":
                    self._alert(dat)
            elif rtyp == "NO" and isinstance(dat, bytes):
                code = response_code(dat)
                if code is not None and code[0] == "UIDNOTSTICKY":
                    sticky = False
                else:
                    rest.append((rtyp, dat))
            elif rtyp == "VANISHED" and isinstance(dat, bytes):
                vanished.update(self._vanished(dat))
            elif rtyp == "FETCH":
                fetches.append(dat)
            elif rtyp not in _SELECT_DATA:
                rest.append((rtyp, dat))
        self._file_events(rest)
        code = response_code(data[0]) if data and isinstance(data[0], bytes) else None
        readonly_now = readonly or (code is not None and code[0] == "READ-ONLY")
        if uidvalidity is None or not 0 < uidvalidity <= MAX_UID:
            raise FolderError(
                f"{self._where}: {command} {name}: the server sent no valid UIDVALIDITY"
            )
        self._selected = name
        if uidnext is None or not 0 < uidnext <= MAX_UID + 1:
            uidnext = self._compute_uidnext(exists)
        changed = self._collect_flags(fetches, None) if fetches else {}
        return SelectInfo(
            uidvalidity=uidvalidity,
            uidnext=uidnext,
            exists=exists,
            highestmodseq=None if (nomodseq or not self.has_condstore) else highestmodseq,
            vanished=frozenset(vanished),
            changed=changed,
            readonly=readonly_now,
            sticky=sticky,
            permanent_flags=permanent,
        )

    def _compute_uidnext(self, exists: int) -> int:
        """SRV-06: no (sane) UIDNEXT in the SELECT answer: the highest UID plus one."""
        if exists == 0:
            return 1
        typ, data, responses = self._command("FETCH", "FETCH", "*", "(UID)")
        self._check(typ, data, "FETCH *")
        fetches = [dat for rtyp, dat in responses if rtyp == "FETCH"]
        highest = max((r[1] or 0 for r in _safe_flag_fetches(fetches)), default=0)
        self._file_events(r for r in responses if r[0] != "FETCH")
        logger.warning("%s: %s sent no UIDNEXT; using %d", self._where, self._selected, highest + 1)
        return highest + 1

    def create_folder(self, name: str) -> None:
        """CREATE ``name``; an existing mailbox (``NO [ALREADYEXISTS]``) is fine."""
        wire = self._wire_name(name)
        typ, data, responses = self._command("CREATE", "CREATE", wire)
        self._file_events(responses)
        if typ == "OK":
            return
        text = data[0] if data and isinstance(data[0], bytes) else b""
        code = response_code(text)
        if code is not None and code[0] == "ALREADYEXISTS":
            return
        raise FolderError(f"{self._where}: CREATE {name} failed: {clean_text(text)}")

    # -- listing messages ----------------------------------------------------------------

    def fetch_flags(
        self,
        uids: str | Iterable[int] = "1:*",
        *,
        changedsince: int | None = None,
        with_size: bool = False,
    ) -> tuple[dict[int, FlagInfo], frozenset[int]]:
        """``UID FETCH <uids> (UID FLAGS [RFC822.SIZE] [MODSEQ]) [(CHANGEDSINCE n [VANISHED])]``.

        Returns ``(uid -> FlagInfo, vanished uids)``; vanished is filled only with
        QRESYNC and ``changedsince`` (VANISHED (EARLIER) plus expunges reported during
        the command).  ``changedsince`` needs CONDSTORE (ValueError
        otherwise: a caller that asks for a delta must not get a full listing it would
        misread).  Responses for UIDs not asked for, UID 0 or without a UID are ignored.
        """
        self._need_selected("UID FETCH")
        if changedsince is not None and not self.has_condstore:
            raise ValueError("changedsince needs CONDSTORE")
        items = "UID FLAGS" + (" RFC822.SIZE" if with_size else "")
        if self.has_condstore:
            items += " MODSEQ"
        modifiers: list[str] = []
        if changedsince is not None:
            modifiers.append(
                f"(CHANGEDSINCE {changedsince}{' VANISHED' if self.has_qresync else ''})"
            )
        out: dict[int, FlagInfo] = {}
        vanished: set[int] = set()
        for uid_set in _uid_sets(uids):
            ranges = request_set_ranges(uid_set)
            typ, data, responses = self._command(
                "UID FETCH", "UID", "FETCH", uid_set, f"({items})", *modifiers
            )
            self._check(typ, data, "UID FETCH")
            fetches = [dat for rtyp, dat in responses if rtyp == "FETCH"]
            out.update(self._collect_flags(fetches, ranges))
            rest = []
            for rtyp, dat in responses:
                if rtyp == "VANISHED" and isinstance(dat, bytes) and changedsince is not None:
                    # (EARLIER) answers the modifier; a plain VANISHED here reports an
                    # expunge this session had not heard of yet: gone all the same.
                    vanished.update(u for u in self._vanished(dat) if in_ranges(u, ranges))
                    continue
                if rtyp != "FETCH":
                    rest.append((rtyp, dat))
            self._file_events(rest)
        return out, frozenset(vanished)

    def _collect_flags(
        self, fetches: list[FetchEntry], ranges: list[tuple[int, int]] | None
    ) -> dict[int, FlagInfo]:
        """uid -> FlagInfo from FETCH data; ``ranges`` None accepts any UID."""
        out: dict[int, FlagInfo] = {}
        ignored = 0
        if ranges == [(1, MAX_UID)]:
            ranges = None  # "1:*": every UID was asked for; skip 100k range checks
        for _seq, uid, info, has_flags in _safe_flag_fetches(fetches):
            if uid is None or uid < 1 or (ranges is not None and not in_ranges(uid, ranges)):
                ignored += 1
                continue
            prev = out.get(uid)
            if prev is None and not has_flags:
                ignored += 1  # e.g. MODSEQ only: says nothing about the flags
                continue
            out[uid] = (
                info
                if prev is None
                else FlagInfo(
                    info.flags if has_flags else prev.flags,
                    info.modseq if info.modseq is not None else prev.modseq,
                    info.size if info.size is not None else prev.size,
                )
            )
        if ignored:
            logger.debug(
                "%s: ignored %d FETCH responses for UIDs not asked for or without a UID",
                self._where,
                ignored,
            )
        return out

    def search(self, criteria: str | list[str], *, charset: str | None = None) -> list[int]:
        """UID SEARCH; criteria as IMAPClient takes them (``"UNSEEN"``,
        ``["SINCE", date]``).  Returns UIDs (positive) in the server's order."""
        self._need_selected("UID SEARCH")
        items = [criteria] if isinstance(criteria, str) else criteria
        if any(isinstance(i, str) and re.search(r"[\r\n\0]", i) for i in items):
            raise ValueError("search criteria may not contain CR, LF or NUL")
        result = self._run("UID SEARCH", lambda: self._client.search(criteria, charset=charset))
        self._file_events(r for r in self._take() if r[0] != "SEARCH")
        return [int(u) for u in result if isinstance(u, int) and 0 < u <= MAX_UID]

    def fetch_headers(self, uids: Iterable[int], fields: Sequence[str]) -> dict[int, bytes]:
        """``BODY.PEEK[HEADER.FIELDS (...)]`` for ``uids`` -> uid -> header bytes.
        UIDs that are gone are simply missing from the result."""
        self._need_selected("UID FETCH")
        wanted = sorted(set(uids))
        if not wanted or not fields:
            return {}
        for f in fields:
            if not _HEADER_FIELD_RE.match(f):
                raise ValueError(f"not a header field name: {f!r}")
        spec = "BODY.PEEK[HEADER.FIELDS (" + " ".join(f.upper() for f in fields) + ")]"
        out: dict[int, bytes] = {}
        for uid_set in chunk_uid_sets(wanted):
            parsed = self._fetch_items(uid_set, f"(UID {spec})")
            for uid, items in parsed.items():
                for key, value in items.items():
                    if key.upper().startswith(b"BODY[HEADER.FIELDS") and isinstance(value, bytes):
                        out[uid] = value
        return out

    def fetch_bodies(
        self,
        uids: Sequence[int],
        *,
        batch_bytes: int = 8 * 1024 * 1024,
        sizes: Mapping[int, int] | None = None,
    ) -> Iterator[Body]:
        """Download ``uids`` (``BODY.PEEK[]`` + INTERNALDATE), yielding each body.

        Batches keep their announced total (RFC822.SIZE, from ``sizes`` or fetched
        first) under ``batch_bytes``; a bigger message goes alone.  The literal length
        governs, not RFC822.SIZE.  UIDs that are gone are not yielded, nor (with a
        warning) messages whose RFC822.SIZE exceeds the session's ``max_literal``.  A
        literal over ``max_literal`` anyway (the size lied) aborts the connection
        (ProtocolError).
        """
        self._need_selected("UID FETCH")
        wanted = list(dict.fromkeys(u for u in uids if 0 < u <= MAX_UID))
        if not wanted:
            return
        if sizes is None:
            infos, _ = self.fetch_flags(format_uid_set(wanted), with_size=True)
            sizes = {u: i.size for u, i in infos.items() if i.size is not None}
            wanted = [u for u in wanted if u in infos]
        cap = self._imap.max_literal
        too_big = [u for u in wanted if sizes.get(u, 0) > cap]
        if too_big:
            # MAL-04: skip, do not abort the account on every cycle for one message.
            logger.warning(
                "%s: not downloading %d message(s) larger than %d bytes from %s (UIDs %s)",
                self._where,
                len(too_big),
                cap,
                self._selected,
                format_uid_set(too_big)[:200],
            )
            wanted = [u for u in wanted if sizes.get(u, 0) <= cap]
        for batch in _batches(wanted, sizes, batch_bytes):
            yield from self._fetch_body_batch(batch)

    def _fetch_body_batch(self, batch: list[int]) -> Iterator[Body]:
        uid_set = format_uid_set(batch)
        ranges = request_set_ranges(uid_set)
        typ, data, responses = self._command(
            "UID FETCH", "UID", "FETCH", uid_set, "(UID INTERNALDATE BODY.PEEK[])"
        )
        self._check(typ, data, "UID FETCH")
        self._file_events(r for r in responses if r[0] != "FETCH")
        fetches = [dat for rtyp, dat in responses if rtyp == "FETCH"]
        del responses  # the bodies are in `fetches`; let each go once yielded
        seen: set[int] = set()
        for group in group_fetch_entries(fetches):
            fast = parse_body_fetch(group)
            body: bytes | None
            if fast is not None:
                uid, date, body = fast
            else:
                uid, date, body = self._parse_body_slowly(group)
            if uid < 1 or not in_ranges(uid, ranges) or uid in seen:
                continue  # not asked for (MAL-06): never pair a message with it
            seen.add(uid)
            if body is None:
                logger.warning("%s: no body for UID %d in %s", self._where, uid, self._selected)
                continue
            yield Body(uid, body, date)

    def _parse_body_slowly(self, group: list[Any]) -> tuple[int, datetime | None, bytes | None]:
        try:
            parsed = parse_fetch_response(group, normalise_times=False, uid_is_key=False)
        except (IMAPClientProtocolError, ValueError) as exc:
            self._kill("garbled FETCH response")
            raise ProtocolError(
                f"{self._where}: garbled FETCH response: {clean_text(exc, 80)}"
            ) from exc
        for msg in parsed.values():
            uid = msg.get(b"UID")
            data = msg.get(b"BODY[]")
            date = msg.get(b"INTERNALDATE")
            return (
                uid if isinstance(uid, int) else 0,
                date if isinstance(date, datetime) else None,
                data if isinstance(data, bytes) else None,
            )
        return 0, None, None

    def _fetch_items(self, uid_set: str, items: str) -> dict[int, dict[bytes, Any]]:
        """UID FETCH through IMAPClient's parser, keyed by UID; responses without a
        UID, with UID 0 or for UIDs not asked for are dropped."""
        ranges = request_set_ranges(uid_set)
        typ, data, responses = self._command("UID FETCH", "UID", "FETCH", uid_set, items)
        self._check(typ, data, "UID FETCH")
        fetches = [dat for rtyp, dat in responses if rtyp == "FETCH"]
        self._file_events(r for r in responses if r[0] != "FETCH")
        out: dict[int, dict[bytes, Any]] = {}
        ignored = 0
        for group in group_fetch_entries(fetches):
            try:
                parsed = parse_fetch_response(group, normalise_times=False, uid_is_key=False)
            except (IMAPClientProtocolError, ValueError) as exc:
                self._kill("garbled FETCH response")
                raise ProtocolError(
                    f"{self._where}: garbled FETCH response: {clean_text(exc, 80)}"
                ) from exc
            for msg in parsed.values():
                uid = msg.get(b"UID")
                if not isinstance(uid, int) or not in_ranges(uid, ranges) or uid < 1:
                    ignored += 1
                    continue
                out.setdefault(uid, {}).update(msg)
        if ignored:
            logger.debug(
                "%s: ignored %d FETCH responses for UIDs not asked for", self._where, ignored
            )
        return out

    # -- changing messages ---------------------------------------------------------------

    def append(
        self,
        folder: str,
        data: bytes,
        *,
        flags: frozenset[str],
        date: datetime | None,
        uidvalidity: int | None = None,
    ) -> int | None:
        """APPEND one message; returns its UID from APPENDUID, or None.

        None when the server lacks UIDPLUS, sent no or a malformed APPENDUID, or the
        APPENDUID's UIDVALIDITY differs from ``uidvalidity`` (when given): no UID is
        always safe, a wrong one never is.  Bare LF/CR line ends are sent as CRLF
        (RFC 5322).  Raises :class:`AppendError` (a MessageError) when refused.
        """
        return self._append(folder, [(data, flags, date)], uidvalidity)[0]

    def append_many(
        self,
        folder: str,
        messages: Sequence[tuple[bytes, frozenset[str], datetime | None]],
        *,
        uidvalidity: int | None = None,
    ) -> list[int | None]:
        """APPEND several messages: one MULTIAPPEND command when offered (all or
        nothing), else one APPEND each.  Returns a UID or None per message, in order;
        all None when the APPENDUID set does not have one UID per message.  On a
        refusal raises :class:`AppendError`, whose ``appended`` says which went in."""
        if not messages:
            return []
        if self.has_multiappend and len(messages) > 1:
            return self._append(folder, list(messages), uidvalidity)
        out: list[int | None] = []
        for message in messages:
            try:
                out.extend(self._append(folder, [message], uidvalidity))
            except AppendError as exc:
                raise AppendError(str(exc), out, exc.code, exc.reason) from exc
        return out

    def _append(
        self,
        folder: str,
        messages: list[tuple[bytes, frozenset[str], datetime | None]],
        uidvalidity: int | None,
    ) -> list[int | None]:
        wire = self._wire_name(folder)
        args: list[bytes] = [wire]
        for data, flags, date in messages:
            self._warn_bad_flags(flags)
            args.append(flags_to_text(flags).encode("ascii"))
            if date is not None:
                args.append(b'"' + datetime_to_INTERNALDATE(date).encode("ascii") + b'"')
            args.append(_literal(_CRLF_RE.sub(b"\r\n", data)))
        typ, resp = self._run("APPEND", lambda: self._send_append(args))
        self._file_events(self._take())
        text = resp[0] if resp and isinstance(resp[0], bytes) else b""
        if typ != "OK":
            code = response_code(text)
            reason = clean_text(text)
            raise AppendError(
                f"{self._where}: APPEND to {folder} refused: {reason}",
                [],
                code[0] if code else None,
                reason,
            )
        none: list[int | None] = [None] * len(messages)
        if not self.has_uidplus:
            return none
        got = parse_appenduid(text)
        if got is None:
            logger.debug("%s: APPEND to %s: no usable APPENDUID", self._where, folder)
            return none
        got_validity, new_uids = got
        if uidvalidity is not None and got_validity != uidvalidity:
            logger.warning(
                "%s: APPENDUID for %s names UIDVALIDITY %d, expected %d; ignoring it",
                self._where,
                folder,
                got_validity,
                uidvalidity,
            )
            return none
        if len(new_uids) != len(messages) or len(set(new_uids)) != len(new_uids):
            logger.warning(
                "%s: APPENDUID for %s has %d UIDs for %d messages; ignoring it",
                self._where,
                folder,
                len(new_uids),
                len(messages),
            )
            return none
        return list(new_uids)

    def _send_append(self, args: list[bytes]) -> tuple[str, list[Any]]:
        imap = self._imap
        try:
            result: tuple[str, list[Any]] = self._client._raw_command(b"APPEND", args, uid=False)
        except imaplib.IMAP4.abort as exc:
            # Without LITERAL+, a server may answer NO (too big, over quota) instead of
            # "+ go ahead": IMAPClient calls that an abort, but the connection is fine.
            tag = imap.tagpre + str(imap.tagnum - 1).encode("ascii")
            answer = imap.tagged_commands.pop(tag, None)
            if answer is None or answer[0] not in ("NO", "BAD") or imap.refused_literal:
                raise
            logger.debug("%s: APPEND refused before the literal: %s", self._where, exc)
            return answer  # type: ignore[no-any-return]
        return result

    def add_flags(self, uids: Iterable[int], flags: frozenset[str]) -> None:
        """``UID STORE <set> +FLAGS.SILENT (...)``; a no-op for no UIDs or no flags."""
        self._store(uids, flags, "+FLAGS.SILENT")

    def remove_flags(self, uids: Iterable[int], flags: frozenset[str]) -> None:
        """``UID STORE <set> -FLAGS.SILENT (...)``; a no-op for no UIDs or no flags."""
        self._store(uids, flags, "-FLAGS.SILENT")

    def _store(self, uids: Iterable[int], flags: frozenset[str], op: str) -> None:
        self._need_selected("UID STORE")
        self._warn_bad_flags(flags)
        text = flags_to_text(flags)
        uid_list = list(uids)
        if text == "()" or not uid_list:
            return
        for uid_set in chunk_uid_sets(uid_list):
            typ, data, responses = self._command("UID STORE", "UID", "STORE", uid_set, op, text)
            self._file_events(responses)
            self._check(typ, data, "UID STORE")

    def uid_expunge(self, uids: Iterable[int]) -> None:
        """``UID EXPUNGE`` of exactly ``uids`` (which must carry \\Deleted).  FolderError
        without UIDPLUS: a bare EXPUNGE would take other clients' \\Deleted mail."""
        self._need_selected("UID EXPUNGE")
        if not self.has_uidplus:
            raise FolderError(
                f"{self._where}: cannot expunge single messages: the server lacks UIDPLUS"
            )
        for uid_set in chunk_uid_sets(uids):
            typ, data, responses = self._command("UID EXPUNGE", "UID", "EXPUNGE", uid_set)
            self._file_events(responses)
            self._check(typ, data, "UID EXPUNGE")

    def copy(
        self, uids: Iterable[int], target: str, *, uidvalidity: int | None = None
    ) -> dict[int, int]:
        """UID COPY to ``target``; returns source UID -> new UID from COPYUID (empty
        without UIDPLUS or when the code is malformed, names UIDs not copied or another
        UIDVALIDITY than ``uidvalidity``)."""
        return self._transfer("COPY", uids, target, uidvalidity)

    def move(
        self, uids: Iterable[int], target: str, *, uidvalidity: int | None = None
    ) -> dict[int, int]:
        """UID MOVE (RFC 6851) to ``target``; without MOVE: COPY, then \\Deleted, then
        UID EXPUNGE of exactly those UIDs (only after the COPY succeeded; without
        UIDPLUS they stay \\Deleted).  Returns the COPYUID mapping as :meth:`copy`."""
        if self.has_move:
            return self._transfer("MOVE", uids, target, uidvalidity)
        uid_list = sorted(set(uids))
        mapping = self._transfer("COPY", uid_list, target, uidvalidity)
        self.add_flags(uid_list, frozenset({"\\Deleted"}))
        if self.has_uidplus:
            self.uid_expunge(uid_list)
        else:
            logger.warning(
                "%s: moved %d messages by COPY; the originals are marked "
                "\\Deleted but not expunged (no UIDPLUS)",
                self._where,
                len(uid_list),
            )
        return mapping

    def _transfer(
        self, command: str, uids: Iterable[int], target: str, uidvalidity: int | None
    ) -> dict[int, int]:
        self._need_selected(f"UID {command}")
        wire = self._wire_name(target)
        mapping: dict[int, int] = {}
        for uid_set in chunk_uid_sets(uids):
            typ, data, responses = self._command(f"UID {command}", "UID", command, uid_set, wire)
            self._check(typ, data, f"UID {command} to {target}")
            texts = [dat for rtyp, dat in responses if rtyp == "OK" and isinstance(dat, bytes)]
            if data and isinstance(data[0], bytes):
                texts.append(data[0])
            self._file_events(responses)
            if self.has_uidplus:
                mapping.update(self._copyuid(texts, uid_set, target, uidvalidity))
        return mapping

    def _copyuid(
        self, texts: list[bytes], uid_set: str, target: str, uidvalidity: int | None
    ) -> dict[int, int]:
        asked = request_set_ranges(uid_set)
        mapping: dict[int, int] = {}
        validity: int | None = None
        for text in texts:
            code = response_code(text)
            if code is None or code[0] != "COPYUID":
                continue
            got = parse_copyuid(code[1])
            problem = None
            if got is None:
                problem = "malformed"
            else:
                v, src, dst = got
                if validity is not None and v != validity:
                    problem = "inconsistent UIDVALIDITY"
                elif uidvalidity is not None and v != uidvalidity:
                    problem = f"UIDVALIDITY {v}, expected {uidvalidity}"
                elif not all(in_ranges(u, asked) for u in src):
                    problem = "names UIDs that were not copied"
                elif any(u in mapping for u in src):
                    problem = "names a UID twice"
                else:
                    validity = v
                    mapping.update(zip(src, dst, strict=True))
            if problem is not None:
                logger.warning("%s: ignoring COPYUID for %s: %s", self._where, target, problem)
                return {}
        if len(set(mapping.values())) != len(mapping):
            return {}
        return mapping

    # -- misc ----------------------------------------------------------------------------

    def noop(self) -> None:
        """NOOP: keeps the connection alive and collects pending events."""
        typ, data, responses = self._command("NOOP", "NOOP")
        self._file_events(responses)
        self._check(typ, data, "NOOP")

    def drain(self) -> list[Event]:
        """Pop every unsolicited event seen since the last call, oldest first.

        Events: ``("EXISTS", n)``, ``("EXPUNGE", seq)``, ``("VANISHED", frozenset uids)``,
        ``("FETCH", (seq, uid or None, FlagInfo or None when no FLAGS came, modseq or
        None))``, ``("HIGHESTMODSEQ", n)``,
        ``("RECENT", n)``, ``("BYE", text)``, ``("CLOSED", "")`` and
        ``("OVERFLOW", dropped)`` when more than :data:`MAX_EVENTS` piled up (then
        resynchronise rather than trust the events).
        """
        if self._dead is None:
            self._file_events(self._take())
        out = list(self._events)
        self._events.clear()
        if self._dropped:
            out.append(("OVERFLOW", self._dropped))
            self._dropped = 0
        return out

    def idle_wait(self, timeout: float) -> list[Event]:
        """IDLE on the selected mailbox for up to ``timeout`` seconds or until the server
        says something, then DONE; returns the events (as :meth:`drain`).

        Without IDLE: a NOOP.  Wakes on data from the socket; a response that arrived
        together with the IDLE continuation may only be seen at ``timeout``.
        """
        self._need_selected("IDLE")
        if not self.has_idle:
            self.noop()
            return self.drain()
        self._run("IDLE", self._client.idle)
        sock = self._client.socket()
        ready = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not ready:
            try:
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLIN)
                poller.poll(max(0.0, timeout) * 1000)
            except OSError as exc:
                self._kill(str(exc))
                raise AccountError(
                    f"{self._where}: connection lost during IDLE: {clean_text(exc)}"
                ) from exc
        self._run("IDLE", self._client.idle_done)
        return self.drain()

    @property
    def max_literal(self) -> int:
        """The largest literal (message) this session accepts, in bytes."""
        return int(self._imap.max_literal)

    @property
    def alive(self) -> bool:
        """False once the connection was dropped (a protocol error, a lost link,
        BYE) or logged out: every later command raises AccountError."""
        return self._dead is None and self._bye is None

    def logout(self) -> None:
        """LOGOUT and close.  Never raises, also on a dead connection; idempotent."""
        if self._dead is not None:
            return
        self._dead = "logged out"
        try:
            self._client.logout()
        except (imaplib.IMAP4.error, OSError, ValueError) as exc:
            logger.debug("%s: LOGOUT failed (%s); closing", self._where, clean_text(exc))
            _close_quietly(self._client)

    def __enter__(self) -> ImapSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()

    # -- plumbing ------------------------------------------------------------------------

    def _wire_name(self, name: str) -> bytes:
        try:
            check_mailbox_name(name)
        except ValueError as exc:
            raise FolderError(
                f"{self._where}: cannot use mailbox name {clean_text(name, 80)!r}: {exc}"
            ) from None
        return b'"' + encode_mailbox_name(name).replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'

    def _warn_bad_flags(self, flags: Iterable[str]) -> None:
        bad = [f for f in flags if f != "\\Recent" and not is_flag_atom(f)]
        if bad:
            logger.warning(
                "%s: not sending flags the IMAP syntax cannot carry: %s",
                self._where,
                ", ".join(clean_text(f, 40) for f in bad),
            )

    def _need_selected(self, what: str) -> None:
        if self._selected is None and self._dead is None:
            raise FolderError(f"{self._where}: {what} needs a selected mailbox")

    def _command(
        self, what: str, name: str, *args: str | bytes
    ) -> tuple[str, list[Any], list[tuple[str, Any]]]:
        """Run one command through imaplib; returns (tagged type, tagged data, the
        untagged responses it brought, in order).  Events from before are filed first."""
        self._file_events(self._take())
        typ, data = self._run(what, lambda: self._imap._simple_command(name, *args))
        return typ, data, self._take()

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        """Call ``fn`` mapping connection trouble to AccountError/ProtocolError."""
        if self._dead is not None:
            raise AccountError(f"{self._where}: connection closed ({self._dead})")
        if self._bye is not None:
            self._kill(f"server said BYE: {self._bye}")
            raise AccountError(f"{self._where}: server closed the connection: {self._bye}")
        try:
            return fn()
        except IMAPClientProtocolError as exc:
            self._kill("protocol error")
            raise ProtocolError(
                f"{self._where}: garbled response to {what}: {clean_text(exc)}"
            ) from exc
        except imaplib.IMAP4.abort as exc:
            refused = self._imap.refused_literal
            self._kill(str(exc))
            if refused is not None:
                mailbox = f" in {self._selected}" if self._selected is not None else ""
                raise ProtocolError(
                    f"{self._where}: {refused} during {what}{mailbox}; connection dropped"
                ) from exc
            if "unexpected" in str(exc):  # imaplib: a line that is not IMAP, a forged tag
                raise ProtocolError(
                    f"{self._where}: garbled response to {what}: {clean_text(exc)}"
                ) from exc
            raise AccountError(
                f"{self._where}: connection lost during {what}: {clean_text(exc)}"
            ) from exc
        except imaplib.IMAP4.error as exc:
            # BAD, or a command in the wrong state: the mailbox-level scope.
            raise FolderError(f"{self._where}: {what} failed: {clean_text(exc)}") from exc
        except (OSError, EOFError) as exc:  # socket errors, ssl errors, TimeoutError
            self._kill(str(exc))
            kind = "timed out" if isinstance(exc, TimeoutError) else "connection lost"
            raise AccountError(
                f"{self._where}: {kind} during {what}: {clean_text(exc) or type(exc).__name__}"
            ) from exc

    def _check(self, typ: str, data: list[Any], what: str) -> None:
        if typ != "OK":
            text = data[0] if data and isinstance(data[0], bytes) else b""
            raise FolderError(f"{self._where}: {what} failed: {clean_text(text)}")

    def _take(self) -> list[tuple[str, Any]]:
        """The untagged responses recorded since the last take; empties imaplib's dict
        so it never grows."""
        imap = self._imap
        taken: list[tuple[str, Any]] = imap.ordered
        imap.ordered = []
        imap.untagged_responses.clear()
        return taken

    def _file_events(self, responses: Iterable[tuple[str, Any]]) -> None:
        """Keep what matters of unsolicited responses as events; drop the rest."""
        pending_fetch: list[FetchEntry] = []
        for typ, dat in responses:
            if typ == "FETCH":
                pending_fetch.append(dat)
                if isinstance(dat, tuple):
                    continue
                for seq, uid, info, has_flags in _safe_flag_fetches(pending_fetch):
                    self._event(("FETCH", (seq, uid, info if has_flags else None, info.modseq)))
                pending_fetch = []
            elif typ in ("EXISTS", "EXPUNGE", "RECENT"):
                value = _int(dat, None)
                if value is not None:
                    self._event((typ, value))
            elif typ == "VANISHED" and isinstance(dat, bytes):
                got = self._vanished(dat)
                if got:
                    self._event(("VANISHED", got))
            elif typ == "BYE":
                self._bye = clean_text(dat)
                self._event(("BYE", self._bye))
            elif typ in ("OK", "NO", "BAD") and isinstance(dat, bytes):
                code = response_code(dat)
                if code is None:
                    continue
                if code[0] == "ALERT":
                    self._alert(dat)
                elif code[0] == "HIGHESTMODSEQ":
                    value = _int(code[1], None)
                    if value is not None:
                        self._event(("HIGHESTMODSEQ", value))
                elif code[0] == "CLOSED":
                    self._event(("CLOSED", ""))

    def _event(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self._dropped += 1
        self._events.append(event)

    def _vanished(self, dat: bytes) -> frozenset[int]:
        return frozenset(self._vanished_split(dat)[1])

    def _vanished_split(self, dat: bytes) -> tuple[bool, list[int]]:
        try:
            return parse_vanished(dat)
        except UidSetError as exc:
            self._kill("bad VANISHED")
            raise ProtocolError(f"{self._where}: refusing a VANISHED response: {exc}") from exc

    def _alert(self, text: bytes) -> None:
        logger.warning("%s: server alert: %s", self._where, clean_text(text))

    def _kill(self, why: str) -> None:
        if self._dead is None:
            self._dead = clean_text(why, 100)
            self._selected = None
            _close_quietly(self._client)


# ---------------------------------------------------------------------------------------
# helpers

_SELECT_DATA = frozenset(
    {
        "FLAGS",
        "OK",
        "EXISTS",
        "RECENT",
        "VANISHED",
        "FETCH",
        "UIDVALIDITY",
        "UIDNEXT",
        "HIGHESTMODSEQ",
        "NOMODSEQ",
        "PERMANENTFLAGS",
        "READ-ONLY",
        "READ-WRITE",
        "CLOSED",
        "UNSEEN",
    }
)


def _status_response(rtyp: str, dat: Any) -> tuple[bytes, dict[bytes, int]] | None:
    """An untagged ``STATUS name (KEY n ...)`` -> (raw name, {KEY: n}); None otherwise."""
    if rtyp != "STATUS" or not isinstance(dat, bytes):
        return None
    try:
        parsed = parse_response([dat])
    except (IMAPClientProtocolError, ValueError):
        return None
    if len(parsed) != 2 or not isinstance(parsed[1], tuple):
        return None
    name = parsed[0]
    name = str(name).encode() if isinstance(name, int) else name
    if not isinstance(name, bytes):
        return None
    pairs = parsed[1]
    values = {
        key.upper(): value
        for key, value in zip(pairs[::2], pairs[1::2], strict=False)
        if isinstance(key, bytes) and isinstance(value, int)
    }
    return name, values


def _status_info(values: Mapping[bytes, int]) -> StatusInfo | None:
    try:
        return StatusInfo(
            messages=values[b"MESSAGES"],
            uidnext=values[b"UIDNEXT"],
            uidvalidity=values[b"UIDVALIDITY"],
            highestmodseq=values.get(b"HIGHESTMODSEQ") or None,
        )
    except KeyError:
        return None


def _permanent_flags(value: bytes) -> frozenset[str]:
    """``b"(\\Seen \\Deleted $Label \\*)"`` -> the flag names, ``\\*`` kept (it is not
    a flag atom, so :func:`decode_flags` would drop it)."""
    items = value.strip().strip(b"()").split()
    star = {"\\*"} if any(i == b"\\*" for i in items) else set()
    return frozenset(decode_flags(b" ".join(i for i in items if i != b"\\*")) | star)


def _ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise AccountError(f"cannot load ca_file {ca_file}: {exc}") from exc
    return ctx


def _cert_problem(exc: ssl.SSLCertVerificationError, ca_file: Path | None) -> str:
    reason = exc.verify_message or exc.reason or str(exc)
    text = f"certificate verify failed: {reason}"
    if exc.verify_code in (18, 19, 20, 21):  # self-signed / unknown issuer
        text += (
            " (set ca_file to trust it)"
            if ca_file is None
            else f" (not signed by a CA in {ca_file} or the system store)"
        )
    return text


def _close_quietly(client: Any) -> None:
    with contextlib.suppress(OSError, imaplib.IMAP4.error, AttributeError, ValueError):
        client.shutdown()


def _int(value: Any, default: T) -> int | T:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _delimiter_text(value: Any) -> str | None:
    if isinstance(value, bytes) and len(value) == 1 and 0x20 < value[0] < 0x7F:
        return value.decode("ascii")
    return None


def _both_inbox(a: bytes, b: bytes) -> bool:
    return a.upper() == b.upper() == b"INBOX"


def _before_closed(
    responses: list[tuple[str, Any]],
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Split at ``OK [CLOSED]``: what came before is about the previous mailbox."""
    for i, (typ, dat) in enumerate(responses):
        if typ == "OK" and isinstance(dat, bytes):
            code = response_code(dat)
            if code is not None and code[0] == "CLOSED":
                return responses[:i], responses[i + 1 :]
    return [], responses


def _safe_flag_fetches(
    entries: Iterable[FetchEntry],
) -> Iterator[tuple[int, int | None, FlagInfo, bool]]:
    """parse_flag_fetches, skipping (and logging) a garbled response instead of
    losing the whole listing to it."""
    errors: list[str] = []
    yield from parse_flag_fetches(entries, errors)
    if errors:
        logger.debug(
            "ignored %d unparsable FETCH responses, e.g. %s", len(errors), clean_text(errors[0], 80)
        )


def _uid_sets(uids: str | Iterable[int]) -> Iterator[str]:
    if isinstance(uids, str):
        request_set_ranges(uids)  # ValueError for a malformed set
        yield uids
    else:
        yield from chunk_uid_sets(uids)


def _batches(uids: list[int], sizes: Mapping[int, int], batch_bytes: int) -> Iterator[list[int]]:
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (total + size > batch_bytes or len(batch) >= _MAX_BATCH_COUNT):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


__all__ = [
    "AppendError",
    "Body",
    "Event",
    "FlagInfo",
    "FolderInfo",
    "ImapSession",
    "SelectInfo",
    "StatusInfo",
]
