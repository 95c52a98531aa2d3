"""IMAP SEARCH criteria as users and plugins write them: a checked split into
atoms, quoted strings and parentheses (:func:`parse_search`), and what to hand to
``ImapSession.search`` (:func:`search_args`)."""

from __future__ import annotations

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
