"""The store seam: what the engine may ask of a *far* and a *near* side.

As in mbsync's ``driver.h``, one interface per side and neutral names: the engine
(:mod:`syncd.engine`) is written against these protocols only and never learns
whether the far side speaks IMAP (or, later, POP3 or JMAP) or the near side is a
Maildir (or a notmuch database).  What a store can do is a :class:`Capability`
set; the engine branches on capabilities, never on a store's type.  Everything a
protocol needs to get there (IMAP's QRESYNC delta, MOVE vs COPY + EXPUNGE,
APPENDUID, MULTIAPPEND, UID-set lengths; Maildir's keyword letters and directory
signatures) lives in the adapter.

A store object stands for **one folder** (mailbox) of one account, opened by the
account layer; it is used from one thread, except where a method says otherwise.

Keys: a far message is named by its :data:`~syncd.model.MsgKey` (an IMAP UID, an
int; a POP3 UIDL would be a str), valid while :attr:`FarView.uidvalidity` stays
the same (None for a store without one: keys never change meaning).  A near
message is named by its unique name (a str that survives flag changes).

Messages cross the seam in wire form (CRLF line ends): a near store that keeps
another form converts on the way in and out.

Errors: a :class:`~syncd.errors.MessageError` concerns one message (the engine
skips it and counts a failure); a :class:`~syncd.errors.FolderError` ends this
folder's cycle; an :class:`~syncd.errors.AccountError` ends the account's run.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from syncd.model import Flags, MsgKey, MsgMeta


class Capability(enum.Flag):
    """What a store can do.  The engine plans from these; an adapter hides how."""

    NONE = 0
    FOLDERS = enum.auto()  # more than one folder; folders can be listed and created
    FLAGS = enum.auto()  # system flags are kept per message (\\Seen, \\Flagged...)
    KEYWORDS = enum.auto()  # arbitrary keywords are kept as well
    APPEND = enum.auto()  # new messages can be stored (else the store is pull-only)
    MOVE = enum.auto()  # messages can be moved to another folder (deletion to a trash)
    # Deletions made final for exactly the given keys, appends tell their keys (UIDPLUS).
    EXPUNGE = enum.auto()
    UID_STABLE = enum.auto()  # message keys last between sessions
    UIDVALIDITY = enum.auto()  # keys carry an epoch that may change (all keys reset)
    MODSEQ = enum.auto()  # a change counter: cheap "what changed since" and status
    PUSH = enum.auto()  # changes can be waited for (IMAP IDLE)
    # A mail drop (POP3): messages leave it once collected, by syncd or another
    # client, so a message gone from it was not deleted by the user: its near copy stays.
    SPOOL = enum.auto()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What the state remembers of a far folder after the last sync; any field may be
    None (never synced, or the store has no such notion)."""

    uidvalidity: int | None
    highestmodseq: int | None


@dataclass(frozen=True, slots=True)
class FarStatus:
    """A cheap summary of a far folder, for the fast path: the folder is unchanged
    when all four equal what the last clean sync saw."""

    uidvalidity: int | None
    uidnext: int | None
    messages: int
    highestmodseq: int | None


@dataclass(frozen=True, slots=True)
class FarView:
    """What opening a far folder tells.

    ``uidvalidity`` is None for a store without one; ``uidnext`` is a watermark: keys
    of messages added from now on sort at or above it (0 for a store without one,
    which then takes no appends either); ``highestmodseq``
    None without MODSEQ; ``readonly`` when opened to look only; ``permanent_flags`` the
    flags the folder keeps, ``\\*`` meaning any keyword, None meaning every flag."""

    uidvalidity: int | None
    uidnext: int
    highestmodseq: int | None
    readonly: bool = False
    permanent_flags: Flags | None = None


@dataclass(frozen=True, slots=True)
class FarBody:
    """One downloaded message: its key, wire bytes and arrival date (None: unknown)."""

    key: MsgKey
    data: bytes
    internaldate: datetime | None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append: wire bytes, flags, arrival date (None: now)."""

    data: bytes
    flags: Flags
    date: datetime | None


@dataclass(frozen=True, slots=True)
class Refused:
    """An append the far side said no to, for this message.  ``code`` is the store's
    reason code (IMAP response code such as ``TOOBIG``) or None; ``text`` the full
    line for the log; ``reason`` the store's own words."""

    code: str | None
    text: str
    reason: str

    def __str__(self) -> str:
        return self.text


#: Per message appended: its new key, None (stored, key unknown) or :class:`Refused`.
AppendOutcome = MsgKey | None | Refused


