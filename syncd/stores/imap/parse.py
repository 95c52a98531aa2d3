"""Wire-level helpers for the IMAP session: uid sets, response codes, FETCH
flag listings, mailbox names, flag atoms and the literal-size cap.

Everything here is pure (bytes or text in, values out) except :func:`read_literal`,
which only reads from the file object it is given.  Nothing here logs a message
body or a credential.
"""

from __future__ import annotations

import ast
import functools
import imaplib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from imapclient.exceptions import ProtocolError as IMAPClientProtocolError
from imapclient.response_parser import parse_fetch_response

from syncd.model import SYSTEM_FLAGS, intern_flags

#: The most UIDs one uid set may expand to.  A server that answers with more is
#: refused: expanding ``1:4294967295`` would take tens of gigabytes.
MAX_UID_SET = 10_000_000

#: RFC 3501 caps UIDs at 2^32-1.
MAX_UID = 2**32 - 1

RECENT = "\\Recent"


# ---------------------------------------------------------------------------------------
# values parsed from the wire


@dataclass(frozen=True, slots=True)
class FlagInfo:
    """Flags (IMAP names, ``\\Recent`` dropped), MODSEQ and RFC822.SIZE of one message;
    ``modseq``/``size`` are None when not asked for or not sent."""

    flags: frozenset[str]
    modseq: int | None
    size: int | None


class UidSetError(ValueError):
    """A uid set is malformed or expands past :data:`MAX_UID_SET`."""


class LiteralTooLarge(imaplib.IMAP4.abort):
    """The server announced a literal larger than the session's cap.

    Subclasses ``imaplib.IMAP4.abort`` because it is raised inside imaplib's reader:
    the connection is unusable afterwards and must be dropped.
    """


# ---------------------------------------------------------------------------------------
# uid sets

_UID_SET_RE = re.compile(r"(?:\d+(?::\d+)?)(?:,\d+(?::\d+)?)*\Z", re.ASCII)
_REQUEST_SET_RE = re.compile(
    r"(?:(?:\d+|\*)(?::(?:\d+|\*))?)(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*\Z", re.ASCII
)


def format_uid_set(uids: Iterable[int]) -> str:
    """``[5, 1, 2, 3, 9]`` -> ``"1:3,5,9"``: sorted, duplicates removed, runs as ranges.

    Raises ValueError for an empty set or a UID outside 1..2^32-1 (a caller bug:
    such a UID can never be on the server).
    """
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty uid set")
    if ordered[0] < 1 or ordered[-1] > MAX_UID:
        raise ValueError(f"UID out of range in {ordered[0]}..{ordered[-1]}")
    return ",".join(_runs(ordered))


#: The longest uid set in one command.  RFC 2683 §3.2.1.5 asks servers to accept command
#: lines of at least 8000 octets (Dovecot's ``imap_max_line_length`` is 64 KiB, but may be
#: set lower); the rest of a line (tag, command, flag list, a mailbox name of up to
#: MAX_NAME_BYTES) needs room too, so the set alone gets 7000.
MAX_UID_SET_LEN = 7000


def chunk_uid_sets(uids: Iterable[int], max_len: int = MAX_UID_SET_LEN) -> Iterator[str]:
    """Yield uid sets (as :func:`format_uid_set`) each at most ``max_len`` characters,
    together covering ``uids``, so that a command line carrying one stays within the
    8000 octets every server should accept (RFC 2683 §3.2.1.5)."""
    ordered = sorted(set(uids))
    if ordered and (ordered[0] < 1 or ordered[-1] > MAX_UID):
        raise ValueError(f"UID out of range in {ordered[0]}..{ordered[-1]}")
    parts: list[str] = []
    length = 0
    for run in _runs(ordered):
        if parts and length + 1 + len(run) > max_len:
            yield ",".join(parts)
            parts, length = [], 0
        length += len(run) + (1 if parts else 0)
        parts.append(run)
    if parts:
        yield ",".join(parts)


def _runs(ordered: Sequence[int]) -> Iterator[str]:
    if not ordered:
        return
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        yield str(start) if start == prev else f"{start}:{prev}"
        start = prev = uid
    yield str(start) if start == prev else f"{start}:{prev}"


