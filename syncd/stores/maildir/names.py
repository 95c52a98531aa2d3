"""What a Maildir file name may be: the unique names syncd writes (the host part
escaped as the spec says), the Dovecot control files that are never messages, and
which directory entries a scan skips as junk."""

from __future__ import annotations

import os
import stat

from syncd.errors import MessageError

#: Dovecot's keyword table, one per folder: ``<index> <keyword>`` lines.
KEYWORDS_FILE = "dovecot-keywords"
_MAX_NAME_BYTES = 200

# Dovecot's control files: not messages, even when copied into cur/ or new/.
CONTROL_NAMES = (
    "dovecot-uidlist",
    "dovecot-keywords",
    "dovecot-uidvalidity",
    "dovecot.",
    "maildirfolder",
    "subscriptions",
    "courierimap",
)


def junk_reason(name: str, st: os.stat_result) -> str | None:
    """Why a directory entry is not a message, or None when it is one."""
    if name.startswith(CONTROL_NAMES):
        return "a mail server's control file, not a message"
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if st.st_size == 0:
        return "zero-byte file"
    if not name.isascii() and not is_utf8(name):
        return "file name is not valid UTF-8"
    return None


def escape_host(host: str) -> str:
    # The spec escapes "/" and ":"; anything else unusual (space, control,
    # non-ASCII, backslash) is escaped the same way so names stay plain ASCII.
    return "".join(
        ch
        if ch.isascii() and ch.isprintable() and ch not in "/: \\"
        else "".join(f"\\{b:03o}" for b in ch.encode("utf-8", "surrogateescape"))
        for ch in host
    )


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes from os.fsdecode: not UTF-8 on disk
        return False
    return True


def check_unique_name(name: str) -> None:
    if (
        not name
        or name.startswith(".")
        or any(ch in name for ch in "/:\x00")
        or not name.isprintable()
        or not is_utf8(name)
        or len(name.encode("utf-8")) > _MAX_NAME_BYTES
    ):
        raise MessageError(f"invalid Maildir unique name {name!a}")