class FarFolder(Protocol):
    """One folder of the far side (an IMAP mailbox)."""

    @property
    def name(self) -> str:
        """The folder's name in the store's own spelling (state is keyed by it)."""

    @property
    def capabilities(self) -> Capability:
        """What this folder's store can do; constant for the object's lifetime."""

    @property
    def append_limit(self) -> int | None:
        """The largest message the store says it takes (None: no stated limit).
        Compared with the limit recorded for a refused message."""

    @property
    def max_fetch_size(self) -> int | None:
        """Messages larger than this are skipped by :meth:`fetch` (None: no cap)."""

    def status(self) -> FarStatus | None:
        """A cheap summary without opening the folder, or None when the store cannot
        give one (then the engine never takes the fast path).  Called only with
        :attr:`Capability.MODSEQ`, before :meth:`open`; read-only, idempotent."""

    def open(self, checkpoint: Checkpoint | None, *, readonly: bool) -> FarView:
        """Open the folder for this cycle; called once per cycle before any of the
        methods below.  ``checkpoint`` lets a store ask for changes since then at
        once (QRESYNC); ``readonly`` is set for a dry run.  Warns (log) itself about
        what the engine cannot act on (keys that are not persistent)."""

    def listing(
        self, since: int | None, known: Mapping[MsgKey, MsgMeta], *, full: bool
    ) -> dict[MsgKey, MsgMeta]:
        """The whole folder after :meth:`open`: key -> flags (and size when cheap).

        ``known`` is what the state last agreed (key -> baseline flags and size);
        ``since`` the modseq it was agreed at (None: unknown).  A store with MODSEQ
        may answer from a delta (the changed and vanished messages) applied to
        ``known``; ``full`` forbids that (the keys may have changed meaning).
        Read-only."""

    def list_all(self, *, sizes: bool) -> dict[MsgKey, MsgMeta]:
        """Every message with its flags (and size when ``sizes``): a full listing
        that ignores any delta.  Read-only."""

    def keys_from(self, low: int) -> list[MsgKey]:
        """Keys at or above the watermark ``low`` (a :attr:`FarView.uidnext` seen
        earlier): where a message appended since then must be.  Read-only."""

    def metas(self, keys: Iterable[MsgKey]) -> dict[MsgKey, MsgMeta]:
        """Flags and sizes of ``keys``; keys that are gone are left out.  Read-only,
        any number of keys."""

    def headers(self, keys: Sequence[MsgKey], fields: Sequence[str]) -> dict[MsgKey, bytes]:
        """The header lines ``fields`` of each message (raw bytes, possibly empty).
        Read-only."""

    def fetch(
        self, keys: Sequence[MsgKey], sizes: Mapping[MsgKey, int] | None = None
    ) -> Iterator[FarBody]:
        """Download ``keys`` (``sizes`` as known, for batching), yielding bodies in
        any order; keys that are gone, or larger than :attr:`max_fetch_size`, are not
        yielded.  Does not change the messages' flags (no implicit \\Seen)."""

    def append(
        self, messages: Sequence[NewMessage], *, uidvalidity: int | None
    ) -> list[AppendOutcome]:
        """Store ``messages`` (needs :attr:`Capability.APPEND`); one outcome per
        message, in order.  A refusal of one message does not stop the others.  Not
        idempotent: the engine records an intent first and, for an outcome of None,
        looks the message up with :meth:`keys_from` and :meth:`fetch`.  A key is
        only returned when it is certain to belong to ``uidvalidity``."""

    def add_flags(self, keys: Iterable[MsgKey], flags: Flags) -> None:
        """Add ``flags`` to the messages (gone ones are ignored).  Idempotent."""

    def remove_flags(self, keys: Iterable[MsgKey], flags: Flags) -> None:
        """Remove ``flags`` from the messages (gone ones are ignored).  Idempotent."""

    def mark_deleted(self, keys: Sequence[MsgKey]) -> None:
        """Mark messages deleted (IMAP \\Deleted), not yet final.  Idempotent."""

    def expunge(self, keys: Sequence[MsgKey]) -> bool:
        """Make the deletion of exactly ``keys`` final (never other clients' deleted
        mail).  Returns False, having warned, when the store cannot do so (IMAP
        without UIDPLUS): the messages stay marked.  Idempotent."""

    def move_to(self, keys: Sequence[MsgKey], target: str) -> dict[MsgKey, MsgKey]:
        """Move messages to the folder ``target`` (created when missing), e.g. a
        trash; by COPY + delete when the store has no MOVE.  Idempotent for keys
        already gone.  Returns each moved key's new key in ``target`` as far as the
        store tells (IMAP's COPYUID; empty when it does not)."""


