"""The IMAP side of the store seam: one mailbox of an :class:`ImapSession` as a
:class:`~syncd.stores.base.FarFolder`.

Everything the engine used to know about IMAP lives here: which extensions the
server has (QRESYNC, CONDSTORE, UIDPLUS, MOVE, MULTIAPPEND, APPENDLIMIT), how a
listing is read from a delta, how a refused APPEND is told apart from one that
went in, and how long a UID set may be on one command line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from syncd.model import DELETED, Flags, MsgKey, MsgMeta, intern_flags
from syncd.stores.base import (
    AppendOutcome,
    Capability,
    Checkpoint,
    FarBody,
    FarStatus,
    FarView,
    NewMessage,
    Refused,
)
from syncd.stores.imap.parse import chunk_uid_sets
from syncd.stores.imap.session import AppendError

if TYPE_CHECKING:
    from syncd.stores.imap.session import ImapSession, SelectInfo, StatusInfo

Log = logging.LoggerAdapter[logging.Logger] | logging.Logger


def capabilities_of(session: ImapSession) -> Capability:
    """The seam's view of what the server offers."""
    caps = (
        Capability.FOLDERS
        | Capability.FLAGS
        | Capability.KEYWORDS
        | Capability.APPEND
        | Capability.MOVE  # by MOVE, else COPY + \\Deleted (+ UID EXPUNGE)
        | Capability.UIDVALIDITY
        | Capability.UID_STABLE
    )
    if session.has_uidplus:
        caps |= Capability.EXPUNGE
    if session.has_condstore:
        caps |= Capability.MODSEQ
    if session.has_idle:
        caps |= Capability.PUSH
    return caps


def _keys(keys: Iterable[MsgKey]) -> list[int]:
    return [int(k) for k in keys]