def parse_uid_set(text: str | bytes, *, limit: int = MAX_UID_SET) -> list[int]:
    """Expand a uid set from a server response (``"1:3,7"`` -> ``[1, 2, 3, 7]``).

    Order is kept as sent (APPENDUID/COPYUID pair UIDs by position); a range is
    expanded ascending whichever way it is written.  ``*`` is not accepted (servers
    never send it in responses).  Raises :class:`UidSetError` when the text is not a
    uid set, holds UID 0 or a UID above 2^32-1, or expands past ``limit`` UIDs.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise UidSetError("uid set is not ASCII") from None
    text = text.strip()
    if not _UID_SET_RE.match(text):
        raise UidSetError(f"malformed uid set {_short(text)!r}")
    out: list[int] = []
    for part in text.split(","):
        lo_s, _, hi_s = part.partition(":")
        lo = int(lo_s)
        hi = int(hi_s) if hi_s else lo
        if lo > hi:
            lo, hi = hi, lo
        if lo < 1 or hi > MAX_UID:
            raise UidSetError(f"UID out of range in {_short(text)!r}")
        if len(out) + (hi - lo + 1) > limit:
            raise UidSetError(f"uid set expands past {limit} UIDs")
        out.extend(range(lo, hi + 1))
    return out


def request_set_ranges(text: str) -> list[tuple[int, int]]:
    """The ranges of a uid set as *sent* (``*`` allowed, meaning "the highest"), for
    checking that a response UID was asked for: ``"5:*"`` -> ``[(5, 2**32-1)]``.

    ``n:*`` also matches the highest UID when it is below ``n`` on the server
    (RFC 3501 §6.4.8); such a response is deliberately *not* treated as requested.
    Raises ValueError for anything that is not a uid set.
    """
    text = text.strip()
    if not _REQUEST_SET_RE.match(text):
        raise ValueError(f"not a uid set: {_short(text)!r}")
    ranges = []
    for part in text.split(","):
        lo_s, _, hi_s = part.partition(":")
        lo = MAX_UID if lo_s == "*" else int(lo_s)
        hi = lo if not hi_s else (MAX_UID if hi_s == "*" else int(hi_s))
        ranges.append((min(lo, hi), max(lo, hi)))
    return ranges


def in_ranges(uid: int, ranges: Sequence[tuple[int, int]]) -> bool:
    """Whether ``uid`` lies in one of ``ranges`` (from :func:`request_set_ranges`)."""
    return any(lo <= uid <= hi for lo, hi in ranges)


# ---------------------------------------------------------------------------------------
# response codes (RFC 4315)

_APPENDUID_RE = re.compile(rb"\[APPENDUID ([0-9]+) ([0-9:,]+)\]", re.IGNORECASE)
_COPYUID_RE = re.compile(rb"\[COPYUID ([0-9]+) ([0-9:,]+) ([0-9:,]+)\]", re.IGNORECASE)
_COPYUID_DATA_RE = re.compile(rb"([0-9]+) ([0-9:,]+) ([0-9:,]+)\Z")
_CODE_RE = re.compile(rb"\[([A-Za-z0-9.-]+)(?: ([^\]]*))?\]")


def parse_appenduid(text: str | bytes) -> tuple[int, list[int]] | None:
    """``b"[APPENDUID 38505 3955] APPEND completed"`` -> ``(38505, [3955])``.

    Returns None when there is no APPENDUID code or it is malformed (UIDVALIDITY or a
    UID of 0, a bad set): "no UID" is always safe, a wrong UID never is.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    m = _APPENDUID_RE.search(raw)
    if m is None:
        return None
    uidvalidity = int(m.group(1))
    if not 0 < uidvalidity <= MAX_UID:
        return None
    try:
        uids = parse_uid_set(m.group(2))
    except UidSetError:
        return None
    return uidvalidity, uids


