"""The POP3 line layer: poplib's sockets with typed, bounded reads, and the parsers.

Kept apart from :mod:`syncd.stores.pop3.client` (which decides what to send and
what an answer means) so the bytes-in, values-out parts are small and testable.
Why not poplib's own readers: EOF comes back as the server text ``-ERR EOF``
(indistinguishable from a real ``-ERR``), multi-line answers and RETR are read
whole into memory with no cap, and RETR loses whether a line ended in CRLF.
"""

from __future__ import annotations

import base64
import hashlib
import json
import poplib
import re
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO, Final

MAX_LINE: Final = 4096  # a response line (RFC 2449 §4 allows 512; be lenient)
MAX_LISTING: Final = 5_000_000  # lines in a LIST/UIDL/CAPA answer
CHUNK: Final = 64 * 1024  # most bytes read at once while streaming a message
UIDL_VALUE: Final = re.compile(rb"[\x21-\x7e]{1,70}\Z")  # RFC 1939 §7
SIZE_VALUE: Final = re.compile(rb"\d{1,15}\Z")
_TIMESTAMP = re.compile(rb"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ConnectionLost(Exception):
    """EOF from the server."""


class Garbled(Exception):
    """An answer we will not parse, or a command we will not send."""


class OverCap(Exception):
    """A message was larger than the cap; it was read to its end and dropped."""


class Wire:
    """poplib's line layer, typed, with EOF told apart from ``-ERR``.  Mixed into
    poplib's classes, whose ``__init__`` reads the greeting through ``_getline``."""

    sock: socket.socket
    file: BinaryIO
    welcome: bytes

    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(MAX_LINE + 1)
        if not line:
            raise ConnectionLost("the server closed the connection")
        if len(line) > MAX_LINE:
            raise Garbled(f"a response line is longer than {MAX_LINE} bytes")
        return line.rstrip(b"\r\n"), len(line)

    def put(self, line: str) -> None:
        """Send one command line (never logged: it may hold a secret)."""
        if any(c in line for c in "\r\n\0"):  # no command injection via user or password
            raise Garbled("refusing to send a command holding CR, LF or NUL")
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def response(self) -> bytes:
        """One status line; ``poplib.error_proto`` when it is not ``+...``."""
        line, _octets = self._getline()
        if not line.startswith(b"+"):
            raise poplib.error_proto(line)
        return line

    def command(self, line: str) -> bytes:
        self.put(line)
        return self.response()

    def multiline(self) -> Iterator[bytes]:
        """The lines of a multi-line answer, dot-unstuffed, up to the ``.`` line."""
        for _ in range(MAX_LISTING):
            line, _octets = self._getline()
            if line == b".":
                return
            yield line[1:] if line.startswith(b"..") else line
        raise Garbled(f"a listing longer than {MAX_LISTING} lines")

    def message(self, max_bytes: int) -> bytes:
        """The body of a RETR answer: unstuffed, line endings as received.

        Read in chunks, since a message line may be longer than :data:`MAX_LINE`;
        the terminator and byte-stuffing apply only at a line start (RFC 1939 §3).
        Past ``max_bytes`` the rest is read and dropped, then :class:`OverCap`;
        ``Garbled`` when it goes on for another ``max_bytes`` as well.
        """
        parts: list[bytes] = []
        size, dropped, at_start = 0, 0, True
        while True:
            chunk = self.file.readline(CHUNK)
            if not chunk:
                raise ConnectionLost("the server closed the connection in the middle of RETR")
            if at_start:
                if chunk in (b".\r\n", b".\n"):
                    break
                if chunk.startswith(b"."):
                    chunk = chunk[1:]
            at_start = chunk.endswith(b"\n")
            if not dropped and size + len(chunk) <= max_bytes:
                parts.append(chunk)
                size += len(chunk)
            else:
                parts.clear()
                dropped += len(chunk)
                if dropped > max_bytes + CHUNK:
                    raise Garbled("a message goes on far past the size cap")
        if dropped:
            raise OverCap
        return b"".join(parts)

    if TYPE_CHECKING:  # poplib's own close(), which must stay first in the MRO

        def close(self) -> None: ...


class Plain(Wire, poplib.POP3):
    """A plaintext connection (STLS may upgrade it)."""


class Tls(Wire, poplib.POP3_SSL):
    """An implicit-TLS connection."""


def parse_capa(lines: Iterator[bytes]) -> dict[str, str]:
    """CAPA lines (RFC 2449 §5) as upper-case name -> argument text."""
    caps: dict[str, str] = {}
    for line in lines:
        name, _, args = line.decode("utf-8", "replace").strip().partition(" ")
        if name:
            caps[name.upper()] = args.strip()
    return caps


def parse_listing(
    lines: Iterator[bytes], command: str, value: re.Pattern[bytes]
) -> dict[int, bytes]:
    """``n value`` lines of LIST or UIDL as message number -> value."""
    result: dict[int, bytes] = {}
    for line in lines:
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit() or not value.match(fields[1]):
            raise Garbled(f"garbled {command} line {clean(line)!r}")
        result[int(fields[0])] = fields[1]
    return result


def apop_digest(greeting: bytes, secret: str) -> str | None:
    """RFC 1939 §7: MD5 of the greeting's timestamp and the secret; None without one."""
    stamp = _TIMESTAMP.search(greeting)
    if stamp is None:
        return None
    return hashlib.md5(stamp.group() + secret.encode(), usedforsecurity=False).hexdigest()


def is_challenge(answer: bytes) -> bool:
    """A SASL continuation (``+`` or ``+ data``), not ``+OK``."""
    return answer == b"+" or answer.startswith(b"+ ")


def oauth_status(challenge: bytes) -> str:
    """`` (status)`` of an OAuth2 error challenge (base64 JSON), or ``""``."""
    try:
        data = json.loads(base64.b64decode(challenge, validate=True))
    except (ValueError, TypeError):
        return ""
    status = data.get("status") if isinstance(data, dict) else None
    return f" ({clean(str(status), 60)})" if status else ""


def clean(text: str | bytes, limit: int = 200) -> str:
    """Server text for one log line or error message: decoded, controls escaped, cut."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    s = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def err_text(exc: poplib.error_proto) -> str:
    """The server text of a ``-ERR``, cleaned."""
    arg = exc.args[0] if exc.args else b""
    return clean(arg if isinstance(arg, (bytes, str)) else str(arg))
