"""Read what offlineimap (offlineimap3 8.x, also 7.x) left: one AdoptedFolder per folder.

Entry point: :func:`read_offlineimap_account`.  What offlineimap keeps:

- message files ``<time>_<n>.<pid>.<host>,U=<uid>,FMD5=<md5>:2,<flags>`` where ``U``
  is the *server* UID and ``FMD5`` the MD5 (hex) of the local folder name (a file
  whose FMD5 is another folder's was moved there by hand: not paired);
- the status under ``<metadata>/Account-<account>/``: ``LocalStatus-sqlite/<name>``
  (SQLite, ``status(id, flags, mtime, labels)``, the only backend of offlineimap3 8)
  or ``LocalStatus/<name>`` (text: a ``OFFLINEIMAP LocalStatus CACHE DATA - DO NOT
  MODIFY - FORMAT 2`` line then ``uid|flags|mtime|labels``; format 1 ``uid:flags``);
  ``<name>`` is the server name with ``/`` (and the server's delimiter) as ``.``;
- the server's UIDVALIDITY in ``<metadata>/Repository-<remote>/FolderValidity/<name>``.

Local folder names are the server names with the local ``sep`` (``.`` or ``/``); a
``nametrans`` is not evaluated: give the readers the names it produced.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from syncd.adopt.common import (
    AdoptedFolder,
    AdoptedPair,
    AdoptError,
    GonePair,
    decode_component,
    is_maildir,
    letters_to_flags,
    maildir_files,
    subdirectories,
    unique_name,
)

MAGIC: Final = "OFFLINEIMAP LocalStatus CACHE DATA - DO NOT MODIFY - FORMAT "
_NAME_RE: Final = re.compile(r",U=(\d+)(?:,FMD5=([0-9a-fA-F]+))?")


@dataclass(frozen=True)
class OfflineimapAccount:
    """Where one offlineimap account keeps its mail and metadata; paths absolute."""

    localfolders: Path
    metadata: Path  # [general] metadata, default ~/.offlineimap
    account: str
    remote_repository: str
    sep: str = "."
    utf8: bool = False  # [Account] utf8foldernames


def parse_filename(filename: str) -> tuple[int | None, str | None]:
    """``(server UID, FMD5)`` of an offlineimap file name; ``(None, None)`` for a file
    offlineimap has not uploaded yet (no ``,U=``)."""
    match = _NAME_RE.search(filename.split(":2,", 1)[0])
    if match is None:
        return None, None
    return int(match.group(1)), match.group(2).lower() if match.group(2) else None


def folder_md5(local_name: str) -> str:
    return hashlib.md5(local_name.encode("utf-8"), usedforsecurity=False).hexdigest()


def status_basename(local_name: str, sep: str) -> str:
    """The file name offlineimap gives a folder's status and FolderValidity files."""
    name = local_name.replace(sep, ".").replace("/", ".")
    return re.sub(r"(^|/)\.$", r"\1dot", name) if name else "."


