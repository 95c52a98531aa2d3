"""IMAP SEARCH criteria as users and plugins write them: a checked split into
atoms, quoted strings and parentheses (:func:`parse_search`), a check against the
grammar of RFC 9051 §6.4.4 search keys (:func:`check_search`, what ``syncd check``
and a rule's constructor use), and what to hand to ``ImapSession.search``
(:func:`search_args`)."""

from __future__ import annotations

import contextlib
import datetime
import difflib
import json
import re
from collections.abc import Sequence
from typing import Any, Final


class Quoted(str):
    """A quoted string of SEARCH criteria (unescaped), as opposed to an atom."""

    __slots__ = ()


SearchItem = str | list["SearchItem"]

_TOKEN_RE: Final = re.compile(
    r"""\s*(?:(?P<open>\()|(?P<close>\))|"(?P<quoted>(?:[^"\\]|\\["\\])*)"|(?P<atom>[^\s()"{]+)|(?P<bad>\S))"""
)


def parse_search(text: object) -> list[SearchItem]:
    """Split SEARCH criteria into atoms, :class:`Quoted` strings (unescaped) and
    nested lists for parentheses.  ValueError for empty criteria, a line break
    or NUL, an unclosed quote or parenthesis, or a literal (``{n}``)."""
    if not isinstance(text, str):
        raise ValueError(f"search must be a string (got {type(text).__name__})")
    if re.search(r"[\r\n\0]", text):
        raise ValueError("search must not contain a line break or NUL")
    stack: list[list[SearchItem]] = [[]]
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any non-blank character
            break
        pos = m.end()
        if m.group("open"):
            stack.append([])
        elif m.group("close"):
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' in search {json.dumps(text)}")
            inner = stack.pop()
            if not inner:
                raise ValueError(f"empty parentheses in search {json.dumps(text)}")
            stack[-1].append(inner)
        elif m.group("quoted") is not None:
            stack[-1].append(Quoted(re.sub(r"\\(.)", r"\1", m.group("quoted"))))
        elif m.group("atom"):
            stack[-1].append(m.group("atom"))
        else:
            bad = m.group("bad")
            what = "an unclosed quote" if bad == '"' else f"unexpected {bad!r}"
            raise ValueError(f"{what} in search {json.dumps(text)}")
    if len(stack) != 1:
        raise ValueError(f"unclosed '(' in search {json.dumps(text)}")
    if not stack[0]:
        raise ValueError("search must not be empty (write ALL to match every message)")
    return stack[0]


