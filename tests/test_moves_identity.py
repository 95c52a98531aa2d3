"""The header identity that decides a move between folders without reading bodies
(:func:`syncd.message.header_identity`): the same on a file, on its header block and
on the lines a server returns for ``BODY.PEEK[HEADER.FIELDS (...)]``; different for a
second delivery of the same Message-ID."""

from __future__ import annotations

from syncd.message import IDENTITY_FIELDS, header_identity, to_crlf

MSG = (
    b"Received: from a.example by b.example; Mon, 1 Jan 2024 10:00:00 +0000\n"
    b"Received: from c.example by a.example; Mon, 1 Jan 2024 09:59:59 +0000\n"
    b"Message-ID: <1@example.org>\n"
    b"Date: Mon, 1 Jan 2024 09:59:00 +0000\n"
    b"From: Alice <alice@example.org>\n"
    b"To: bob@example.org\n"
    b"Subject: a long\n subject, folded\n"
    b"\n"
    b"body\n"
)


def _fields(msg: bytes) -> bytes:
    """What a server returns for HEADER.FIELDS: the requested lines, CRLF, then an
    empty line."""
    head = msg.split(b"\n\n", 1)[0] + b"\n"
    wanted = {f.lower().encode() for f in IDENTITY_FIELDS}
    out, keep = [], False
    for line in head.splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):
            keep = line.split(b":", 1)[0].strip().lower() in wanted
        if keep:
            out.append(line)
    return to_crlf(b"".join(out) + b"\n")


def test_file_head_and_server_fields_agree() -> None:
    whole = header_identity(MSG)
    assert whole is not None
    assert header_identity(MSG.split(b"\n\n")[0] + b"\n\n") == whole
    assert header_identity(to_crlf(MSG)) == whole
    assert header_identity(_fields(MSG)) == whole


def test_a_second_delivery_of_one_message_id_differs() -> None:
    other = MSG.replace(
        b"b.example; Mon, 1 Jan 2024 10:00:00", b"d.example; Mon, 1 Jan 2024 10:00:01"
    )
    assert header_identity(other) != header_identity(MSG)
    assert header_identity(MSG.replace(b"Subject: a long", b"Subject: a lone")) != header_identity(
        MSG
    )


def test_headers_outside_the_identity_do_not_count() -> None:
    assert header_identity(MSG.replace(b"To: bob", b"To: carol")) == header_identity(MSG)


def test_no_message_id_no_identity() -> None:
    assert header_identity(MSG.replace(b"Message-ID: <1@example.org>\n", b"")) is None