class NearMessage(Protocol):
    """One message as a near scan saw it."""

    @property
    def name(self) -> str:
        """Its unique name: identity, kept across flag changes."""

    @property
    def flags(self) -> Flags:
        """Its flags as IMAP names."""

    @property
    def size(self) -> int:
        """Its size as stored (not necessarily the wire size)."""

    @property
    def mtime(self) -> float:
        """When it arrived (seconds since the epoch); used as its append date."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry a near scan could not take as a message (logged, counted)."""

    where: str
    reason: str


class NearFolder(Protocol):
    """One folder of the near side (a Maildir folder).

    :meth:`deliver` may be called from several writer threads at once; every other
    method from the cycle's thread only."""

    @property
    def capabilities(self) -> Capability:
        """What the store can do; constant."""

    def describe(self, msg: NearMessage | None = None) -> str:
        """Where the folder (or ``msg`` in it) is, for a log line."""

    def exists(self) -> bool:
        """Whether the folder is there (may be False after a user removed it)."""

    def create(self) -> None:
        """Create the folder; idempotent."""

    def signature(self) -> str | None:
        """An opaque token that changes whenever the folder's contents change (a
        Maildir's directory mtimes and sizes), or None when the folder is missing.
        Cheap: called before any scan, for the fast path."""

    def settled(self, signature: str) -> bool:
        """Whether a later change is bound to alter ``signature`` (a change in the
        same clock tick as the token's would not)."""

    def scan(self) -> tuple[dict[str, NearMessage], list[Skipped]]:
        """Every message by unique name, and what was skipped.  Starts tracking the
        entries this cycle expects to find at its end (see :meth:`trusted_signature`)."""

    def read(self, msg: NearMessage) -> bytes:
        """The message in wire form (CRLF).  MessageError when it cannot be read."""

    def head_and_size(self, msg: NearMessage) -> tuple[bytes, int]:
        """The header block of ``msg`` in wire form and its wire size (what a far
        side would report as its size), converting no body: to compare contents
        cheaply.  MessageError when it cannot be read."""

    def new_name(self) -> str:
        """A fresh unique name for :meth:`deliver` (recorded in an intent first)."""

    def prepare_flags(self, flags: Iterable[str]) -> None:
        """Called once before a batch of :meth:`deliver` with every keyword it will
        carry, so writer threads never race to extend a keyword table."""

    def deliver(
        self, data: bytes, *, name: str, flags: Flags, mtime: float | None, to_new: bool
    ) -> NearMessage:
        """Store a message (wire form) under ``name``, durable once :meth:`flush`
        returns; returns it as stored (flags the store cannot hold dropped).
        Thread-safe.  Not idempotent: the engine records an intent with ``name``
        first and, after a crash, adopts a message found under that name."""

    def set_flags(self, msg: NearMessage, flags: Flags) -> NearMessage:
        """Give ``msg`` exactly ``flags`` (what the store can hold of them); returns
        the message as it now is.  MessageError when it is gone.  Idempotent."""

    def unkeepable(self, flags: Flags) -> Flags:
        """Which of ``flags`` (keywords) the store cannot hold (a full keyword
        table), so they stay out of the baseline."""

    def delete(self, msg: NearMessage) -> None:
        """Remove ``msg``; MessageError when that fails.  Idempotent for a message
        already gone."""

    def locate(self, name: str) -> NearMessage | None:
        """The message of unique name ``name`` as it is now, None when there is none
        (crash recovery: no scan needed)."""

    def move_into(self, msg: NearMessage, target: NearFolder) -> NearMessage:
        """Move ``msg`` into the folder ``target`` (a folder of the same store, needs
        :attr:`Capability.MOVE`), keeping its unique name, flags and contents, durable
        once :meth:`flush` of both folders returns (an atomic rename: the message is
        in one folder or the other, never in neither).  MessageError when it is gone
        or ``target`` holds that name already.  Returns the message as it now is in
        ``target``."""

    def flush(self) -> None:
        """Make the deliveries, renames and deletions so far durable."""

    def trusted_signature(
        self, before: str | None, *, changed: bool, settled_before: bool
    ) -> str | None:
        """The signature to compare with next time, or None to rescan then.

        ``before`` is :meth:`signature` from before the scan; ``changed`` whether
        this cycle changed the folder.  Trusted only when a later change must alter
        it and, when this cycle changed the folder, its entries are exactly what the
        scan saw plus this cycle's own changes (nobody else wrote meanwhile)."""
