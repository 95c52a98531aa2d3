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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from syncd.errors import FolderError
from syncd.flags import INFO_SEPARATOR, flags_to_letters, keyword_index, split_letters
from syncd.logsetup import printable
from syncd.model import Flags
from syncd.stores.maildir.folder import LocalMessage, Problem
from syncd.stores.maildir.fsio import cause, directory_signature, join
from syncd.stores.maildir.names import junk_reason

_ATTEMPTS = 5


@dataclass
class NameIndex:
    """One listing of a folder: per subdir, unique name -> file name of the copy a
    scan would keep; unique name -> flags; every entry's name (what a cycle expects
    to find at its end, before its own changes).  Names are the listing's own
    strings, not copies: 100k messages cost their names and a few dict tables."""

    path: Path
    keywords: list[str]
    kept: dict[str, dict[str, str]] = field(default_factory=lambda: {"new": {}, "cur": {}})
    flags: dict[str, Flags] = field(default_factory=dict)
    seen: dict[str, set[str]] = field(default_factory=lambda: {"new": set(), "cur": set()})
    problems: list[Problem] = field(default_factory=list)

    def where(self, uniq: str) -> tuple[str, str] | None:
        """(subdir, file name) of ``uniq``, or None."""
        for sub in ("cur", "new"):
            filename = self.kept[sub].get(uniq)
            if filename is not None:
                return sub, filename
        return None


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
    base, flags, decoded = str(path), index.flags, _Decoder(keywords)
    for sub in ("new", "cur"):  # as a scan does: a file moved to cur/ meanwhile is seen
        directory = join(base, sub)
        try:
            names = os.listdir(directory)  # noqa: PTH208 - names only: no stat, no objects
        except FileNotFoundError as exc:
            raise FolderError(f"{printable(path)} is not a Maildir: {sub}/ is missing") from exc
        except OSError as exc:
            raise FolderError(f"cannot list {printable(directory)}: {exc.strerror}") from exc
        seen = index.seen[sub] = set(names)
        entries = index.kept[sub]
        for name in names:
            # The hot loop (100k turns): what only a stat tells (a symlink, an empty
            # file...) is left to look_up, which the engine calls for every name no
            # pair has -- and junk never has one.
            if name[0] == ".":
                seen.discard(name)
                continue
            cut = name.rfind(INFO_SEPARATOR)
            if cut < 0:
                uniq, letters = name, ""
            else:
                uniq, letters = name[:cut], name[cut + 3 :]
            if not uniq:
                index.problems.append(Problem(path / sub / name, "empty unique name"))
                continue
            if entries.setdefault(uniq, name) is not name or uniq in flags:
                _duplicate(index, sub, uniq, name)
                continue
            got = decoded.get(letters)
            flags[uniq] = got if got is not None else decoded.add(letters)
    return index


class _Decoder(dict[str, Flags]):
    """Info letters -> flags, decoded once per distinct set of letters."""

    def __init__(self, keywords: list[str]) -> None:
        super().__init__()
        self.keywords = keywords

    def add(self, letters: str) -> Flags:
        got = self[letters] = split_letters(letters, self.keywords)[0]
        return got


def _duplicate(index: NameIndex, sub: str, uniq: str, name: str) -> None:
    """Two entries of one unique name (rare): keep the copy a scan keeps -- a real
    file over junk, in cur/ over new/, then the smallest name -- and report the other."""
    copies = [(s, f) for s in ("new", "cur") if (f := index.kept[s].get(uniq)) is not None]
    if (sub, name) not in copies:
        copies.append((sub, name))
    base = str(index.path)
    real = []
    for s, f in copies:
        try:
            st = os.lstat(join(base, s, f))
        except OSError:
            continue
        if junk_reason(f, st) is None:
            real.append((s, f))
    keep = min(real or copies, key=lambda c: (c[0] != "cur", c[1]))
    for s, f in copies:
        index.kept[s].pop(uniq, None)
        if (s, f) != keep and (s, f) in real:
            index.problems.append(Problem(index.path / s / f, f"duplicate of {keep[0]}/{keep[1]}"))
    index.kept[keep[0]][uniq] = keep[1]
    index.flags[uniq] = split_letters(_letters(keep[1]), index.keywords)[0]


def look_up(
    index: NameIndex, names: Iterable[str]
) -> tuple[dict[str, LocalMessage], list[Problem]]:
    """``names`` of ``index`` as a scan sees them (one ``lstat`` each), and those a
    scan would skip; names not in the index or gone meanwhile are left out."""
    places = ((u, w) for u in names if (w := index.where(u)) is not None)
    return examine(index.path, index.keywords, places)


def guess(
    entries: Mapping[str, set[str]], names: Mapping[str, Flags], keywords: list[str]
) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Where each of ``names`` (unique name -> the flags it was left with) is, told
    from a listing's names (``entries``, per subdir) without a loop over them: the
    file is ``cur/NAME:2,LETTERS`` of those flags (or ``new/NAME`` with none).
    Returns the places found and the names not where their flags say."""
    index = keyword_index(keywords)
    cur, new = entries.get("cur", set()), entries.get("new", set())
    found: dict[str, tuple[str, str]] = {}
    missed: list[str] = []
    for uniq, flags in names.items():
        filename = uniq + INFO_SEPARATOR + flags_to_letters(flags, index)
        if filename in cur:
            found[uniq] = ("cur", filename)
        elif not flags and uniq in new:
            found[uniq] = ("new", uniq)
        else:
            missed.append(uniq)
    return found, missed


def examine(
    path: Path, keywords: list[str], places: Iterable[tuple[str, tuple[str, str]]]
) -> tuple[dict[str, LocalMessage], list[Problem]]:
    """The messages at ``places`` (unique name, (subdir, file name)) as a scan sees
    them (one ``lstat`` each), and those a scan would skip; gone ones are left out."""
    found: dict[str, LocalMessage] = {}
    problems: list[Problem] = []
    base = str(path)
    for uniq, (sub, filename) in places:
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
        flags, extra = split_letters(_letters(filename), keywords)
        found[uniq] = LocalMessage(uniq, sub, filename, flags, st.st_size, st.st_mtime, extra)
    return found, problems
