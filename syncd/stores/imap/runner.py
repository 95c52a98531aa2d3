"""The command runner under :class:`~syncd.stores.imap.session.ImapSession`: the
connection's state, one command at a time through imaplib, the mapping of connection
trouble to syncd's scoped errors, and the bounded queue of unsolicited events.

Every untagged response is recorded in arrival order (imaplib's dict loses the
order across types); each command reads what belongs to it from that record and
files the rest (EXISTS, EXPUNGE, VANISHED, FETCH, HIGHESTMODSEQ...) as events in
a bounded queue that :meth:`CommandRunner.drain` empties.  The session's commands
are written on top of this class (:mod:`.mailboxes`, :mod:`.fetch`, :mod:`.change`,
:mod:`.idle`).
"""

from __future__ import annotations

import imaplib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from imapclient.exceptions import ProtocolError as IMAPClientProtocolError
from imapclient.response_parser import parse_fetch_response

from syncd.errors import AccountError, FolderError, ProtocolError
from syncd.mailbox_names import check_mailbox_name, encode_mailbox_name
from syncd.stores.imap.connect import Client, close_quietly
from syncd.stores.imap.parse import (
    MAX_UID,
    FetchEntry,
    FlagInfo,
    UidSetError,
    clean_text,
    in_ranges,
    is_flag_atom,
    parse_vanished,
    response_code,
)
from syncd.stores.imap.responses import safe_flag_fetches, to_int
from syncd.stores.imap.results import Event

# The session's logger: users' log filters use that name.
logger = logging.getLogger("syncd.imap.session")

T = TypeVar("T")

#: Events kept between two drain() calls; past this the oldest are dropped and an
#: ("OVERFLOW", n) event tells the caller to resynchronise instead.
MAX_EVENTS = 10_000


class CommandRunner:
    """The connection under an ImapSession and the plumbing its commands share."""

    def __init__(
        self, client: Client, *, where: str, capabilities: frozenset[str], enabled: frozenset[str]
    ) -> None:
        """Use :meth:`ImapSession.connect <syncd.stores.imap.session.ImapSession.connect>`."""
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

    # -- reading FETCH data --------------------------------------------------------------

    def _collect_flags(
        self, fetches: list[FetchEntry], ranges: list[tuple[int, int]] | None
    ) -> dict[int, FlagInfo]:
        """uid -> FlagInfo from FETCH data; ``ranges`` None accepts any UID."""
        out: dict[int, FlagInfo] = {}
        ignored = 0
        if ranges == [(1, MAX_UID)]:
            ranges = None  # "1:*": every UID was asked for; skip 100k range checks
        for _seq, uid, info, has_flags in safe_flag_fetches(fetches):
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

    def _parse_fetch(self, group: list[Any]) -> dict[int, dict[bytes, Any]]:
        """One FETCH response (its entries grouped) through IMAPClient's parser.  A
        response it cannot read drops the connection (ProtocolError)."""
        try:
            parsed: dict[int, dict[bytes, Any]] = parse_fetch_response(
                group, normalise_times=False, uid_is_key=False
            )
        except (IMAPClientProtocolError, ValueError) as exc:
            raise self._garbled(
                "FETCH response", exc, why="garbled FETCH response", limit=80
            ) from exc
        return parsed

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
            close_quietly(self._client)

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
            raise self._garbled(f"response to {what}", exc, why="protocol error") from exc
        except imaplib.IMAP4.abort as exc:
            refused = self._imap.refused_literal
            self._kill(str(exc))
            if refused is not None:
                mailbox = f" in {self._selected}" if self._selected is not None else ""
                raise ProtocolError(
                    f"{self._where}: {refused} during {what}{mailbox}; connection dropped"
                ) from exc
            if "unexpected" in str(exc):  # imaplib: a line that is not IMAP, a forged tag
                raise self._garbled(f"response to {what}", exc, why=str(exc)) from exc
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
                for seq, uid, info, has_flags in safe_flag_fetches(pending_fetch):
                    self._event(("FETCH", (seq, uid, info if has_flags else None, info.modseq)))
                pending_fetch = []
            elif typ in ("EXISTS", "EXPUNGE", "RECENT"):
                value = to_int(dat, None)
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
                    value = to_int(code[1], None)
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

    def _garbled(
        self, subject: str, exc: Exception, *, why: str, limit: int = 200
    ) -> ProtocolError:
        """Drop the connection -- after a response it could not read, a session cannot
        trust the next one -- and return the ProtocolError to raise."""
        self._kill(why)
        return ProtocolError(f"{self._where}: garbled {subject}: {clean_text(exc, limit)}")

    def _kill(self, why: str) -> None:
        if self._dead is None:
            self._dead = clean_text(why, 100)
            self._selected = None
            close_quietly(self._client)
