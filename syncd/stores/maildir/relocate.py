"""Moving one message file from a Maildir folder into another (a move the server
made, carried out here without downloading the message again).

One ``rename(2)`` within the Maildir root: atomic, so a crash leaves the message in
one folder or the other, never in neither and never in both (durable once both
folders' directories are synced: the caller's flush, once per batch).  Its unique
name and flags stay; keyword letters are re-encoded for the target folder, whose
``dovecot-keywords`` may number them differently.
"""

from __future__ import annotations

import os

from syncd.errors import MessageError
from syncd.flags import INFO_SEPARATOR, flags_to_letters, is_keyword, keyword_index, split_letters
from syncd.logsetup import printable
from syncd.stores.maildir.folder import LocalMessage, MaildirFolder
from syncd.stores.maildir.fsio import cause, join


def move_message(src: MaildirFolder, msg: LocalMessage, dst: MaildirFolder) -> LocalMessage:
    """Rename ``msg`` from ``src`` into the same subdirectory of ``dst``; follows a
    rename a mail reader made since the scan.  MessageError when the file is gone,
    ``dst`` holds its unique name already, or the rename fails (another file system)."""
    if dst.locate(msg.name) is not None:
        raise MessageError(f"not moving {msg.name} into {printable(dst.path)}: it is there already")
    current = msg
    path = join(str(src.path), current.subdir, current.filename)
    if not os.path.lexists(path):
        found = src.locate(msg.name)
        if found is None:
            raise MessageError(f"cannot move {printable(path)}: the file is gone")
        current = found
        path = join(str(src.path), current.subdir, current.filename)
    keywords = sorted(f for f in current.flags if is_keyword(f))
    table = dst.ensure_keywords(keywords) if keywords else dst.keywords()
    letters = flags_to_letters(current.flags, keyword_index(table), current.extra)
    stored, extra = split_letters(letters, table)
    filename = current.filename
    if current.subdir == "cur" or letters:
        filename = current.name + INFO_SEPARATOR + letters
    target = join(str(dst.path), current.subdir, filename)
    if os.path.lexists(target):
        raise MessageError(f"not moving {printable(path)}: {printable(target)} exists")
    try:
        os.rename(path, target)  # noqa: PTH104 -- str paths
    except OSError as exc:
        raise MessageError(f"cannot move {printable(path)}: {cause(exc)}") from exc
    return LocalMessage(
        current.name, current.subdir, filename, stored, current.size, current.mtime, extra
    )
