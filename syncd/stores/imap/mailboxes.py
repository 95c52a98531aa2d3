"""Mailbox commands of the IMAP session: LIST, STATUS (and LIST-STATUS), SELECT/EXAMINE
(with QRESYNC), CREATE."""

from __future__ import annotations

import logging

from imapclient.exceptions import ProtocolError as IMAPClientProtocolError
from imapclient.response_parser import parse_response

from syncd.errors import FolderError
from syncd.mailbox_names import decode_mailbox_name, encode_mailbox_name
from syncd.stores.imap.parse import (
    MAX_UID,
    clean_text,
    group_fetch_entries,
    request_set_ranges,
    response_code,
)
from syncd.stores.imap.responses import (
    before_closed,
    both_inbox,
    delimiter_text,
    read_select,
    safe_flag_fetches,
    status_info,
    status_response,
)
from syncd.stores.imap.results import FolderInfo, SelectInfo, StatusInfo
from syncd.stores.imap.runner import CommandRunner

# The session's logger: users' log filters use that name.
logger = logging.getLogger("syncd.imap.session")


class MailboxCommands(CommandRunner):
    """LIST, STATUS, SELECT and CREATE; mixed into ImapSession."""

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
            delimiter = delimiter_text(delim)
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
                        delim = delimiter_text(parsed[1])
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
            got = status_response(rtyp, dat)
            if got is None:
                continue
            if got[0] == encoded or both_inbox(got[0], encoded):
                values.update(got[1])
        self._file_events(r for r in responses if r[0] != "STATUS")
        info = status_info(values)
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
            got = status_response(rtyp, dat)
            if got is None:
                continue
            try:
                name = decode_mailbox_name(got[0])
            except ValueError:
                continue
            info = status_info(got[1])
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
            self._file_events(before_closed(responses)[0])
            raise FolderError(
                f"{self._where}: {command} {name} failed: {clean_text(data[0] if data else b'')}"
            )
        self._imap.state = "SELECTED"
        old, mine = before_closed(responses)
        self._file_events(old)
        got = read_select(mine)
        vanished: set[int] = set()
        for kind, dat in got.notices:  # in arrival order, as the server sent them
            if kind == "ALERT":
                self._alert(dat)
            else:
                vanished.update(self._vanished(dat))
        self._file_events(got.rest)
        code = response_code(data[0]) if data and isinstance(data[0], bytes) else None
        readonly_now = readonly or (code is not None and code[0] == "READ-ONLY")
        uidvalidity = got.uidvalidity
        if uidvalidity is None or not 0 < uidvalidity <= MAX_UID:
            raise FolderError(
                f"{self._where}: {command} {name}: the server sent no valid UIDVALIDITY"
            )
        self._selected = name
        uidnext = got.uidnext
        if uidnext is None or not 0 < uidnext <= MAX_UID + 1:
            uidnext = self._compute_uidnext(got.exists)
        changed = self._collect_flags(got.fetches, None) if got.fetches else {}
        return SelectInfo(
            uidvalidity=uidvalidity,
            uidnext=uidnext,
            exists=got.exists,
            highestmodseq=None if (got.nomodseq or not self.has_condstore) else got.highestmodseq,
            vanished=frozenset(vanished),
            changed=changed,
            readonly=readonly_now,
            sticky=got.sticky,
            permanent_flags=got.permanent_flags,
        )

    def _compute_uidnext(self, exists: int) -> int:
        """SRV-06: no (sane) UIDNEXT in the SELECT answer: the highest UID plus one."""
        if exists == 0:
            return 1
        typ, data, responses = self._command("FETCH", "FETCH", "*", "(UID)")
        self._check(typ, data, "FETCH *")
        fetches = [dat for rtyp, dat in responses if rtyp == "FETCH"]
        highest = max((r[1] or 0 for r in safe_flag_fetches(fetches)), default=0)
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

    def rename_folder(self, old: str, new: str) -> None:
        """RENAME ``old`` to ``new`` (its children move with it, RFC 3501 §6.3.5).
        FolderError when the server refuses."""
        wire_old, wire_new = self._wire_name(old), self._wire_name(new)
        typ, data, responses = self._command("RENAME", "RENAME", wire_old, wire_new)
        self._file_events(responses)
        self._check(typ, data, f"RENAME {old} {new}")

    def delete_folder(self, name: str) -> None:
        """DELETE ``name`` (its messages go with it).  FolderError when refused."""
        wire = self._wire_name(name)
        typ, data, responses = self._command("DELETE", "DELETE", wire)
        self._file_events(responses)
        self._check(typ, data, f"DELETE {name}")

    def subscribed(self) -> list[FolderInfo]:
        """The subscribed names, decoded (undecodable ones skipped; LIST already
        reported them): ``LIST (SUBSCRIBED) "" "*"`` where the server has
        LIST-EXTENDED (RFC 5258; IMAP4rev2 has no LSUB), else ``LSUB "" "*"``.  A
        subscribed name need not exist."""
        extended = bool({"LIST-EXTENDED", "IMAP4REV2"} & self.capabilities)
        if extended:
            kind = "LIST"
            typ, data, responses = self._command("LIST", "LIST", "(SUBSCRIBED)", '""', '"*"')
        else:
            kind = "LSUB"
            typ, data, responses = self._command("LSUB", "LSUB", '""', '"*"')
        self._check(typ, data, kind)
        out: list[FolderInfo] = []
        entries = [dat for rtyp, dat in responses if rtyp == kind]
        for group in group_fetch_entries(entries):
            try:
                parsed = parse_response(group)
            except (IMAPClientProtocolError, ValueError):
                continue
            if len(parsed) != 3 or not isinstance(parsed[0], tuple):
                continue
            attrs, delim, raw = parsed
            raw_name = str(raw).encode("ascii") if isinstance(raw, int) else raw
            if not isinstance(raw_name, bytes):
                continue
            try:
                name = decode_mailbox_name(raw_name)
            except ValueError:
                continue
            flags = frozenset(a.decode("ascii", "replace") for a in attrs if isinstance(a, bytes))
            if extended and "\\SUBSCRIBED" not in {f.upper() for f in flags}:
                continue  # a parent listed for its subscribed children
            out.append(FolderInfo(name, delimiter_text(delim), flags))
        self._file_events(r for r in responses if r[0] != kind)
        return out

    def subscribe(self, name: str, *, on: bool = True) -> None:
        """SUBSCRIBE ``name`` (UNSUBSCRIBE when not ``on``).  FolderError when refused."""
        command = "SUBSCRIBE" if on else "UNSUBSCRIBE"
        typ, data, responses = self._command(command, command, self._wire_name(name))
        self._file_events(responses)
        self._check(typ, data, f"{command} {name}")

    def myrights(self, name: str) -> str:
        """``MYRIGHTS name`` (RFC 4314): the user's rights on the mailbox, as letters
        (``lrswipkxte...``).  Only when the server has ACL.  FolderError when refused."""
        typ, data, responses = self._command("MYRIGHTS", "MYRIGHTS", self._wire_name(name))
        self._check(typ, data, f"MYRIGHTS {name}")
        rights = ""
        for rtyp, dat in responses:
            if rtyp != "MYRIGHTS" or not isinstance(dat, bytes):
                continue
            try:
                parsed = parse_response([dat])
            except (IMAPClientProtocolError, ValueError):
                continue
            if len(parsed) == 2:
                value = parsed[1]
                rights = (
                    value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
                )
        self._file_events(r for r in responses if r[0] != "MYRIGHTS")
        return rights
