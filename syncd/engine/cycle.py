"""One sync of one folder pair: read both sides, reconcile, execute the plan.

The order of every copy is: record an intent, copy, make it durable, record
the pair and clear the intent in one transaction.  Deletions and flag changes
need no intent: they are recorded after they happen, and redoing one after a
crash is harmless.  So ``kill -9`` at any point loses nothing and copies
nothing twice (see :mod:`syncd.engine.recovery` for how intents are resolved).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from syncd import crashpoints
from syncd.engine.reconcile import (
    Copy,
    Delete,
    Forget,
    Plan,
    Policy,
    SetFlags,
    mass_delete_problems,
)
from syncd.engine.reconcile import reconcile as reconcile_plan
from syncd.engine.recovery import find_on_far, pair_existing, recover_uidvalidity, resolve_intents
from syncd.engine.refusals import REMEMBERED_CODES, Refusal, held_back
from syncd.errors import FolderError, MessageError
from syncd.flags import kept_local_only, keyword_index, unmapped_flags
from syncd.message import to_crlf, to_lf
from syncd.model import (
    DELETED,
    NO_FLAGS,
    SEEN,
    SYSTEM_FLAGS,
    Flags,
    MsgMeta,
    Pair,
    Side,
    intern_flags,
)
from syncd.stores.imap.parse import chunk_uid_sets
from syncd.stores.imap.session import AppendError
from syncd.stores.maildir.fsio import directory_signature

if TYPE_CHECKING:
    from syncd.engine.state import FolderState, StateDB
    from syncd.stores.imap.session import ImapSession, SelectInfo, StatusInfo
    from syncd.stores.maildir.folder import LocalMessage, MaildirFolder

T = TypeVar("T")

# Bodies in memory at once per folder: two batches (one being stored, one fetched).
DOWNLOAD_BATCH_BYTES = 4 * 1024 * 1024
ACCOUNT_BODY_BUDGET = 16 * 1024 * 1024  # all folders of an account together
DOWNLOAD_BATCH_COUNT = 1000
UPLOAD_BATCH_BYTES = 8 * 1024 * 1024
UPLOAD_BATCH_COUNT = 100
WRITERS = 4  # threads storing downloads; fsyncs in parallel let the file system batch them
PROGRESS_EVERY = 5.0  # seconds between progress lines on long copies
REFUSED = 0  # not a valid UID: marks a message the server refused to take


@dataclass
class _DownloadBatch:
    count: int
    items: list[tuple[int, int, Copy, int, Future[LocalMessage]]]
    vanished: list[int] = field(default_factory=list)


class ByteBudget:
    """Message bytes in memory at once, shared by the folders of an account that
    are synced side by side, so a few multi-megabyte messages arriving together
    cannot push the peak RSS up.  A request larger than the whole budget waits
    until it is all free and then takes all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._cond = threading.Condition()

    def try_acquire(self, amount: int) -> int | None:
        amount = min(amount, self.limit)
        with self._cond:
            if self._used + amount > self.limit:
                return None
            self._used += amount
            return amount

    def acquire(self, amount: int) -> int:
        amount = min(amount, self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self._used + amount <= self.limit)
            self._used += amount
            return amount

    def release(self, amount: int) -> None:
        with self._cond:
            self._used -= amount
            self._cond.notify_all()


class _Progress:
    """Logs ``downloaded 2000/10000 messages`` every few seconds on long copies."""

    def __init__(self, owner: FolderSync, verb: str, total: int) -> None:
        self.log, self.verb, self.total = owner.log, verb, total
        self.done = 0
        self.last = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.total >= 200 and now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.log.info("%s %d/%d messages", self.verb, self.done, self.total)


class SyncCancelled(Exception):
    """The run was asked to stop (:attr:`RunOptions.cancel`).  Raised only where all
    that was done so far is committed: between folders, or between two batches of
    a folder's copies.  What is left is picked up by the next run, as after a crash."""


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    allow_mass_delete: bool = False
    retry_refused: bool = False  # offer messages the server refused for good again now
    # Set by the daemon on SIGTERM: a long folder stops at its next batch boundary.
    cancel: threading.Event | None = None


