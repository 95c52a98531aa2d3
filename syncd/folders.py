"""Folder names: server hierarchy <-> local Maildir paths, validation, discovery.

Inside syncd a folder name is a tuple of Unicode components, the server's
hierarchy delimiter already split off (``("Lists", "python")``).  Two local
layouts exist, chosen per account:

- ``maildir++``: INBOX is the Maildir root itself; ``Lists/python`` lives in
  ``<root>/.Lists.python`` (the layout of Dovecot's and Courier's default).
- ``nested``: every folder, INBOX included, is a directory path under the
  root: ``<root>/INBOX``, ``<root>/Lists/python``.

Non-ASCII names are stored as UTF-8.  Every name is validated before it
touches the filesystem: a hostile server must not reach outside the root.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, Protocol

from syncd.errors import UnsafeNameError
from syncd.logsetup import printable

Layout = Literal["maildir++", "nested"]
LAYOUTS: tuple[Layout, ...] = ("maildir++", "nested")

INBOX = "INBOX"
#: LIST attributes of a name that is not a mailbox one can open.
NOT_SELECTABLE = frozenset({"\\NOSELECT", "\\NONEXISTENT"})
MAX_COMPONENT_BYTES = 255  # NAME_MAX on every filesystem we care about
MAX_NAME_BYTES = 1000  # isync's limit (127003e); far below PATH_MAX

# In the nested layout a folder directory also holds the Maildir's own entries;
# a child folder with one of these names would collide with them.
_RESERVED_NESTED = frozenset({"cur", "new", "tmp", "dovecot-keywords"})
_MAILDIR_SUBDIRS = frozenset({"cur", "new", "tmp"})


def _normalise_inbox(parts: tuple[str, ...]) -> tuple[str, ...]:
    if parts and parts[0].upper() == INBOX and parts[0] != INBOX:
        return (INBOX, *parts[1:])
    return parts


def split_name(name: str, delimiter: str | None) -> tuple[str, ...]:
    """Split a server folder name into components; ``INBOX`` in any case becomes
    ``INBOX`` (RFC 3501 §5.1), also as the first component of a longer name.

    Empty components are kept (``a//b`` -> ``("a", "", "b")``) so that
    :func:`local_path` rejects them rather than silently merging two names.
    """
    parts = (name,) if not delimiter else tuple(name.split(delimiter))
    return _normalise_inbox(parts)


def join_name(parts: Sequence[str], delimiter: str | None) -> str:
    """The server name of ``parts``; raises UnsafeNameError when it cannot be
    written unambiguously (a component containing the delimiter, or a nested
    name on a server without hierarchy)."""
    shown = "/".join(parts)
    if not parts:
        raise UnsafeNameError("empty folder name")
    if not delimiter:
        if len(parts) > 1:
            raise UnsafeNameError(
                f"folder {shown!r} cannot be created: the server has no hierarchy delimiter"
            )
        return parts[0]
    for part in parts:
        if delimiter in part:
            raise UnsafeNameError(
                f"folder {shown!r}: component {part!r} contains the server's "
                f"hierarchy delimiter {delimiter!r}"
            )
    return delimiter.join(parts)


def _component_problem(part: str, layout: Layout) -> str | None:
    """Why ``part`` cannot be a path component, or None when it can."""
    if part in {".", ".."}:
        return f"component {part!r} (possible attack)"
    if "/" in part:
        return f"component {part!r} contains '/' (possible attack)"
    if not part:
        return "empty component"
    if "\x00" in part:
        return "NUL character"
    # Category Cc = C0 controls, DEL and C1 controls (ESC, CSI...): never part of
    # a sane name, and dangerous in a terminal or a log line.
    if any(unicodedata.category(ch) == "Cc" for ch in part):
        return "control character"
    try:
        encoded = part.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid Unicode (lone surrogate)"
    if len(encoded) > MAX_COMPONENT_BYTES:
        return f"component longer than {MAX_COMPONENT_BYTES} bytes"
    if layout == "maildir++":
        if "." in part:
            return (
                f"component {part!r} contains '.', the maildir++ separator; "
                'use layout = "nested" for this account'
            )
    else:
        if part.startswith("."):
            return f"component {part!r} starts with '.' (a hidden directory)"
        if part in _RESERVED_NESTED:
            return f"component {part!r} clashes with a Maildir entry of its parent"
    return None


def _relative_parts(parts: tuple[str, ...], layout: Layout) -> tuple[str, ...]:
    """The path components under the root, after validation."""
    if layout == "nested":
        return parts
    if parts == (INBOX,):
        return ()
    return ("." + ".".join(parts),)


def local_path(root: Path, parts: tuple[str, ...], layout: Layout) -> Path:
    """The Maildir directory of folder ``parts`` under ``root``.

    Raises UnsafeNameError (one line, naming the folder and the reason) for a
    name that is empty, has an empty, ``.``, ``..``, hidden or reserved
    component, contains ``/``, NUL, control characters or invalid Unicode, is
    too long, or would resolve outside ``root`` (including through a symlinked
    directory already on disk).  Pure apart from resolving existing symlinks.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}")
    shown = "/".join(parts)
    if not parts:
        raise UnsafeNameError("unsafe folder name '': empty name")
    if len(parts) > 1 and parts[0] == "":
        raise UnsafeNameError(f"unsafe folder name {shown!r}: absolute path (possible attack)")
    parts = _normalise_inbox(parts)
    for part in parts:
        problem = _component_problem(part, layout)
        if problem is not None:
            raise UnsafeNameError(f"unsafe folder name {shown!r}: {problem}")
    relative = _relative_parts(parts, layout)
    if any(len(p.encode("utf-8")) > MAX_COMPONENT_BYTES for p in relative):
        raise UnsafeNameError(
            f"unsafe folder name {shown!r}: longer than {MAX_COMPONENT_BYTES} bytes "
            "as one maildir++ directory name"
        )
    if len("/".join(relative).encode("utf-8")) > MAX_NAME_BYTES:
        raise UnsafeNameError(f"unsafe folder name {shown!r}: longer than {MAX_NAME_BYTES} bytes")
    path = root.joinpath(*relative)
    _check_inside(root, path, shown)
    return path


