"""Dovecot's ``dovecot-keywords`` table: which keyword each Maildir info letter
``a``..``z`` stands for in one folder.  Read through a cache keyed by the file's
(mtime, inode, size); appended to atomically (write temp, fsync, rename)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from syncd.errors import FolderError, MessageError
from syncd.flags import (
    MAX_KEYWORDS,
    flags_to_letters,
    is_keyword,
    keyword_index,
    split_letters,
    unmapped_flags,
)
from syncd.logsetup import printable
from syncd.model import Flags
from syncd.stores.maildir.fsio import READ_FLAGS, cause, join, read_fd, replace_file
from syncd.stores.maildir.names import KEYWORDS_FILE

# The name it had before the package split: users' log filters use it.
log = logging.getLogger("syncd.maildir")

# IMAP atom-specials (RFC 3501 §9) and space: a keyword is an atom.
_ATOM_SPECIALS = frozenset('(){ %*"\\]')


def valid_keyword(keyword: str) -> bool:
    """Whether ``keyword`` can be stored in ``dovecot-keywords`` (an IMAP atom)."""
    return (
        bool(keyword)
        and len(keyword) <= 200
        and keyword.isascii()
        and keyword.isprintable()
        and not keyword.startswith("\\")
        and not any(ch in _ATOM_SPECIALS for ch in keyword)
    )


class KeywordTable:
    """The ``dovecot-keywords`` file of the folder at ``folder``; see
    :meth:`MaildirFolder.keywords <syncd.stores.maildir.folder.MaildirFolder.keywords>`
    and :meth:`~syncd.stores.maildir.folder.MaildirFolder.ensure_keywords`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._str = str(folder)
        self._cache: tuple[tuple[int, int, int], list[str]] | None = None

    def read(self) -> list[str]:
        """The keyword list, ``""`` for an unused slot; FolderError when unreadable."""
        path = join(self._str, KEYWORDS_FILE)
        try:
            st = os.stat(path)  # noqa: PTH116 -- str path
        except FileNotFoundError:
            self._cache = None
            return []
        except OSError as exc:
            raise FolderError(f"cannot read {printable(path)}: {cause(exc)}") from exc
        sig = (st.st_mtime_ns, st.st_ino, st.st_size)
        if self._cache is not None and self._cache[0] == sig:
            return list(self._cache[1])
        try:
            fd = os.open(path, READ_FLAGS)
            try:
                text = read_fd(fd, path).decode("utf-8", "replace")
            finally:
                os.close(fd)
        except (OSError, MessageError) as exc:
            raise FolderError(f"cannot read {printable(path)}: {exc}") from exc
        result = parse_keywords(text)
        self._cache = (sig, result)
        return list(result)

    def ensure(self, wanted: Iterable[str], *, fsync: bool) -> list[str]:
        """Give every valid keyword of ``wanted`` a letter; returns the new list."""
        current = self.read()
        known = set(current)
        missing = [k for k in dict.fromkeys(wanted) if k not in known and valid_keyword(k)]
        room = MAX_KEYWORDS - len(current)
        if not missing or room <= 0:
            return current
        updated = current + missing[:room]
        text = "".join(f"{i} {k}\n" for i, k in enumerate(updated) if k)
        path = join(self._str, KEYWORDS_FILE)
        try:
            replace_file(self._str, KEYWORDS_FILE, text.encode("ascii"), fsync=fsync)
        except OSError as exc:
            raise FolderError(f"cannot write {printable(path)}: {cause(exc)}") from exc
        self._cache = None
        log.debug("%s: new keywords %s", printable(self.folder), missing[:room])
        return updated

    def encode(self, flags: Flags, keep: str, *, fsync: bool) -> tuple[str, Flags, str]:
        """``(letters, flags as stored, extra letters)`` for a file name."""
        keyword_flags = sorted(f for f in flags if is_keyword(f))  # stable letters
        if keyword_flags:
            keywords = self.ensure(keyword_flags, fsync=fsync)
        elif any("a" <= ch <= "z" for ch in keep):
            keywords = self.read()
        else:
            keywords = []
        index = keyword_index(keywords)
        lost = unmapped_flags(flags, index)
        if lost:
            log.warning(
                "%s: flags %s have no Maildir letter and are not stored locally",
                printable(self.folder),
                ascii(sorted(lost)),
            )
        letters = flags_to_letters(flags, index, keep)
        stored, extra = split_letters(letters, keywords)
        return letters, stored, extra


def parse_keywords(text: str) -> list[str]:
    slots: dict[int, str] = {}
    for line in text.splitlines():
        number, _, keyword = line.partition(" ")
        if number.isdigit() and int(number) < MAX_KEYWORDS and valid_keyword(keyword):
            slots[int(number)] = keyword
    if not slots:
        return []
    return [slots.get(i, "") for i in range(max(slots) + 1)]
