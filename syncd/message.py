"""Byte-level helpers for message contents (line endings, identity, hashes).

Messages are stored on disk with Unix line endings (as Dovecot, mutt and
notmuch expect) and sent to the server with CRLF (RFC 5322 on the wire;
Cyrus refuses bare LF).  Hashes are taken over the LF form, so the same
message compares equal whichever side it came from.
"""

from __future__ import annotations

import hashlib
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Final

_BARE_LF = re.compile(rb"(?<!\r)\n")
_HEADER_LIMIT = 256 * 1024

#: Header fields other sync tools add to every message they copy: mbsync's X-TUID,
#: offlineimap's X-OfflineIMAP (no UIDPLUS) and X-Keywords (synclabels).
ADDED_HEADERS: Final = ("X-TUID", "X-OfflineIMAP", "X-Keywords")
_FIELD_RE: Final = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def to_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def to_crlf(data: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", data)


def wire_size(data: bytes) -> int:
    """The size of ``data`` once every bare LF is a CRLF (what RFC822.SIZE reports)."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def body_hash(data: bytes) -> str:
    return hashlib.sha256(to_lf(data)).hexdigest()


def message_id(data: bytes) -> str | None:
    """The Message-ID of a message (or of just its header block), normalised.

    Parsing stops at the end of the headers (or 256 KiB), so a large body is never scanned.
    """
    head = to_lf(data[:_HEADER_LIMIT])
    end = head.find(b"\n\n")
    if end >= 0:
        head = head[: end + 1]
    try:
        parsed = BytesHeaderParser(policy=compat32).parsebytes(head)
        value = parsed.get("Message-ID")
    except (ValueError, TypeError, IndexError):
        return None
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


#: The header fields that identify a message for a move between folders without
#: reading its body: the same Message-ID on a different delivery (a list copy and a
#: direct copy, a resent message) differs in its Received chain or its Date.
IDENTITY_FIELDS: Final = ("Message-ID", "Date", "From", "Subject", "Received")


def header_identity(data: bytes) -> str | None:
    """A digest of the :data:`IDENTITY_FIELDS` of a message, its header block, or
    the lines a server returned for ``BODY.PEEK[HEADER.FIELDS (...)]`` -- the same
    value for all three.  None without a Message-ID (nothing to identify it by)."""
    head = to_lf(data[:_HEADER_LIMIT])
    end = head.find(b"\n\n")
    if end >= 0:
        head = head[: end + 1]
    try:
        parsed = BytesHeaderParser(policy=compat32).parsebytes(head)
        values = [
            [" ".join(str(v).split()) for v in parsed.get_all(name) or []]
            for name in IDENTITY_FIELDS
        ]
    except (ValueError, TypeError, IndexError):
        return None
    if not values[0] or not values[0][0]:
        return None
    return hashlib.sha256(repr(values).encode("utf-8", "surrogateescape")).hexdigest()


# --- identity that ignores the headers other sync tools add --------------------------
# A message mbsync or offlineimap copied is the original plus those lines (mbsync adds
# X-TUID both ways, so a server copy may carry it too): pairing a Maildir they wrote
# compares both sides without them.


def strip_added_headers(data: bytes, names: tuple[str, ...] = ADDED_HEADERS) -> bytes:
    """``data`` without the header fields ``names`` (case-insensitive, folded
    continuation lines included).  The body and every other byte are untouched,
    line endings included; a message without such fields is returned as is."""
    wanted = {n.lower().encode("ascii") for n in names}
    end = _header_end(data)
    head = data[:end]
    lowered = head.lower()
    if not any(w in lowered for w in wanted):
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


def added_headers_size(header_lines: bytes) -> int:
    """The wire size of the added fields among ``header_lines`` (what a server returns
    for ``BODY.PEEK[HEADER.FIELDS (X-TUID ...)]``): subtracted from a server message's
    size, it gives :func:`adopted_wire_size` without downloading the message."""
    if not header_lines.strip():
        return 0
    kept = strip_added_headers(header_lines.rstrip(b"\r\n") + b"\r\n\r\n")
    return wire_size(header_lines.rstrip(b"\r\n") + b"\r\n\r\n") - wire_size(kept)


def adopted_wire_size(data: bytes) -> int:
    """:func:`wire_size` of the message without the added headers."""
    return wire_size(strip_added_headers(data))


def adopted_body_hash(data: bytes) -> str:
    """:func:`body_hash` of the message without the added headers."""
    return body_hash(strip_added_headers(data))


def adopted_identity(data: bytes) -> tuple[str | None, int, str]:
    """``(Message-ID, wire size, content hash)`` ignoring the added headers: equal for
    a file mbsync/offlineimap wrote and the server message it came from."""
    stripped = strip_added_headers(data)
    return message_id(stripped), wire_size(stripped), body_hash(stripped)
