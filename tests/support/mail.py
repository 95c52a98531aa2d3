"""Build test messages: ``make_message(...) -> bytes`` with CRLF line endings."""

from __future__ import annotations

import email.policy
import email.utils
import itertools
import os
from datetime import UTC, datetime
from email.message import EmailMessage

_counter = itertools.count(1)


def make_message(
    subject: str = "Test message",
    body: str = "Hello,\n\nthis is a test message.\n",
    message_id: str | None = None,
    sender: str = "Alice Example <alice@example.org>",
    date: datetime | None = None,
    size_pad: int = 0,
    attachment: bytes | None = None,
    to: str = "Bob Example <bob@example.com>",
    headers: dict[str, str] | None = None,
) -> bytes:
    """Return a complete RFC 5322 message as bytes with CRLF line endings.

    - ``message_id``: defaults to a fresh unique ``<n.pid@syncd.test>``; pass ``""`` to
      leave the header out entirely (messages without Message-ID exist in the wild).
    - ``subject``: non-ASCII is RFC 2047-encoded.
    - ``date``: defaults to 2024-01-01T12:00Z (deterministic).
    - ``size_pad``: append that many extra bytes of filler lines to the body, to make
      large messages (e.g. for literal-size or streaming tests).
    - ``attachment``: makes the message multipart/mixed with that payload as
      ``application/octet-stream`` (base64).
    - ``headers``: extra headers, added last.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(date or datetime(2024, 1, 1, 12, 0, tzinfo=UTC))
    if message_id is None:
        message_id = f"<{next(_counter)}.{os.getpid()}.{os.urandom(4).hex()}@syncd.test>"
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        msg[name] = value
    text = body
    if size_pad > 0:
        line = "x" * 75 + "\n"
        filler = (line * (size_pad // len(line) + 1))[:size_pad]
        text = text + ("" if text.endswith("\n") else "\n") + filler
    msg.set_content(text, cte="quoted-printable" if not text.isascii() else None)
    if attachment is not None:
        msg.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename="data.bin"
        )
    return msg.as_bytes(policy=email.policy.SMTP)
