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

from syncd.errors import FolderError, MessageError
from syncd.message import to_crlf
from syncd.model import DELETED, SYSTEM_FLAGS, Flags, MsgKey, MsgMeta, intern_flags
from syncd.stores.base import (
    AppendOutcome,
    Capability,
    Checkpoint,
    FarBody,
    FarFolder,
    FarStatus,
    FarView,
    NearFolder,
    NearMessage,
    NewMessage,
    Refused,
    Skipped,
)
from syncd.stores.memory_headers import header_lines, wire_head

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
NEAR_DEFAULT = (
    Capability.FOLDERS
    | Capability.FLAGS
    | Capability.KEYWORDS
    | Capability.APPEND
    | Capability.UID_STABLE
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
            box = self.box(name)
            box.modseq += 1
            box.messages.pop(uid, None)

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
                    del box.messages[int(key)]
                    box.modseq += 1
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
                    del self._box.messages[uid]
                    self._box.modseq += 1
        else:  # COPY, then delete the originals
            self.mark_deleted(moved)
            self.expunge(moved)
        return mapping if self._has(Capability.EXPUNGE) else {}


@dataclass(frozen=True, slots=True)
class MemoryMessage:
    """A near message held in memory (wire form)."""

    name: str
    flags: Flags
    data: bytes
    mtime: float

    @property
    def size(self) -> int:
        return len(self.data)


class MemoryNear:
    """A near folder held in memory; without KEYWORDS it keeps system flags only."""

    def __init__(
        self, capabilities: Capability = NEAR_DEFAULT, *, exists: bool = True, name: str = "INBOX"
    ) -> None:
        self._caps = capabilities
        self._exists = exists
        self.label = name
        self.messages: dict[str, MemoryMessage] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._version = 0
        self._scanned: int | None = None  # version at scan time
        self._own = 0  # changes made through the seam since the scan
        self.flushes = 0

    @property
    def capabilities(self) -> Capability:
        return self._caps

    def _keepable(self, flags: Flags) -> Flags:
        if Capability.KEYWORDS in self._caps:
            return flags
        return intern_flags(flags & SYSTEM_FLAGS)

    def _bump(self, own: bool) -> None:
        self._version += 1
        if own:
            self._own += 1

    # --- another mail reader's doings (for tests) --------------------------------

    def other_add(
        self, data: bytes, flags: Iterable[str] = (), mtime: float = 0.0, name: str | None = None
    ) -> str:
        name = name or f"other-{next(self._counter)}"
        with self._lock:
            self.messages[name] = MemoryMessage(
                name, intern_flags(frozenset(flags)), to_crlf(data), mtime
            )
            self._bump(own=False)
        return name

    def other_set_flags(self, name: str, flags: Iterable[str]) -> None:
        with self._lock:
            self.messages[name] = replace(self.messages[name], flags=intern_flags(frozenset(flags)))
            self._bump(own=False)

    def other_delete(self, name: str) -> None:
        with self._lock:
            del self.messages[name]
            self._bump(own=False)

    # --- the seam -------------------------------------------------------------------

    def describe(self, msg: NearMessage | None = None) -> str:
        return f"memory:{self.label}" + (f"/{msg.name}" if msg is not None else "")

    def exists(self) -> bool:
        return self._exists

    def create(self) -> None:
        with self._lock:
            if not self._exists:
                self._exists = True
                self._bump(own=False)

    def signature(self) -> str | None:
        return str(self._version) if self._exists else None

    def settled(self, signature: str) -> bool:
        return True

    def scan(self) -> tuple[dict[str, NearMessage], list[Skipped]]:
        if not self._exists:
            raise FolderError(f"{self.describe()} is missing")
        with self._lock:
            self._scanned, self._own = self._version, 0
            return dict(self.messages), []

    def read(self, msg: NearMessage) -> bytes:
        current = self.messages.get(msg.name)
        if current is None:
            raise MessageError(f"cannot read {self.describe(msg)}: gone")
        return current.data

    def head_and_size(self, msg: NearMessage) -> tuple[bytes, int]:
        return wire_head(self.read(msg))

    def new_name(self) -> str:
        return f"m{next(self._counter)}"

    def prepare_flags(self, flags: Iterable[str]) -> None:
        """Nothing to prepare: no keyword table."""

    def deliver(
        self, data: bytes, *, name: str, flags: Flags, mtime: float | None, to_new: bool
    ) -> NearMessage:
        msg = MemoryMessage(name, self._keepable(flags), to_crlf(data), mtime or 0.0)
        with self._lock:
            self.messages[name] = msg
            self._bump(own=True)
        return msg

    def set_flags(self, msg: NearMessage, flags: Flags) -> NearMessage:
        with self._lock:
            current = self.messages.get(msg.name)
            if current is None:
                raise MessageError(f"flags not set on {self.describe(msg)}: gone")
            new = replace(current, flags=self._keepable(flags))
            if new.flags != current.flags:
                self.messages[msg.name] = new
                self._bump(own=True)
            return new

    def unkeepable(self, flags: Flags) -> Flags:
        return intern_flags(flags - self._keepable(flags))

    def delete(self, msg: NearMessage) -> None:
        with self._lock:
            current = self.messages.get(msg.name)
            if current is None:
                return
            if current.flags != msg.flags:
                raise MessageError(f"not deleting {self.describe(msg)}: changed since the scan")
            del self.messages[msg.name]
            self._bump(own=True)

    def locate(self, name: str) -> NearMessage | None:
        return self.messages.get(name)

    def move_into(self, msg: NearMessage, target: NearFolder) -> NearMessage:
        if not isinstance(target, MemoryNear) or msg.name in target.messages:
            raise MessageError(f"cannot move {self.describe(msg)} into {target.describe()}")
        with self._lock, target._lock:
            current = self.messages.pop(msg.name, None)
            if current is None:
                raise MessageError(f"cannot move {self.describe(msg)}: gone")
            target.messages[msg.name] = current
            self._bump(own=True)
            target._bump(own=True)
        return current

    def flush(self) -> None:
        self.flushes += 1

    def trusted_signature(
        self, before: str | None, *, changed: bool, settled_before: bool
    ) -> str | None:
        now = self.signature()
        if not changed:
            return before if before is not None and now == before and settled_before else None
        if self._scanned is None or self._version != self._scanned + self._own:
            return None  # someone else changed the folder meanwhile
        return now


def _conforms(far: MemoryFarFolder, near: MemoryNear) -> tuple[FarFolder, NearFolder]:
    """Never called: has mypy prove that both classes implement the seam's protocols."""
    return far, near
