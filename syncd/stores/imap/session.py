"""One IMAP connection, with a typed API over IMAPClient 4.1 / imaplib.

This package is the only place in syncd that touches IMAPClient or imaplib
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

import logging
from pathlib import Path

from syncd.auth.credentials import Authenticator
from syncd.stores.imap.change import ChangeCommands
from syncd.stores.imap.connect import TlsMode, close_quietly, open_client, secure_and_login
from syncd.stores.imap.fetch import FetchCommands
from syncd.stores.imap.idle import IdleCommands
from syncd.stores.imap.mailboxes import MailboxCommands
from syncd.stores.imap.parse import FlagInfo, clean_text
from syncd.stores.imap.results import AppendError, Body, Event, FolderInfo, SelectInfo, StatusInfo
from syncd.stores.imap.runner import MAX_EVENTS

# The name it had before the package split: users\' log filters use it.

logger = logging.getLogger("syncd.imap.session")


class ImapSession(MailboxCommands, FetchCommands, ChangeCommands, IdleCommands):
    """A logged-in IMAP connection.  Not thread-safe: one thread uses it at a time.

    Build it with :meth:`connect`; always call :meth:`logout` (it never raises).
    Mailbox names are Unicode ``str`` (modified UTF-7 is done here), flags are
    ``frozenset[str]`` of IMAP flag names without ``\\Recent``.

    The commands live in one module per kind, mixed in here over the command
    runner: :mod:`.mailboxes` (LIST, STATUS, SELECT, CREATE), :mod:`.fetch` (UID
    FETCH, SEARCH), :mod:`.change` (APPEND, STORE, EXPUNGE, COPY, MOVE),
    :mod:`.idle` (IDLE), :mod:`.runner` (NOOP, drain, logout, the capabilities).
    """

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
        client, ctx = open_client(
            host,
            port,
            tls=tls,
            ca_file=ca_file,
            timeout=timeout,
            max_literal=max_literal,
            where=where,
        )
        try:
            caps = secure_and_login(client, client._imap, where, tls_mode=tls, ctx=ctx, auth=auth)
            session = cls(client, where=where, capabilities=caps, enabled=frozenset())
            session._enable()
        except BaseException:
            close_quietly(client)
            raise
        # The capability line is the account's to log, once per run (issue 15): an
        # account opens several connections per cycle, all with the same answer.
        return session

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

    def __enter__(self) -> ImapSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()


# The values this session's API returns are imported from here (and from
# syncd.stores.imap); they live in .results so the command modules can share them.
__all__ = [
    "MAX_EVENTS",
    "AppendError",
    "Body",
    "Event",
    "FlagInfo",
    "FolderInfo",
    "ImapSession",
    "SelectInfo",
    "StatusInfo",
    "TlsMode",
]