@dataclass
class FolderReport:
    """What happened to one folder; printed by the CLI, kept in the state."""

    name: str
    downloaded: int = 0
    uploaded: int = 0
    flagged: int = 0
    deleted_far: int = 0
    deleted_near: int = 0
    skipped: int = 0  # local files that are not messages (junk in cur/, symlinks...)
    failed: int = 0  # messages that could not be copied or changed this time
    held: int = 0  # local messages the server refused before, not offered again yet
    dropped: bool = False  # the error dropped the connection (a protocol error)
    error: str | None = None
    planned: list[str] = field(default_factory=list)

    def changed(self) -> bool:
        return bool(
            self.downloaded
            or self.uploaded
            or self.flagged
            or self.deleted_far
            or self.deleted_near
        )

    def summary(self) -> str:
        return (
            f"{self.downloaded} downloaded, {self.uploaded} uploaded, {self.flagged} flag changes, "
            f"{self.deleted_near} deleted here, {self.deleted_far} deleted on the server"
            + (f", {self.skipped} local files skipped" if self.skipped else "")
            + (f", {self.failed} failed" if self.failed else "")
            + (f", {self.held} held back (refused by the server)" if self.held else "")
        )


def batched(
    items: Sequence[T], size_of: Callable[[T], int], max_bytes: int, max_count: int
) -> Iterator[list[T]]:
    batch: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if batch and (total + size > max_bytes or len(batch) >= max_count):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size
    if batch:
        yield batch