def render_search(items: Sequence[SearchItem]) -> str:
    """Criteria as one line of IMAP text: atoms as they are, quoted strings re-quoted."""
    out = []
    for item in items:
        if isinstance(item, list):
            out.append("(" + render_search(item) + ")")
        elif isinstance(item, Quoted):
            out.append('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(item)
    return " ".join(out)


def search_args(text: str) -> tuple[str | list[Any], str | None]:
    """The ``(criteria, charset)`` to hand to ``ImapSession.search``.

    ASCII criteria go as one line of text, as the user wrote them (blanks
    normalised).  Criteria with non-ASCII text go as items with ``CHARSET
    UTF-8``: IMAPClient then sends the 8-bit strings as literals (RFC 9051
    §6.4.4).  Items are UTF-8 bytes because IMAPClient encodes the items of
    nested lists as ASCII.
    """
    items = parse_search(text)
    if text.isascii():
        return render_search(items), None
    return _to_bytes(items), "UTF-8"


def _to_bytes(items: Sequence[SearchItem], *, nested: bool = False) -> list[Any]:
    out: list[Any] = [
        _to_bytes(i, nested=True) if isinstance(i, list) else i.encode("utf-8") for i in items
    ]
    if nested:
        # IMAPClient glues "(" and ")" onto the first and last item of a nested list,
        # and an 8-bit item goes out as a literal: the parenthesis would end up inside
        # it.  ALL is neutral in an AND list, so it keeps 8-bit text off the edges.
        if isinstance(out[-1], bytes) and not out[-1].isascii():
            out.append(b"ALL")
        if isinstance(out[0], bytes) and not out[0].isascii():
            out.insert(0, b"ALL")
    return out


# --------------------------------------------------------------------------- grammar

# What follows a search key (RFC 9051 §9 "search-key" and the extensions' ABNF).
_ASTRING, _DATE, _NUMBER, _NZ, _KEYWORD, _FIELD, _KEY, _SET, _OBJECTID, _ATOM, _MODSEQ = (
    "a string",
    "a date like 1-Jan-2024",
    "a number",
    "a number from 1",
    "a keyword such as $Junk",
    "a header field name",
    "a search key",
    "a set of message numbers such as 1:10,20",
    "an object id",
    "a name",
    "a mod-sequence number",
)

#: Every search key syncd knows, with what must follow it.
SEARCH_KEYS: Final[dict[str, tuple[str, ...]]] = {
    # RFC 9051 §6.4.4
    "ALL": (),
    "ANSWERED": (),
    "BCC": (_ASTRING,),
    "BEFORE": (_DATE,),
    "BODY": (_ASTRING,),
    "CC": (_ASTRING,),
    "DELETED": (),
    "DRAFT": (),
    "FLAGGED": (),
    "FROM": (_ASTRING,),
    "HEADER": (_FIELD, _ASTRING),
    "KEYWORD": (_KEYWORD,),
    "LARGER": (_NUMBER,),
    "NOT": (_KEY,),
    "ON": (_DATE,),
    "OR": (_KEY, _KEY),
    "SEEN": (),
    "SENTBEFORE": (_DATE,),
    "SENTON": (_DATE,),
    "SENTSINCE": (_DATE,),
    "SINCE": (_DATE,),
    "SMALLER": (_NUMBER,),
    "SUBJECT": (_ASTRING,),
    "TEXT": (_ASTRING,),
    "TO": (_ASTRING,),
    "UID": (_SET,),
    "UNANSWERED": (),
    "UNDELETED": (),
    "UNDRAFT": (),
    "UNFLAGGED": (),
    "UNKEYWORD": (_KEYWORD,),
    "UNSEEN": (),
    # IMAP4rev1 (RFC 3501): dropped by RFC 9051, still answered by servers
    "NEW": (),
    "OLD": (),
    "RECENT": (),
    # extensions: CONDSTORE (RFC 7162), WITHIN (RFC 5032), SAVEDATE (RFC 8514),
    # OBJECTID (RFC 8474), FUZZY (RFC 6203), FILTERS (RFC 5466), Gmail's X-GM-*
    "MODSEQ": (_MODSEQ,),
    "OLDER": (_NZ,),
    "YOUNGER": (_NZ,),
    "SAVEDBEFORE": (_DATE,),
    "SAVEDON": (_DATE,),
    "SAVEDSINCE": (_DATE,),
    "SAVEDATESUPPORTED": (),
    "EMAILID": (_OBJECTID,),
    "THREADID": (_OBJECTID,),
    "FUZZY": (_KEY,),
    "FILTER": (_ATOM,),
    "X-GM-RAW": (_ASTRING,),
    "X-GM-MSGID": (_NUMBER,),
    "X-GM-THRID": (_NUMBER,),
    "X-GM-LABELS": (_ASTRING,),
}

_MONTHS: Final = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)
_DATE_RE: Final = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_SEQ_NUMBER: Final = r"(?:[1-9]\d{0,9}|\*)"
_SEQ_RANGE: Final = rf"{_SEQ_NUMBER}(?::{_SEQ_NUMBER})?"
_SEQ_SET_RE: Final = re.compile(rf"\$|{_SEQ_RANGE}(?:,{_SEQ_RANGE})*")  # "$": SEARCHRES
# ATOM-CHAR: any CHAR but atom-specials ( ) { SP CTL % * " \ ]; 8-bit text goes as a literal.
_ATOM_RE: Final = re.compile(r'[^(){ \x00-\x1f\x7f%*"\\\]]+')
_ASTRING_RE: Final = re.compile(r'[^(){ \x00-\x1f\x7f%*"\\]+')  # ASTRING-CHAR adds "]"
_OBJECTID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,255}")
_FIELD_RE: Final = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII but ":"
_MAX_NUMBER64: Final = 2**63 - 1


def check_search(text: object) -> list[SearchItem]:
    """:func:`parse_search`, then check the items against the grammar of RFC 9051
    §6.4.4 search keys (and the common extensions in :data:`SEARCH_KEYS`): every key
    known, each followed by what it takes.  Raises ValueError naming the bad token:
    ``unknown search key FROMM (did you mean FROM?)``."""
    items = parse_search(text)
    first = items[0]
    if isinstance(first, str) and not isinstance(first, Quoted) and first.upper() == "CHARSET":
        raise ValueError(
            "leave out CHARSET: syncd sends criteria with non-ASCII text with CHARSET UTF-8"
        )
    with contextlib.suppress(_Unchecked):  # checked up to a vendor key: the server judges the rest
        _Keys(items).all()
    return items


class _Unchecked(Exception):
    """A vendor search key (``X-...``) the table does not know: stop checking."""


