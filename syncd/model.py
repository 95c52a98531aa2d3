"""Types shared by the stores, the state and the engine.

The engine is symmetric: it sees a *far* side (IMAP) and a *near* side
(Maildir) and never asks which is which.  A far message is identified by its
UID (within one UIDVALIDITY), a near message by its Maildir unique name (the
file's base name without the ``:2,`` info part).  Both are carried as
``MsgKey``; a key is only ever compared with keys of the same side.

Flags are carried everywhere as IMAP flag names (``\\Seen``, ``$Forwarded``,
keywords); the Maildir store maps them to info letters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

Uid = NewType("Uid", int)
UidValidity = NewType("UidValidity", int)
MsgKey = int | str
Flags = frozenset[str]

NO_FLAGS: Flags = frozenset()

SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
FORWARDED = "$Forwarded"

# The system flags every store can carry.  \Recent is session state, never synced.
SYSTEM_FLAGS: Flags = frozenset({SEEN, ANSWERED, FLAGGED, DELETED, DRAFT, FORWARDED})


class Side(enum.Enum):
    FAR = "far"
    NEAR = "near"

    @property
    def other(self) -> Side:
        return Side.NEAR if self is Side.FAR else Side.FAR


_interned: dict[frozenset[str], frozenset[str]] = {}


def intern_flags(flags: frozenset[str]) -> Flags:
    """Return one shared object per distinct flag set (100k messages share a handful)."""
    return _interned.setdefault(flags, flags)


def format_flags(flags: Flags) -> str:
    """Stable text form, used in the state store and in logs."""
    return " ".join(sorted(flags))


def parse_flags(text: str) -> Flags:
    return intern_flags(frozenset(text.split())) if text else NO_FLAGS


@dataclass(frozen=True, slots=True)
class MsgMeta:
    """What a listing says about one message on one side."""

    flags: Flags
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Pair:
    """One row of the state: a message known on both sides, and the flags both
    sides agreed on at the last sync (the baseline).

    ``far`` or ``near`` is None for a *tombstone*: a message deliberately kept on
    one side only (e.g. deleted locally with ``sync = "pull"``), so it is not
    copied again.
    """

    far: MsgKey | None
    near: str | None
    flags: Flags
    size: int | None = None

    def key(self, side: Side) -> MsgKey | None:
        return self.far if side is Side.FAR else self.near
