"""What each scenario changes, chosen once and applied identically to every tool's account.

The *model* is what every account must hold after a correct sync: per folder, each
message's (Message-ID, digest) and flags. A scenario picks its changes from the model
with a seeded RNG (so the same messages change for every tool and on every run of the
benchmark), updates the model, and then applies the changes to one tool's account at a
time -- on the server over IMAP, or in the tool's local Maildir -- using that account's
last verified snapshot to find the UID or file of each chosen message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import corpus
from benchmarks.check import FLAG_LETTERS, LETTERS, Item, Snapshot, identify

Key = tuple[str, str]
#: folder -> (Message-ID, digest) -> flags
Model = dict[str, dict[Key, frozenset[str]]]

SCENARIOS = ("initial", "noop", "server-flags", "server-new", "local-changes")
_APPEND_CHUNK_BYTES = 16_000_000
_APPEND_CHUNK_COUNT = 500


@dataclasses.dataclass(frozen=True)
class Change:
    """One message's change: its new flags, or ``None`` for a deletion."""

    folder: str
    key: Key
    flags: frozenset[str] | None


def new_model() -> Model:
    return {name: {} for name in corpus.folder_names()}


def add_to_model(model: Model, messages: Iterable[corpus.Message]) -> None:
    for msg in messages:
        model.setdefault(msg.folder, {})[identify(msg.raw)] = frozenset(msg.flags)


def expected(model: Model) -> Snapshot:
    """The model as a snapshot, for :func:`benchmarks.check.compare`."""
    return {
        folder: [Item(k[0], k[1], flags, 0) for k, flags in items.items()]
        for folder, items in model.items()
    }


def count_for(n: int, percent: float) -> int:
    """``percent`` % of ``n``, at least one."""
    return max(1, round(n * percent / 100))


def choose_flag_changes(model: Model, count: int, seed: str) -> list[Change]:
    """``count`` messages and their new flags: \\Seen toggled; every third also \\Flagged."""
    return [
        Change(folder, key, _toggled(model[folder][key], i))
        for i, (folder, key) in enumerate(_pick(model, count, seed))
    ]


def choose_local_changes(model: Model, n_flags: int, n_delete: int, seed: str) -> list[Change]:
    """``n_flags`` flag changes and ``n_delete`` deletions, on distinct messages."""
    picked = _pick(model, n_flags + n_delete, seed)
    return [
        Change(folder, key, _toggled(model[folder][key], i) if i < n_flags else None)
        for i, (folder, key) in enumerate(picked)
    ]


def apply_to_model(model: Model, changes: Iterable[Change]) -> None:
    for change in changes:
        if change.flags is None:
            del model[change.folder][change.key]
        else:
            model[change.folder][change.key] = change.flags


def _pick(model: Model, count: int, seed: str) -> list[tuple[str, Key]]:
    everything = sorted((folder, key) for folder, items in model.items() for key in items)
    return random.Random(seed).sample(everything, min(count, len(everything)))


def _toggled(flags: frozenset[str], i: int) -> frozenset[str]:
    out = flags ^ {"\\Seen"}
    return out ^ {"\\Flagged"} if i % 3 == 0 else out


# ---------------------------------------------------------------------------------------
# applying changes to one account


class _Index:
    """Finds a chosen message in an account's last verified snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._items = {(f, item.key): item for f, items in snapshot.items() for item in items}

    def find(self, change: Change) -> Item:
        try:
            return self._items[(change.folder, change.key)]
        except KeyError:
            raise LookupError(
                f"{change.key[0]} is not in folder {change.folder!r} of the last snapshot"
            ) from None


def apply_server_flags(client: Any, server: Snapshot, changes: Sequence[Change]) -> None:
    """Set the new flags of ``changes`` on the server (``UID STORE``), grouped per flag."""
    index = _Index(server)
    by_folder: dict[str, dict[tuple[str, bool], list[int]]] = defaultdict(lambda: defaultdict(list))
    for change in changes:
        assert change.flags is not None
        item = index.find(change)
        assert isinstance(item.where, int)
        for flag in item.flags ^ change.flags:
            by_folder[change.folder][(flag, flag in change.flags)].append(item.where)
    for folder, groups in by_folder.items():
        client.select_folder(folder)
        for (flag, add), uids in sorted(groups.items()):
            if add:
                client.add_flags(sorted(uids), [flag], silent=True)
            else:
                client.remove_flags(sorted(uids), [flag], silent=True)
        client.unselect_folder()


def append(client: Any, messages: Iterable[corpus.Message]) -> int:
    """APPEND ``messages`` (MULTIAPPEND, in chunks) with their flags and dates.

    Creates missing folders. Returns the number of bytes appended.
    """
    existing = {name for _f, _d, name in client.list_folders()}
    total = 0
    batch: list[corpus.Message] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        if batch:
            folder = batch[0].folder
            if folder not in existing:
                client.create_folder(folder)
                existing.add(folder)
            client.multiappend(
                folder, [{"msg": m.raw, "flags": m.flags, "date": m.date} for m in batch]
            )
        batch, size = [], 0

    for msg in messages:
        if batch and (
            msg.folder != batch[0].folder
            or size >= _APPEND_CHUNK_BYTES
            or len(batch) >= _APPEND_CHUNK_COUNT
        ):
            flush()
        batch.append(msg)
        size += len(msg.raw)
        total += len(msg.raw)
    flush()
    return total


def apply_local(local: Snapshot, changes: Sequence[Change]) -> None:
    """Rename (new flags; ``new/`` -> ``cur/`` as a mail reader does) or delete files."""
    index = _Index(local)
    for change in changes:
        item = index.find(change)
        assert isinstance(item.where, Path)
        path = item.where
        if change.flags is None:
            path.unlink()
            continue
        unique, _sep, info = path.name.partition(":2,")
        kept = {c for c in info if c not in LETTERS}
        letters = "".join(sorted(kept | {FLAG_LETTERS[f] for f in change.flags}))
        target = path.parent.parent / "cur" / f"{unique}:2,{letters}"
        path.rename(target)


def logout(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.logout()
