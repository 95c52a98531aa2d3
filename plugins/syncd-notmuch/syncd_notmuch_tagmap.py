"""IMAP flags and keywords <-> notmuch tags: the map and the conversions.  Pure.

The map pairs an IMAP flag with a tag, optionally inverted (``"!unread"``: the
tag is there exactly when the flag is not).  Every other IMAP keyword is the tag
of the same name, and every other tag the keyword of the same name, except
the ignored tags (``inbox``, ``attachment``...: notmuch's own, which mean
nothing on a server), tags that are not IMAP atoms (a space, a parenthesis,
non-ASCII), and names the map already gives a meaning: a keyword named like a
mapped tag (``flagged``) or a tag named like a mapped keyword (``$Junk``) takes
no part, so each side's name stands for one thing only.

Merging happens in IMAP terms: :meth:`TagMap.flags_of_tags` turns a message's
tags into the flags they stand for, :meth:`TagMap.managed` keeps the flags a
Maildir file has that the map syncs, and :meth:`TagMap.tags_of_flags` turns the
merged flags back into tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from syncd.api import MaildirFiles

#: IMAP flag or keyword -> notmuch tag; "!" inverts.  notmuch's own names for
#: the flags its ``maildir.synchronize_flags`` keeps in step, plus ``$Junk``.
DEFAULT_MAP: Mapping[str, str] = MappingProxyType(
    {
        "\\Seen": "!unread",
        "\\Flagged": "flagged",
        "\\Answered": "replied",
        "\\Draft": "draft",
        "$Forwarded": "passed",
        "$Junk": "spam",
    }
)
#: Tags notmuch or its users set for themselves: never sent to the server.
DEFAULT_IGNORE: frozenset[str] = frozenset({"inbox", "new", "attachment", "signed", "encrypted"})
#: The system flags a Maildir file name can carry and that may be mapped
#: (``\\Deleted`` may not: a tag must never expunge mail).
MAPPABLE_SYSTEM = frozenset({"\\Seen", "\\Flagged", "\\Answered", "\\Draft"})

is_keyword_name = MaildirFiles.valid_keyword


@dataclass(frozen=True)
class Mapped:
    """One entry of the map: ``flag`` <-> ``tag``, ``inverted`` for ``"!tag"``."""

    flag: str
    tag: str
    inverted: bool = False


class TagMap:
    """The map in force for one account, built by :meth:`from_settings`."""

    def __init__(self, entries: Iterable[Mapped], ignore: Iterable[str] = DEFAULT_IGNORE) -> None:
        self.entries = tuple(sorted(entries, key=lambda e: e.flag))
        self.ignore = frozenset(ignore)
        self._by_flag = {e.flag: e for e in self.entries}
        self._by_tag = {e.tag: e for e in self.entries}
        if len(self._by_tag) != len(self.entries):
            raise ValueError("two flags map to the same tag")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TagMap:
        """The map of ``[plugins.notmuch]``: ``tag_map`` entries over
        :data:`DEFAULT_MAP` (``""`` drops one), ``ignore_tags`` instead of
        :data:`DEFAULT_IGNORE`.  ValueError naming the key when malformed."""
        raw = settings.get("tag_map", {})
        if not isinstance(raw, Mapping):
            raise ValueError(
                'plugins.notmuch.tag_map must be a table, e.g. { "\\\\Flagged" = "flagged" }'
            )
        merged = dict(DEFAULT_MAP)
        for flag, tag in raw.items():
            if not isinstance(tag, str):
                raise ValueError(f"plugins.notmuch.tag_map.{flag}: must be a tag name (a string)")
            merged[_canonical(str(flag))] = tag
        entries = [_entry(flag, tag) for flag, tag in merged.items() if tag]
        ignore = settings.get("ignore_tags", DEFAULT_IGNORE)
        if isinstance(ignore, str) or not all(isinstance(t, str) for t in ignore):
            raise ValueError('plugins.notmuch.ignore_tags must be a list of tags, e.g. ["inbox"]')
        try:
            return cls(entries, ignore)
        except ValueError as exc:
            raise ValueError(f"plugins.notmuch.tag_map: {exc}") from None

    # -- conversions -------------------------------------------------------------------

    def plain(self, name: str) -> bool:
        """Whether ``name`` is synced as itself: the keyword and the tag of that name."""
        return (
            name not in self.ignore
            and name not in self._by_tag
            and name not in self._by_flag
            and is_keyword_name(name)
        )

    def takes_part(self, tag: str) -> bool:
        """Whether the tag ``tag`` is synced: mapped, or a keyword of the same name."""
        return tag in self._by_tag or self.plain(tag)

    def managed(self, flags: Iterable[str]) -> frozenset[str]:
        """The flags of ``flags`` (a Maildir file's) that this map syncs."""
        return frozenset(f for f in flags if f in self._by_flag or self.plain(f))

    def flags_of_tags(self, tags: Iterable[str]) -> frozenset[str]:
        """The synced flags a message with ``tags`` has in IMAP terms."""
        have = set(tags)
        out = {e.flag for e in self.entries if (e.tag in have) != e.inverted}
        out.update(t for t in have if self.plain(t))
        return frozenset(out)

    def tags_of_flags(self, flags: Iterable[str]) -> frozenset[str]:
        """The synced tags a message with the synced ``flags`` should have."""
        have = set(flags)
        out = {e.tag for e in self.entries if (e.flag in have) != e.inverted}
        out.update(f for f in have if self.plain(f))
        return frozenset(out)

    def tag_changes(
        self, tags: Iterable[str], flags: Iterable[str]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """``(add, remove)`` that give a message with ``tags`` the synced tags of
        ``flags``; tags that take no part are left alone."""
        have = frozenset(tags)
        want = self.tags_of_flags(flags)
        return want - have, frozenset(t for t in have - want if self.takes_part(t))


def _entry(flag: str, tag: str) -> Mapped:
    inverted = tag.startswith("!")
    name = tag[1:] if inverted else tag
    where = f"plugins.notmuch.tag_map.{flag}"
    if not name or any(ch.isspace() for ch in name) or name.startswith(("+", "-", "!")):
        raise ValueError(f'{where}: not a tag name: "{tag}"')
    if flag.startswith("\\"):
        if flag not in MAPPABLE_SYSTEM:
            raise ValueError(
                f"{where}: only {', '.join(sorted(MAPPABLE_SYSTEM))} and keywords can be mapped"
            )
    elif not is_keyword_name(flag):
        raise ValueError(f"{where}: {flag} is not an IMAP keyword")
    return Mapped(flag, name, inverted)


def _canonical(flag: str) -> str:
    """System flags in their usual spelling (``\\seen`` -> ``\\Seen``); keywords as given."""
    if flag.startswith("\\"):
        return {f.lower(): f for f in MAPPABLE_SYSTEM}.get(flag.lower(), flag)
    return flag
