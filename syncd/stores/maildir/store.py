"""The Maildir side of the store seam: a :class:`MaildirFolder` as a
:class:`~syncd.stores.base.NearFolder`.

What is Maildir's own stays here: LF line ends on disk (CRLF across the seam),
the keyword letters of ``dovecot-keywords``, and the directory signature that
lets an unchanged folder be skipped without a scan -- including the bookkeeping
of which ``cur/``/``new/`` entries a cycle expects to leave behind.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from syncd.errors import MessageError
from syncd.flags import keyword_index, unmapped_flags
from syncd.message import to_crlf, to_lf, wire_size
from syncd.model import SYSTEM_FLAGS, Flags
from syncd.stores.base import Capability, NearFolder, NearMessage, Skipped
from syncd.stores.maildir.folder import LocalMessage, MaildirFolder
from syncd.stores.maildir.fsio import directory_signature
from syncd.stores.maildir.relocate import move_message

_HEAD_END = re.compile(rb"\r?\n\r?\n")
# CLOCK_REALTIME_COARSE: the clock Linux takes file timestamps from (not in `time`).
_COARSE_CLOCK = 5

CAPABILITIES = (
    (Capability.FOLDERS | Capability.FLAGS | Capability.KEYWORDS | Capability.APPEND)
    | Capability.UID_STABLE
    | Capability.MOVE
)


def _entry(msg: LocalMessage) -> str:
    return f"{msg.subdir}/{msg.filename}"


def settled(signature: str) -> bool:
    """Whether the file-timestamp clock has moved past every mtime in ``signature``."""
    newest = max(int(part) for part in signature.split(",")[::2])
    try:
        now = time.clock_gettime_ns(_COARSE_CLOCK)
    except OSError:  # not Linux: fall back on a generous margin of real time
        return time.time_ns() - newest > 2_000_000_000
    return now > newest


def listing(path: Path) -> set[str] | None:
    """The entries of ``cur/`` and ``new/`` as ``sub/name`` (None: unreadable)."""
    try:
        return {
            f"{sub}/{name}"
            for sub in ("cur", "new")
            for name in os.listdir(path / sub)  # noqa: PTH208 - names only, no stat
            if not name.startswith(".")
        }
    except OSError:
        return None


def signature(path: Path) -> str | None:
    """The folder's directory signature as text, None when the folder is missing."""
    sig = directory_signature(path)
    if sig[0] == -1 or sig[2] == -1:  # no cur/ or new/
        return None
    return ",".join(map(str, sig))


class MaildirStore:
    """One Maildir folder behind the seam."""

    def __init__(self, folder: MaildirFolder) -> None:
        self.folder = folder
        # What cur/ and new/ should list once our own changes are done: lets a run
        # that changed the Maildir still leave a trusted signature behind.
        self._expected: set[str] | None = None

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def capabilities(self) -> Capability:
        return CAPABILITIES

    def describe(self, msg: NearMessage | None = None) -> str:
        if msg is None:
            return str(self.folder.path)
        local = cast("LocalMessage", msg)
        return str(self.folder.path / local.subdir / local.filename)

    def exists(self) -> bool:
        return self.folder.exists()

    def create(self) -> None:
        self.folder.create()

    def signature(self) -> str | None:
        return signature(self.folder.path)

    def settled(self, signature: str) -> bool:
        return settled(signature)

    def scan(self) -> tuple[dict[str, NearMessage], list[Skipped]]:
        local, problems = self.folder.scan()
        self._expected = {_entry(m) for m in local.values()}
        self._expected.update(f"{p.path.parent.name}/{p.path.name}" for p in problems)
        return dict(local), [Skipped(str(p.path), p.reason) for p in problems]

    def read(self, msg: NearMessage) -> bytes:
        return to_crlf(self.folder.read(cast("LocalMessage", msg)))

    def head_and_size(self, msg: NearMessage) -> tuple[bytes, int]:
        data = self.folder.read(cast("LocalMessage", msg))
        end = _HEAD_END.search(data)
        return to_crlf(data[: end.end()] if end else data), wire_size(data)

    def new_name(self) -> str:
        return self.folder.new_name()

    def prepare_flags(self, flags: Iterable[str]) -> None:
        keywords = sorted({f for f in flags if f not in SYSTEM_FLAGS})
        if keywords:
            # Letters are given out here, once, so writer threads never race on the file.
            self.folder.ensure_keywords(keywords)

    def deliver(
        self, data: bytes, *, name: str, flags: Flags, mtime: float | None, to_new: bool
    ) -> NearMessage:
        msg = self.folder.deliver(to_lf(data), name=name, flags=flags, mtime=mtime, to_new=to_new)
        if self._expected is not None:
            self._expected.add(_entry(msg))
        return msg

    def set_flags(self, msg: NearMessage, flags: Flags) -> NearMessage:
        local = cast("LocalMessage", msg)
        result = self.folder.set_flags(local, flags)
        if self._expected is not None:
            self._expected.discard(_entry(local))
            self._expected.add(_entry(result))
        return result

    def unkeepable(self, flags: Flags) -> Flags:
        lost = flags - SYSTEM_FLAGS
        if not lost:
            return lost
        return unmapped_flags(lost, keyword_index(self.folder.keywords()))

    def delete(self, msg: NearMessage) -> None:
        local = cast("LocalMessage", msg)
        self.folder.delete(local)
        if self._expected is not None:
            self._expected.discard(_entry(local))

    def locate(self, name: str) -> NearMessage | None:
        return self.folder.locate(name)

    def move_into(self, msg: NearMessage, target: NearFolder) -> NearMessage:
        if not isinstance(target, MaildirStore):
            raise MessageError(f"cannot move {self.describe(msg)} into another kind of store")
        local = cast("LocalMessage", msg)
        moved = move_message(self.folder, local, target.folder)
        if self._expected is not None:
            self._expected.discard(_entry(local))
        if target._expected is not None:
            target._expected.add(_entry(moved))
        return moved

    def flush(self) -> None:
        self.folder.sync_dirs()

    def trusted_signature(
        self, before: str | None, *, changed: bool, settled_before: bool
    ) -> str | None:
        path = self.folder.path
        if not changed:
            same = before is not None and signature(path) == before
            return before if same and settled_before else None
        if self._expected is None:
            return None
        deadline = time.monotonic() + 0.05
        after = signature(path)
        while after is not None and not settled(after) and time.monotonic() < deadline:
            time.sleep(0.001)
            after = signature(path)
        if after is None or not settled(after):
            return None
        if listing(path) != self._expected:
            return None  # someone else changed the folder meanwhile: rescan next time
        return after if signature(path) == after else None
