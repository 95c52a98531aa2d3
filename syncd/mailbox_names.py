"""Mailbox names on the wire: IMAP's modified UTF-7 (RFC 3501 §5.1.3), strictly.

Here rather than in the IMAP store because local folder names may be spelled the
same way on disk (``local_names = "imap-utf-7"``, as mbsync and offlineimap write
them) and the readers of those tools' state decode them too.
"""

from __future__ import annotations

import re

from imapclient.imap_utf7 import decode as _utf7_decode
from imapclient.imap_utf7 import encode as _utf7_encode

#: Longest mailbox name (encoded bytes) we accept from or send to a server
#: (isync refuses longer ones too: commit 127003e).
MAX_NAME_BYTES = 1000


_MUTF7_RE = re.compile(rb"&([A-Za-z0-9+,]*)-")


def decode_mailbox_name(raw: bytes) -> str:
    """A mailbox name as the server sent it -> text.  Strict, where IMAPClient's codec
    is lenient: raises ValueError (reason in the message) for names over
    :data:`MAX_NAME_BYTES`, non-ASCII or control bytes, a ``&`` not closed by ``-``, bad
    base64, a non-canonical encoding (one that does not encode back to the same bytes),
    or a decoded control character."""
    if len(raw) > MAX_NAME_BYTES:
        raise ValueError(f"name longer than {MAX_NAME_BYTES} bytes ({len(raw)})")
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise ValueError("name holds control or 8-bit bytes (not modified UTF-7)")
    if b"&" in _MUTF7_RE.sub(b"", raw):
        raise ValueError("'&' not followed by a base64 run closed with '-'")
    try:
        text: str = _utf7_decode(raw)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("bad base64 in a modified UTF-7 run") from None
    if _utf7_encode(text) != raw:
        raise ValueError("not canonical modified UTF-7")
    check_mailbox_name(text)
    return text


def check_mailbox_name(name: str) -> None:
    """Raise ValueError when ``name`` cannot be sent in a command: empty, control
    characters (CR/LF would split the command line), lone surrogates, or longer than
    :data:`MAX_NAME_BYTES` once encoded."""
    if not name:
        raise ValueError("empty name")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in name):
        raise ValueError("name holds control characters")
    if len(encode_mailbox_name(name)) > MAX_NAME_BYTES:
        raise ValueError(f"name longer than {MAX_NAME_BYTES} bytes when encoded")


def encode_mailbox_name(name: str) -> bytes:
    """Text -> modified UTF-7 bytes (IMAPClient's codec, the one it uses on send)."""
    encoded: bytes = _utf7_encode(name)
    return encoded
