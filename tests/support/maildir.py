"""The near side read independently of syncd's own Maildir code (an oracle must not
share the bugs of what it checks), plus a mail reader's local actions.

Folder names are those the far side uses, with ``/`` separators:

- ``maildir++``: the root itself is ``INBOX``; ``<root>/.Lists.python`` is
  ``Lists/python``.
- ``nested``: every directory under the root that contains ``cur/`` is a folder named by
  its relative path: ``<root>/INBOX`` is ``INBOX``, ``<root>/Lists/python`` is
  ``Lists/python``.

Info letters map to IMAP flags as the Maildir spec and syncd's design say; lower-case
letters are keywords, looked up in the folder's ``dovecot-keywords`` file when present
(``0 name`` -> ``a``), else reported as ``maildir:<letter>`` so a test sees them.
"""

from __future__ import annotations

import dataclasses
import email.header
import email.parser
import email.policy
import hashlib
import itertools
import os
import socket
import time
from pathlib import Path
from typing import Literal

LETTER_TO_FLAG = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
FLAG_TO_LETTER = {v: k for k, v in LETTER_TO_FLAG.items()}

_counter = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class LocalView:
    """One message file. ``flags`` are IMAP names; ``sha256`` is of the whole file with
    CRLF normalised to LF; ``message_id``/``subject`` as in :class:`support.imap.MessageView`."""

    path: Path
    flags: frozenset[str]
    sha256: str
    message_id: str | None
    subject: str | None


def _keywords(folder: Path) -> dict[str, str]:
    try:
        text = (folder / "dovecot-keywords").read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        idx, _, name = line.partition(" ")
        if idx.isdigit() and name and int(idx) < 26:
            out[chr(ord("a") + int(idx))] = name
    return out


def parse_info(name: str, keywords: dict[str, str] | None = None) -> frozenset[str]:
    """IMAP flags of a Maildir file name (``...:2,FRS`` -> ``{\\Flagged, \\Answered, \\Seen}``)."""
    _, sep, info = name.rpartition(":2,")
    if not sep:
        return frozenset()
    flags = set()
    for letter in info:
        if letter in LETTER_TO_FLAG:
            flags.add(LETTER_TO_FLAG[letter])
        elif letter.islower():
            flags.add((keywords or {}).get(letter, f"maildir:{letter}"))
    return frozenset(flags)


def _view(path: Path, keywords: dict[str, str]) -> LocalView:
    raw = path.read_bytes()
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        raw, headersonly=True
    )
    mid = parsed.get("Message-ID")
    subject = parsed.get("Subject")
    return LocalView(
        path=path,
        flags=parse_info(path.name, keywords),
        sha256=hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest(),
        message_id=str(mid).strip() if mid is not None else None,
        subject=(
            str(email.header.make_header(email.header.decode_header(subject)))
            if subject is not None
            else None
        ),
    )


def folder_messages(folder: Path) -> list[LocalView]:
    """The messages in ``folder``'s ``new/`` and ``cur/`` (not ``tmp/``), sorted by path."""
    keywords = _keywords(folder)
    views = []
    for sub in ("new", "cur"):
        directory = folder / sub
        if not directory.is_dir():
            continue
        for entry in os.scandir(directory):
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            views.append(_view(Path(entry.path), keywords))
    return sorted(views, key=lambda v: str(v.path))


def folders(root: Path, layout: Literal["maildir++", "nested"]) -> dict[str, Path]:
    """Folder name (``/``-separated) -> its directory, for every folder under ``root``."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    if layout == "maildir++":
        if (root / "cur").is_dir():
            found["INBOX"] = root
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") and (entry / "cur").is_dir():
                found[entry.name[1:].replace(".", "/")] = entry
        return found
    for dirpath, dirnames, _files in os.walk(root):
        here = Path(dirpath)
        if here != root and "cur" in dirnames:
            found[here.relative_to(root).as_posix()] = here
        # A folder's own cur/new/tmp are not sub-folders.
        dirnames[:] = sorted(d for d in dirnames if d not in ("cur", "new", "tmp"))
    return found


def local_snapshot(
    root: Path, layout: Literal["maildir++", "nested"]
) -> dict[str, list[LocalView]]:
    """Every folder under ``root`` -> its messages (empty folders give empty lists)."""
    return {name: folder_messages(path) for name, path in folders(root, layout).items()}


def folder_path(root: Path, layout: Literal["maildir++", "nested"], folder: str) -> Path:
    """Where ``folder`` (``/``-separated) lives under ``root`` in ``layout``."""
    if layout == "maildir++":
        return root if folder.upper() == "INBOX" else root / ("." + folder.replace("/", "."))
    return root / folder


def _unique() -> str:
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    now = time.time_ns()
    seconds, micros = now // 1_000_000_000, now // 1000 % 1_000_000
    return f"{seconds}.M{micros}P{os.getpid()}Q{next(_counter)}.{host}"


def deliver(folder: Path, raw: bytes, flags: str = "", *, new: bool = False) -> Path:
    """Drop a message into Maildir ``folder`` as a mail program would, and return its path.

    The folder's ``cur/ new/ tmp/`` are created if missing. The file is written to
    ``tmp/``, fsynced, then renamed into ``cur/<unique>:2,<sorted flags>`` -- or, with
    ``new=True``, into ``new/<unique>`` (no info part) as a delivery agent would.
    ``flags`` are info letters, e.g. ``"FS"``.
    """
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    unique = _unique()
    tmp = folder / "tmp" / unique
    with tmp.open("xb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    dest = (
        folder / "new" / unique if new else folder / "cur" / f"{unique}:2,{''.join(sorted(flags))}"
    )
    tmp.rename(dest)
    return dest


def set_local_flags(path: Path, letters: str) -> Path:
    """Rename a message to carry exactly ``letters`` (moving it from ``new/`` to ``cur/``
    as a reader does when it sees it) and return the new path."""
    base = path.name.split(":2,", 1)[0]
    dest = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(set(letters)))}"
    path.rename(dest)
    return dest
