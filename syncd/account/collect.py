"""``collect_into``: what a POP3 account downloads is appended to a folder of one
of the user's IMAP accounts, so it appears on every device -- the collector Gmail
stopped being in January 2026.

Exactly once, also across crashes: each message (by its POP3 UIDL) gets a row in
the state *before* its APPEND, holding the target folder's UIDVALIDITY and UIDNEXT
(the intent), and the row is completed with the new UID once the server answers.
A row still open at the next run is an APPEND whose answer was lost: the message
is looked for above that UIDNEXT by content (:func:`~syncd.engine.recovery.
find_on_far`) and appended again only when it is not there.

The message comes from the POP3 account's Maildir (where it is already durable),
keeps its ``Date:`` as the internal date, and is appended without flags (unread).
A message deleted locally before it was collected is skipped.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from syncd import crashpoints
from syncd.engine.recovery import find_on_far
from syncd.engine.report import FolderReport
from syncd.errors import AccountError, CredentialError, FolderError, MessageError, ProtocolError
from syncd.folders import join_name
from syncd.model import NO_FLAGS, MsgKey
from syncd.stores.base import NewMessage, Refused
from syncd.stores.imap.store import ImapFolder

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.engine.state import StateDB
    from syncd.stores.maildir.store import MaildirStore

Log = logging.LoggerAdapter[logging.Logger]

#: Messages per APPEND batch (one state commit each).
BATCH = 50
#: ``target_uid`` of a message appended whose UID the server did not tell.
UNKNOWN_UID = 0
#: ``target_uid`` of a message the target server refused for good.
REFUSED = -1

_HEADER_END = (b"\r\n\r\n", b"\n\n")


def message_date(data: bytes) -> datetime | None:
    """The ``Date:`` header as an aware datetime, None when absent or unreadable."""
    end = min((i for i in (data.find(m) for m in _HEADER_END) if i >= 0), default=len(data))
    for line in data[:end].splitlines():
        if line[:5].lower() == b"date:":
            try:
                when = email.utils.parsedate_to_datetime(line[5:].decode("ascii", "replace"))
            except (TypeError, ValueError):
                return None
            return when if when.tzinfo is not None else None
    return None


def collect(
    *,
    db: StateDB,
    folder_id: int,
    near: MaildirStore,
    target: AccountConfig,
    folder: str,
    log: Log,
) -> FolderReport:
    """Append the stored messages not yet collected to ``folder`` (``/``-separated)
    of the IMAP account ``target``.  Problems reaching the target are the report's
    error: the POP3 account's own download and deletion are not held up by them."""
    shown = f"{target.name}/{folder}"
    report = FolderReport(f"collect into {shown}")
    rows = db.collected(folder_id, shown)
    todo = [
        (p.far, p.near)
        for p in db.pairs(folder_id)
        if p.far is not None
        and p.near is not None
        and rows.get(p.far, (None, None, None))[2] is None
    ]
    if not todo:
        return report
    from syncd.account.syncer import open_session  # the IMAP stack only when needed

    try:
        session = open_session(target)
    except (AccountError, CredentialError) as exc:
        report.error = f"collect_into {shown}: {exc}"
        log.error("%s", report.error)
        return report
    try:
        name = join_name(tuple(folder.split("/")), session.delimiter())
        session.create_folder(name)
        far = ImapFolder(session, name, log)
        view = far.open(None, readonly=False)
        local, _ = near.scan()
        data: dict[MsgKey, bytes] = {}
        for uid, near_name in todo:
            msg = local.get(str(near_name))
            if msg is None:
                continue  # deleted here before it was collected
            try:
                data[uid] = near.read(msg)
            except MessageError as exc:
                log.warning("cannot collect %s: %s", near_name, exc)
                report.failed += 1
        run = _Run(db, folder_id, shown, far, view.uidvalidity, view.uidnext, report)
        run.settle_interrupted(rows, data)
        rows = db.collected(folder_id, shown)
        pending = [k for k in data if rows.get(k, (None, None, None))[2] is None]
        for start in range(0, len(pending), BATCH):
            run.append(pending[start : start + BATCH], data)
        if report.uploaded:
            log.info("collected %d messages into %s", report.uploaded, shown)
    except (AccountError, FolderError, ProtocolError) as exc:
        report.error = f"collect_into {shown}: {exc}"
        log.error("%s", report.error)
    finally:
        session.logout()
    return report


@dataclass
class _Run:
    """One collection into one opened target folder."""

    db: StateDB
    folder_id: int
    shown: str
    far: ImapFolder
    uidvalidity: int | None
    uidnext: int
    report: FolderReport

    def settle_interrupted(
        self,
        rows: dict[MsgKey, tuple[int | None, int | None, int | None]],
        data: dict[MsgKey, bytes],
    ) -> None:
        """APPENDs started by an earlier run whose answer was never recorded: adopt
        the copies that are there; the rest are appended again."""
        open_rows = {
            k: r for k, r in rows.items() if r[2] is None and k in data and r[0] == self.uidvalidity
        }
        if not open_rows:
            return
        low = min((r[1] or 1) for r in open_rows.values())
        known: set[MsgKey] = {r[2] for r in rows.values() if r[2] is not None and r[2] > 0}
        found = find_on_far(self.far, known, low, [(str(k), data[k]) for k in open_rows])
        by_name = {str(k): k for k in open_rows}
        done = [(by_name[name], int(uid)) for name, uid in found.items()]
        if done:
            self.db.collect_done(self.folder_id, self.shown, done)
            self.far.log.info("found %d messages an interrupted run had collected", len(done))

    def append(self, batch: Sequence[MsgKey], data: dict[MsgKey, bytes]) -> None:
        self.db.collect_start(self.folder_id, self.shown, batch, self.uidvalidity, self.uidnext)
        crashpoints.step("collect-intent")
        outcomes = self.far.append(
            [NewMessage(data[k], NO_FLAGS, message_date(data[k])) for k in batch],
            uidvalidity=self.uidvalidity,
        )
        crashpoints.step("collect-append")
        done: list[tuple[MsgKey, int]] = []
        for key, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Refused):
                self.far.log.warning(
                    "%s refused message %s for good: %s", self.shown, key, outcome.reason
                )
                self.report.failed += 1
                done.append((key, REFUSED))
            else:
                done.append((key, int(outcome) if outcome is not None else UNKNOWN_UID))
                self.report.uploaded += 1
        self.db.collect_done(self.folder_id, self.shown, done)
        crashpoints.step("collect-commit")
