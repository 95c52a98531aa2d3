"""What another sync tool left behind, described for syncd's first sync.

A reader (:mod:`syncd.adopt.mbsync`, :mod:`syncd.adopt.offlineimap`) turns one
folder of another tool's Maildir and its sync state into an :class:`AdoptedFolder`:
the server folder it mirrors, the server's UIDVALIDITY when the tool recorded it,
and the messages the tool had paired (server UID, local unique name, the flags both
sides agreed on at its last run).  Everything here is pure data; nothing touches
the server, and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from syncd.flags import parse_info
from syncd.folders import join_name
from syncd.mailbox_names import decode_mailbox_name
from syncd.model import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    FORWARDED,
    NO_FLAGS,
    SEEN,
    Flags,
    Pair,
    intern_flags,
)

Source = Literal["mbsync", "offlineimap"]

# Both tools record the last-agreed flags as Maildir info letters.
_LETTERS = {"D": DRAFT, "F": FLAGGED, "P": FORWARDED, "R": ANSWERED, "S": SEEN, "T": DELETED}


class AdoptError(ValueError):
    """A state file or directory of the other tool cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class AdoptedPair:
    """One message the other tool had on both sides.

    ``near`` is the Maildir unique name (the file name without ``:2,`` info), the
    same local identity syncd's state uses; ``flags`` are IMAP flag names.
    """

    far: int
    near: str
    flags: Flags

    def to_pair(self) -> Pair:
        """The row syncd's state would hold (size unknown: the server tells it later)."""
        return Pair(self.far, self.near, self.flags, None)


@dataclass(frozen=True, slots=True)
class GonePair:
    """A message the other tool had on both sides whose local file is gone since its
    last run: deleted locally, so to be deleted on the server (under the
    mass-delete brake) unless it changed there since."""

    far: int
    flags: Flags


@dataclass(frozen=True)
class AdoptedFolder:
    """One folder as the other tool left it.

    ``parts`` is the server folder name split at the hierarchy delimiter, decoded to
    Unicode (``("Projets", "Été")``); ``server_name`` joins it with ``/`` (what
    ``syncd.folders.matches`` and the CLI use); :meth:`far_name` gives the name with
    the server's own delimiter, the key of syncd's state.  ``uidvalidity`` is the
    server's, None when the tool did not record it.  ``gone`` are the pairs whose
    local file was deleted since the tool's last run.  ``skipped`` counts state
    entries that could not become pairs (pending copies, placeholders), with
    ``notes`` saying why in one line each.
    """

    parts: tuple[str, ...]
    maildir_path: Path
    uidvalidity: int | None
    pairs: tuple[AdoptedPair, ...]
    source: Source
    skipped: int = 0
    notes: tuple[str, ...] = field(default=())
    gone: tuple[GonePair, ...] = field(default=())

    @property
    def server_name(self) -> str:
        return "/".join(self.parts)

    def far_name(self, delimiter: str | None) -> str:
        """The server's spelling of the name (``UnsafeNameError`` if it cannot be)."""
        return join_name(self.parts, delimiter)

    def state_pairs(self) -> list[Pair]:
        return [p.to_pair() for p in self.pairs]


def letters_to_flags(letters: str) -> Flags:
    """Maildir info letters (``"DS"``) -> IMAP flags; unknown letters are dropped."""
    flags = frozenset(_LETTERS[c] for c in letters if c in _LETTERS)
    return intern_flags(flags) if flags else NO_FLAGS


def decode_component(name: str, *, utf8: bool) -> str:
    """A folder name component as the tool wrote it on disk -> Unicode.

    Both tools write the server's modified UTF-7 (``&AMk-t&AOk-``) unless told to
    use UTF-8; a component that is not valid modified UTF-7 is kept as it is.
    """
    if utf8 or "&" not in name:
        return name
    try:
        return decode_mailbox_name(name.encode("ascii"))
    except (UnicodeEncodeError, ValueError):
        return name


def maildir_files(folder: Path) -> list[str]:
    """File names in ``cur/`` and ``new/`` (hidden files skipped); [] when absent."""
    names: list[str] = []
    for sub in ("cur", "new"):
        try:
            with os.scandir(folder / sub) as it:
                names += [e.name for e in it if not e.name.startswith(".") and e.is_file()]
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise AdoptError(f"cannot list {folder / sub}: {exc.strerror or exc}") from None
    return sorted(names)


def unique_name(filename: str) -> str:
    """syncd's local identity of a Maildir file: its name without the ``:2,`` info."""
    return parse_info(filename)[0]


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and not path.is_symlink()


def subdirectories(path: Path) -> Iterable[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise AdoptError(f"cannot list {path}: {exc.strerror or exc}") from None
    return [e for e in entries if e.is_dir(follow_symlinks=False)]
