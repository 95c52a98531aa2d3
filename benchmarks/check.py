"""Is a tool's account correct? The server's view against the tool's local Maildir.

A *snapshot* maps each folder (Unicode name, ``/`` as the hierarchy separator) to the
messages it holds; a message is its Message-ID, the SHA-256 of its content with line
endings normalised to LF, and its flags (the four system flags plus \\Deleted -- the only
ones every tool maps to Maildir letters), plus where it lives (a UID or a file path) so
that scenarios can change it.

Two snapshots agree when they have the same folders and, per folder, the same multiset
of (Message-ID, digest, flags): a lost, duplicated, corrupted, misplaced or mis-flagged
message is a difference, and so is a local folder without a server folder.

The server side is read over IMAP (EXAMINE, ``UID SEARCH ALL``, ``UID FETCH (FLAGS)``,
bodies with ``BODY.PEEK[]``). Bodies are cached by (folder, UIDVALIDITY, UID) -- what
IMAP guarantees never changes -- and local files by (inode, size, mtime, unique name),
so a check after a small change reads only what changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import imapclient

#: Maildir info letter -> IMAP flag, for the flags the corpus uses (and \Deleted).
LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
FLAG_LETTERS = {flag: letter for letter, flag in LETTERS.items()}
COMPARED_FLAGS = frozenset(LETTERS.values())

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.M)
_FLAGS_CHUNK = 2000
_BODY_CHUNK_BYTES = 8_000_000
_BODY_CHUNK_COUNT = 200
_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class Item:
    """One message in one folder of a snapshot."""

    message_id: str
    digest: str
    flags: frozenset[str]
    #: The server UID, or the local file path.
    where: int | Path

    @property
    def key(self) -> tuple[str, str]:
        return self.message_id, self.digest


Snapshot = dict[str, list[Item]]


def identify(raw: bytes, ignore_header: bytes | None = None) -> tuple[str, str]:
    """(Message-ID, SHA-256 hex of the content with CRLF -> LF).

    ``ignore_header`` (lower-case name): header lines of that name are left out.
    """
    body = raw.replace(b"\r\n", b"\n")
    head, sep, rest = body.partition(b"\n\n")
    if ignore_header is not None:
        prefix = ignore_header + b":"
        kept = [h for h in head.split(b"\n") if not h.lower().startswith(prefix)]
        head = b"\n".join(kept)
        body = head + sep + rest
    match = _MESSAGE_ID.search(head)
    message_id = b" ".join(match.group(1).split()).decode("utf-8", "replace") if match else ""
    return message_id, hashlib.sha256(body).hexdigest()


# ---------------------------------------------------------------------------------------
# server side


@dataclasses.dataclass
class ServerReader:
    """Reads snapshots of one IMAP account; keeps its body cache between calls."""

    host: str
    port: int
    user: str
    password: str
    cache: dict[tuple[str, int, int], tuple[str, str]] = dataclasses.field(default_factory=dict)

    def connect(self) -> Any:
        client = imapclient.IMAPClient(self.host, self.port, ssl=False, timeout=120)
        client.login(self.user, self.password)
        return client

    def snapshot(self) -> Snapshot:
        """Every selectable folder of the account and its messages."""
        client = self.connect()
        try:
            snap: Snapshot = {}
            for flags, _delim, name in client.list_folders():
                if {b"\\Noselect", b"\\NonExistent"} & {f.title() for f in flags}:
                    continue
                snap[name] = self._folder(client, name)
            return snap
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def _folder(self, client: Any, name: str) -> list[Item]:
        info = client.select_folder(name, readonly=True)
        validity = int(info[b"UIDVALIDITY"])
        uids = sorted(client.search(["ALL"]))
        flags: dict[int, frozenset[str]] = {}
        for start in range(0, len(uids), _FLAGS_CHUNK):
            for uid, data in client.fetch(uids[start : start + _FLAGS_CHUNK], ["FLAGS"]).items():
                flags[uid] = frozenset(_text(f) for f in data[b"FLAGS"]) & COMPARED_FLAGS
        missing = [u for u in uids if (name, validity, u) not in self.cache]
        if missing:
            sizes = {
                uid: int(data[b"RFC822.SIZE"])
                for start in range(0, len(missing), _FLAGS_CHUNK)
                for uid, data in client.fetch(
                    missing[start : start + _FLAGS_CHUNK], ["RFC822.SIZE"]
                ).items()
            }
            for batch in _batches(missing, sizes):
                for uid, data in client.fetch(batch, ["BODY.PEEK[]"]).items():
                    self.cache[(name, validity, uid)] = identify(data[b"BODY[]"])
        items = []
        for uid in uids:
            message_id, digest = self.cache[(name, validity, uid)]
            items.append(Item(message_id, digest, flags.get(uid, frozenset()), uid))
        return items


def _batches(uids: list[int], sizes: Mapping[int, int]) -> Iterable[list[int]]:
    batch: list[int] = []
    total = 0
    for uid in uids:
        batch.append(uid)
        total += sizes.get(uid, 0)
        if total >= _BODY_CHUNK_BYTES or len(batch) >= _BODY_CHUNK_COUNT:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


# ---------------------------------------------------------------------------------------
# local side

#: Maps a server folder name ('/'-separated Unicode) to its local Maildir directory.
FolderMap = Callable[[str], Path]


@dataclasses.dataclass
class LocalReader:
    """Reads snapshots of one tool's local Maildir tree."""

    root: Path
    folder_path: FolderMap
    ignore_header: bytes | None = None
    cache: dict[tuple[int, int, int, str], tuple[str, str]] = dataclasses.field(
        default_factory=dict
    )

    def maildirs(self) -> set[Path]:
        """Every directory under the root that is a Maildir (has ``cur/``)."""
        found = set()
        for dirpath, dirnames, _files in os.walk(self.root):
            if "cur" in dirnames:
                found.add(Path(dirpath))
            dirnames[:] = [d for d in dirnames if d not in ("cur", "new", "tmp")]
        return found

    def snapshot(self, folders: Iterable[str]) -> tuple[Snapshot, list[str]]:
        """The messages of ``folders``; plus problems: local Maildirs no folder maps to."""
        snap: Snapshot = {}
        expected: dict[Path, str] = {}
        for name in folders:
            path = self.folder_path(name)
            expected[path] = name
            snap[name] = self._folder(path) if (path / "cur").is_dir() else []
        problems = [
            f"local Maildir {p.relative_to(self.root)} has no server folder"
            for p in sorted(self.maildirs() - set(expected))
        ]
        problems += [
            f"folder {name!r}: local Maildir {p} missing"
            for p, name in expected.items()
            if not (p / "cur").is_dir()
        ]
        return snap, problems

    def _folder(self, path: Path) -> list[Item]:
        items = []
        for sub in ("new", "cur"):
            with os.scandir(path / sub) as entries:
                for entry in entries:
                    if not entry.is_file(follow_symlinks=False) or entry.name.startswith("."):
                        continue
                    unique, _sep, info = entry.name.partition(":2,")
                    st = entry.stat(follow_symlinks=False)
                    key = (st.st_ino, st.st_size, st.st_mtime_ns, unique)
                    ident = self.cache.get(key)
                    if ident is None:
                        ident = identify(Path(entry.path).read_bytes(), self.ignore_header)
                        self.cache[key] = ident
                    flags = frozenset(LETTERS[c] for c in info if c in LETTERS)
                    items.append(Item(ident[0], ident[1], flags, Path(entry.path)))
        return items