class FolderSync:
    """Syncs one folder pair once.  Raises FolderError when the folder must be skipped."""

    def __init__(
        self,
        *,
        session: ImapSession,
        db: StateDB,
        far_name: str,
        near: MaildirFolder,
        policy: Policy,
        options: RunOptions,
        log: logging.LoggerAdapter[logging.Logger],
        new_to_new: bool = False,
        trash: str | None = None,
        batch_bytes: int = DOWNLOAD_BATCH_BYTES,
        writers: ThreadPoolExecutor | None = None,
        budget: ByteBudget | None = None,
        status: StatusInfo | None = None,
    ) -> None:
        self.session = session
        self.status = status  # the server's STATUS, if already asked (LIST-STATUS)
        self.db = db
        self.far_name = far_name
        self.near = near
        self.policy = policy
        self.options = options
        self.log = log
        self.new_to_new = new_to_new
        self.trash = trash if trash != far_name else None
        self.batch_bytes = batch_bytes
        # Shared by the folders of an account synced side by side: fewer threads,
        # fewer malloc arenas, a flatter peak RSS.
        self.writers = writers
        self.budget = budget or ByteBudget(2 * batch_bytes)
        self.report = FolderReport(far_name)
        self._touched_near = False
        self._settled_at_start = False
        # What cur/ and new/ should list once our own changes are done: lets a run
        # that changed the Maildir still leave a trusted signature behind.
        self._expected: set[str] | None = None
        self._refusals: dict[str, Refusal] = {}
        self._new_refusals: list[Refusal] = []

    # --- the cycle -------------------------------------------------------------

    def run_if_unchanged(self) -> FolderReport | None:
        """Only the fast path: the report when nothing changed on either side since
        the last clean sync (see :meth:`_unchanged`), else None, having done nothing.
        Lets the caller settle unchanged folders without a connection of their own."""
        st = self.db.folder(self.far_name)
        if st is None:
            return None
        self._refusals = self.db.refusals(st.id)
        if self.options.retry_refused and self._refusals:
            return None
        return self.report if self._unchanged(st, _signature(self.near.path)) else None

    def run(self) -> FolderReport:
        st = self.db.ensure_folder(self.far_name)
        dry = self.options.dry_run
        self._refusals = self.db.refusals(st.id)
        retrying = self.options.retry_refused and bool(self._refusals)
        if retrying:
            self._refusals = {}
            if not dry:
                self.db.forget_refusals(st.id)
        signature = _signature(self.near.path)
        self._settled_at_start = signature is not None and _settled(signature)
        if not retrying and self._unchanged(st, signature):
            return self.report
        if not self.near.exists():
            if st.uidvalidity is not None and self.db.count_pairs(st.id):
                self.log.warning(
                    "local folder %s is gone; fetching it again from the server", self.near.path
                )
                # Forget the pairs and the modseq: a CHANGEDSINCE delta would not
                # list the messages that now need downloading again.
                st = dataclasses.replace(st, highestmodseq=None)
                if not dry:
                    self.db.replace_pairs(st.id, [], highestmodseq=None)
            if not dry:
                self.near.create()
        sel = self._select(st)
        if not sel.sticky:
            self.log.warning(
                "the server says this folder's UIDs are not persistent (UIDNOTSTICKY): "
                "each sync re-pairs its messages by Message-ID and content"
            )
        pairs = self.db.pairs(st.id)
        local: dict[str, LocalMessage] = {}
        if self.near.exists():
            local, problems = self.near.scan()
            for problem in problems:
                self.log.warning("skipped %s: %s", problem.path, problem.reason)
                self.report.skipped += 1
            self._expected = {f"{m.subdir}/{m.filename}" for m in local.values()}
            self._expected.update(f"{p.path.parent.name}/{p.path.name}" for p in problems)
        if st.uidvalidity is None and not pairs and local:
            # No state but mail on both sides (state lost, or a Maildir from another
            # tool): pair what both hold rather than copying it all both ways.
            pairs = pair_existing(session=self.session, near=self.near, local=local, log=self.log)
            if pairs and not dry:
                self.db.replace_pairs(st.id, pairs)
        uidvalidity_changed = st.uidvalidity is not None and sel.uidvalidity != st.uidvalidity
        if uidvalidity_changed:
            pairs = recover_uidvalidity(
                session=self.session,
                near=self.near,
                pairs=pairs,
                local=local,
                old=st.uidvalidity,
                new=sel.uidvalidity,
                log=self.log,
            )
            if not dry:
                self.db.replace_pairs(
                    st.id, pairs, uidvalidity=sel.uidvalidity, highestmodseq=None, uidnext=None
                )
        if not dry:
            pairs = resolve_intents(
                db=self.db,
                folder_id=st.id,
                session=self.session,
                near=self.near,
                pairs=pairs,
                local=local,
                log=self.log,
            )
        local_only = self._local_only(st, sel, local)
        if local_only:
            # Keywords the server cannot keep are left out of the comparison on both
            # the baseline and the local side, so they are neither sent every cycle
            # nor taken for a removal on the server (RELIABILITY.md SRV-11).
            pairs = [
                dataclasses.replace(p, flags=intern_flags(p.flags - local_only))
                if p.flags & local_only
                else p
                for p in pairs
            ]
        far = self._far_listing(st, sel, pairs, uidvalidity_changed)
        near_listing = {
            name: MsgMeta(
                intern_flags(m.flags - local_only) if m.flags & local_only else m.flags, m.size
            )
            for name, m in local.items()
        }
        if self._refusals and not dry:
            gone = [n for n in self._refusals if n not in local]
            if gone:
                self.db.forget_refusals(st.id, gone)
        plan = reconcile_plan(pairs, far, near_listing, self.policy)
        too_much = mass_delete_problems(plan)
        if too_much and not self.options.allow_mass_delete:
            raise FolderError(
                "; ".join(too_much)
                + "; nothing was changed (if this is what you want, run `syncd sync "
                "--allow-mass-delete`)"
            )
        if dry:
            self.report.planned = [str(a) for a in plan]
            self._count_planned(plan)
            return self.report
        self._execute(st, sel, plan, local)
        self.db.update_folder(
            st.id,
            uidvalidity=sel.uidvalidity,
            # A skipped message must be looked at again next time, which a CHANGEDSINCE
            # delta would not do: fall back to one full listing then.
            highestmodseq=None if self.report.failed else sel.highestmodseq,
            uidnext=sel.uidnext,
            far_count=len(far) + self.report.uploaded - self.report.deleted_far,
            near_count=len(local) + self.report.downloaded - self.report.deleted_near,
            near_signature=self._trusted_signature(signature),
        )
        crashpoints.step("folder-state")
        return self.report

    def _unchanged(self, st: FolderState, signature: str | None) -> bool:
        """The STATUS fast path: nothing changed on either side since the last
        clean sync (same UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ on the
        server, same directory signature here), so the folder need not be selected."""
        if (
            signature is None
            or signature != st.near_signature
            or st.highestmodseq is None
            or not self.session.has_condstore
        ):
            return False
        if self._refusals:
            limit, now = self.session.append_limit, time.time()
            due = [
                r
                for r in self._refusals.values()
                if not held_back(r, size=r.size, limit=limit, now=now)
            ]
            if due:
                return False  # a refused message is due to be offered again
        status = self.status or self.session.status(self.far_name)
        unchanged = (
            status.uidvalidity == st.uidvalidity
            and status.highestmodseq == st.highestmodseq
            and status.uidnext == st.uidnext
            and status.messages == st.far_count
        )
        if unchanged:
            self.log.debug("unchanged on both sides since the last sync")
            self.report.held = len(self._refusals) if self.policy.push else 0
        return unchanged

    def _local_only(
        self, st: FolderState, sel: SelectInfo, local: Mapping[str, LocalMessage]
    ) -> Flags:
        """The local keywords this folder on the server cannot keep (SRV-11); each is
        reported once, the first time it is seen (remembered in the state).

        A read-only SELECT (``--dry-run`` uses EXAMINE) reports no permanent flags
        at all: a dry run masks what the last real run found instead."""
        reported = self.db.local_only_flags(st.id)
        if sel.readonly:
            return reported
        if sel.permanent_flags is None or "\\*" in sel.permanent_flags:
            if reported:
                self.db.set_local_only_flags(st.id, ())
            return NO_FLAGS
        distinct = {m.flags for m in local.values()}
        keywords = frozenset().union(*distinct) - SYSTEM_FLAGS if distinct else NO_FLAGS
        local_only = kept_local_only(keywords, sel.permanent_flags)
        new = local_only - reported
        if new:
            self.log.warning(
                "the server does not keep the keyword%s %s in this folder (no \\* in its "
                "PERMANENTFLAGS): kept on this computer only",
                "s" if len(new) > 1 else "",
                ", ".join(sorted(new)),
            )
            self.db.set_local_only_flags(st.id, reported | new)
        return local_only

    def _trusted_signature(self, before: str | None) -> str | None:
        """The local signature to compare with next time, or None to rescan then.

        A signature is trusted only when a later change is bound to alter it: the
        file system's clock must have moved past the directories' mtimes when it
        was taken (a change in the same tick would keep the mtime).  If this run
        did not change the folder, the signature from before the scan is trusted
        when it still holds.  If it did, the directories are listed once more and
        must hold exactly what the scan saw plus our own changes."""
        if self.report.failed:
            return None
        touched = self._touched_near or self.report.downloaded or self.report.deleted_near
        if not touched:
            same = before is not None and _signature(self.near.path) == before
            return before if same and self._settled_at_start else None
        if self._expected is None:
            return None
        deadline = time.monotonic() + 0.05
        after = _signature(self.near.path)
        while after is not None and not _settled(after) and time.monotonic() < deadline:
            time.sleep(0.001)
            after = _signature(self.near.path)
        if after is None or not _settled(after):
            return None
        if _listing(self.near.path) != self._expected:
            return None  # someone else changed the folder meanwhile: rescan next time
        return after if _signature(self.near.path) == after else None

    def _select(self, st: FolderState) -> SelectInfo:
        s = self.session
        qresync = None
        if s.has_qresync and st.uidvalidity is not None and st.highestmodseq is not None:
            qresync = (st.uidvalidity, st.highestmodseq, None)
        return s.select(self.far_name, qresync=qresync, readonly=self.options.dry_run)

    def _far_listing(
        self, st: FolderState, sel: SelectInfo, pairs: list[Pair], uidvalidity_changed: bool
    ) -> dict[int, MsgMeta]:
        """A full view of the far side, built from a delta when CONDSTORE allows."""
        s = self.session
        since = st.highestmodseq
        if uidvalidity_changed or since is None or sel.highestmodseq is None or not s.has_condstore:
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
            vanished = {p.far for p in pairs if p.far is not None and p.far not in present}
        far = {
            p.far: MsgMeta(p.flags, p.size)
            for p in pairs
            if p.far is not None and p.far not in vanished
        }
        for uid, info in changed.items():
            if uid not in vanished:
                far[uid] = MsgMeta(intern_flags(info.flags), info.size)
        return far

    def _count_planned(self, plan: Plan) -> None:
        r = self.report
        r.uploaded, r.downloaded = len(plan.uploads), len(plan.downloads)
        r.flagged = len(plan.flags)
        r.deleted_far, r.deleted_near = plan.deletions_on(Side.FAR), plan.deletions_on(Side.NEAR)

    # --- execution ---------------------------------------------------------------

    def _execute(
        self, st: FolderState, sel: SelectInfo, plan: Plan, local: dict[str, LocalMessage]
    ) -> None:
        if plan.uploads:
            self._upload(st, sel, plan.uploads, local)
        if plan.downloads:
            self._download(st, plan.downloads)
        if plan.flags:
            self._set_flags(st, plan.flags, local)
        if plan.deletes:
            self._delete(st, plan.deletes, local)
        if plan.forgets:
            self._forget(st, plan.forgets)

    def _cancelled(self) -> bool:
        cancel = self.options.cancel
        if cancel is None or not cancel.is_set():
            return False
        self.log.info("stopping: the rest of this folder is left for the next run")
        return True

    def _download(self, st: FolderState, copies: Sequence[Copy]) -> None:
        """Download in batches, pipelined: while writer threads store batch k
        (write, fsync, rename: mostly waiting on the disk, GIL released), the
        main thread already fetches batch k+1 from the server."""
        sizes = {int(c.key): c.size for c in copies if c.size is not None}
        unknown = [int(c.key) for c in copies if c.size is None]
        for uid_set in chunk_uid_sets(unknown):  # scattered UIDs: keep each line short
            infos, _ = self.session.fetch_flags(uid_set, with_size=True)
            sizes.update({uid: i.size for uid, i in infos.items() if i.size is not None})
        keywords = {f for c in copies for f in c.flags if f not in SYSTEM_FLAGS}
        if keywords:
            # Letters are given out here, once, so writer threads never race on the file.
            self.near.ensure_keywords(sorted(keywords))
        progress = _Progress(self, "downloaded", len(copies))
        previous: _DownloadBatch | None = None
        held: list[int] = []  # budget taken for batches not yet finished
        own = self.writers is None
        writers = self.writers or ThreadPoolExecutor(WRITERS, thread_name_prefix="deliver")
        stopped = False
        try:
            for batch in batched(
                copies,
                lambda c: sizes.get(int(c.key), 0),
                self.batch_bytes,
                DOWNLOAD_BATCH_COUNT,
            ):
                if self._cancelled():
                    stopped = True
                    break
                need = sum(sizes.get(int(c.key), 0) for c in batch)
                got = self.budget.try_acquire(need)
                if got is None:
                    # Never wait for memory while holding some: finish what we hold first.
                    if previous is not None:
                        self._finish_download(st, previous, progress)
                        previous = None
                        self.budget.release(held.pop(0))
                    got = self.budget.acquire(need)
                held.append(got)
                current = self._start_download(st, batch, sizes, writers)
                if previous is not None:
                    self._finish_download(st, previous, progress)
                    self.budget.release(held.pop(0))
                previous = current
            if previous is not None:
                self._finish_download(st, previous, progress)
                self.budget.release(held.pop(0))
            if stopped:
                raise SyncCancelled
        finally:
            for amount in held:
                self.budget.release(amount)
            if own:
                writers.shutdown(wait=True)

    def _start_download(
        self,
        st: FolderState,
        batch: list[Copy],
        sizes: Mapping[int, int],
        writers: ThreadPoolExecutor,
    ) -> _DownloadBatch:
        names = {int(c.key): self.near.new_name() for c in batch}
        ids = self.db.add_intents(
            st.id,
            "download",
            [(int(c.key), names[int(c.key)], c.flags, sizes.get(int(c.key))) for c in batch],
        )
        crashpoints.step("download-intent")
        pending = {int(c.key): (c, i) for c, i in zip(batch, ids, strict=True)}
        work = _DownloadBatch(len(batch), [])
        for body in self.session.fetch_bodies(list(pending), sizes=sizes):
            entry = pending.pop(body.uid, None)
            if entry is None:
                continue
            copy, intent_id = entry
            mtime = body.internaldate.timestamp() if body.internaldate else None
            future = writers.submit(
                self.near.deliver,
                to_lf(body.data),
                name=names[body.uid],
                flags=copy.flags,
                mtime=mtime,
                to_new=self.new_to_new and SEEN not in copy.flags,
            )
            work.items.append((body.uid, len(body.data), copy, intent_id, future))
        # UIDs the server did not return were expunged meanwhile: nothing to pair.
        # Those over the literal cap were skipped (fetch_bodies warned): a failure,
        # so the next run lists the folder in full and tries -- and says -- again,
        # rather than a CONDSTORE delta that would never show them again.
        cap = self.session.max_literal
        self.report.failed += sum(1 for uid in pending if sizes.get(uid, 0) > cap)
        work.vanished = [i for _, i in pending.values()]
        return work

    def _finish_download(self, st: FolderState, work: _DownloadBatch, progress: _Progress) -> None:
        added: list[Pair] = []
        removed: list[Pair] = []
        done = list(work.vanished)
        for uid, size, copy, intent_id, future in work.items:
            done.append(intent_id)
            try:
                msg = future.result()
                if self._expected is not None:
                    self._expected.add(f"{msg.subdir}/{msg.filename}")
            except MessageError as exc:
                self.log.warning("message %d not saved: %s", uid, exc)
                self.report.failed += 1
                continue
            crashpoints.step("download-deliver")
            added.append(Pair(uid, msg.name, intern_flags(copy.flags & msg.flags), size))
            if copy.replaces is not None:
                removed.append(copy.replaces)
        self.near.sync_dirs()
        self.db.apply(st.id, add=added, remove=removed, done_intents=done)
        crashpoints.step("download-commit")
        self.report.downloaded += len(added)
        progress.advance(work.count)

    def _upload(
        self,
        st: FolderState,
        sel: SelectInfo,
        copies: Sequence[Copy],
        local: dict[str, LocalMessage],
    ) -> None:
        uidnext = sel.uidnext
        limit, now = self.session.append_limit, time.time()
        progress = _Progress(self, "uploaded", len(copies))
        for batch in batched(copies, lambda c: c.size or 0, UPLOAD_BATCH_BYTES, UPLOAD_BATCH_COUNT):
            if self._cancelled():
                raise SyncCancelled
            items: list[tuple[Copy, LocalMessage, bytes]] = []
            for copy in batch:
                msg = local[str(copy.key)]
                refusal = self._refusals.get(msg.name)
                if refusal is not None and held_back(refusal, size=msg.size, limit=limit, now=now):
                    self.log.info(
                        "held back: %s: the server refused it before (%s); offered again "
                        "when the file or the server's limit changes, after a day, or with "
                        "`syncd sync --retry-refused`",
                        self.near.path / msg.subdir / msg.filename,
                        refusal.reason,
                    )
                    self.report.held += 1
                    continue
                try:
                    data = to_crlf(self.near.read(msg))
                except MessageError as exc:
                    self.log.warning("not uploaded: %s", exc)
                    self.report.failed += 1
                    continue
                if not data.strip():
                    self.log.warning(
                        "not uploaded: %s is empty", self.near.path / msg.subdir / msg.filename
                    )
                    self.report.failed += 1
                    continue
                items.append((copy, msg, data))
            if not items:
                continue
            ids = self.db.add_intents(
                st.id,
                "upload",
                [(None, m.name, c.flags, len(d)) for c, m, d in items],
                uidnext=uidnext,
            )
            crashpoints.step("upload-intent")
            uids = self._append(items, sel.uidvalidity)
            crashpoints.step("upload-append")
            missing = [
                (m.name, d) for (_, m, d), uid in zip(items, uids, strict=True) if uid is None
            ]
            refused = {m.name for (_, m, _), uid in zip(items, uids, strict=True) if uid == REFUSED}
            if missing:
                known = {p.far for p in self.db.pairs(st.id) if p.far is not None}
                found = find_on_far(self.session, known, uidnext, missing)
                uids = [
                    uid if uid is not None else found.get(m.name)
                    for (_, m, _), uid in zip(items, uids, strict=True)
                ]
            added, removed = [], []
            for (copy, msg, data), uid in zip(items, uids, strict=True):
                if uid == REFUSED:
                    continue
                if uid is None:
                    self.log.warning(
                        "uploaded %s but could not find its UID; it will be "
                        "matched on the next run",
                        msg.filename,
                    )
                    continue
                added.append(Pair(uid, msg.name, copy.flags, len(data)))
                if copy.replaces is not None:
                    removed.append(copy.replaces)
            # An intent left for a message whose UID was not found is resolved next run.
            matched = {p.near for p in added}
            done = [
                i
                for i, (_, m, _) in zip(ids, items, strict=True)
                if m.name in matched or m.name in refused
            ]
            self.db.apply(
                st.id, add=added, remove=removed, done_intents=done, refused=self._new_refusals
            )
            self._new_refusals = []
            again = [n for n in matched if n in self._refusals]
            if again:
                self.db.forget_refusals(st.id, again)
            crashpoints.step("upload-commit")
            self.report.uploaded += len(added)
            real = [u for u in uids if u]
            if real:
                uidnext = max(uidnext, max(real) + 1)
            progress.advance(len(batch))

    def _append(
        self, items: list[tuple[Copy, LocalMessage, bytes]], uidvalidity: int
    ) -> list[int | None]:
        """APPEND a batch; returns per message its UID, None (appended, UID unknown)
        or REFUSED (the server said no; already logged)."""
        batch = [(d, c.flags, datetime.fromtimestamp(m.mtime, tz=UTC)) for c, m, d in items]
        msgs = [m for _, m, _ in items]
        out: list[int | None] = []
        while batch:
            try:
                out.extend(self.session.append_many(self.far_name, batch, uidvalidity=uidvalidity))
                return out
            except AppendError as exc:
                if len(batch) > 1 and not exc.appended and self.session.has_multiappend:
                    # MULTIAPPEND is all or nothing: find the refused one message by message.
                    out.extend(self._append_each(batch, msgs, uidvalidity))
                    return out
                out.extend(exc.appended)
                refused = len(exc.appended)
                self._refused(msgs[refused], exc)
                out.append(REFUSED)
                batch, msgs = batch[refused + 1 :], msgs[refused + 1 :]
        return out

    def _append_each(
        self, batch: list[tuple[bytes, Flags, datetime]], msgs: list[LocalMessage], uidvalidity: int
    ) -> list[int | None]:
        out: list[int | None] = []
        for (data, flags, when), msg in zip(batch, msgs, strict=True):
            try:
                out.append(
                    self.session.append(
                        self.far_name, data, flags=flags, date=when, uidvalidity=uidvalidity
                    )
                )
            except AppendError as exc:
                self._refused(msg, exc)
                out.append(REFUSED)
        return out

    def _refused(self, msg: LocalMessage, exc: AppendError) -> None:
        """Report a refused APPEND; remember it when the refusal is for good."""
        self.log.warning("not uploaded: %s: %s", msg.filename, exc)
        self.report.failed += 1
        if exc.code in REMEMBERED_CODES:
            self._new_refusals.append(
                Refusal(
                    msg.name,
                    msg.size,
                    exc.code,
                    self.session.append_limit,
                    exc.reason or exc.code,
                    time.time(),
                )
            )

    def _set_flags(
        self, st: FolderState, changes: Sequence[SetFlags], local: dict[str, LocalMessage]
    ) -> None:
        adds: dict[Flags, list[int]] = defaultdict(list)
        removes: dict[Flags, list[int]] = defaultdict(list)
        for c in changes:
            if c.pair.far is None:
                continue
            if c.far_add:
                adds[c.far_add].append(c.pair.far)
            if c.far_remove:
                removes[c.far_remove].append(c.pair.far)
        for flags, uids in adds.items():
            self.session.add_flags(uids, flags)
        for flags, uids in removes.items():
            self.session.remove_flags(uids, flags)
        if adds or removes:
            crashpoints.step("store-flags")
        rebase: list[tuple[Pair, Flags]] = []
        renamed = False
        for c in changes:
            baseline = c.baseline
            if (c.near_add or c.near_remove) and c.pair.near is not None:
                msg = local[c.pair.near]
                wanted = intern_flags((msg.flags | c.near_add) - c.near_remove)
                try:
                    result = self.near.set_flags(msg, wanted)
                    if self._expected is not None:
                        self._expected.discard(f"{msg.subdir}/{msg.filename}")
                        self._expected.add(f"{result.subdir}/{result.filename}")
                except MessageError as exc:
                    self.log.warning("flags not changed: %s", exc)
                    self.report.failed += 1
                    continue
                renamed = True
                # A flag the local side cannot hold (a 27th keyword) stays out of the
                # baseline, so it is not later mistaken for a local removal.  What a
                # mail reader changed meanwhile is in result.flags and is left for the
                # next cycle to merge.
                lost = wanted - SYSTEM_FLAGS
                if lost:
                    lost = unmapped_flags(lost, keyword_index(self.near.keywords()))
                    baseline = intern_flags(baseline - lost)
            rebase.append((c.pair, baseline))
        if renamed:
            self._touched_near = True
            self.near.sync_dirs()
            crashpoints.step("rename-flags")
        self.db.apply(st.id, rebase=rebase)
        crashpoints.step("flags-commit")
        self.report.flagged += sum(
            1 for c in changes if c.far_add or c.far_remove or c.near_add or c.near_remove
        )

    def _delete(
        self, st: FolderState, deletes: Sequence[Delete], local: dict[str, LocalMessage]
    ) -> None:
        far_uids = [d.pair.far for d in deletes if d.side is Side.FAR and d.pair.far is not None]
        removed: list[Pair] = []
        if far_uids and self.trash is not None:
            # MOVE keeps the message (and a later download of Trash pairs it anew).
            self.session.create_folder(self.trash)
            self.session.move(far_uids, self.trash)
            crashpoints.step("move-to-trash")
            removed.extend(d.pair for d in deletes if d.side is Side.FAR)
            self.report.deleted_far += len(far_uids)
        elif far_uids:
            self.session.add_flags(far_uids, frozenset({DELETED}))
            crashpoints.step("store-deleted")
            if self.policy.expunge:
                if self.session.has_uidplus:
                    self.session.uid_expunge(far_uids)
                    crashpoints.step("expunge")
                else:
                    self.log.warning(
                        "the server lacks UIDPLUS: %d messages are marked \\Deleted but not "
                        "expunged (syncd never expunges other clients' deleted mail)",
                        len(far_uids),
                    )
            removed.extend(d.pair for d in deletes if d.side is Side.FAR)
            self.report.deleted_far += len(far_uids)
        for d in deletes:
            if d.side is Side.NEAR and d.pair.near is not None:
                try:
                    gone = local[d.pair.near]
                    self.near.delete(gone)
                    if self._expected is not None:
                        self._expected.discard(f"{gone.subdir}/{gone.filename}")
                except MessageError as exc:
                    self.log.warning("not deleted: %s", exc)
                    self.report.failed += 1
                    continue
                crashpoints.step("unlink")
                removed.append(d.pair)
                self.report.deleted_near += 1
        self.near.sync_dirs()
        self.db.apply(st.id, remove=removed)
        crashpoints.step("delete-commit")

    def _forget(self, st: FolderState, forgets: Sequence[Forget]) -> None:
        tombstones = []
        for f in forgets:
            if f.keep is Side.FAR:
                tombstones.append(Pair(f.pair.far, None, f.pair.flags, f.pair.size))
            elif f.keep is Side.NEAR:
                tombstones.append(Pair(None, f.pair.near, f.pair.flags, f.pair.size))
        self.db.apply(st.id, remove=[f.pair for f in forgets], add=tombstones)


# CLOCK_REALTIME_COARSE: the clock Linux takes file timestamps from (not in `time`).
_COARSE_CLOCK = 5


def _settled(signature: str) -> bool:
    """Whether the file-timestamp clock has moved past every mtime in ``signature``."""
    newest = max(int(part) for part in signature.split(",")[::2])
    try:
        now = time.clock_gettime_ns(_COARSE_CLOCK)
    except OSError:  # not Linux: fall back on a generous margin of real time
        return time.time_ns() - newest > 2_000_000_000
    return now > newest


def _listing(path: Path) -> set[str] | None:
    try:
        return {
            f"{sub}/{name}"
            for sub in ("cur", "new")
            for name in os.listdir(path / sub)  # noqa: PTH208 - names only, no stat
            if not name.startswith(".")
        }
    except OSError:
        return None


def _signature(path: Path) -> str | None:
    """The folder's directory signature as text, None when the folder is missing."""
    sig = directory_signature(path)
    if sig[0] == -1 or sig[2] == -1:  # no cur/ or new/
        return None
    return ",".join(map(str, sig))


def policy_for(sync: str, expunge: bool) -> Policy:
    return Policy(pull=sync in ("both", "pull"), push=sync in ("both", "push"), expunge=expunge)
