"""Which folders a local Maildir tree holds, in the account's layout and name encoding.

A folder is a directory with a ``cur/`` subdirectory; symlinks are never followed.
Every directory found is mapped back through :func:`syncd.folders.local_path`: only
names that map to the same directory are folders, so discovery and the sync agree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from syncd.errors import UnsafeNameError
from syncd.folders import (
    INBOX,
    MAILDIR_SUBDIRS,
    Layout,
    LocalNames,
    decode_component,
    inbox_first,
    local_path,
    normalise_inbox,
)
from syncd.logsetup import printable


def discover(
    root: Path, layout: Layout, *, names: LocalNames = "utf-8"
) -> tuple[list[tuple[str, ...]], list[str]]:
    """The Maildir folders present under ``root`` and the problems found.

    A folder is a directory with a ``cur/`` subdirectory.  Symlinks are never
    followed: a symlinked folder is reported, not listed.  Also reported (one
    line each, naming the path): names that are not valid UTF-8, or under
    ``names = "imap-utf-7"`` not valid modified UTF-7, and names that would not
    map back to the same directory through :func:`local_path`.
    Returns the folders (decoded) sorted, INBOX first when present.
    """
    folders: list[tuple[str, ...]] = []
    problems: list[str] = []
    if layout == "nested":
        _discover_nested(root, (), (), folders, problems, names=names, is_root=True)
    else:
        _discover_top(root, layout, folders, problems, names)
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


def _decoded(
    spelled: Sequence[str], names: LocalNames, path: Path, problems: list[str]
) -> tuple[str, ...] | None:
    """The folder name components of on-disk ``spelled``, or None (reported)."""
    out = []
    for part in spelled:
        try:
            out.append(decode_component(part, names))
        except ValueError as exc:
            problems.append(
                f"skipped {printable(path)}: {printable(part)} is not valid modified UTF-7 "
                f'({exc}), as local_names = "imap-utf-7" requires (Projets/&AMk-t&AOk- '
                "for Projets/\u00c9t\u00e9); rename it or change local_names"
            )
            return None
    return tuple(out)


def _maps_back(
    root: Path,
    parts: tuple[str, ...],
    layout: Layout,
    path: Path,
    problems: list[str],
    *,
    names: LocalNames,
) -> bool:
    try:
        mapped = local_path(root, parts, layout, names=names)
    except UnsafeNameError as exc:
        problems.append(f"skipped {printable(path)}: {exc}")
        return False
    if mapped != path:
        problems.append(
            f"skipped {printable(path)}: name does not map back (would be {printable(mapped)})"
        )
        return False
    return True


def _discover_top(
    root: Path,
    layout: Layout,
    folders: list[tuple[str, ...]],
    problems: list[str],
    names: LocalNames,
) -> None:
    """``maildir++`` (``.A.b`` under an INBOX root) and ``flat`` (``A.b`` at the root)."""
    plusplus = layout == "maildir++"
    if plusplus and _has_cur(root):
        folders.append((INBOX,))
    if not plusplus and _has_cur(root):
        problems.append(
            f"skipped {printable(root)}: the root itself is a Maildir, but in the flat layout "
            f"INBOX is {printable(root / INBOX)} (maildir++ layout?)"
        )
    for entry in _scandir(root, problems):
        name = entry.name
        path = root / name
        if plusplus and (not name.startswith(".") or name in {".", ".."}):
            continue
        if not plusplus and name in MAILDIR_SUBDIRS:
            continue
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
        if not plusplus and name.startswith("."):
            problems.append(f"skipped {printable(path)}: hidden directory (maildir++ folder?)")
            continue
        decoded = _decoded((name[1:] if plusplus else name).split("."), names, path, problems)
        if decoded is None:
            continue
        parts = normalise_inbox(decoded)
        if _maps_back(root, parts, layout, path, problems, names=names):
            folders.append(parts)


def _discover_nested(
    root: Path,
    spelled: tuple[str, ...],
    prefix: tuple[str, ...],
    folders: list[tuple[str, ...]],
    problems: list[str],
    *,
    names: LocalNames,
    is_root: bool = False,
) -> None:
    """``spelled``: the directory's path under the root as on disk; ``prefix``: decoded."""
    here = root.joinpath(*spelled)
    if is_root and _has_cur(root):
        problems.append(
            f"skipped {printable(root)}: the root itself is a Maildir, but in the nested layout "
            f"INBOX is {root / INBOX} (maildir++ layout?)"
        )
    for entry in _scandir(here, problems):
        name = entry.name
        path = here / name
        if name in MAILDIR_SUBDIRS:
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
        decoded = _decoded((name,), names, path, problems)
        if decoded is None:
            continue
        parts = normalise_inbox((*prefix, *decoded))
        if _has_cur(path) and _maps_back(root, parts, "nested", path, problems, names=names):
            folders.append(parts)
        _discover_nested(
            root, (*spelled, name), (*prefix, *decoded), folders, problems, names=names
        )
