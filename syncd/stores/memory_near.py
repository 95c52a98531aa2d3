"""The in-memory near store (see :mod:`syncd.stores.memory`): a folder of messages
held in a dict, with a version counter standing in for a directory signature."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from syncd.errors import FolderError, MessageError
from syncd.message import to_crlf
from syncd.model import SYSTEM_FLAGS, Flags, intern_flags
from syncd.stores.base import Capability, NearFolder, NearMessage, Skipped
from syncd.stores.memory_headers import wire_head

NEAR_DEFAULT = (
    Capability.FOLDERS
    | Capability.FLAGS
    | Capability.KEYWORDS
    | Capability.APPEND
    | Capability.UID_STABLE
)


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

    def index(self) -> tuple[dict[str, Flags], list[Skipped]]:
        if not self._exists:
            raise FolderError(f"{self.describe()} is missing")
        with self._lock:
            self._scanned, self._own = self._version, 0
            return {name: m.flags for name, m in self.messages.items()}, []

    def lookup(self, names: Iterable[str]) -> tuple[dict[str, NearMessage], list[Skipped]]:
        with self._lock:
            return {n: self.messages[n] for n in names if n in self.messages}, []

    def unchanged(
        self, names: Mapping[str, Flags], signature: str
    ) -> tuple[dict[str, NearMessage], list[Skipped]] | None:
        with self._lock:
            if self.signature() != signature:
                return None
            self._scanned, self._own = self._version, 0
            return {n: self.messages[n] for n in names if n in self.messages}, []

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
