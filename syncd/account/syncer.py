"""One sync of one account: connect, pair the folders of both sides, sync each.

Errors are scoped: a FolderError skips that folder and the others go on; an
AccountError (cannot connect, log in, or find the Maildir root) ends this
account's run and the other accounts go on.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from syncd.account.adoption import attach_seeds
from syncd.account.job import run_job, settle_job
from syncd.account.lock import AccountLock
from syncd.account.moves import drop_superseded, move_between_folders, unsettled
from syncd.account.outcome import error_kind, one_line, partial_error
from syncd.account.prepare import Job, prepare_folders
from syncd.account.root import check_root
from syncd.engine.options import (
    ACCOUNT_BODY_BUDGET,
    WRITERS,
    ByteBudget,
    RunOptions,
    SyncCancelled,
    policy_for,
)
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.errors import AccountError, CredentialError, FolderError, LockedError
from syncd.logsetup import account_logger

if TYPE_CHECKING:
    from syncd.config import AccountConfig, Config
    from syncd.stores.imap.session import ImapSession

#: A targeted run (some folders only) asks LIST-STATUS from this many folders on.
TARGETED_LIST_STATUS = 4
#: Folders whose connection a protocol error may drop in one run before the account
#: stops for this run (each costs a fresh login).
MAX_DROPPED_CONNECTIONS = 3


@dataclass
class AccountReport:
    name: str
    folders: list[FolderReport] = field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None  # see syncd.account.outcome
    locked: bool = False
    notes: list[str] = field(default_factory=list)  # account-level lines (adoption)

    @property
    def ok(self) -> bool:
        # A message that could not be copied or changed, or that the server refused
        # and is held back, means the folder is not in step: scripts must see a
        # failure (exit 1), though the rest was synced.
        return self.error is None and all(
            f.error is None and not f.failed and not f.held for f in self.folders
        )

    def line(self, *, dry_run: bool, seconds: float) -> str:
        """The one line `syncd sync` prints for the account (also through the daemon)."""
        bad = [f for f in self.folders if f.error]
        messages = sum(f.failed for f in self.folders)
        held = sum(f.held for f in self.folders)
        t = {"downloaded": 0, "uploaded": 0, "flagged": 0, "deleted_near": 0, "deleted_far": 0}
        for f in self.folders:
            for k in t:
                t[k] += getattr(f, k)
        totals = (
            f"{t['downloaded']} downloaded, {t['uploaded']} uploaded, {t['flagged']} flag "
            f"changes, {t['deleted_near']} deleted here, {t['deleted_far']} deleted on the server"
        )
        state = (
            f"failed: {self.error}"
            if self.error
            else f"{len(self.folders) - len(bad)} folders ok"
            + (f", {len(bad)} failed" if bad else "")
            + (f", {messages} messages failed" if messages else "")
            + (f", {held} held back (refused by the server)" if held else "")
        )
        status = "dry run: " if dry_run else ""
        return f"{self.name}: {status}{state}; {totals} ({seconds:.1f}s)"


def open_session(account: AccountConfig) -> ImapSession:
    # Imported here: the CLI's `check` and `status` never pay for the IMAP stack.
    from syncd.auth.authenticators import authenticator_for
    from syncd.stores.imap.session import ImapSession

    return ImapSession.connect(
        host=account.host,
        port=account.port,
        tls=account.tls,
        ca_file=account.ca_file,
        auth=authenticator_for(account),
        timeout=account.timeout,
        label=account.name,
    )


class SyncHooks(Protocol):
    """Extension points around an account's sync (rule plugins implement these).

    Every method is called in the account's sync thread with the account lock held.
    Hooks that act on the server are built with the run's options and expose them
    as ``options``; :meth:`AccountSyncer.sync` refuses options that disagree on
    ``dry_run`` with theirs.
    """

    def before_account(self, *, account: AccountConfig) -> None:
        """Called before the account's folders are synced (once per sync call)."""

    def before_folder(
        self, *, account: AccountConfig, session: ImapSession, folder: str
    ) -> list[str]:
        """Called before ``folder`` (the server's name) is synced, with the session
        connected and no folder selected assumption: select what you need.  Returns
        lines to print in a dry run (what would be done)."""
        return []

    def after_account(self, *, account: AccountConfig, report: AccountReport) -> None:
        """Called after the sync call, with its report (also when it failed)."""

    # Optional (looked up with getattr; the daemon's hooks have them): called right
    # before and after a folder's own sync -- on the thread and session that sync
    # it -- so what syncd writes locally can be told from a mail reader's changes:
    #   folder_started(*, folder: str, session: ImapSession) -> None
    #   folder_finished(*, folder: str, session: ImapSession) -> None


