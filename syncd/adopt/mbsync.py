"""Read what mbsync (isync 1.4) left in a Maildir store: one AdoptedFolder per box.

Entry point: :func:`read_mbsync_store`.  The store is described as in mbsyncrc's
``MaildirStore`` (``Inbox``, ``Path``, ``SubFolders``, ``Flatten``) plus the channel's
``SyncState`` (``*``: ``.mbsyncstate`` inside each folder; otherwise a path prefix
to which the near box name, ``/`` written as ``!``, is appended).

Box names as mbsync sees them on disk (``maildir_join_path`` in isync 1.4), for the
boxes ``top/sub`` and ``INBOX/sub``:

- ``verbatim``:  ``Path/top/sub`` and ``Inbox/sub``
- ``maildir++``: ``Inbox/.top.sub`` and ``Inbox/..sub`` (no Path)
- ``legacy``:    ``Path/top/.sub`` and ``Inbox/.sub``
- ``Flatten D``: the box itself is ``topDsub`` (mbsync replaces ``/`` before the store)

The state file (``prepare_state`` in isync 1.4): ``SyncState *`` -> ``<folder>/.mbsyncstate``;
a Channel's ``SyncState PREFIX`` -> ``PREFIX<near box>``; the global one (outside any
Channel; default ``~/.mbsync/``) -> ``PREFIX:<far store>:<far box>_:<near store>:<near box>``,
``/`` in box names written as ``!``.

The far box has the same name as the near one (``Patterns`` without a mailbox prefix
on ``Far``/``Near``); components are modified UTF-7 unless ``utf8``.  Pairs come
from the state (far UID, mbsync's near UID) and the file named ``,U=<near UID>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
from syncd.adopt.mbsync_state import near_uid as file_near_uid
from syncd.adopt.mbsync_state import read_state, read_uidvalidity

SubFolders = Literal["verbatim", "maildir++", "legacy"]


@dataclass(frozen=True)
class MbsyncStore:
    """A ``MaildirStore`` plus the channel's ``SyncState``; paths absolute."""

    inbox: Path
    path: Path | None = None
    subfolders: SubFolders | None = None
    flatten: str | None = None
    sync_state: str = "*"  # "*" or the SyncState prefix (a directory ends with "/")
    utf8: bool = False
    #: (far store, near store) names when the SyncState is the *global* one (set outside
    #: any Channel, default ``~/.mbsync/``): mbsync then names each state file
    #: ``:FAR-STORE:FAR-BOX_:NEAR-STORE:NEAR-BOX`` under it.
    global_state_stores: tuple[str, str] | None = None


def list_boxes(store: MbsyncStore) -> dict[str, Path]:
    """Near box name (mbsync spelling, ``/``-separated) -> Maildir directory."""
    boxes: dict[str, Path] = {}
    if is_maildir(store.inbox):
        boxes["INBOX"] = store.inbox
    style = store.subfolders
    if style == "maildir++":
        for entry in subdirectories(store.inbox):
            name = entry.name
            if not name.startswith(".") or name in (".", "..") or not is_maildir(Path(entry.path)):
                continue
            rest = name[1:]
            box = (
                "INBOX/" + rest[1:].replace(".", "/")
                if rest.startswith(".")
                else rest.replace(".", "/")
            )
            boxes[box] = Path(entry.path)
        return boxes
    if store.path is not None:
        _walk(store, store.path, "", boxes, top=True)
    _walk(store, store.inbox, "INBOX/", boxes, top=False)
    return boxes


def _walk(
    store: MbsyncStore, directory: Path, prefix: str, boxes: dict[str, Path], *, top: bool
) -> None:
    for entry in subdirectories(directory):
        name, path = entry.name, Path(entry.path)
        if name in ("cur", "new", "tmp") or path == store.inbox:
            continue
        if store.subfolders == "legacy":
            # Top-level boxes under Path are plain names; every sub-box has a leading dot.
            if name.startswith(".") == top:
                continue
            name = name if top else name[1:]
        elif name.startswith("."):
            continue
        if top and name.upper() == "INBOX":
            continue  # mbsync ignores an INBOX under Path
        box = prefix + name
        if is_maildir(path):
            boxes[box] = path
        if store.flatten is None:
            _walk(store, path, box + "/", boxes, top=False)


def box_parts(box: str, store: MbsyncStore) -> tuple[str, ...]:
    """The server folder name of near ``box``, decoded, split into components."""
    names = box.split(store.flatten) if store.flatten else box.split("/")
    if len(names) == 1 and store.flatten and box.startswith("INBOX" + store.flatten):
        names = ["INBOX", box[len("INBOX" + store.flatten) :]]
    return tuple(decode_component(n, utf8=store.utf8) for n in names)


def state_path(box: str, folder: Path, store: MbsyncStore) -> Path:
    """Where mbsync keeps the sync state of near ``box`` (``prepare_state``)."""
    if store.sync_state == "*":
        return folder / ".mbsyncstate"
    near = box.replace("/", "!")
    if store.global_state_stores is not None:
        far_store, near_store = store.global_state_stores
        return Path(f"{store.sync_state}:{far_store}:{near}_:{near_store}:{near}")
    return Path(store.sync_state + near)


def read_mbsync_folder(box: str, folder: Path, store: MbsyncStore) -> AdoptedFolder:
    """One box: its state, its ``.uidvalidity`` and its files -> AdoptedFolder."""
    parts = box_parts(box, store)
    spath = state_path(box, folder, store)
    state = read_state(spath)
    notes: list[str] = []
    if state is None:
        return AdoptedFolder(parts, folder, None, (), "mbsync", 0, (f"no sync state at {spath}",))
    local = read_uidvalidity(folder)
    if local is not None and state.near_uidvalidity not in (None, local[0]):
        notes.append(
            f"{folder}: the Maildir's UIDVALIDITY {local[0]} is not the one in the sync state "
            f"({state.near_uidvalidity}); its ,U= numbers cannot be trusted, nothing paired"
        )
        return AdoptedFolder(parts, folder, state.far_uidvalidity, (), "mbsync",
                             len(state.records), tuple(notes))  # fmt: skip
    by_near: dict[int, str] = {}
    for filename in maildir_files(folder):
        number = file_near_uid(filename)
        if number is not None:
            if number in by_near:
                raise AdoptError(f"{folder}: two files carry mbsync UID {number}")
            by_near[number] = unique_name(filename)
    pairs: list[AdoptedPair] = []
    gone: list[GonePair] = []
    skipped = 0
    for record in state.records:
        if not record.complete:
            skipped += 1
            continue
        name = by_near.get(record.near)
        if name is None:
            gone.append(GonePair(record.far, letters_to_flags(record.flags)))
        else:
            pairs.append(AdoptedPair(record.far, name, letters_to_flags(record.flags)))
    if skipped:
        notes.append(f"{folder}: {skipped} state entries are pending or expired")
    if gone:
        notes.append(f"{folder}: {len(gone)} messages deleted here since mbsync's last run")
    return AdoptedFolder(
        parts, folder, state.far_uidvalidity, tuple(pairs), "mbsync", skipped, tuple(notes),
        tuple(gone),
    )  # fmt: skip


def read_mbsync_store(store: MbsyncStore) -> list[AdoptedFolder]:
    """Every box mbsync synced in ``store`` (those with a sync state), by name."""
    out = []
    for box, folder in sorted(list_boxes(store).items()):
        adopted = read_mbsync_folder(box, folder, store)
        if adopted.pairs or adopted.uidvalidity is not None:
            out.append(adopted)
    return out
