"""A Maildir folder's messages told by their names alone: one ``os.scandir`` of
``new/`` and ``cur/``, no ``stat`` per file.

What :meth:`~syncd.stores.maildir.folder.MaildirFolder.scan` does for a cycle that
must look at every message, this does for one that only needs to know which
messages are there and with which flags: the engine's delta path compares that
with the state and looks closer (:func:`look_up`, one ``lstat`` each) only at the
few that changed.  The type of an entry comes with the directory entry itself,
so symlinks, directories and other non-files are still told apart here; only an
empty file needs a ``stat`` to be seen for what it is, and :func:`look_up` sees it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from syncd.errors import FolderError
from syncd.flags import INFO_SEPARATOR, split_letters
from syncd.logsetup import printable
from syncd.model import Flags
from syncd.stores.maildir.folder import LocalMessage, Problem
from syncd.stores.maildir.fsio import cause, directory_signature, join
from syncd.stores.maildir.names import CONTROL_NAMES, is_utf8, junk_reason

_ATTEMPTS = 5


@dataclass
class NameIndex:
    """One listing of a folder: per subdir, unique name -> file name of the copies a
    scan would keep, and every entry's name (what a cycle expects to find at its end,
    before its own changes).  Names are the listing's own strings, not copies: a
    folder of 100k messages costs a few dict tables more than its names."""

    path: Path
    keywords: list[str]
    kept: dict[str, dict[str, str]] = field(default_factory=lambda: {"new": {}, "cur": {}})
    seen: dict[str, set[str]] = field(default_factory=lambda: {"new": set(), "cur": set()})
    problems: list[Problem] = field(default_factory=list)

    def where(self, uniq: str) -> tuple[str, str] | None:
        """(subdir, file name) of ``uniq``, or None."""
        for sub in ("cur", "new"):
            filename = self.kept[sub].get(uniq)
            if filename is not None:
                return sub, filename
        return None

    def flags(self) -> dict[str, Flags]:
        """Unique name -> flags (a new dict)."""
        decoded: dict[str, Flags] = {}
        out: dict[str, Flags] = {}
        for entries in self.kept.values():
            for uniq, filename in entries.items():
                letters = _letters(filename)
                got = decoded.get(letters)
                if got is None:
                    got = decoded[letters] = split_letters(letters, self.keywords)[0]
                out[uniq] = got
        return out


def _letters(filename: str) -> str:
    cut = filename.rfind(INFO_SEPARATOR)
    return "" if cut < 0 else filename[cut + len(INFO_SEPARATOR) :]


def list_names(path: Path, keywords: list[str]) -> NameIndex:
    """The folder's messages by name (see the module).  Listed again when the folder
    changes meanwhile; FolderError when ``cur/`` or ``new/`` cannot be listed or
    keeps changing."""
    for _ in range(_ATTEMPTS):
        before = directory_signature(path)
        index = _list_once(path, keywords)
        if directory_signature(path) == before:
            return index
    raise FolderError(f"{printable(path)} kept changing during {_ATTEMPTS} listings; skipped")


def _list_once(path: Path, keywords: list[str]) -> NameIndex:
    index = NameIndex(path, keywords)
    problems, new = index.problems, index.kept["new"]
    base = str(path)
    for sub in ("new", "cur"):  # as a scan does: a file moved to cur/ meanwhile is seen
        directory = join(base, sub)
        entries, seen = index.kept[sub], index.seen[sub]
        try:
            with os.scandir(directory) as listing:
                for entry in listing:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    seen.add(name)
                    cut = name.rfind(INFO_SEPARATOR)
                    uniq = name if cut < 0 else name[:cut]
                    reason = _junk(entry, uniq)
                    if reason is not None:
                        problems.append(Problem(Path(entry.path), reason))
                        continue
                    # Among duplicates, the copy a scan keeps: in cur/, then the smallest name.
                    prev = entries.get(uniq)
                    if prev is None and sub == "cur":
                        prev = new.pop(uniq, None)
                        if prev is not None:
                            problems.append(_duplicate(path, "new", prev, sub, name))
                            prev = None
                    if prev is None:
                        entries[uniq] = name
                        continue
                    keep, drop = (prev, name) if prev < name else (name, prev)
                    entries[uniq] = keep
                    problems.append(_duplicate(path, sub, drop, sub, keep))
        except FileNotFoundError as exc:
            raise FolderError(f"{printable(path)} is not a Maildir: {sub}/ is missing") from exc
        except OSError as exc:
            raise FolderError(f"cannot list {printable(directory)}: {exc.strerror}") from exc
    return index


def _duplicate(path: Path, sub: str, drop: str, kept_sub: str, kept: str) -> Problem:
    return Problem(path / sub / drop, f"duplicate of {kept_sub}/{kept}")


def _junk(entry: os.DirEntry[str], uniq: str) -> str | None:
    """What :func:`~syncd.stores.maildir.names.junk_reason` says of an entry, as far
    as the entry's name and type tell (an empty file needs a stat)."""
    name = entry.name
    if name.startswith(CONTROL_NAMES):
        return "a mail server's control file, not a message"
    if not entry.is_file(follow_symlinks=False):
        if entry.is_symlink():
            return "symlink"
        return "directory" if entry.is_dir(follow_symlinks=False) else "not a regular file"
    if not name.isascii() and not is_utf8(name):
        return "file name is not valid UTF-8"
    return None if uniq else "empty unique name"


def look_up(
    index: NameIndex, names: Iterable[str]
) -> tuple[dict[str, LocalMessage], list[Problem]]:
    """``names`` of ``index`` as a scan sees them (one ``lstat`` each), and those a
    scan would skip; names not in the index or gone meanwhile are left out."""
    found: dict[str, LocalMessage] = {}
    problems: list[Problem] = []
    base = str(index.path)
    for uniq in names:
        where = index.where(uniq)
        if where is None:
            continue
        sub, filename = where
        full = join(base, sub, filename)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(Problem(Path(full), cause(exc)))
            continue
        reason = junk_reason(filename, st)
        if reason is not None:
            problems.append(Problem(Path(full), reason))
            continue
        flags, extra = split_letters(_letters(filename), index.keywords)
        found[uniq] = LocalMessage(uniq, sub, filename, flags, st.st_size, st.st_mtime, extra)
    return found, problems