def read_status_text(path: Path) -> dict[int, str]:
    """``LocalStatus/<name>``: server UID -> flag letters."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdoptError(f"cannot read {path}: {exc}") from None
    if not lines:
        return {}
    version = lines[0][len(MAGIC) :] if lines[0].startswith(MAGIC) else None
    if version not in ("1", "2"):
        raise AdoptError(f"{path}: not an offlineimap status file (first line {lines[0]!r})")
    out: dict[int, str] = {}
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("|") if version == "2" else line.split(":", 1)
        if len(fields) < 2 or not fields[0].strip().isdigit():
            raise AdoptError(f"{path}:{number}: malformed status line {line!r}")
        out[int(fields[0])] = fields[1].strip()
    return out


def read_status_sqlite(path: Path) -> dict[int, str]:
    """``LocalStatus-sqlite/<name>``: server UID -> flag letters (opened read-only)."""
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise AdoptError(f"cannot open {path}: {exc}") from None
    try:
        rows = connection.execute("SELECT id, flags FROM status").fetchall()
    except sqlite3.Error as exc:
        raise AdoptError(f"{path}: not an offlineimap status database ({exc})") from None
    finally:
        connection.close()
    return {int(uid): str(flags or "") for uid, flags in rows}


def read_uidvalidity(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdoptError(f"cannot read {path}: {exc}") from None
    if not text.isdigit():
        raise AdoptError(f"{path}: expected a number, found {text[:40]!r}")
    return int(text)


def list_folders(account: OfflineimapAccount) -> dict[str, Path]:
    """Local folder name (offlineimap's spelling, joined with ``sep``) -> directory."""
    folders: dict[str, Path] = {}

    def walk(directory: Path, prefix: str) -> None:
        for entry in subdirectories(directory):
            if entry.name in ("cur", "new", "tmp") or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            name = prefix + entry.name
            if is_maildir(path):
                folders[name] = path
            if account.sep == "/":
                walk(path, name + "/")

    walk(account.localfolders, "")
    return folders


def read_offlineimap_folder(
    local_name: str, folder: Path, account: OfflineimapAccount
) -> AdoptedFolder:
    parts = tuple(decode_component(p, utf8=account.utf8) for p in local_name.split(account.sep))
    base = status_basename(local_name, account.sep)
    meta = account.metadata / f"Account-{account.account}"
    sqlite_path = meta / "LocalStatus-sqlite" / base
    text_path = meta / "LocalStatus" / base
    if sqlite_path.exists():
        status = read_status_sqlite(sqlite_path)
    elif text_path.exists():
        status = read_status_text(text_path)
    else:
        return AdoptedFolder(parts, folder, None, (), "offlineimap", 0,
                             (f"no status for {local_name!r} under {meta}",))  # fmt: skip
    uidvalidity = read_uidvalidity(
        account.metadata / f"Repository-{account.remote_repository}" / "FolderValidity" / base
    )
    md5 = folder_md5(local_name)
    by_uid: dict[int, str] = {}
    foreign = 0
    for filename in maildir_files(folder):
        uid, fmd5 = parse_filename(filename)
        if uid is None:
            continue
        if fmd5 is not None and fmd5 != md5:
            foreign += 1
            continue
        if uid in by_uid:
            raise AdoptError(f"{folder}: two files carry server UID {uid}")
        by_uid[uid] = unique_name(filename)
    pairs = [
        AdoptedPair(uid, by_uid[uid], letters_to_flags(letters))
        for uid, letters in sorted(status.items())
        if uid > 0 and uid in by_uid
    ]
    # A status entry without its file: deleted here since offlineimap's last run (or
    # moved to another folder by hand, which offlineimap also takes as a deletion).
    gone = tuple(
        GonePair(uid, letters_to_flags(letters))
        for uid, letters in sorted(status.items())
        if uid > 0 and uid not in by_uid
    )
    skipped = len(status) - len(pairs) - len(gone)
    notes = []
    if skipped:
        notes.append(f"{folder}: {skipped} status entries are placeholders (UID <= 0)")
    if gone:
        notes.append(f"{folder}: {len(gone)} messages deleted here since offlineimap's last run")
    if foreign:
        notes.append(f"{folder}: {foreign} files carry another folder's FMD5 (moved by hand)")
    return AdoptedFolder(
        parts, folder, uidvalidity, tuple(pairs), "offlineimap", skipped, tuple(notes), gone
    )


def read_offlineimap_account(account: OfflineimapAccount) -> list[AdoptedFolder]:
    """Every local folder offlineimap has a status for, by name."""
    out = []
    for name, folder in sorted(list_folders(account).items()):
        adopted = read_offlineimap_folder(name, folder, account)
        if adopted.pairs or adopted.uidvalidity is not None:
            out.append(adopted)
    return out