class AccountSyncer:
    """Syncs one account, once (the CLI) or many times (the daemon keeps one per
    account and reuses its connections and state between cycles).

    Folders are synced by up to ``max_connections`` workers at once, each with its
    own IMAP connection and its own SQLite connection (WAL; writes are short
    transactions).  Not thread-safe itself: one syncer per account, called from
    one thread."""

    def __init__(
        self, config: Config, account: AccountConfig, *, hooks: SyncHooks | None = None
    ) -> None:
        self.config = config
        self.account = account
        self.hooks = hooks
        self.log = account_logger(account.name)
        self._session: ImapSession | None = None
        self._spare: list[ImapSession] = []  # extra connections, kept between cycles
        self._dropped: list[str] = []  # folders whose connection died this run
        self._db: StateDB | None = None
        self._caps_shown: frozenset[str] | None = None  # logged once, again if they change
        self._caps_lock = threading.Lock()

    def sync(
        self,
        options: RunOptions,
        folders: Collection[str] | None = None,
        *,
        lock_wait: float | None = 0,
    ) -> AccountReport:
        """Sync the selected folders (default: all) once.  Never raises a SyncdError:
        the outcome is in the report.  ``folders`` are names with ``/`` separators;
        ``lock_wait`` is how long to wait for another syncd holding the account
        (0: refuse at once, None: wait for ever)."""
        bound = getattr(self.hooks, "options", None)
        if bound is not None and bound.dry_run != options.dry_run:
            # Rules act on the server: hooks built for a real run must never ride
            # along a dry run (or the reverse).  A programming error, not a user's.
            raise ValueError("the sync's options and its hooks' options disagree on dry_run")
        report = AccountReport(self.account.name)
        started = time.time()
        lock = AccountLock(self.config.state_dir, self.account.name)
        try:
            lock.acquire(wait=lock_wait)
        except LockedError as exc:
            # Another syncd syncs the account: this sync never started, so no hook
            # runs for it (the other process runs them).
            report.locked = True
            report.error = str(exc)
            self.log.error("%s", exc)
            return report
        try:
            self._sync_locked(options, report, folders)
        finally:
            lock.release()
        if not options.dry_run:
            self._record(started, report)
        return report

    def _sync_locked(
        self, options: RunOptions, report: AccountReport, folders: Collection[str] | None
    ) -> None:
        """The sync with the account lock held; the hooks run inside it, as the
        hookspecs promise (``syncd_after_sync`` with the lock still held)."""
        try:
            if self.hooks is not None:
                self.hooks.before_account(account=self.account)
            self._sync(options, report, folders)
        except (AccountError, CredentialError) as exc:
            report.error, report.error_kind = str(exc), error_kind(exc)
            self.log.error("%s", exc)
            self._drop_sessions()
        except FolderError as exc:
            # A mailbox-level refusal outside any one folder (LIST answered NO): the
            # account cannot be paired this time, but the connection is fine.
            report.error, report.error_kind = str(exc), error_kind(exc)
            self.log.error("%s", exc)
        finally:
            if self.hooks is not None:
                self.hooks.after_account(account=self.account, report=report)

    def _record(self, started: float, report: AccountReport) -> None:
        """Keep the attempt's outcome in the state for ``syncd status`` (a one-shot sync
        and the daemon alike).  A locked attempt is the other process's to record; a
        dry run changes nothing, its record included."""
        error: str | None = None
        kind: str | None = None
        if report.error is not None:
            outcome, error, kind = "failed", one_line(report.error), report.error_kind
        else:
            partial = partial_error(report.folders)
            outcome = "partial" if partial else "ok"
            if partial is not None:
                error, kind = partial
        try:
            self.db.record_attempt(started, outcome, error, kind)
        except (AccountError, sqlite3.Error) as exc:  # a damaged or unwritable state
            self.log.debug("the outcome of this attempt was not recorded: %s", exc)

    def close(self) -> None:
        self._drop_sessions()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _drop_sessions(self) -> None:
        for session in [self._session, *self._spare]:
            if session is not None:
                session.logout()
        self._session = None
        self._spare = []

    @property
    def db(self) -> StateDB:
        if self._db is None:
            self._db = StateDB(self.config.state_dir / f"{self.account.name}.db")
        return self._db

    def _sync(
        self, options: RunOptions, report: AccountReport, only: Collection[str] | None
    ) -> None:
        db = self.db
        check_root(
            self.account, db, options, [f for f in db.folders() if f.uidvalidity is not None]
        )
        session = self._main()
        hooks = self.hooks

        def before_folder(far_name: str) -> list[str]:
            assert hooks is not None
            return hooks.before_folder(account=self.account, session=session, folder=far_name)

        jobs = prepare_folders(
            self.account,
            session,
            db,
            policy=policy_for(self.account.sync, self.account.expunge),
            dry_run=options.dry_run,
            errors=report.folders,
            log=self.log,
            only=only,
            before_folder=before_folder if hooks is not None else None,
            allow_mass_delete=options.allow_mass_delete,
        )
        report.notes += attach_seeds(self.account, jobs, db, self.log)
        first = self._settle_unchanged(
            [j for j in jobs if not j.last], db, options, report, targeted=only is not None
        )
        last = [j for j in jobs if j.last]
        moves = move_between_folders(
            self._main(), db, options, jobs=jobs, busy=[*first, *last], log=self.log,
            targeted=only is not None,
        )  # fmt: skip
        if held := moves.held:
            report.folders += [unsettled(j) for j in [*first, *last] if j.far_name in held]
            first = [j for j in first if j.far_name not in held]
            last = [j for j in last if j.far_name not in held]
        workers = min(self.account.max_connections, len(first))
        self._dropped = []
        if workers <= 1:
            for job in first:
                _check_cancel(options)
                report.folders.append(self._watch(self._run(job, self._main(), db, options)))
        else:
            self._run_parallel(first, workers, options, report)
        for job in last:
            _check_cancel(options)
            report.folders.append(self._watch(self._run(job, self._main(), db, options)))
        drop_superseded(report.folders, moves.superseded)

    def _run(
        self, job: Job, session: ImapSession, db: StateDB, options: RunOptions, **kw: Any
    ) -> FolderReport:
        """:func:`~syncd.account.job.run_job`, bracketed by the hooks' optional
        folder_started/finished."""
        started = getattr(self.hooks, "folder_started", None)
        finished = getattr(self.hooks, "folder_finished", None)
        if callable(started):
            started(folder=job.far_name, session=session)
        try:
            return run_job(job, session, db, options, **kw)
        finally:
            if callable(finished):
                finished(folder=job.far_name, session=session)

    def _watch(self, result: FolderReport) -> FolderReport:
        """Count the folders whose connection a protocol error dropped; a server that
        breaks the protocol folder after folder ends the account's run (one error,
        the daemon's back-off) rather than costing a fresh login per folder."""
        if result.error is not None and result.dropped:
            self._dropped.append(result.name)
            if len(self._dropped) >= MAX_DROPPED_CONNECTIONS:
                raise AccountError(
                    f"the server broke the protocol in {len(self._dropped)} folders "
                    f"({', '.join(self._dropped)}); not syncing the rest of this account now"
                )
        return result

    def _main(self) -> ImapSession:
        """The main connection, opened again if a folder's protocol error dropped it
        (a live spare takes its place first: main + spares never exceed
        ``max_connections``)."""
        if self._session is None or not self._session.alive:
            self._spare = [c for c in self._spare if c.alive]
            self._session = self._spare.pop() if self._spare else self._open()
        return self._session

    def _open(self) -> ImapSession:
        """A new connection; its capabilities are logged (-v) the first time they are
        seen in this syncer's life, not for every connection of every cycle."""
        session = open_session(self.account)
        caps = session.capabilities
        with self._caps_lock:
            new, self._caps_shown = caps != self._caps_shown, caps
        if new:
            self.log.debug("server capabilities: %s", " ".join(sorted(caps)))
        return session

    def _settle_unchanged(
        self,
        jobs: list[Job],
        db: StateDB,
        options: RunOptions,
        report: AccountReport,
        *,
        targeted: bool = False,
    ) -> list[Job]:
        """Ask the STATUS of every folder in one round trip (LIST-STATUS) and settle
        the folders unchanged on both sides right here, on the main connection; the
        rest is returned, to be synced.  A no-op run then needs one connection and
        two commands instead of a STATUS per folder over a pool of connections.
        A ``targeted`` run of a few folders (the daemon's IDLE or watcher syncs) asks
        their own STATUS instead: LIST-STATUS would make the server compute it for
        every mailbox of the account."""
        session = self._session
        assert session is not None
        if len(jobs) < (TARGETED_LIST_STATUS if targeted else 2) or not session.has_condstore:
            return jobs
        try:
            statuses = session.statuses()
        except FolderError as exc:  # NO/BAD to a command it advertised: go without
            self.log.warning("LIST-STATUS refused (%s); asking each folder's STATUS", exc)
            return jobs
        busy: list[Job] = []
        done: list[str] = []
        for job in jobs:
            job.status = statuses.get(job.far_name)
            settled = settle_job(job, session, db, options) if job.status else None
            if settled is None:
                busy.append(job)
            else:
                report.folders.append(settled)
                done.append(job.far_name)
        if done and not options.dry_run:
            db.record_success(done)  # one commit (one fsync) for all of them
        return busy

    def _run_parallel(
        self, jobs: list[Job], workers: int, options: RunOptions, report: AccountReport
    ) -> None:
        assert self._session is not None
        idle: queue.SimpleQueue[ImapSession] = queue.SimpleQueue()
        idle.put(self._session)
        # A dead main connection was replaced during an earlier cycle: never keep
        # more than max_connections open (the server counts them per user).
        for extra in self._spare[self.account.max_connections - 1 :]:
            extra.logout()
        self._spare = [c for c in self._spare[: self.account.max_connections - 1] if c.alive]
        for spare in self._spare[: workers - 1]:
            idle.put(spare)
        failed = threading.Event()
        lock = threading.Lock()
        budget = ByteBudget(ACCOUNT_BODY_BUDGET)

        def session() -> ImapSession:
            try:
                return idle.get_nowait()
            except queue.Empty:
                pass
            fresh = self._open()
            self._spare.append(fresh)
            return fresh

        def work(job: Job) -> FolderReport | None:
            if failed.is_set():
                return None
            _check_cancel(options)
            conn = session()
            db = StateDB(self.db.path)
            try:
                result = self._run(
                    job, conn, db, options, workers=workers, writers=writers, budget=budget
                )
                with lock:
                    return self._watch(result)
            except (AccountError, CredentialError):
                failed.set()
                raise
            finally:
                db.close()
                if conn.alive:
                    idle.put(conn)
                elif conn in self._spare:
                    self._spare.remove(conn)  # the next job opens a fresh one

        with (
            ThreadPoolExecutor(WRITERS, thread_name_prefix="deliver") as writers,
            ThreadPoolExecutor(workers, thread_name_prefix=f"sync-{self.account.name}") as pool,
        ):
            futures = [pool.submit(work, job) for job in jobs]
        error: AccountError | CredentialError | None = None
        for future in futures:
            try:
                result = future.result()
            except (AccountError, CredentialError) as exc:
                error = error or exc
                continue
            if result is not None:
                report.folders.append(result)
        if error is not None:
            raise error


def sync_account(config: Config, account: AccountConfig, options: RunOptions) -> AccountReport:
    """Sync every selected folder of ``account`` once, then disconnect."""
    syncer = AccountSyncer(config, account)
    try:
        return syncer.sync(options)
    finally:
        syncer.close()


def _check_cancel(options: RunOptions) -> None:
    """Between two folders: stop here when the run was asked to (the daemon's stop)."""
    if options.cancel is not None and options.cancel.is_set():
        raise SyncCancelled