class ImapFolder:
    """One mailbox on an open session.  ``status`` is the mailbox's STATUS when the
    account already asked it (LIST-STATUS), so the fast path costs no command."""

    def __init__(
        self, session: ImapSession, name: str, log: Log, *, status: StatusInfo | None = None
    ) -> None:
        self.session = session
        self._name = name
        self.log = log
        self._status = status
        self._sel: SelectInfo | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capability:
        return capabilities_of(self.session)

    @property
    def append_limit(self) -> int | None:
        return self.session.append_limit

    @property
    def max_fetch_size(self) -> int | None:
        return self.session.max_literal

    def status(self) -> FarStatus | None:
        if not self.session.has_condstore:
            return None
        s = self._status or self.session.status(self._name)
        return FarStatus(s.uidvalidity, s.uidnext, s.messages, s.highestmodseq)

    def open(self, checkpoint: Checkpoint | None, *, readonly: bool) -> FarView:
        s = self.session
        qresync = None
        if (
            s.has_qresync
            and checkpoint is not None
            and checkpoint.uidvalidity is not None
            and checkpoint.highestmodseq is not None
        ):
            qresync = (checkpoint.uidvalidity, checkpoint.highestmodseq, None)
        sel = s.select(self._name, qresync=qresync, readonly=readonly)
        self._sel = sel
        if not sel.sticky:
            self.log.warning(
                "the server says this folder's UIDs are not persistent (UIDNOTSTICKY): "
                "each sync re-pairs its messages by Message-ID and content"
            )
        return FarView(
            sel.uidvalidity, sel.uidnext, sel.highestmodseq, sel.readonly, sel.permanent_flags
        )

    def listing(
        self, since: int | None, known: Mapping[MsgKey, MsgMeta], *, full: bool
    ) -> dict[MsgKey, MsgMeta]:
        s, sel = self.session, self._sel
        assert sel is not None, "open() first"
        if full or since is None or sel.highestmodseq is None or not s.has_condstore:
            infos, _ = s.fetch_flags("1:*")
            return {uid: MsgMeta(intern_flags(i.flags), i.size) for uid, i in infos.items()}
        if s.has_qresync:
            # SELECT (QRESYNC ...) already reported every change and expunge since `since`.
            changed, vanished = dict(sel.changed), set(sel.vanished)
        elif sel.highestmodseq == since:
            changed, vanished = {}, set()
        else:
            changed, _ = s.fetch_flags("1:*", changedsince=since)
            present = set(s.search("ALL"))
            vanished = {int(k) for k in known if k not in present}
        far: dict[MsgKey, MsgMeta] = {k: m for k, m in known.items() if k not in vanished}
        for uid, info in changed.items():
            if uid not in vanished:
                far[uid] = MsgMeta(intern_flags(info.flags), info.size)
        return far

    def list_all(self, *, sizes: bool) -> dict[MsgKey, MsgMeta]:
        infos, _ = self.session.fetch_flags("1:*", with_size=sizes)
        return {uid: MsgMeta(i.flags, i.size) for uid, i in infos.items()}

    def keys_from(self, low: int) -> list[MsgKey]:
        return [u for u in self.session.search(f"UID {low}:*") if u >= low]

    def metas(self, keys: Iterable[MsgKey]) -> dict[MsgKey, MsgMeta]:
        out: dict[MsgKey, MsgMeta] = {}
        # Scattered keys in chunks that keep each command line short (RFC 2683).
        for uid_set in chunk_uid_sets(_keys(keys)):
            infos, _ = self.session.fetch_flags(uid_set, with_size=True)
            out.update({uid: MsgMeta(i.flags, i.size) for uid, i in infos.items()})
        return out

    def headers(self, keys: Sequence[MsgKey], fields: Sequence[str]) -> dict[MsgKey, bytes]:
        if not keys:
            return {}
        got = self.session.fetch_headers(_keys(keys), list(fields))
        return {uid: got[uid] for uid in got}

    def fetch(
        self, keys: Sequence[MsgKey], sizes: Mapping[MsgKey, int] | None = None
    ) -> Iterator[FarBody]:
        known = {int(k): v for k, v in sizes.items()} if sizes is not None else None
        for body in self.session.fetch_bodies(_keys(keys), sizes=known):
            yield FarBody(body.uid, body.data, body.internaldate)

    def append(
        self, messages: Sequence[NewMessage], *, uidvalidity: int | None
    ) -> list[AppendOutcome]:
        """APPEND a batch (MULTIAPPEND when offered); a refused message does not stop
        the rest.  MULTIAPPEND is all or nothing: after a refusal the batch is sent
        again message by message to find which one was refused."""
        batch = [(m.data, m.flags, m.date) for m in messages]
        out: list[AppendOutcome] = []
        while batch:
            try:
                out.extend(self.session.append_many(self._name, batch, uidvalidity=uidvalidity))
                return out
            except AppendError as exc:
                if len(batch) > 1 and not exc.appended and self.session.has_multiappend:
                    out.extend(self._append_each(batch, uidvalidity))
                    return out
                out.extend(exc.appended)
                out.append(_refused(exc))
                batch = batch[len(exc.appended) + 1 :]
        return out

    def _append_each(
        self, batch: list[tuple[bytes, Flags, datetime | None]], uidvalidity: int | None
    ) -> list[AppendOutcome]:
        out: list[AppendOutcome] = []
        for data, flags, when in batch:
            try:
                out.append(
                    self.session.append(
                        self._name, data, flags=flags, date=when, uidvalidity=uidvalidity
                    )
                )
            except AppendError as exc:
                out.append(_refused(exc))
        return out

    def add_flags(self, keys: Iterable[MsgKey], flags: Flags) -> None:
        self.session.add_flags(_keys(keys), flags)

    def remove_flags(self, keys: Iterable[MsgKey], flags: Flags) -> None:
        self.session.remove_flags(_keys(keys), flags)

    def mark_deleted(self, keys: Sequence[MsgKey]) -> None:
        self.session.add_flags(_keys(keys), frozenset({DELETED}))

    def expunge(self, keys: Sequence[MsgKey]) -> bool:
        if self.session.has_uidplus:
            self.session.uid_expunge(_keys(keys))
            return True
        self.log.warning(
            "the server lacks UIDPLUS: %d messages are marked \\Deleted but not "
            "expunged (syncd never expunges other clients' deleted mail)",
            len(keys),
        )
        return False

    def move_to(self, keys: Sequence[MsgKey], target: str) -> dict[MsgKey, MsgKey]:
        self.session.create_folder(target)
        moved = self.session.move(_keys(keys), target)
        return {int(k): v for k, v in moved.items()}


def _refused(exc: AppendError) -> Refused:
    return Refused(exc.code, str(exc), exc.reason or exc.code or "")