# ---------------------------------------------------------------------------------------
# comparison


def compare(
    server: Snapshot, local: Snapshot, names: tuple[str, str] = ("server", "local")
) -> list[str]:
    """Human-readable differences between two snapshots; empty when they agree.

    ``names`` says what the two sides are in the messages.
    """
    far_name, near_name = names
    problems: list[str] = []
    for name in sorted(set(server) | set(local)):
        if name not in local:
            problems.append(f"folder {name!r} missing on the {near_name} side")
            continue
        if name not in server:
            problems.append(f"folder {name!r} missing on the {far_name} side")
            continue
        far = Counter((i.key, i.flags) for i in server[name])
        near = Counter((i.key, i.flags) for i in local[name])
        if far == near:
            continue
        far_keys = Counter(i.key for i in server[name])
        near_keys = Counter(i.key for i in local[name])
        only_far = far_keys - near_keys
        only_near = near_keys - far_keys
        # Same Message-ID, other content: a corrupted (or re-encoded) copy.
        changed = {k[0] for k in only_far} & {k[0] for k in only_near} - {""}
        if changed:
            only_far = Counter({k: c for k, c in only_far.items() if k[0] not in changed})
            only_near = Counter({k: c for k, c in only_near.items() if k[0] not in changed})
        flagged = [
            (key, sorted(ff), sorted(nf))
            for (key, ff), (_k, nf) in _flag_mismatches(server[name], local[name])
        ]
        parts = []
        if changed:
            shown = ", ".join(sorted(changed)[:_SHOWN])
            parts.append(f"{len(changed)} with different content ({shown})")
        if only_far:
            parts.append(f"{only_far.total()} only on the {far_name} side {_ids(only_far)}")
        if only_near:
            parts.append(
                f"{only_near.total()} only (or twice) on the {near_name} side {_ids(only_near)}"
            )
        if flagged:
            shown = ", ".join(
                f"{k[0]} {far_name} {a} {near_name} {b}" for k, a, b in flagged[:_SHOWN]
            )
            parts.append(f"{len(flagged)} with different flags ({shown})")
        if not parts:
            parts.append("same messages, different flag multiset")
        problems.append(f"folder {name!r}: " + "; ".join(parts))
    return problems


def _flag_mismatches(
    far: list[Item], near: list[Item]
) -> list[tuple[tuple[tuple[str, str], frozenset[str]], tuple[tuple[str, str], frozenset[str]]]]:
    near_by_key = {i.key: i.flags for i in near}
    return [
        ((i.key, i.flags), (i.key, near_by_key[i.key]))
        for i in far
        if i.key in near_by_key and near_by_key[i.key] != i.flags
    ]


def _ids(keys: Counter[tuple[str, str]]) -> str:
    shown = [k[0] or f"(no Message-ID, sha256 {k[1][:12]})" for k in list(keys)[:_SHOWN]]
    more = " ..." if len(keys) > _SHOWN else ""
    return "(" + ", ".join(shown) + more + ")"