def _check_inside(root: Path, path: Path, shown: str) -> None:
    # Belt and braces after the component checks: the lexical path, and the
    # path with every existing symlink resolved, must both stay under the root.
    base = os.path.abspath(root)  # noqa: PTH100 -- lexical only, no symlink resolution
    lexical = os.path.normpath(os.path.abspath(path))  # noqa: PTH100 -- same
    real_base = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([base, lexical]) != base or (
        os.path.commonpath([real_base, real]) != real_base
    ):
        raise UnsafeNameError(
            f"unsafe folder name {shown!r}: resolves outside the Maildir root "
            "(symlinked directory?); possible attack"
        )


def discover(root: Path, layout: Layout) -> tuple[list[tuple[str, ...]], list[str]]:
    """The Maildir folders present under ``root`` and the problems found.

    A folder is a directory with a ``cur/`` subdirectory.  Symlinks are never
    followed: a symlinked folder is reported, not listed.  Also reported (one
    line each, naming the path): names that are not valid UTF-8 and names that
    would not map back to the same directory through :func:`local_path`.
    Returns the folders sorted, INBOX first when present.
    """
    folders: list[tuple[str, ...]] = []
    problems: list[str] = []
    if layout == "maildir++":
        _discover_maildirpp(root, folders, problems)
    else:
        _discover_nested(root, (), folders, problems, is_root=True)
    folders.sort(key=inbox_first)
    return folders, problems


def _has_cur(path: Path) -> bool:
    # lstat: a ``cur`` that is a symlink does not make a folder (it could point
    # anywhere, and scanning it would read files outside the root).
    try:
        return stat.S_ISDIR(os.lstat(path / "cur").st_mode)
    except OSError:
        return False


def _decodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir gave surrogate escapes: not UTF-8 on disk
        return False
    return True


def _scandir(path: Path, problems: list[str]) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        problems.append(f"skipped {printable(path)}: {exc.strerror or exc}")
        return []


def _maps_back(
    root: Path, parts: tuple[str, ...], layout: Layout, path: Path, problems: list[str]
) -> bool:
    try:
        mapped = local_path(root, parts, layout)
    except UnsafeNameError as exc:
        problems.append(f"skipped {printable(path)}: {exc}")
        return False
    if mapped != path:
        problems.append(
            f"skipped {printable(path)}: name does not map back (would be {printable(mapped)})"
        )
        return False
    return True


