"""mbsync's (isync 1.4) per-folder files, read-only.

- ``.uidvalidity`` in each Maildir folder: two lines, the Maildir's own UIDVALIDITY
  and the last UID mbsync gave a local message (these are *mbsync's* UIDs, written
  into file names as ``,U=<n>``; they are not the server's).
- the sync state (``.mbsyncstate`` in the folder with ``SyncState *``, else a file
  under the SyncState directory): header lines ``FarUidValidity N``,
  ``NearUidValidity N``, ``MaxPulledUid N``, ``MaxPushedUid N`` (``MaxExpiredFarUid``
  optional; ``Master``/``Slave`` spellings of isync < 1.4 accepted), a blank line, then
  one ``farUID nearUID [<|>][^|~]FLAGS`` line per pair (0 = not on that side yet).
- ``<state>.journal`` (version 4), replayed over the state only when ``<state>.new``
  exists -- exactly when mbsync itself replays it (a run that died before renaming
  the new state into place).

Format as isync 1.4's ``sync.c`` (``load_state``/``save_state``) reads and writes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from syncd.adopt.common import AdoptError

JOURNAL_VERSION: Final = "4"
# isync's flag bits, in the order of its Flags[] table (bit 0 = 'D').
FLAG_BITS: Final = "DFPRST"

S_EXPIRED: Final = 1 << 1
S_PENDING: Final = 1 << 2
S_DUMMY_FAR: Final = 1 << 3
S_DUMMY_NEAR: Final = 1 << 4
S_SKIPPED: Final = 1 << 5
S_DEAD: Final = 1 << 7

_NEAR_UID_RE: Final = re.compile(r",U=(\d+)")
_HEADER_KEYS: Final = {
    "FarUidValidity": "far_uidvalidity",
    "MasterUidValidity": "far_uidvalidity",
    "NearUidValidity": "near_uidvalidity",
    "SlaveUidValidity": "near_uidvalidity",
    "MaxPulledUid": "max_pulled",
    "MaxPushedUid": "max_pushed",
    "MaxExpiredFarUid": "max_expired_far",
    "MaxExpiredMasterUid": "max_expired_far",
    "MaxExpiredSlaveUid": None,
}


@dataclass
class SyncRecord:
    """One pair line: ``far``/``near`` UIDs (0 = none), letters, isync status bits."""

    far: int
    near: int
    flags: str
    status: int = 0

    @property
    def complete(self) -> bool:
        """Both sides hold the real message: usable as a pair."""
        bad = S_PENDING | S_DEAD | S_EXPIRED | S_SKIPPED | S_DUMMY_FAR | S_DUMMY_NEAR
        return bool(self.far and self.near and not self.status & bad)


@dataclass
class SyncState:
    far_uidvalidity: int | None = None
    near_uidvalidity: int | None = None
    max_pulled: int = 0
    max_pushed: int = 0
    max_expired_far: int = 0
    records: list[SyncRecord] = field(default_factory=list)
    replayed: int = 0  # journal lines applied


def read_uidvalidity(folder: Path) -> tuple[int, int] | None:
    """``(UIDVALIDITY, last assigned UID)`` of a Maildir folder's ``.uidvalidity``;
    None when the file is missing (mbsync never opened the folder)."""
    path = folder / ".uidvalidity"
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdoptError(f"cannot read {path}: {exc}") from None
    values = text.split()
    if len(values) < 2 or not all(v.isdigit() for v in values[:2]):
        raise AdoptError(f"{path}: expected two numbers (UIDVALIDITY, next UID)")
    return int(values[0]), int(values[1])


def near_uid(filename: str) -> int | None:
    """mbsync's Maildir UID in a file name (``...,U=12:2,S`` -> 12), None without one."""
    match = _NEAR_UID_RE.search(filename.split(":", 1)[0])
    return int(match.group(1)) if match else None


def _parse_flags(text: str) -> tuple[str, int]:
    status = 0
    if text[:1] == "<":
        status, text = S_DUMMY_FAR, text[1:]
    elif text[:1] == ">":
        status, text = S_DUMMY_NEAR, text[1:]
    if text[:1] == "^":
        status, text = S_SKIPPED, text[1:]
    elif text[:1] in ("~", "X"):
        status, text = S_EXPIRED, text[1:]
    return "".join(c for c in FLAG_BITS if c in text), status