def parse_copyuid(text: str | bytes) -> tuple[int, list[int], list[int]] | None:
    """A COPYUID code -> ``(dest uidvalidity, source uids, dest uids)``, paired by position.

    Accepts the whole response text (``b"[COPYUID 7 1:3 10:12] Done"``) or the bare
    code data (``b"7 1:3 10:12"``, as imaplib files it).  Returns None when absent or
    malformed, including source and destination sets of different lengths.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    m = _COPYUID_RE.search(raw) or _COPYUID_DATA_RE.match(raw.strip())
    if m is None:
        return None
    uidvalidity = int(m.group(1))
    if not 0 < uidvalidity <= MAX_UID:
        return None
    try:
        src = parse_uid_set(m.group(2))
        dst = parse_uid_set(m.group(3))
    except UidSetError:
        return None
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        return None
    return uidvalidity, src, dst


def response_code(text: bytes) -> tuple[str, bytes] | None:
    """The response code at the start of an OK/NO/BAD text, upper-cased:
    ``b"[UIDNEXT 5] Predicted"`` -> ``("UIDNEXT", b"5")``; None when there is none.

    Stricter than imaplib's greedy pattern: the code ends at the first ``]``.
    """
    m = _CODE_RE.match(text)
    if m is None:
        return None
    return m.group(1).decode("ascii").upper(), m.group(2) or b""


def parse_vanished(data: bytes) -> tuple[bool, list[int]]:
    """The data of a VANISHED response -> ``(earlier, uids)``:
    ``b"(EARLIER) 1:3,5"`` -> ``(True, [1, 2, 3, 5])``.  Raises UidSetError."""
    data = data.strip()
    earlier = data[:9].upper() == b"(EARLIER)"
    if earlier:
        data = data[9:].strip()
    return earlier, parse_uid_set(data)


# ---------------------------------------------------------------------------------------
# flags

_CANONICAL = {flag.upper(): flag for flag in SYSTEM_FLAGS}
# RFC 3501 atom: any CHAR except atom-specials ( ) { SP CTL % * " \ ]
_ATOM = r"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+"
_FLAG_RE = re.compile(rf"\\?{_ATOM}\Z", re.ASCII)


def is_flag_atom(flag: str) -> bool:
    """Whether ``flag`` can be sent in a STORE/APPEND flag list as it is
    (``\\Seen``, ``$Forwarded``, ``work``); spaces, parentheses, quotes, control and
    non-ASCII characters cannot."""
    return _FLAG_RE.match(flag) is not None


@functools.lru_cache(maxsize=4096)
def decode_flags(raw: bytes) -> frozenset[str]:
    """The inside of a FLAGS list (``b"\\\\Seen $Forwarded"``) -> flag names.

    System flags get their canonical spelling (``\\SEEN`` -> ``\\Seen``), ``\\Recent``
    is dropped (session state, never synced), and anything that is not a flag atom is
    dropped too (it could not be stored back).  Cached: a mailbox has few distinct
    flag lists, and each result is one shared frozenset.
    """
    out = set()
    for item in raw.split():
        try:
            name = item.decode("ascii")
        except UnicodeDecodeError:
            continue
        if not is_flag_atom(name):
            continue
        name = _CANONICAL.get(name.upper(), name)
        if name != RECENT:
            out.add(name)
    return intern_flags(frozenset(out))


def flags_to_text(flags: Iterable[str]) -> str:
    """A flag list for a command (``"(\\Seen work)"``), leaving out ``\\Recent`` and
    anything that is not a flag atom (the caller warns about those)."""
    return "(" + " ".join(sorted(f for f in flags if f != RECENT and is_flag_atom(f))) + ")"


# ---------------------------------------------------------------------------------------
# FETCH flag listings
#
# Why hand-written: IMAPClient's lexer walks every byte in Python, which costs several
# seconds for a 100k-message ``UID FETCH 1:* (UID FLAGS MODSEQ)``.  Servers send each
# such response on one line with the items in a fixed order, so each order gets one
# compiled pattern; anything else (literals, quoted strings, other items, odd case) goes
# through IMAPClient's parser.  tests/test_imap_parse.py checks both give the same.

_ITEM_PATTERNS = {
    b"UID": rb"UID ([0-9]+)",
    b"FLAGS": rb"FLAGS \(([^()\r\n]*)\)",
    b"MODSEQ": rb"MODSEQ \(([0-9]+)\)",
    b"RFC822.SIZE": rb"RFC822\.SIZE ([0-9]+)",
}
_ITEM_SCAN = re.compile(rb"(UID|FLAGS|MODSEQ|RFC822\.SIZE) ([0-9]+|\([^()\r\n]*\))(?= |\Z)")
_HEAD_RE = re.compile(rb"([0-9]+) \((.*)\)\Z", re.DOTALL)

FetchEntry = bytes | tuple[bytes, bytes]


@functools.lru_cache(maxsize=64)
def _order_pattern(order: tuple[bytes, ...]) -> re.Pattern[bytes]:
    body = b" ".join(_ITEM_PATTERNS[name] for name in order)
    return re.compile(rb"[0-9]+ \(" + body + rb"\)\Z")


def _scan_order(line: bytes) -> tuple[bytes, ...] | None:
    """The item order of a simple flag-listing FETCH line, or None if it is not one."""
    m = _HEAD_RE.match(line)
    if m is None:
        return None
    inner = m.group(2)
    order = []
    pos = 0
    for item in _ITEM_SCAN.finditer(inner):
        if item.start() != pos:
            return None
        order.append(item.group(1))
        pos = item.end() + 1
    if pos != len(inner) + 1 or len(set(order)) != len(order):
        return None
    return tuple(order)


def group_fetch_entries(entries: Iterable[FetchEntry]) -> Iterator[list[FetchEntry]]:
    """Group imaplib's FETCH data into one list per response: a response with literals
    is stored as ``(text, literal)`` tuples followed by the closing text."""
    group: list[FetchEntry] = []
    for entry in entries:
        group.append(entry)
        if not isinstance(entry, tuple):
            yield group
            group = []
    if group:
        yield group


def parse_flag_fetches(
    entries: Iterable[FetchEntry],
    errors: list[str] | None = None,
) -> Iterator[tuple[int, int | None, FlagInfo, bool]]:
    """Parse FETCH data (as imaplib stores it: ``b'12 (UID 40 FLAGS (\\\\Seen))'``) into
    ``(seq, uid or None, FlagInfo, has_flags)`` for each response.

    A response without a UID yields ``uid=None``; the caller decides what to do with
    it.  ``has_flags`` is False when the response carried no FLAGS item (e.g. a
    MODSEQ-only answer to a silent STORE): its ``flags`` are then empty, not known.
    A response neither parser understands raises ``imapclient.exceptions.ProtocolError``
    -- or, when ``errors`` is a list, is skipped and its error appended there.
    """
    pattern: re.Pattern[bytes] | None = None
    order: tuple[bytes, ...] = ()
    for group in group_fetch_entries(entries):
        line = group[0]
        if len(group) == 1 and isinstance(line, bytes):
            m = pattern.match(line) if pattern is not None else None
            if m is None:
                scanned = _scan_order(line)
                if scanned is not None:
                    order = scanned
                    pattern = _order_pattern(order)
                    m = pattern.match(line)
            if m is not None:
                yield _from_match(line, order, m)
                continue
        if errors is None:
            yield from _fallback(group)
            continue
        try:
            parsed = list(_fallback(group))
        except (IMAPClientProtocolError, ValueError) as exc:
            errors.append(str(exc))
            continue
        yield from parsed


def _from_match(
    line: bytes, order: tuple[bytes, ...], m: re.Match[bytes]
) -> tuple[int, int | None, FlagInfo, bool]:
    uid = modseq = size = None
    flags = None
    for name, value in zip(order, m.groups(), strict=True):
        if name == b"UID":
            uid = int(value)
        elif name == b"FLAGS":
            flags = decode_flags(value)
        elif name == b"MODSEQ":
            modseq = int(value)
        else:
            size = int(value)
    seq = int(line[: line.index(b" ")])
    info = FlagInfo(flags if flags is not None else frozenset(), modseq, size)
    return seq, uid, info, flags is not None


def _fallback(group: list[FetchEntry]) -> Iterator[tuple[int, int | None, FlagInfo, bool]]:
    parsed = parse_fetch_response(group, normalise_times=False, uid_is_key=False)
    for seq, items in parsed.items():
        has_flags, info = flag_info_from_items(items)
        uid = items.get(b"UID")
        yield seq, uid if isinstance(uid, int) else None, info, has_flags


def flag_info_from_items(items: dict[bytes, Any]) -> tuple[bool, FlagInfo]:
    """FlagInfo from one message of IMAPClient's ``parse_fetch_response`` result;
    the bool says whether the response carried FLAGS."""
    raw_flags = items.get(b"FLAGS")
    flags: frozenset[str] = frozenset()
    if isinstance(raw_flags, tuple):
        flags = decode_flags(b" ".join(f for f in raw_flags if isinstance(f, bytes)))
    modseq_item = items.get(b"MODSEQ")
    modseq = None
    if isinstance(modseq_item, tuple) and modseq_item and isinstance(modseq_item[0], int):
        modseq = modseq_item[0]
    size_item = items.get(b"RFC822.SIZE")
    size = size_item if isinstance(size_item, int) else None
    return isinstance(raw_flags, tuple), FlagInfo(flags, modseq, size)


# ---------------------------------------------------------------------------------------
# literal cap

_READ_CHUNK = 1 << 20


def read_literal(file: IO[bytes], size: int, cap: int) -> bytes:
    """Read a literal of ``size`` bytes announced by the server from ``file``.

    Raises :class:`LiteralTooLarge` *before reading anything* when ``size > cap``, and
    ``imaplib.IMAP4.abort`` when the stream ends early.  Reads in 1 MiB chunks so
    memory follows the bytes that actually arrive, not the announced size (CPython
    3.11.7's imaplib allocates the announced size up front: gh-119511).
    """
    if size > cap:
        raise LiteralTooLarge(f"server announced a literal of {size} bytes (limit {cap})")
    if size <= _READ_CHUNK:
        data = file.read(size)
        if len(data) != size:
            raise imaplib.IMAP4.abort("socket error: EOF inside a literal")
        return data
    parts = []
    remaining = size
    while remaining:
        part = file.read(min(remaining, _READ_CHUNK))
        if not part:
            raise imaplib.IMAP4.abort("socket error: EOF inside a literal")
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


# ---------------------------------------------------------------------------------------
# text from the server, for logs and error messages

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(text: object, limit: int = 200) -> str:
    """Server text made safe for a one-line log or error message: decoded, control
    characters (ESC, CR, LF...) escaped, cut to ``limit`` characters (MAL-09).

    ``text`` may be bytes, str or an exception.  imaplib raises its errors with the
    server's bytes as the argument and IMAPClient re-raises them as ``str(exc)``, so
    ``b'...'`` reprs inside the text are decoded back to the words they hold, and
    IMAPClient's paragraphs of advice after a SEARCH error (``\\n\\nThis error may
    have been caused by...``) are dropped: the user sees what the server said."""
    if isinstance(text, BaseException):
        args = text.args
        text = args[0] if len(args) == 1 and isinstance(args[0], bytes) else str(text)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    s = str(text)
    s = s.split("\n\n", 1)[0].strip()
    s = _BYTES_REPR.sub(_unrepr, s)
    s = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


#: A Python bytes repr as ``str(exc)`` shows it: ``b'...'`` or ``b"..."``, with escapes.
_BYTES_REPR = re.compile(r"""(?<![\w'"])b('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def _unrepr(m: re.Match[str]) -> str:
    try:
        value = ast.literal_eval("b" + m.group(1))
    except (ValueError, SyntaxError):
        return m.group()
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else m.group()


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


# The common answer to ``UID FETCH n (UID INTERNALDATE BODY.PEEK[])``, as imaplib
# stores it: ``(b'7 (UID 40 INTERNALDATE "01-Jan-2024 12:00:00 +0000" BODY[] {123}',
# literal)`` then ``b')'``.  IMAPClient's general parser spends ~0.14 ms per message
# on it (1.4 s per 10k in a profile of the initial sync); this regex handles that
# shape and anything else goes back to the general parser.
_BODY_RESPONSE = re.compile(
    rb'\d+ \(UID (\d+) INTERNALDATE "([ 0-9]\d-[A-Za-z]{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4})" '
    rb"BODY\[\] \{(\d+)\}"
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        (
            b"JAN",
            b"FEB",
            b"MAR",
            b"APR",
            b"MAY",
            b"JUN",
            b"JUL",
            b"AUG",
            b"SEP",
            b"OCT",
            b"NOV",
            b"DEC",
        )
    )
}


def parse_internaldate(text: bytes) -> datetime | None:
    """``b" 1-Jan-2024 12:00:00 +0100"`` -> aware datetime; None when malformed.
    (Not strptime: ``%b`` follows the process locale.)"""
    try:
        day, mon, year = text[:11].strip().split(b"-")
        hh, mm, ss = text[12:20].split(b":")
        sign = -1 if text[21:22] == b"-" else 1
        zone = text[22:26]
        offset = timedelta(hours=int(zone[:2]), minutes=int(zone[2:]))
        return datetime(
            int(year),
            _MONTHS[mon.upper()],
            int(day),
            int(hh),
            int(mm),
            int(ss),
            tzinfo=timezone(sign * offset),
        )
    except (ValueError, KeyError, IndexError):
        return None


def parse_body_fetch(group: list[FetchEntry]) -> tuple[int, datetime | None, bytes] | None:
    """``(uid, internaldate, body)`` from one FETCH response of the common shape,
    or None to let the general parser decide.  The literal's length is checked
    against the announced one."""
    if len(group) != 2 or group[1] != b")" or not isinstance(group[0], tuple):
        return None
    head, body = group[0]
    if not isinstance(head, bytes) or not isinstance(body, bytes):
        return None
    m = _BODY_RESPONSE.fullmatch(head)
    if m is None or int(m.group(3)) != len(body):
        return None
    return int(m.group(1)), parse_internaldate(m.group(2)), body
