"""In-memory far and near stores: the seam's reference implementation.

They run the engine without a server or a disk (the contract suite's engine cases
take milliseconds) and show what a new store must provide.  Switches turn
capabilities off (MODSEQ, MOVE, UIDPLUS-like exact expunge and append keys,
keywords); :meth:`MemoryFar.change_uidvalidity` renumbers a folder as a rebuilt
server index would; the ``other_*`` helpers change a side as another client would."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from syncd.errors import FolderError
from syncd.message import to_crlf
from syncd.model import DELETED, SYSTEM_FLAGS, Flags, MsgKey, MsgMeta, intern_flags
from syncd.stores.base import (
    AppendOutcome,
    Capability,
    Checkpoint,
    FarBody,
    FarChanges,
    FarFolder,
    FarStatus,
    FarView,
    NearFolder,
    NewMessage,
    Refused,
)
from syncd.stores.memory_headers import header_lines
from syncd.stores.memory_near import NEAR_DEFAULT, MemoryMessage, MemoryNear

__all__ = [
    "FAR_DEFAULT",
    "NEAR_DEFAULT",
    "MemoryFar",
    "MemoryFarFolder",
    "MemoryMessage",
    "MemoryNear",
]

logger = logging.getLogger(__name__)

FAR_DEFAULT = (
    Capability.FOLDERS
    | Capability.FLAGS
    | Capability.KEYWORDS
    | Capability.APPEND
    | Capability.MOVE
    | Capability.EXPUNGE
    | Capability.UID_STABLE
    | Capability.UIDVALIDITY
    | Capability.MODSEQ
)


@dataclass
class _FarMessage:
    data: bytes
    flags: Flags
    date: datetime | None
    modseq: int


@dataclass
class _Mailbox:
    uidvalidity: int
    uidnext: int = 1
    modseq: int = 1
    messages: dict[int, _FarMessage] = field(default_factory=dict)
    gone: dict[int, int] = field(default_factory=dict)  # expunged uid -> modseq then

    def drop(self, uid: int) -> None:
        """Expunge ``uid`` (a new modseq), remembering when for :meth:`changes`."""
        if self.messages.pop(uid, None) is not None:
            self.modseq += 1
            self.gone[uid] = self.modseq


class MemoryFar:
    """A far account held in memory: mailboxes by name, a lock guarding each change."""

    def __init__(
        self,
        capabilities: Capability = FAR_DEFAULT,
        *,
        append_limit: int | None = None,
        uidvalidity: int = 1,
    ) -> None:
        self.capabilities = capabilities
        self.append_limit = append_limit
        self._next_validity = itertools.count(uidvalidity)
        self.boxes: dict[str, _Mailbox] = {}
        self.lock = threading.RLock()

    def box(self, name: str) -> _Mailbox:
        """The mailbox ``name``, created when missing."""
        with self.lock:
            if name not in self.boxes:
                self.boxes[name] = _Mailbox(next(self._next_validity))
            return self.boxes[name]

    def folder(self, name: str = "INBOX") -> MemoryFarFolder:
        self.box(name)
        return MemoryFarFolder(self, name)

    # --- another client's doings (for tests) ------------------------------------

    def other_append(self, name: str, data: bytes, flags: Iterable[str] = ()) -> int:
        with self.lock:
            box = self.box(name)
            uid = box.uidnext
            box.uidnext += 1
            box.modseq += 1
            box.messages[uid] = _FarMessage(
                to_crlf(data), intern_flags(frozenset(flags)), None, box.modseq
            )
            return uid

    def other_set_flags(self, name: str, uid: int, flags: Iterable[str]) -> None:
        with self.lock:
            box = self.box(name)
            box.modseq += 1
            msg = box.messages[uid]
            msg.flags, msg.modseq = intern_flags(frozenset(flags)), box.modseq

    def other_expunge(self, name: str, uid: int) -> None:
        with self.lock:
            self.box(name).drop(uid)

    def change_uidvalidity(self, name: str) -> int:
        """Renumber the mailbox under a new UIDVALIDITY (a rebuilt server index);
        returns the new UIDVALIDITY.  Contents and flags stay."""
        with self.lock:
            old = self.box(name)
            new = _Mailbox(next(self._next_validity), modseq=old.modseq + 1)
            for uid in sorted(old.messages):
                msg = old.messages[uid]
                new.messages[new.uidnext] = replace(msg, modseq=new.modseq)
                new.uidnext += 1
            self.boxes[name] = new
            return new.uidvalidity

    def contents(self, name: str) -> dict[int, tuple[bytes, Flags]]:
        """uid -> (data, flags) of every message in ``name``."""
        with self.lock:
            return {u: (m.data, m.flags) for u, m in self.box(name).messages.items()}


class MemoryFarFolder:
    """One mailbox of a :class:`MemoryFar` behind the seam."""

    def __init__(self, store: MemoryFar, name: str) -> None:
        self.store = store
        self._name = name
        self._opened: tuple[int, int] | None = None  # (uidvalidity, modseq) at open()

    @property
    def _box(self) -> _Mailbox:
        return self.store.box(self._name)

    def _has(self, cap: Capability) -> bool:
        return cap in self.store.capabilities

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capability:
        return self.store.capabilities

    @property
    def append_limit(self) -> int | None:
        return self.store.append_limit

    @property
    def max_fetch_size(self) -> int | None:
        return None

    def status(self) -> FarStatus | None:
        if not self._has(Capability.MODSEQ):
            return None
        with self.store.lock:
            box = self._box
            return FarStatus(box.uidvalidity, box.uidnext, len(box.messages), box.modseq)

    def open(self, checkpoint: Checkpoint | None, *, readonly: bool) -> FarView:
        with self.store.lock:
            box = self._box
            self._opened = (box.uidvalidity, box.modseq)
            modseq = box.modseq if self._has(Capability.MODSEQ) else None
            permanent = None if self._has(Capability.KEYWORDS) else SYSTEM_FLAGS
            return FarView(box.uidvalidity, box.uidnext, modseq, readonly, permanent)

    def listing(
        self, since: int | None, known: Mapping[MsgKey, MsgMeta], *, full: bool
    ) -> dict[MsgKey, MsgMeta]:
        if full or since is None or not self._has(Capability.MODSEQ):
            return self.list_all(sizes=False)
        with self.store.lock:
            msgs = self._box.messages
            out: dict[MsgKey, MsgMeta] = {k: m for k, m in known.items() if k in msgs}
            for uid, msg in msgs.items():
                if msg.modseq > since:
                    out[uid] = MsgMeta(msg.flags, len(msg.data))
            return out

    def changes(self, since: int | None) -> FarChanges | None:
        if since is None or not self._has(Capability.MODSEQ):
            return None
        with self.store.lock:
            box = self._box
            changed: dict[MsgKey, MsgMeta] = {
                uid: MsgMeta(m.flags, len(m.data))
                for uid, m in box.messages.items()
                if m.modseq > since
            }
            return FarChanges(changed, frozenset(u for u, m in box.gone.items() if m > since))

    def list_all(self, *, sizes: bool) -> dict[MsgKey, MsgMeta]:
        with self.store.lock:
            return {
                uid: MsgMeta(m.flags, len(m.data) if sizes else None)
                for uid, m in sorted(self._box.messages.items())
            }

    def keys_from(self, low: int) -> list[MsgKey]:
        with self.store.lock:
            return [u for u in sorted(self._box.messages) if u >= low]

    def metas(self, keys: Iterable[MsgKey]) -> dict[MsgKey, MsgMeta]:
        with self.store.lock:
            msgs = self._box.messages
            return {
                k: MsgMeta(msgs[k].flags, len(msgs[k].data))
                for k in keys
                if isinstance(k, int) and k in msgs
            }

    def headers(self, keys: Sequence[MsgKey], fields: Sequence[str]) -> dict[MsgKey, bytes]:
        with self.store.lock:
            msgs = self._box.messages
            return {
                k: header_lines(msgs[k].data, fields)
                for k in keys
                if isinstance(k, int) and k in msgs
            }

    def fetch(
        self, keys: Sequence[MsgKey], sizes: Mapping[MsgKey, int] | None = None
    ) -> Iterator[FarBody]:
        for key in keys:
            with self.store.lock:
                msg = self._box.messages.get(key) if isinstance(key, int) else None
            if msg is not None and isinstance(key, int):
                yield FarBody(key, msg.data, msg.date)

    def append(
        self, messages: Sequence[NewMessage], *, uidvalidity: int | None
    ) -> list[AppendOutcome]:
        if not self._has(Capability.APPEND):
            raise FolderError(f"{self._name}: this store takes no new messages")
        out: list[AppendOutcome] = []
        limit = self.store.append_limit
        for m in messages:
            if limit is not None and len(m.data) > limit:
                out.append(Refused("TOOBIG", f"APPEND refused: [TOOBIG] over {limit}", "too big"))
                continue
            flags = m.flags if self._has(Capability.KEYWORDS) else m.flags & SYSTEM_FLAGS
            with self.store.lock:
                box = self._box
                uid = box.uidnext
                box.uidnext += 1
                box.modseq += 1
                box.messages[uid] = _FarMessage(to_crlf(m.data), flags, m.date, box.modseq)
                same = uidvalidity is None or uidvalidity == box.uidvalidity
            out.append(uid if self._has(Capability.EXPUNGE) and same else None)
        return out

    def _change(self, keys: Iterable[MsgKey], add: Flags, remove: Flags) -> None:
        if not self._has(Capability.KEYWORDS):
            add, remove = add & SYSTEM_FLAGS, remove & SYSTEM_FLAGS
        with self.store.lock:
            box = self._box
            for key in keys:
                msg = box.messages.get(key) if isinstance(key, int) else None
                if msg is None:
                    continue
                flags = intern_flags((msg.flags | add) - remove)
                if flags != msg.flags:
                    box.modseq += 1
                    msg.flags, msg.modseq = flags, box.modseq

    def add_flags(self, keys: Iterable[MsgKey], flags: Flags) -> None:
        self._change(keys, flags, frozenset())

    def remove_flags(self, keys: Iterable[MsgKey], flags: Flags) -> None:
        self._change(keys, frozenset(), flags)

    def mark_deleted(self, keys: Sequence[MsgKey]) -> None:
        self._change(keys, frozenset({DELETED}), frozenset())

    def expunge(self, keys: Sequence[MsgKey]) -> bool:
        if not self._has(Capability.EXPUNGE):
            logger.warning(
                "%s: %d messages are marked deleted but not expunged", self._name, len(keys)
            )
            return False
        with self.store.lock:
            box = self._box
            for key in keys:
                msg = box.messages.get(key) if isinstance(key, int) else None
                if msg is not None and DELETED in msg.flags:
                    box.drop(int(key))
        return True

    def move_to(self, keys: Sequence[MsgKey], target: str) -> dict[MsgKey, MsgKey]:
        mapping: dict[MsgKey, MsgKey] = {}
        with self.store.lock:
            box, dest = self._box, self.store.box(target)
            moved = [int(k) for k in keys if isinstance(k, int) and k in box.messages]
            for uid in moved:
                msg = box.messages[uid]
                dest.modseq += 1
                dest.messages[dest.uidnext] = replace(msg, modseq=dest.modseq)
                mapping[uid] = dest.uidnext
                dest.uidnext += 1
        if self._has(Capability.MOVE):
            with self.store.lock:
                for uid in moved:
                    self._box.drop(uid)
        else:  # COPY, then delete the originals
            self.mark_deleted(moved)
            self.expunge(moved)
        return mapping if self._has(Capability.EXPUNGE) else {}


def _conforms(far: MemoryFarFolder, near: MemoryNear) -> tuple[FarFolder, NearFolder]:
    """Never called: has mypy prove that both classes implement the seam's protocols."""
    return far, near