def parse_state(text: str, where: str = "sync state") -> SyncState:
    """Parse the text of a sync state file (AdoptError naming ``where`` and the line)."""
    state = SyncState()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    else:
        raise AdoptError(f"{where}: incomplete last line (mbsync was interrupted?)")
    body = 0
    for number, line in enumerate(lines, 1):
        if not line:
            body = number
            break
        key, _, value = line.partition(" ")
        if number == 1 and key[:1].isdigit():  # pre-1.1 "uv:max uv:xmax:max"
            raise AdoptError(f"{where}: sync state of isync < 1.1 is not supported")
        if key not in _HEADER_KEYS or not value.isdigit():
            raise AdoptError(f"{where}:{number}: unrecognized header line {line!r}")
        attr = _HEADER_KEYS[key]
        if attr is not None:
            setattr(state, attr, int(value))
    else:
        raise AdoptError(f"{where}: unterminated header")
    for number, line in enumerate(lines[body:], body + 1):
        fields = line.split(" ", 2)
        if len(fields) < 2 or not fields[0].isdigit() or not fields[1].isdigit():
            raise AdoptError(f"{where}:{number}: invalid entry {line!r}")
        letters, status = _parse_flags(fields[2] if len(fields) > 2 else "")
        state.records.append(SyncRecord(int(fields[0]), int(fields[1]), letters, status))
    return state


def _bits_to_letters(bits: int) -> str:
    return "".join(c for i, c in enumerate(FLAG_BITS) if bits & (1 << i))


def replay_journal(state: SyncState, text: str, where: str = "journal") -> SyncState:
    """Apply a version-4 journal to ``state`` (in place, and returned)."""
    lines = text.split("\n")
    if not lines or lines[0] != JOURNAL_VERSION:
        raise AdoptError(f"{where}: journal version {lines[0]!r}, expected {JOURNAL_VERSION}")
    last: SyncRecord | None = None
    for number, line in enumerate(lines[1:], 2):
        if not line:
            continue  # the incomplete tail of an interrupted write ends up here too
        op, args = line[0], line[2:].split()
        try:
            nums = [int(a) for a in (args[:2] if op == "#" else args)]
        except ValueError:
            raise AdoptError(f"{where}:{number}: malformed entry {line!r}") from None
        if op == "N":
            setattr(state, "max_pulled" if nums[0] == 0 else "max_pushed", nums[1])
        elif op == "!":
            state.max_expired_far = nums[0]
        elif op == "|":
            state.far_uidvalidity, state.near_uidvalidity = nums[0], nums[1]
        elif op in "FT":
            pass  # UIDNEXT for TUID lookup, trashed messages: nothing to adopt
        elif op == "+":
            last = SyncRecord(nums[0], nums[1], "", S_PENDING)
            state.records.append(last)
        else:
            record = _find(state, last, nums[0], nums[1])
            if record is None:
                raise AdoptError(f"{where}:{number}: entry refers to no sync record")
            _apply(record, op, nums, where, number)
            last = record
        state.replayed += 1
    return state


def _find(state: SyncState, last: SyncRecord | None, far: int, near: int) -> SyncRecord | None:
    # isync searches from the record touched last, then from the start.
    start = state.records.index(last) if last is not None else 0
    for record in state.records[start:] + state.records[:start]:
        if record.far == far and record.near == near and not record.status & S_DEAD:
            return record
    return None


def _apply(record: SyncRecord, op: str, nums: list[int], where: str, number: int) -> None:
    if op in ("-", "="):
        record.status = S_DEAD
    elif op in ("#", "&"):
        pass  # TUID set / lost: the copy is still pending
    elif op == "<":
        record.far, record.status = nums[2], record.status & ~S_PENDING
    elif op == ">":
        record.near, record.status = nums[2], record.status & ~S_PENDING
    elif op == "*":
        record.flags = _bits_to_letters(nums[2])
    elif op == "~":
        record.status = nums[2]
    elif op == "_":
        record.status = S_PENDING | (S_DUMMY_FAR if not record.far else S_DUMMY_NEAR)
    elif op == "^":
        # A placeholder being replaced by the real message (MaxSize): not adoptable yet.
        record.flags, record.status = _bits_to_letters(nums[3]), S_PENDING
    else:
        raise AdoptError(f"{where}:{number}: unrecognized journal entry {op!r}")


def read_state(path: Path) -> SyncState | None:
    """The sync state at ``path`` with its journal replayed as mbsync would (when
    ``<path>.new`` exists); None when neither the state nor a journal exists."""
    journal = Path(f"{path}.journal")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdoptError(f"cannot read {path}: {exc}") from None
    state = parse_state(text, str(path)) if text is not None else SyncState()
    if Path(f"{path}.new").exists() and journal.exists():
        try:
            replay_journal(state, journal.read_text(encoding="utf-8"), str(journal))
        except (OSError, UnicodeDecodeError) as exc:
            raise AdoptError(f"cannot read {journal}: {exc}") from None
    elif text is None:
        return None
    return state
