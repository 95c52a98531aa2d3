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

_BARE_LF = re.compile(rb"(?<!\r)\n")
_HEADER_LIMIT = 256 * 1024


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
