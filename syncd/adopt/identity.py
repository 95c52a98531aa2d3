"""Content identity that ignores the headers other sync tools add to each message.

mbsync writes ``X-TUID: <12 chars>`` into every message it copies (both ways),
offlineimap ``X-OfflineIMAP: <n>-<m>`` when the server lacks UIDPLUS, and
``X-Keywords:`` when its ``synclabels`` was on.  A message copied by them is the
server's message plus those lines, so syncd's ``wire_size``/``body_hash`` and
``message_id`` (``syncd.message``) are applied here to the bytes with those header
fields removed -- on *both* sides, since mbsync also uploads X-TUID to the server.
"""

from __future__ import annotations

import re
from typing import Final

from syncd.message import body_hash, message_id, wire_size

#: Header fields added by mbsync (X-TUID) and offlineimap (X-OfflineIMAP, X-Keywords).
ADDED_HEADERS: Final = ("X-TUID", "X-OfflineIMAP", "X-Keywords")

_FIELD_RE: Final = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def strip_added_headers(data: bytes, names: tuple[str, ...] = ADDED_HEADERS) -> bytes:
    """``data`` without the header fields ``names`` (case-insensitive, folded
    continuation lines included).  The body and every other byte are untouched,
    line endings included; a message without such fields is returned as is."""
    wanted = {n.lower().encode("ascii") for n in names}
    end = _header_end(data)
    head = data[:end]
    if not any(w in head.lower() for w in wanted):
        return data
    out: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                out.append(line)
            continue
        match = _FIELD_RE.match(line)
        dropping = match is not None and match.group(1).lower() in wanted
        if not dropping:
            out.append(line)
    return b"".join(out) + data[end:]


def _header_end(data: bytes) -> int:
    """Offset of the blank line ending the header block (len(data) if none)."""
    candidates = [i for i in (data.find(b"\n\n"), data.find(b"\r\n\r\n")) if i >= 0]
    if not candidates:
        return len(data)
    first = min(candidates)
    return first + (1 if data[first : first + 2] == b"\n\n" else 2)


def adopted_wire_size(data: bytes) -> int:
    """``syncd.message.wire_size`` of the message without the added headers."""
    return wire_size(strip_added_headers(data))


def adopted_body_hash(data: bytes) -> str:
    """``syncd.message.body_hash`` of the message without the added headers."""
    return body_hash(strip_added_headers(data))


def adopted_identity(data: bytes) -> tuple[str | None, int, str]:
    """``(Message-ID, wire size, content hash)`` ignoring the added headers: equal for
    a file mbsync/offlineimap wrote and the server message it came from."""
    stripped = strip_added_headers(data)
    return message_id(stripped), wire_size(stripped), body_hash(stripped)
