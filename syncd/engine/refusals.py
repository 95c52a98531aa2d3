"""Messages the server refused to take, and when to offer them again.  Pure.

An APPEND refused for good reason -- too big for the server (``[TOOBIG]``, RFC 7889;
``[LIMIT]``, RFC 5530) -- would be refused again on every cycle, re-sending megabytes
each time (RELIABILITY.md SRV-13).  Such a refusal is remembered in the state and the
message is held back until something that could change the answer changes: the
file (its size), the server's advertised ``APPENDLIMIT``, or a day going by (an
administrator may raise a limit the server does not advertise).  ``syncd sync
--retry-refused`` forgets them at once.

Over quota (``[OVERQUOTA]``) is not remembered: it ends when mail is deleted
elsewhere, which nothing here can see, and the next cycle simply tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Response codes that mean "this message, as it is, will not be taken".
REMEMBERED_CODES: Final = frozenset({"TOOBIG", "LIMIT"})

#: A remembered refusal is tried again after this long even if nothing changed.
RETRY_AFTER: Final = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """One local message the server refused.  ``name`` is its unique Maildir name;
    ``limit`` the server's APPENDLIMIT when it refused (None: none advertised)."""

    name: str
    size: int
    code: str
    limit: int | None
    reason: str
    at: float


def held_back(refusal: Refusal, *, size: int, limit: int | None, now: float) -> bool:
    """Whether the message is still held back: same size, same server limit, and
    refused less than :data:`RETRY_AFTER` ago (a clock that went backwards counts
    as time gone by)."""
    return refusal.size == size and refusal.limit == limit and 0 <= now - refusal.at < RETRY_AFTER
