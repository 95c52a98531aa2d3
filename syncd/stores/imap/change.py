"""Changing messages: APPEND (MULTIAPPEND, APPENDUID), flag STOREs, UID EXPUNGE, COPY and
MOVE (COPYUID; COPY + \\Deleted + UID EXPUNGE without MOVE)."""

from __future__ import annotations

import imaplib
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from imapclient.datetime_util import datetime_to_INTERNALDATE
from imapclient.imapclient import _literal

from syncd.errors import FolderError
from syncd.stores.imap.parse import (
    chunk_uid_sets,
    clean_text,
    flags_to_text,
    in_ranges,
    parse_appenduid,
    parse_copyuid,
    request_set_ranges,
    response_code,
)
from syncd.stores.imap.results import AppendError
from syncd.stores.imap.runner import CommandRunner

# The session's logger: users' log filters use that name.
logger = logging.getLogger("syncd.imap.session")

_CRLF_RE = re.compile(rb"\r\n|\r(?!\n)|\n")


class ChangeCommands(CommandRunner):
    """APPEND, STORE, EXPUNGE, COPY and MOVE; mixed into ImapSession."""

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
            logger.debug("%s: APPEND refused before the literal: %s", self._where, clean_text(exc))
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
