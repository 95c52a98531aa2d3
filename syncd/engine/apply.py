"""Executing a plan against the two stores, with the intent log.

The order of every copy is: record an intent, copy, make it durable, record
the pair and clear the intent in one transaction.  Deletions and flag changes
need no intent: they are recorded after they happen, and redoing one after a
crash is harmless.  So ``kill -9`` at any point loses nothing and copies
nothing twice (see :mod:`syncd.engine.recovery` for how intents are resolved).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from syncd import crashpoints
from syncd.engine.options import (
    DOWNLOAD_BATCH_COUNT,
    UPLOAD_BATCH_BYTES,
    UPLOAD_BATCH_COUNT,
    WRITERS,
    ByteBudget,
    RunOptions,
    SyncCancelled,
    batched,
)
from syncd.engine.progress import FolderProgress
from syncd.engine.reconcile import Copy, Delete, Forget, Plan, Policy, SetFlags
from syncd.engine.recovery import find_on_far
from syncd.engine.refusals import REMEMBERED_CODES, Refusal, held_back
from syncd.errors import MessageError
from syncd.model import SEEN, Flags, MsgKey, Pair, Side, intern_flags
from syncd.stores.base import AppendOutcome, FarFolder, NearFolder, NearMessage, NewMessage, Refused

if TYPE_CHECKING:
    from syncd.engine.report import FolderReport
    from syncd.engine.state import StateDB

Log = logging.LoggerAdapter[logging.Logger]


@dataclass
class _DownloadBatch:
    items: list[tuple[MsgKey, int, Copy, int, Future[NearMessage]]]
    vanished: list[int] = field(default_factory=list)


@dataclass
class Applier:
    """Carries out one folder's plan: uploads, downloads, flag changes, deletions and
    forgotten pairs, in that order, recording each batch in the state as it is done."""

    far: FarFolder
    near: NearFolder
    db: StateDB
    folder_id: int
    policy: Policy
    options: RunOptions
    report: FolderReport
    log: Log
    refusals: dict[str, Refusal]
    new_to_new: bool = False
    trash: str | None = None
    batch_bytes: int = 0
    writers: ThreadPoolExecutor | None = None
    budget: ByteBudget | None = None
    touched_near: bool = False
    _new_refusals: list[Refusal] = field(default_factory=list)

    def apply(
        self, plan: Plan, local: Mapping[str, NearMessage], uidnext: int, uidvalidity: int | None
    ) -> None:
        if plan.uploads:
            self._upload(plan.uploads, local, uidnext, uidvalidity)
        if plan.downloads:
            self._download(plan.downloads)
        if plan.flags:
            self._set_flags(plan.flags, local)
        if plan.deletes:
            self._delete(plan.deletes, local)
        if plan.forgets:
            self._forget(plan.forgets)

    def _progress(self, verb: str, messages: int, size: int) -> FolderProgress:
        return FolderProgress(
            self.log,
            verb,
            self.far.name,
            messages,
            size,
            meter=self.options.progress,
            every=self.options.progress_every,
        )

    def _cancelled(self) -> bool:
        cancel = self.options.cancel
        if cancel is None or not cancel.is_set():
            return False
        self.log.info("stopping: the rest of this folder is left for the next run")
        return True

    # --- downloads ---------------------------------------------------------------

    def _download(self, copies: Sequence[Copy]) -> None:
        """Download in batches, pipelined: while writer threads store batch k
        (write, fsync, rename: mostly waiting on the disk, GIL released), the
        main thread already fetches batch k+1 from the far side."""
        sizes: dict[MsgKey, int] = {c.key: c.size for c in copies if c.size is not None}
        unknown = [c.key for c in copies if c.size is None]
        if unknown:
            metas = self.far.metas(unknown)
            sizes.update({k: m.size for k, m in metas.items() if m.size is not None})
        self.near.prepare_flags(f for c in copies for f in c.flags)
        budget = self.budget or ByteBudget(2 * self.batch_bytes)
        progress = self._progress("downloaded", len(copies), sum(sizes.values()))
        previous: _DownloadBatch | None = None
        held: list[int] = []  # budget taken for batches not yet finished
        own = self.writers is None
        writers = self.writers or ThreadPoolExecutor(WRITERS, thread_name_prefix="deliver")
        stopped = False
        try:
            for batch in batched(
                copies, lambda c: sizes.get(c.key, 0), self.batch_bytes, DOWNLOAD_BATCH_COUNT
            ):
                if self._cancelled():
                    stopped = True
                    break
                need = sum(sizes.get(c.key, 0) for c in batch)
                got = budget.try_acquire(need)
                if got is None:
                    # Never wait for memory while holding some: finish what we hold first.
                    if previous is not None:
                        self._finish_download(previous)
                        previous = None
                        budget.release(held.pop(0))
                    got = budget.acquire(need)
                held.append(got)
                current = self._start_download(batch, sizes, writers, progress)
                if previous is not None:
                    self._finish_download(previous)
                    budget.release(held.pop(0))
                previous = current
            if previous is not None:
                self._finish_download(previous)
                budget.release(held.pop(0))
            if stopped:
                raise SyncCancelled
        finally:
            for amount in held:
                budget.release(amount)
            if own:
                writers.shutdown(wait=True)
            progress.close()

    def _start_download(
        self,
        batch: list[Copy],
        sizes: Mapping[MsgKey, int],
        writers: ThreadPoolExecutor,
        progress: FolderProgress,
    ) -> _DownloadBatch:
        names = {c.key: self.near.new_name() for c in batch}
        ids = self.db.add_intents(
            self.folder_id,
            "download",
            [(c.key, names[c.key], c.flags, sizes.get(c.key)) for c in batch],
        )
        crashpoints.step("download-intent")
        pending = {c.key: (c, i) for c, i in zip(batch, ids, strict=True)}
        work = _DownloadBatch([])
        for body in self.far.fetch(list(pending), sizes):
            entry = pending.pop(body.key, None)
            if entry is None:
                continue
            copy, intent_id = entry
            mtime = body.internaldate.timestamp() if body.internaldate else None
            future = writers.submit(
                self.near.deliver,
                body.data,
                name=names[body.key],
                flags=copy.flags,
                mtime=mtime,
                to_new=self.new_to_new and SEEN not in copy.flags,
            )
            work.items.append((body.key, len(body.data), copy, intent_id, future))
            progress.advance(1, len(body.data))
        # Keys the far side did not return were expunged meanwhile: nothing to pair.
        # Those over its size cap were skipped (the store warned): a failure, so the
        # next run lists the folder in full and tries -- and says -- again, rather
        # than a delta that would never show them again.
        cap = self.far.max_fetch_size
        if cap is not None:
            self.report.failed += sum(1 for key in pending if sizes.get(key, 0) > cap)
        work.vanished = [i for _, i in pending.values()]
        return work

    def _finish_download(self, work: _DownloadBatch) -> None:
        added: list[Pair] = []
        removed: list[Pair] = []
        done = list(work.vanished)
        for key, size, copy, intent_id, future in work.items:
            done.append(intent_id)
            try:
                msg = future.result()
            except MessageError as exc:
                self.log.warning("message %s not saved: %s", key, exc)
                self.report.failed += 1
                continue
            crashpoints.step("download-deliver")
            added.append(Pair(key, msg.name, intern_flags(copy.flags & msg.flags), size))
            if copy.replaces is not None:
                removed.append(copy.replaces)
        self.near.flush()
        self.db.apply(self.folder_id, add=added, remove=removed, done_intents=done)
        crashpoints.step("download-commit")
        self.report.downloaded += len(added)

    # --- uploads -----------------------------------------------------------------

    def _upload(
        self,
        copies: Sequence[Copy],
        local: Mapping[str, NearMessage],
        uidnext: int,
        uidvalidity: int | None,
    ) -> None:
        progress = self._progress(
            "uploaded", len(copies), sum(local[str(c.key)].size for c in copies)
        )
        try:
            self._upload_batches(copies, local, uidnext, uidvalidity, progress)
        finally:
            progress.close()

    def _upload_batches(
        self,
        copies: Sequence[Copy],
        local: Mapping[str, NearMessage],
        uidnext: int,
        uidvalidity: int | None,
        progress: FolderProgress,
    ) -> None:
        limit, now = self.far.append_limit, time.time()
        for batch in batched(copies, lambda c: c.size or 0, UPLOAD_BATCH_BYTES, UPLOAD_BATCH_COUNT):
            if self._cancelled():
                raise SyncCancelled
            items: list[tuple[Copy, NearMessage, bytes]] = []
            for copy in batch:
                msg = local[str(copy.key)]
                refusal = self.refusals.get(msg.name)
                if refusal is not None and held_back(refusal, size=msg.size, limit=limit, now=now):
                    self.log.info(
                        "held back: %s: the server refused it before (%s); offered again "
                        "when the file or the server's limit changes, after a day, or with "
                        "`syncd sync --retry-refused`",
                        self.near.describe(msg),
                        refusal.reason,
                    )
                    self.report.held += 1
                    continue
                try:
                    data = self.near.read(msg)
                except MessageError as exc:
                    self.log.warning("not uploaded: %s", exc)
                    self.report.failed += 1
                    continue
                if not data.strip():
                    self.log.warning("not uploaded: %s is empty", self.near.describe(msg))
                    self.report.failed += 1
                    continue
                items.append((copy, msg, data))
            if not items:
                continue
            ids = self.db.add_intents(
                self.folder_id,
                "upload",
                [(None, m.name, c.flags, len(d)) for c, m, d in items],
                uidnext=uidnext,
            )
            crashpoints.step("upload-intent")
            outcomes = self.far.append(
                [
                    NewMessage(d, c.flags, datetime.fromtimestamp(m.mtime, tz=UTC))
                    for c, m, d in items
                ],
                uidvalidity=uidvalidity,
            )
            crashpoints.step("upload-append")
            keys = self._outcomes(items, outcomes, uidnext)
            added, removed = [], []
            for (copy, msg, data), key in zip(items, keys, strict=True):
                if isinstance(key, Refused):
                    continue
                if key is None:
                    self.log.warning(
                        "uploaded %s but could not find its UID; it will be "
                        "matched on the next run",
                        _filename(self.near, msg),
                    )
                    continue
                added.append(Pair(key, msg.name, copy.flags, len(data)))
                if copy.replaces is not None:
                    removed.append(copy.replaces)
            # An intent left for a message whose key was not found is resolved next run.
            matched = {p.near for p in added}
            refused = {
                m.name for (_, m, _), k in zip(items, keys, strict=True) if isinstance(k, Refused)
            }
            done = [
                i
                for i, (_, m, _) in zip(ids, items, strict=True)
                if m.name in matched or m.name in refused
            ]
            self.db.apply(
                self.folder_id,
                add=added,
                remove=removed,
                done_intents=done,
                refused=self._new_refusals,
            )
            self._new_refusals = []
            again = [n for n in matched if n in self.refusals]
            if again:
                self.db.forget_refusals(self.folder_id, again)
            crashpoints.step("upload-commit")
            self.report.uploaded += len(added)
            real = [k for k in keys if isinstance(k, int) and not isinstance(k, bool)]
            if real:
                uidnext = max(uidnext, max(real) + 1)
            progress.advance(len(batch), sum(local[str(c.key)].size for c in batch))

    def _outcomes(
        self,
        items: list[tuple[Copy, NearMessage, bytes]],
        outcomes: list[AppendOutcome],
        uidnext: int,
    ) -> list[MsgKey | Refused | None]:
        """Per message its key, None (appended, key unknown) or a refusal (logged and,
        when for good, remembered); unknown keys are looked up above ``uidnext``."""
        keys: list[MsgKey | Refused | None] = []
        for (_, msg, _), outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Refused):
                self._refused(msg, outcome)
            keys.append(outcome)
        missing = [(m.name, d) for (_, m, d), k in zip(items, keys, strict=True) if k is None]
        if missing:
            known = {p.far for p in self.db.pairs(self.folder_id) if p.far is not None}
            found = find_on_far(self.far, known, uidnext, missing)
            keys = [
                k if k is not None else found.get(m.name)
                for (_, m, _), k in zip(items, keys, strict=True)
            ]
        return keys

    def _refused(self, msg: NearMessage, refused: Refused) -> None:
        """Report a refused append; remember it when the refusal is for good."""
        self.log.warning("not uploaded: %s: %s", _filename(self.near, msg), refused)
        self.report.failed += 1
        if self.report.problem is None:
            self.report.problem = f"not uploaded: {refused}"
        if refused.code in REMEMBERED_CODES:
            self._new_refusals.append(
                Refusal(
                    msg.name,
                    msg.size,
                    refused.code,
                    self.far.append_limit,
                    refused.reason,
                    time.time(),
                )
            )

    # --- flags, deletions, forgotten pairs ----------------------------------------

    def _set_flags(self, changes: Sequence[SetFlags], local: Mapping[str, NearMessage]) -> None:
        adds: dict[Flags, list[MsgKey]] = defaultdict(list)
        removes: dict[Flags, list[MsgKey]] = defaultdict(list)
        for c in changes:
            if c.pair.far is None:
                continue
            if c.far_add:
                adds[c.far_add].append(c.pair.far)
            if c.far_remove:
                removes[c.far_remove].append(c.pair.far)
        for flags, keys in adds.items():
            self.far.add_flags(keys, flags)
        for flags, keys in removes.items():
            self.far.remove_flags(keys, flags)
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
                    self.near.set_flags(msg, wanted)
                except MessageError as exc:
                    self.log.warning("flags not changed: %s", exc)
                    self.report.failed += 1
                    continue
                renamed = True
                # A flag the near side cannot hold (a 27th keyword) stays out of the
                # baseline, so it is not later mistaken for a near removal.  What a
                # mail reader changed meanwhile is left for the next cycle to merge.
                lost = self.near.unkeepable(wanted)
                if lost:
                    baseline = intern_flags(baseline - lost)
            rebase.append((c.pair, baseline))
        if renamed:
            self.touched_near = True
            self.near.flush()
            crashpoints.step("rename-flags")
        self.db.apply(self.folder_id, rebase=rebase)
        crashpoints.step("flags-commit")
        self.report.flagged += sum(
            1 for c in changes if c.far_add or c.far_remove or c.near_add or c.near_remove
        )

    def _delete(self, deletes: Sequence[Delete], local: Mapping[str, NearMessage]) -> None:
        far_keys = [d.pair.far for d in deletes if d.side is Side.FAR and d.pair.far is not None]
        removed: list[Pair] = []
        if far_keys and self.trash is not None:
            # Moving keeps the message (and a later download of the trash pairs it anew).
            self.far.move_to(far_keys, self.trash)
            crashpoints.step("move-to-trash")
            removed.extend(d.pair for d in deletes if d.side is Side.FAR)
            self.report.deleted_far += len(far_keys)
        elif far_keys:
            self.far.mark_deleted(far_keys)
            crashpoints.step("store-deleted")
            if self.policy.expunge and self.far.expunge(far_keys):
                crashpoints.step("expunge")
            removed.extend(d.pair for d in deletes if d.side is Side.FAR)
            self.report.deleted_far += len(far_keys)
        for d in deletes:
            if d.side is Side.NEAR and d.pair.near is not None:
                try:
                    self.near.delete(local[d.pair.near])
                except MessageError as exc:
                    self.log.warning("not deleted: %s", exc)
                    self.report.failed += 1
                    continue
                crashpoints.step("unlink")
                removed.append(d.pair)
                self.report.deleted_near += 1
        self.near.flush()
        self.db.apply(self.folder_id, remove=removed)
        crashpoints.step("delete-commit")

    def _forget(self, forgets: Sequence[Forget]) -> None:
        tombstones = []
        for f in forgets:
            if f.keep is Side.FAR:
                tombstones.append(Pair(f.pair.far, None, f.pair.flags, f.pair.size))
            elif f.keep is Side.NEAR:
                tombstones.append(Pair(None, f.pair.near, f.pair.flags, f.pair.size))
        self.db.apply(self.folder_id, remove=[f.pair for f in forgets], add=tombstones)


def _filename(near: NearFolder, msg: NearMessage) -> str:
    """The message's file name for a log line (its last path part)."""
    return near.describe(msg).rpartition("/")[2]
