"""Header lines picked from a message as an IMAP server returns them
(``BODY.PEEK[HEADER.FIELDS (...)]``), and a message's header block, for the
in-memory stores."""

from __future__ import annotations

from collections.abc import Sequence


def header_lines(data: bytes, fields: Sequence[str]) -> bytes:
    """The header lines (with continuations) named in ``fields``, as a server returns them."""
    wanted = {f.lower().encode() for f in fields}
    out: list[bytes] = []
    keep = False
    for line in data.split(b"\n"):
        if line in (b"", b"\r"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line + b"\n")
            continue
        keep = line.split(b":", 1)[0].strip().lower() in wanted
        if keep:
            out.append(line + b"\n")
    return b"".join(out)


def wire_head(data: bytes) -> tuple[bytes, int]:
    """The header block of a wire-form message (through its blank line) and its size."""
    head, blank, _ = data.partition(b"\r\n\r\n")
    return head + blank, len(data)
