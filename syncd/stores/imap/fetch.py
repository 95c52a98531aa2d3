"""Reading messages from the selected mailbox: flag listings (CONDSTORE/QRESYNC
deltas), SEARCH, header fields and bodies in batches."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.stores.imap.parse import (
    MAX_UID,
    FlagInfo,
    chunk_uid_sets,
    format_uid_set,
    group_fetch_entries,
    in_ranges,
    parse_body_fetch,
    request_set_ranges,
)
from syncd.stores.imap.results import Body
from syncd.stores.imap.runner import CommandRunner

# The session's logger: users' log filters use that name.
logger = logging.getLogger("syncd.imap.session")

#: Messages per FETCH when no sizes are known.
_MAX_BATCH_COUNT = 500

_HEADER_FIELD_RE = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 field name: printable, no ':'


class FetchCommands(CommandRunner):
    """UID FETCH and UID SEARCH; mixed into ImapSession."""

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
        for msg in self._parse_fetch(group).values():
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
            for msg in self._parse_fetch(group).values():
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
