"""Reading the untagged responses of a command into values: STATUS and LIST-STATUS
entries, PERMANENTFLAGS, LIST delimiters, the ``OK [CLOSED]`` boundary of a SELECT,
FETCH flag listings that survive a garbled entry.  Pure functions, bytes in and values
out, on top of the wire helpers of :mod:`syncd.stores.imap.parse`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from imapclient.exceptions import ProtocolError as IMAPClientProtocolError
from imapclient.response_parser import parse_response

from syncd.stores.imap.parse import (
    FetchEntry,
    FlagInfo,
    clean_text,
    decode_flags,
    parse_flag_fetches,
    response_code,
)
from syncd.stores.imap.results import StatusInfo

# The session's logger: users' log filters use that name.
logger = logging.getLogger("syncd.imap.session")

T = TypeVar("T")

#: Untagged responses that belong to a SELECT/EXAMINE answer: not filed as events.
SELECT_DATA = frozenset(
    {
        "FLAGS",
        "OK",
        "EXISTS",
        "RECENT",
        "VANISHED",
        "FETCH",
        "UIDVALIDITY",
        "UIDNEXT",
        "HIGHESTMODSEQ",
        "NOMODSEQ",
        "PERMANENTFLAGS",
        "READ-ONLY",
        "READ-WRITE",
        "CLOSED",
        "UNSEEN",
    }
)


def status_response(rtyp: str, dat: Any) -> tuple[bytes, dict[bytes, int]] | None:
    """An untagged ``STATUS name (KEY n ...)`` -> (raw name, {KEY: n}); None otherwise."""
    if rtyp != "STATUS" or not isinstance(dat, bytes):
        return None
    try:
        parsed = parse_response([dat])
    except (IMAPClientProtocolError, ValueError):
        return None
    if len(parsed) != 2 or not isinstance(parsed[1], tuple):
        return None
    name = parsed[0]
    name = str(name).encode() if isinstance(name, int) else name
    if not isinstance(name, bytes):
        return None
    pairs = parsed[1]
    values = {
        key.upper(): value
        for key, value in zip(pairs[::2], pairs[1::2], strict=False)
        if isinstance(key, bytes) and isinstance(value, int)
    }
    return name, values


def status_info(values: Mapping[bytes, int]) -> StatusInfo | None:
    """The STATUS values as a StatusInfo; None when one of the three required ones is missing."""
    try:
        return StatusInfo(
            messages=values[b"MESSAGES"],
            uidnext=values[b"UIDNEXT"],
            uidvalidity=values[b"UIDVALIDITY"],
            highestmodseq=values.get(b"HIGHESTMODSEQ") or None,
        )
    except KeyError:
        return None


def permanent_flags(value: bytes) -> frozenset[str]:
    """``b"(\\Seen \\Deleted $Label \\*)"`` -> the flag names, ``\\*`` kept (it is not
    a flag atom, so :func:`decode_flags` would drop it)."""
    items = value.strip().strip(b"()").split()
    star = {"\\*"} if any(i == b"\\*" for i in items) else set()
    return frozenset(decode_flags(b" ".join(i for i in items if i != b"\\*")) | star)


def to_int(value: Any, default: T) -> int | T:
    """``int(value)``, or ``default`` for what is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def delimiter_text(value: Any) -> str | None:
    """A LIST delimiter as text; None for NIL or anything but one printable character."""
    if isinstance(value, bytes) and len(value) == 1 and 0x20 < value[0] < 0x7F:
        return value.decode("ascii")
    return None


def both_inbox(a: bytes, b: bytes) -> bool:
    """Both names are INBOX, which is case-insensitive (RFC 3501 §5.1)."""
    return a.upper() == b.upper() == b"INBOX"


def before_closed(
    responses: list[tuple[str, Any]],
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Split at ``OK [CLOSED]``: what came before is about the previous mailbox."""
    for i, (typ, dat) in enumerate(responses):
        if typ == "OK" and isinstance(dat, bytes):
            code = response_code(dat)
            if code is not None and code[0] == "CLOSED":
                return responses[:i], responses[i + 1 :]
    return [], responses


def safe_flag_fetches(
    entries: Iterable[FetchEntry],
) -> Iterator[tuple[int, int | None, FlagInfo, bool]]:
    """parse_flag_fetches, skipping (and logging) a garbled response instead of
    losing the whole listing to it."""
    errors: list[str] = []
    yield from parse_flag_fetches(entries, errors)
    if errors:
        logger.debug(
            "ignored %d unparsable FETCH responses, e.g. %s", len(errors), clean_text(errors[0], 80)
        )


@dataclass
class SelectResponses:
    """What the untagged responses of a SELECT/EXAMINE say (after ``OK [CLOSED]``)."""

    exists: int = 0
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    nomodseq: bool = False
    sticky: bool = True  # False after "NO [UIDNOTSTICKY]"
    permanent_flags: frozenset[str] | None = None
    fetches: list[FetchEntry] = field(default_factory=list)
    #: ``("ALERT", text)`` and ``("VANISHED", data)`` in arrival order: the session
    #: logs the one and checks the other (a malformed VANISHED drops the connection).
    notices: list[tuple[str, bytes]] = field(default_factory=list)
    #: Responses that are no part of the answer: the session files them as events.
    rest: list[tuple[str, Any]] = field(default_factory=list)


def read_select(responses: Iterable[tuple[str, Any]]) -> SelectResponses:
    """Read a SELECT/EXAMINE's untagged responses; pure, nothing is logged or checked."""
    out = SelectResponses()
    for rtyp, dat in responses:
        if rtyp == "EXISTS":
            out.exists = to_int(dat, out.exists)
        elif rtyp == "OK" and isinstance(dat, bytes):
            code = response_code(dat)
            if code is None:
                continue
            key, value = code
            if key == "UIDVALIDITY":
                out.uidvalidity = to_int(value, None)
            elif key == "UIDNEXT":
                out.uidnext = to_int(value, None)
            elif key == "HIGHESTMODSEQ":
                out.highestmodseq = to_int(value, None)
            elif key == "NOMODSEQ":
                out.nomodseq = True
            elif key == "PERMANENTFLAGS":
                out.permanent_flags = permanent_flags(value)
            elif key == "ALERT":
                out.notices.append(("ALERT", dat))
        elif rtyp == "NO" and isinstance(dat, bytes):
            code = response_code(dat)
            if code is not None and code[0] == "UIDNOTSTICKY":
                out.sticky = False
            else:
                out.rest.append((rtyp, dat))
        elif rtyp == "VANISHED" and isinstance(dat, bytes):
            out.notices.append(("VANISHED", dat))
        elif rtyp == "FETCH":
            out.fetches.append(dat)
        elif rtyp not in SELECT_DATA:
            out.rest.append((rtyp, dat))
    return out