def _discover_maildirpp(root: Path, folders: list[tuple[str, ...]], problems: list[str]) -> None:
    if _has_cur(root):
        folders.append((INBOX,))
    for entry in _scandir(root, problems):
        name = entry.name
        if not name.startswith(".") or name in {".", ".."}:
            continue
        path = root / name
        if not _decodable(name):
            if _has_cur(path):
                problems.append(f"skipped {printable(path)}: folder name is not valid UTF-8")
            continue
        if entry.is_symlink():
            if entry.is_dir():
                problems.append(f"skipped {printable(path)}: symlinked folder (not followed)")
            continue
        if not entry.is_dir(follow_symlinks=False) or not _has_cur(path):
            continue
        parts = _normalise_inbox(tuple(name[1:].split(".")))
        if _maps_back(root, parts, "maildir++", path, problems):
            folders.append(parts)


def _discover_nested(
    root: Path,
    prefix: tuple[str, ...],
    folders: list[tuple[str, ...]],
    problems: list[str],
    *,
    is_root: bool = False,
) -> None:
    here = root.joinpath(*prefix)
    if is_root and _has_cur(root):
        problems.append(
            f"skipped {printable(root)}: the root itself is a Maildir, but in the nested layout "
            f"INBOX is {root / INBOX} (maildir++ layout?)"
        )
    for entry in _scandir(here, problems):
        name = entry.name
        path = here / name
        if name in _MAILDIR_SUBDIRS:
            continue
        if entry.is_symlink():
            if entry.is_dir():
                problems.append(f"skipped {printable(path)}: symlinked folder (not followed)")
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        if not _decodable(name):
            problems.append(f"skipped {printable(path)}: folder name is not valid UTF-8")
            continue
        if name.startswith("."):
            # Hidden directories (.notmuch, .git) are not folders; one holding a
            # Maildir is worth a word: probably a maildir++ tree.
            if _has_cur(path):
                problems.append(f"skipped {printable(path)}: hidden directory (maildir++ folder?)")
            continue
        parts = _normalise_inbox((*prefix, name))
        if _has_cur(path) and _maps_back(root, parts, "nested", path, problems):
            folders.append(parts)
        _discover_nested(root, (*prefix, name), folders, problems)


def _normalise_pattern(pattern: str) -> str:
    head, sep, tail = pattern.partition("/")
    return INBOX + sep + tail if head.upper() == INBOX else pattern


def matches(
    parts: Sequence[str], include: Sequence[str] = ("*",), exclude: Sequence[str] = ()
) -> bool:
    """Whether folder ``parts`` is selected by shell-style patterns.

    Patterns are matched (``fnmatch.fnmatchcase``) against the name joined with
    ``/`` whatever the server's delimiter, so ``Lists/*`` works everywhere;
    ``*`` also matches ``/`` (``Lists/*`` selects ``Lists/a/b``).  INBOX is
    matched case-insensitively, as a whole name or first component.
    """
    name = "/".join(_normalise_inbox(tuple(parts)))
    inc = [_normalise_pattern(p) for p in include]
    exc = [_normalise_pattern(p) for p in exclude]
    return any(fnmatch.fnmatchcase(name, p) for p in inc) and not any(
        fnmatch.fnmatchcase(name, p) for p in exc
    )


def clashes(names: Iterable[tuple[str, ...]]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Pairs of distinct names that differ only by case or Unicode normalisation.

    On Linux they are distinct directories, but on a case-insensitive or
    normalising filesystem (macOS, some network shares) two server folders
    would land in one local folder.  The caller decides (warn, or skip one).
    """
    seen: dict[tuple[str, ...], tuple[str, ...]] = {}
    found: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for name in names:
        key = tuple(unicodedata.normalize("NFC", p).casefold() for p in name)
        other = seen.setdefault(key, name)
        if other != name:
            found.append((other, name))
    return found


class ListedFolder(Protocol):
    """What a far store's folder listing says of one name (IMAP LIST)."""

    @property
    def name(self) -> str: ...
    @property
    def delimiter(self) -> str | None: ...
    @property
    def flags(self) -> Iterable[str]: ...


def selectable(flags: Iterable[str]) -> bool:
    """Whether a listed folder can be opened (not ``\\Noselect``/``\\NonExistent``)."""
    return not {f.upper() for f in flags} & NOT_SELECTABLE


def inbox_first(parts: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
    """Sort key: INBOX first, then by name components."""
    return (parts != (INBOX,), parts)


def selectable_folders(
    listed: Iterable[ListedFolder], delimiter: str | None
) -> dict[tuple[str, ...], str]:
    """The folders of a listing that can be opened: name components -> the server's
    name, INBOX first, then sorted (a name's own delimiter wins over ``delimiter``)."""
    found = {
        split_name(info.name, info.delimiter or delimiter): info.name
        for info in listed
        if selectable(info.flags)
    }
    return {parts: found[parts] for parts in sorted(found, key=inbox_first)}
