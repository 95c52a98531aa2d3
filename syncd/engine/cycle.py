"""One sync of one folder pair: gather both sides, plan, apply.

The engine sees two stores through :mod:`syncd.stores.base` -- a far folder and a
near folder -- and never asks what they are: what a store can do is in its
capabilities, how it does it is in its adapter.  Planning is pure
(:mod:`syncd.engine.reconcile`); carrying the plan out is :mod:`syncd.engine.apply`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from syncd import crashpoints
from syncd.engine import fastpath
from syncd.engine.apply import Applier
from syncd.engine.describe import describe_plan
from syncd.engine.options import DOWNLOAD_BATCH_BYTES, ByteBudget, RunOptions
from syncd.engine.reconcile import Plan, Policy, mass_delete_problems
from syncd.engine.reconcile import reconcile as reconcile_plan
from syncd.engine.recovery import pair_existing, recover_uidvalidity, resolve_intents
from syncd.engine.refusals import Refusal
from syncd.engine.report import FolderReport
from syncd.engine.seed import Seed, seed_pairs
from syncd.engine.state import FolderState, StateDB
from syncd.errors import FolderError
from syncd.flags import kept_local_only
from syncd.model import NO_FLAGS, SYSTEM_FLAGS, Flags, MsgKey, MsgMeta, Pair, Side, intern_flags
from syncd.stores.base import Capability, Checkpoint, FarFolder, FarView, NearFolder, NearMessage


class FolderSync:
    """Syncs one folder pair once.  Raises FolderError when the folder must be skipped."""

    def __init__(
        self,
        *,
        far: FarFolder,
        near: NearFolder,
        db: StateDB,
        policy: Policy,
        options: RunOptions,
        log: logging.LoggerAdapter[logging.Logger],
        new_to_new: bool = False,
        trash: str | None = None,
        batch_bytes: int = DOWNLOAD_BATCH_BYTES,
        writers: ThreadPoolExecutor | None = None,
        budget: ByteBudget | None = None,
        seed: Seed | None = None,
    ) -> None:
        self.far = far
        self.near = near
        self.db = db
        self.far_name = far.name
        # A far side that takes no new messages (POP3) is pulled from only; one that
        # is a mail drop never deletes near copies of what left it.
        caps = far.capabilities
        if Capability.APPEND not in caps:
            policy = dataclasses.replace(policy, push=False)
        if Capability.SPOOL in caps:
            policy = dataclasses.replace(policy, far_deletes=False)
        self.policy = policy
        self.options = options
        self.log = log
        self.new_to_new = new_to_new
        self.trash = trash if trash != far.name else None
        self._own_trash = trash is not None and trash == far.name
        self.batch_bytes = batch_bytes
        # Shared by the folders of an account synced side by side: fewer threads,
        # fewer malloc arenas, a flatter peak RSS.
        self.writers = writers
        self.budget = budget or ByteBudget(2 * batch_bytes)
        self.report = FolderReport(far.name)
        self._refusals: dict[str, Refusal] = {}
        # Another tool's record of this folder, used by its first sync (no state yet).
        self.seed = seed

    # --- the cycle -------------------------------------------------------------

    def run_if_unchanged(self) -> FolderReport | None:
        """Only the fast path: the report when nothing changed on either side since
        the last clean sync, else None, having done nothing.  Lets the caller settle
        unchanged folders without a connection of their own."""
        st = self.db.folder(self.far_name)
        if st is None:
            return None
        self._refusals = self.db.refusals(st.id)
        if self.options.retry_refused and self._refusals:
            return None
        return self.report if self._unchanged(st, self.near.signature()) else None

    def run(self) -> FolderReport:
        st = self.db.ensure_folder(self.far_name)
        dry = self.options.dry_run
        self._refusals = self.db.refusals(st.id)
        retrying = self.options.retry_refused and bool(self._refusals)
        if retrying:
            self._refusals = {}
            if not dry:
                self.db.forget_refusals(st.id)
        signature = self.near.signature()
        settled_at_start = signature is not None and self.near.settled(signature)
        if not retrying and self._unchanged(st, signature):
            return self.report
        st = self._ensure_near(st)
        view = self.far.open(Checkpoint(st.uidvalidity, st.highestmodseq), readonly=dry)
        # --- gather
        pairs = self.db.pairs(st.id)
        local: dict[str, NearMessage] = {}
        if self.near.exists():
            local, problems = self.near.scan()
            for problem in problems:
                self.log.warning("skipped %s: %s", problem.where, problem.reason)
                self.report.skipped += 1
        pairs, uidvalidity_changed = self._recover(st, view, pairs, local)
        local_only = self._local_only(st, view, local)
        if local_only:
            # Keywords the far side cannot keep are left out of the comparison on both
            # the baseline and the near side, so they are neither sent every cycle
            # nor taken for a removal there (RELIABILITY.md SRV-11).
            pairs = [
                dataclasses.replace(p, flags=intern_flags(p.flags - local_only))
                if p.flags & local_only
                else p
                for p in pairs
            ]
        known: dict[MsgKey, MsgMeta] = {
            p.far: MsgMeta(p.flags, p.size) for p in pairs if p.far is not None
        }
        far = self.far.listing(st.highestmodseq, known, full=uidvalidity_changed)
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
        # --- plan
        plan = reconcile_plan(pairs, far, near_listing, self.policy)
        too_much = mass_delete_problems(plan)
        if too_much and not self.options.allow_mass_delete:
            raise FolderError(
                "; ".join(too_much)
                + "; nothing was changed (if this is what you want, run `syncd sync "
                "--allow-mass-delete`)"
            )
        if dry or (plan and self.log.isEnabledFor(logging.DEBUG)):
            lines = describe_plan(plan, far=self.far, near=self.near, local=local, log=self.log)
            if dry:
                self.report.planned = lines
                self._count_planned(plan)
                return self.report
            for line in lines:
                self.log.debug("%s", line)
        # --- apply
        applier = Applier(
            far=self.far,
            near=self.near,
            db=self.db,
            folder_id=st.id,
            policy=self.policy,
            options=self.options,
            report=self.report,
            log=self.log,
            refusals=self._refusals,
            new_to_new=self.new_to_new,
            trash=self.trash,
            batch_bytes=self.batch_bytes,
            writers=self.writers,
            budget=self.budget,
        )
        applier.apply(plan, local, view.uidnext, view.uidvalidity)
        r = self.report
        changed = applier.touched_near or bool(r.downloaded or r.deleted_near)
        self.db.update_folder(
            st.id,
            uidvalidity=view.uidvalidity,
            # A skipped message must be looked at again next time, which a modseq
            # delta would not do: fall back to one full listing then.
            highestmodseq=None if r.failed else view.highestmodseq,
            uidnext=view.uidnext,
            far_count=len(far) + r.uploaded - r.deleted_far,
            near_count=len(local) + r.downloaded - r.deleted_near,
            near_signature=None
            if r.failed
            else self.near.trusted_signature(
                signature, changed=changed, settled_before=settled_at_start
            ),
        )
        crashpoints.step("folder-state")
        return self.report

    def _unchanged(self, st: FolderState, signature: str | None) -> bool:
        if not fastpath.unchanged(self.far, st, signature, self._refusals):
            return False
        self.log.debug("unchanged on both sides since the last sync")
        self.report.held = len(self._refusals) if self.policy.push else 0
        return True

    def _ensure_near(self, st: FolderState) -> FolderState:
        """Create the near folder when missing; when it held synced mail, forget its
        pairs so that everything is fetched again."""
        if self.near.exists():
            return st
        dry = self.options.dry_run
        if st.uidvalidity is not None and self.db.count_pairs(st.id):
            # INBOX and the trash are never deleted with their folder (account.folderlife).
            kept = self.far_name.upper() == "INBOX" or self._own_trash or not self.policy.push
            self.log.warning(
                "local folder %s is gone; fetching it again from the server%s",
                self.near.describe(),
                ""
                if kept
                else " (to delete it on the server too, run `syncd sync --allow-mass-delete`)",
            )
            # Forget the pairs and the modseq: a delta would not list the messages
            # that now need downloading again.
            st = dataclasses.replace(st, highestmodseq=None)
            if not dry:
                self.db.replace_pairs(st.id, [], highestmodseq=None)
        if not dry:
            self.near.create()
        return st

    def _recover(
        self,
        st: FolderState,
        view: FarView,
        pairs: list[Pair],
        local: dict[str, NearMessage],
    ) -> tuple[list[Pair], bool]:
        """Pairs made good before planning: a first sync pairs what both sides hold, a
        new UIDVALIDITY re-pairs, a previous run's copies are settled.  Returns the
        pairs and whether the far keys changed meaning."""
        dry = self.options.dry_run
        if (
            st.uidvalidity is None
            and Capability.UIDVALIDITY in self.far.capabilities
            and any(isinstance(p.far, str) for p in pairs)
        ):
            # Pairs keyed by strings, without an epoch: they were made with a far side
            # of another kind (the account was POP3; its keys are UIDLs).  They mean
            # nothing here, and taken as "gone from the server" they would delete the
            # local mail: pair both sides again by content instead.
            self.log.warning(
                "the sync state of this folder was made with another protocol (POP3); "
                "pairing the local and server messages again by Message-ID"
            )
            pairs = []
            if not dry:
                self.db.replace_pairs(st.id, [])
        seed = self.seed
        if seed is not None and not (local or seed.pairs or seed.gone):
            seed = None  # nothing here and no record of it: an ordinary new folder
        if st.uidvalidity is None and not pairs and seed is not None:
            # A Maildir another tool synced: start from its pairs and flags.  One
            # transaction, so a crash leaves the whole seed or none of it.
            pairs, self.report.adoption = seed_pairs(
                seed=seed, view=view, far=self.far, near=self.near, local=local, log=self.log
            )
            if not dry:
                self.db.replace_pairs(st.id, pairs, uidvalidity=view.uidvalidity)
                crashpoints.step("adopt-seed")
        elif st.uidvalidity is None and not pairs and local:
            # No state but mail on both sides (state lost, or a Maildir from another
            # tool): pair what both hold rather than copying it all both ways.
            pairs = pair_existing(far=self.far, near=self.near, local=local, log=self.log)
            if pairs and not dry:
                self.db.replace_pairs(st.id, pairs)
        changed = st.uidvalidity is not None and view.uidvalidity != st.uidvalidity
        if changed:
            pairs = recover_uidvalidity(
                far=self.far,
                near=self.near,
                pairs=pairs,
                local=local,
                old=st.uidvalidity,
                new=view.uidvalidity,
                log=self.log,
            )
            if not dry:
                self.db.replace_pairs(
                    st.id, pairs, uidvalidity=view.uidvalidity, highestmodseq=None, uidnext=None
                )
        if not dry:
            pairs = resolve_intents(
                db=self.db,
                folder_id=st.id,
                far=self.far,
                near=self.near,
                pairs=pairs,
                local=local,
                log=self.log,
            )
        return pairs, changed

    def _local_only(
        self, st: FolderState, view: FarView, local: Mapping[str, NearMessage]
    ) -> Flags:
        """The near keywords this far folder cannot keep (SRV-11); each is reported
        once, the first time it is seen (remembered in the state).

        A read-only open (``--dry-run``) reports no permanent flags at all: a dry run
        masks what the last real run found instead."""
        reported = self.db.local_only_flags(st.id)
        if view.readonly:
            return reported
        if view.permanent_flags is None or "\\*" in view.permanent_flags:
            if reported:
                self.db.set_local_only_flags(st.id, ())
            return NO_FLAGS
        distinct = {m.flags for m in local.values()}
        keywords = frozenset().union(*distinct) - SYSTEM_FLAGS if distinct else NO_FLAGS
        local_only = kept_local_only(keywords, view.permanent_flags)
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

    def _count_planned(self, plan: Plan) -> None:
        r = self.report
        r.uploaded, r.downloaded = len(plan.uploads), len(plan.downloads)
        r.flagged = len(plan.flags)
        r.deleted_far, r.deleted_near = plan.deletions_on(Side.FAR), plan.deletions_on(Side.NEAR)
