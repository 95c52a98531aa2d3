"""Folder names: server hierarchy <-> local Maildir paths, validation, patterns.

Finding the folders a Maildir tree holds is :mod:`syncd.stores.maildir.discover`.

Inside syncd a folder name is a tuple of Unicode components, the server's
hierarchy delimiter already split off (``("Lists", "python")``).  Three local
layouts exist, chosen per account (``layout``):

- ``maildir++``: INBOX is the Maildir root itself; ``Lists/python`` lives in
  ``<root>/.Lists.python`` (the layout of Dovecot's and Courier's default, and
  mbsync's ``SubFolders Maildir++``).
- ``nested``: every folder, INBOX included, is a directory path under the
  root: ``<root>/INBOX``, ``<root>/Lists/python`` (mbsync's ``SubFolders
  Verbatim``, offlineimap's ``sep = /``).
- ``flat``: every folder is one directory at the root, its components joined
  with ``.``: ``<root>/INBOX``, ``<root>/Lists.python``, ``<root>/INBOX.sub``
  (offlineimap's default ``sep = .``, mbsync's ``Flatten .``).

Components are written on disk in one of two encodings (``local_names``):

- ``utf-8`` (the default): ``Projets/Été``.
- ``imap-utf-7``: the server's modified UTF-7 (RFC 3501 §5.1.3),
  ``Projets/&AMk-t&AOk-``: what mbsync 1.4 and offlineimap (without
  ``utf8foldernames``) write, and Dovecot's own Maildir.

Every name is validated in Unicode, then encoded, then checked again as the
path it becomes: a hostile server must not reach outside the root.
"""

from __future__ import annotations

import fnmatch
import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, Protocol

from syncd.errors import UnsafeNameError

Layout = Literal["maildir++", "nested", "flat"]
LAYOUTS: tuple[Layout, ...] = ("maildir++", "nested", "flat")
#: How folder name components are spelled on disk (the ``local_names`` account key).
LocalNames = Literal["utf-8", "imap-utf-7"]
LOCAL_NAMES: tuple[LocalNames, ...] = ("utf-8", "imap-utf-7")

INBOX = "INBOX"
#: LIST attributes of a name that is not a mailbox one can open.
NOT_SELECTABLE = frozenset({"\\NOSELECT", "\\NONEXISTENT"})
MAX_COMPONENT_BYTES = 255  # NAME_MAX on every filesystem we care about
MAX_NAME_BYTES = 1000  # isync's limit (127003e); far below PATH_MAX

# In the nested layout a folder directory also holds the Maildir's own entries;
# a child folder with one of these names would collide with them.
_RESERVED_NESTED = frozenset({"cur", "new", "tmp", "dovecot-keywords"})
MAILDIR_SUBDIRS = frozenset({"cur", "new", "tmp"})


def normalise_inbox(parts: tuple[str, ...]) -> tuple[str, ...]:
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
    return normalise_inbox(parts)


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
    elif layout == "flat":
        if "." in part:
            return (
                f"component {part!r} contains '.', the flat layout's separator; "
                'use layout = "nested" for this account'
            )
    else:
        if part.startswith("."):
            return f"component {part!r} starts with '.' (a hidden directory)"
        if part in _RESERVED_NESTED:
            return f"component {part!r} clashes with a Maildir entry of its parent"
    return None


def _relative_parts(parts: tuple[str, ...], layout: Layout) -> tuple[str, ...]:
    """The path components under the root, after validation and encoding."""
    if layout == "nested":
        return parts
    if layout == "flat":
        return (".".join(parts),)
    if parts == (INBOX,):
        return ()
    return ("." + ".".join(parts),)


def encode_component(part: str, names: LocalNames) -> str:
    """A (validated) name component as it is spelled on disk under ``names``."""
    if names == "utf-8" or (part.isascii() and "&" not in part):
        return part  # the common case, and the same text in both encodings
    # Lazily: the IMAP codec pulls in imapclient, and `syncd check` must start fast.
    from syncd.mailbox_names import encode_mailbox_name

    return encode_mailbox_name(part).decode("ascii")


def decode_component(spelled: str, names: LocalNames) -> str:
    """A directory name component as found on disk -> the folder name component.

    Raises ValueError (the reason, one line) when ``spelled`` is not valid in
    ``names``: under ``imap-utf-7``, 8-bit or control characters (a UTF-8 name,
    say), a ``&`` not starting a well-formed base64 run, or a non-canonical
    spelling (one that would not be written back the same way).
    """
    if names == "utf-8":
        return spelled
    if "&" not in spelled and spelled.isascii() and spelled.isprintable():
        return spelled  # the common case, and the same text in both encodings
    from syncd.mailbox_names import decode_mailbox_name

    try:
        return decode_mailbox_name(spelled.encode("ascii"))
    except UnicodeEncodeError:
        raise ValueError("holds non-ASCII characters (a UTF-8 name?)") from None


def _check_encoded(spelled: str, shown: str) -> None:
    # Belt and braces: whatever the encoding did, the result must still be one
    # plain path component.
    if spelled in {"", ".", ".."} or "/" in spelled or "\x00" in spelled:
        raise UnsafeNameError(
            f"unsafe folder name {shown!r}: encodes to {spelled!r} (possible attack)"
        )
    if len(spelled.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise UnsafeNameError(
            f"unsafe folder name {shown!r}: component longer than {MAX_COMPONENT_BYTES} "
            "bytes once encoded"
        )


def local_path(
    root: Path, parts: tuple[str, ...], layout: Layout, *, names: LocalNames = "utf-8"
) -> Path:
    """The Maildir directory of folder ``parts`` under ``root``.

    ``names`` is the spelling of components on disk (see the module docstring).
    Raises UnsafeNameError (one line, naming the folder and the reason) for a
    name that is empty, has an empty, ``.``, ``..``, hidden or reserved
    component, contains ``/``, NUL, control characters or invalid Unicode, is
    too long (also once encoded), or would resolve outside ``root`` (including
    through a symlinked directory already on disk).  Pure apart from resolving
    existing symlinks.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}")
    if names not in LOCAL_NAMES:
        raise ValueError(f"unknown local_names {names!r}")
    shown = "/".join(parts)
    if not parts:
        raise UnsafeNameError("unsafe folder name '': empty name")
    if len(parts) > 1 and parts[0] == "":
        raise UnsafeNameError(f"unsafe folder name {shown!r}: absolute path (possible attack)")
    parts = normalise_inbox(parts)
    for part in parts:
        problem = _component_problem(part, layout)
        if problem is not None:
            raise UnsafeNameError(f"unsafe folder name {shown!r}: {problem}")
    if layout == "flat" and ".".join(parts) in _RESERVED_NESTED:
        raise UnsafeNameError(
            f"unsafe folder name {shown!r}: clashes with a Maildir entry of the root"
        )
    spelled = tuple(encode_component(p, names) for p in parts)
    for part in spelled:
        _check_encoded(part, shown)
    relative = _relative_parts(spelled, layout)
    if any(len(p.encode("utf-8")) > MAX_COMPONENT_BYTES for p in relative):
        raise UnsafeNameError(
            f"unsafe folder name {shown!r}: longer than {MAX_COMPONENT_BYTES} bytes "
            f"as one {layout} directory name"
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
    name = "/".join(normalise_inbox(tuple(parts)))
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
