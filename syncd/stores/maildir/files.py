"""Flags of Maildir message files addressed by their paths.

For programs that know files rather than syncd's pairs: a notmuch database
lists each message's file names, and its tags are to meet the IMAP flags and
keywords those names carry.  Reading decodes the info letters with the folder's
``dovecot-keywords`` table; changing renames the file through
:meth:`MaildirFolder.set_flags <syncd.stores.maildir.folder.MaildirFolder.set_flags>`
-- the store's own code, so keywords get letters, unknown letters are kept and a
file a mail reader renamed meanwhile is followed exactly as in a sync.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from syncd.errors import MessageError
from syncd.flags import parse_info, split_letters
from syncd.logsetup import printable
from syncd.model import Flags, intern_flags
from syncd.stores.maildir.folder import LocalMessage, MaildirFolder
from syncd.stores.maildir.keywords import valid_keyword


class MaildirFiles:
    """Read and change the flags of Maildir message files, one path at a time.

    Flags are IMAP names: ``\\Seen``, ``\\Flagged``, ``\\Answered``,
    ``\\Draft``, ``\\Deleted``, ``$Forwarded`` and keywords (through the
    folder's ``dovecot-keywords``, at most 26 per folder).  A path must be a
    file in a Maildir folder's ``cur/`` or ``new/``.  Keeps one folder object
    (and its cached keyword table) per folder: make one per batch of changes,
    not one per file, and call :meth:`flush` after the batch.  Not thread-safe.
    Errors are :class:`~syncd.errors.SyncdError` subclasses whose ``str()`` is
    one line naming the file and the cause.
    """

    def __init__(self, *, fsync: bool = True) -> None:
        self.fsync = fsync
        self._folders: dict[Path, MaildirFolder] = {}
        self._touched: set[Path] = set()

    @staticmethod
    def valid_keyword(name: str) -> bool:
        """Whether ``name`` can be a keyword in a Maildir file name: an IMAP atom,
        printable ASCII, at most 200 characters, not starting with ``\\``."""
        return valid_keyword(name)

    def flags(self, path: Path) -> Flags:
        """The flags the name of the file at ``path`` stands for (the file itself is
        not opened; a file in ``new/`` has none).  Letters that mean nothing to
        syncd are left out.  Raises MessageError when ``path`` is not in a
        Maildir's ``cur/`` or ``new/``, FolderError when ``dovecot-keywords``
        cannot be read."""
        _, msg = self._message(path)
        return msg.flags

    def set_flags(self, path: Path, flags: Iterable[str]) -> Path:
        """Rename the file at ``path`` so its name says ``flags``; returns the new path.

        Moves a file from ``new/`` to ``cur/`` when its flags change; gives new
        keywords a letter in ``dovecot-keywords``; keeps unknown letters.  A
        keyword beyond a folder's 26th, or a ``\\``-flag with no letter, is not
        stored (logged as a warning): ask :meth:`flags` of the returned path for
        what was.  When a mail reader renamed the file since ``path`` was read,
        the current file is found by its unique name and the change applies as
        a delta against what ``path`` said.  The rename is not fsynced until
        :meth:`flush`.  Raises MessageError when the file is gone or the new
        name exists.
        """
        folder, msg = self._message(path)
        wanted = frozenset(flags)
        if not os.path.lexists(path):
            # Renamed since: maybe to exactly the name wanted (notmuch renames files
            # when it tags with maildir.synchronize_flags), which is no error.
            current = folder.locate(msg.name)
            if current is None:
                raise MessageError(f"cannot change flags of {printable(path)}: the file is gone")
            wanted = (current.flags | (wanted - msg.flags)) - (msg.flags - wanted)
            msg = current
        moved = folder.set_flags(msg, intern_flags(wanted))
        if moved is not msg:
            self._touched.add(folder.path)
        return folder.path_of(moved)

    def flush(self) -> None:
        """fsync ``cur/`` and ``new/`` of every folder :meth:`set_flags` renamed
        something in, so the renames survive a crash.  Raises FolderError."""
        for path in sorted(self._touched):
            self._folders[path].sync_dirs()
        self._touched.clear()

    def _message(self, path: Path) -> tuple[MaildirFolder, LocalMessage]:
        subdir = path.parent.name
        if subdir not in ("cur", "new"):
            raise MessageError(f"{printable(path)} is not in a Maildir folder's cur/ or new/")
        root = path.parent.parent
        folder = self._folders.get(root)
        if folder is None:
            folder = self._folders[root] = MaildirFolder(root, fsync=self.fsync)
        unique, letters, _ = parse_info(path.name)
        if not unique:
            raise MessageError(f"{printable(path)} has an empty unique name")
        flags, extra = split_letters(letters, folder.keywords())
        return folder, LocalMessage(unique, subdir, path.name, flags, 0, 0.0, extra)