class _Keys:
    """Recursive descent over one list of items (a parenthesised list is an item)."""

    def __init__(self, items: Sequence[SearchItem]) -> None:
        self.items, self.pos = items, 0

    def all(self) -> None:
        while self.pos < len(self.items):
            self.key()

    def next(self, key: str, wanted: str) -> SearchItem:
        if self.pos >= len(self.items):
            raise ValueError(f"{key} needs {wanted} after it")
        item = self.items[self.pos]
        self.pos += 1
        return item

    def key(self, after: str | None = None) -> None:
        wanted = "two search keys" if after == "OR" else _KEY
        item = self.next(after, wanted) if after is not None else self.items[self.pos]
        if after is None:
            self.pos += 1
        if isinstance(item, list):
            _Keys(item).all()
            return
        if isinstance(item, Quoted):
            where = f"after {after}" if after else "where a search key belongs"
            raise ValueError(f'the string {json.dumps(item)} stands {where} (e.g. SUBJECT "...")')
        upper = item.upper()
        spec = SEARCH_KEYS.get(upper)
        if spec is None:
            if _SEQ_SET_RE.fullmatch(item):
                return  # message sequence numbers
            if upper.startswith("X-") and len(upper) > 2:
                # A vendor extension this table does not know (the server that
                # offers it does): its arguments cannot be checked, so what follows
                # is left to the server, whose refusal names the problem.
                raise _Unchecked(item)
            close = difflib.get_close_matches(upper, SEARCH_KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown search key {item}{hint}")
        for wanted in spec:
            if wanted == _KEY:
                self.key(after=upper)
            else:
                self.argument(upper, wanted)

    def argument(self, key: str, wanted: str) -> None:
        if wanted == _MODSEQ:
            self.modseq(key)
            return
        item = self.next(key, wanted)
        shown = "(...)" if isinstance(item, list) else json.dumps(item, ensure_ascii=False)
        if isinstance(item, list) or not _ARGUMENT[wanted](item):
            raise ValueError(f"{key} needs {wanted}, not {shown}{_advice(key, wanted, item)}")

    def modseq(self, key: str) -> None:
        # "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer (RFC 7162)
        item = self.next(key, _MODSEQ)
        if isinstance(item, Quoted):
            if not item.startswith("/flags/"):
                raise ValueError(f'MODSEQ entry name must be "/flags/FLAG", not {json.dumps(item)}')
            kind = self.next(key, "priv, shared or all")
            if not isinstance(kind, str) or kind.lower() not in ("priv", "shared", "all"):
                raise ValueError(f"MODSEQ needs priv, shared or all after {json.dumps(item)}")
            item = self.next(key, _MODSEQ)
        if not _is_number(item):
            shown = "(...)" if isinstance(item, list) else json.dumps(item)
            raise ValueError(f"MODSEQ needs {_MODSEQ}, not {shown}")


def _is_number(item: SearchItem, *, low: int = 0) -> bool:
    return (
        isinstance(item, str)
        and not isinstance(item, Quoted)
        and item.isascii()
        and item.isdigit()
        and low <= int(item) <= _MAX_NUMBER64
    )


def _is_date(item: SearchItem) -> bool:
    # date = date-text / DQUOTE date-text DQUOTE
    m = _DATE_RE.fullmatch(item) if isinstance(item, str) else None
    if m is None or m.group(2).lower() not in _MONTHS:
        return False
    try:
        datetime.date(int(m.group(3)), _MONTHS.index(m.group(2).lower()) + 1, int(m.group(1)))
    except ValueError:
        return False
    return True


def _is_astring(item: SearchItem) -> bool:
    if isinstance(item, Quoted):
        return True
    return isinstance(item, str) and (not item.isascii() or bool(_ASTRING_RE.fullmatch(item)))


def _is_atom(item: SearchItem) -> bool:
    return isinstance(item, str) and not isinstance(item, Quoted) and bool(_ATOM_RE.fullmatch(item))


_ARGUMENT: Final = {
    _ASTRING: _is_astring,
    _DATE: _is_date,
    _NUMBER: _is_number,
    _NZ: lambda item: _is_number(item, low=1),
    _KEYWORD: _is_atom,
    _FIELD: lambda item: isinstance(item, str) and bool(_FIELD_RE.fullmatch(item)),
    _SET: lambda item: not isinstance(item, Quoted) and bool(_SEQ_SET_RE.fullmatch(str(item))),
    _OBJECTID: lambda item: not isinstance(item, Quoted) and bool(_OBJECTID_RE.fullmatch(item)),
    _ATOM: _is_atom,
}


def _advice(key: str, wanted: str, item: SearchItem) -> str:
    if wanted == _KEYWORD and isinstance(item, str) and item.startswith("\\"):
        flag = item[1:].upper()
        if flag in ("SEEN", "ANSWERED", "FLAGGED", "DELETED", "DRAFT"):
            use = flag if key == "KEYWORD" else f"UN{flag}"
            return f" (a system flag: use {use})"
        return " (a system flag, not a keyword)"
    if wanted == _ASTRING and isinstance(item, str) and not isinstance(item, Quoted):
        return " (put it in double quotes)"
    return ""
