"""One sync of one account: connect, pair the folders of both sides, sync each.

Errors are scoped: a FolderError skips that folder and the others go on; an
AccountError (cannot connect, log in, or find the Maildir root) ends this
account's run and the other accounts go on.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from syncd import crashpoints
from syncd.account.lock import AccountLock
from syncd.engine.cycle import (
    ACCOUNT_BODY_BUDGET,
    DOWNLOAD_BATCH_BYTES,
    WRITERS,
    ByteBudget,
    FolderReport,
    FolderSync,
    RunOptions,
    SyncCancelled,
    policy_for,
)
from syncd.engine.reconcile import Policy
from syncd.engine.state import StateDB
from syncd.errors import AccountError, CredentialError, FolderError, LockedError, ProtocolError
from syncd.folders import clashes, discover, join_name, local_path, matches, split_name
from syncd.logsetup import account_logger
from syncd.stores.maildir.folder import MaildirFolder

if TYPE_CHECKING:
    from syncd.config import AccountConfig, Config
    from syncd.stores.imap.session import ImapSession, StatusInfo

#: A targeted run (some folders only) asks LIST-STATUS from this many folders on.
TARGETED_LIST_STATUS = 4
#: Folders whose connection a protocol error may drop in one run before the account
#: stops for this run (each costs a fresh login).
MAX_DROPPED_CONNECTIONS = 3
ROOT_MARKER = ".syncd-maildir"  # tells the Maildir syncd synced from an empty mount point
_NOT_SELECTABLE = frozenset({"\\NOSELECT", "\\NONEXISTENT"})


@dataclass
class AccountReport:
    name: str
    folders: list[FolderReport] = field(default_factory=list)
    error: str | None = None
    locked: bool = False

    @property
    def ok(self) -> bool:
        # A message that could not be copied or changed, or that the server refused
        # and is held back, means the folder is not in step: scripts must see a
        # failure (exit 1), though the rest was synced.
        return self.error is None and all(
            f.error is None and not f.failed and not f.held for f in self.folders
        )


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
        report = AccountReport(self.account.name)
        try:
            lock = AccountLock(self.config.state_dir, self.account.name)
            lock.acquire(wait=lock_wait)
            try:
                if self.hooks is not None:
                    self.hooks.before_account(account=self.account)
                self._sync(options, report, folders)
            finally:
                lock.release()
        except LockedError as exc:
            report.locked = True
            report.error = str(exc)
            self.log.error("%s", exc)
        except (AccountError, CredentialError) as exc:
            report.error = str(exc)
            self.log.error("%s", exc)
            self._drop_sessions()
        except FolderError as exc:
            # A mailbox-level refusal outside any one folder (LIST answered NO): the
            # account cannot be paired this time, but the connection is fine.
            report.error = str(exc)
            self.log.error("%s", exc)
        finally:
            if self.hooks is not None:
                self.hooks.after_account(account=self.account, report=report)
        return report

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
        root = self.account.maildir
        db = self.db
        known = [f for f in db.folders() if f.uidvalidity is not None]
        marker = root / ROOT_MARKER
        if not root.is_dir():
            if known:
                raise AccountError(
                    f"the Maildir {root} is missing (unmounted disk?); it held {len(known)} "
                    "synced folders, so nothing was changed. If you moved it on purpose, "
                    f"remove {db.path} to start afresh"
                )
            if not options.dry_run:
                root.mkdir(parents=True, mode=0o700)
        elif known and not marker.exists():
            # An empty mount point where the disk should be looks just like a Maildir
            # whose mail was all deleted: refuse rather than trust it.
            raise AccountError(
                f"{root} is not the Maildir syncd synced before ({ROOT_MARKER} is missing: "
                "an unmounted disk?); nothing was changed. If this is really the account's "
                f"Maildir, remove {db.path} and sync again (both sides are then paired by "
                "Message-ID)"
            )
        if not options.dry_run and not marker.exists():
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(
                    f"This directory is the Maildir of syncd account {self.account.name!r}.\n"
                    "syncd refuses to sync it when this file is missing (an unmounted disk).\n"
                )
        jobs = _prepare_folders(
            self.account,
            self._main(),
            db,
            options=options,
            report=report,
            log=self.log,
            only=only,
            hooks=self.hooks,
        )
        first = self._settle_unchanged(
            [j for j in jobs if not j.last], db, options, report, targeted=only is not None
        )
        workers = min(self.account.max_connections, len(first))
        self._dropped = []
        if workers <= 1:
            for job in first:
                _check_cancel(options)
                report.folders.append(self._watch(self._run(job, self._main(), db, options)))
        else:
            self._run_parallel(first, workers, options, report)
        for job in jobs:
            if job.last:
                _check_cancel(options)
                report.folders.append(self._watch(self._run(job, self._main(), db, options)))

    def _run(
        self, job: _Job, session: ImapSession, db: StateDB, options: RunOptions, **kw: Any
    ) -> FolderReport:
        """:func:`_run_job`, bracketed by the hooks' optional folder_started/finished."""
        started = getattr(self.hooks, "folder_started", None)
        finished = getattr(self.hooks, "folder_finished", None)
        if callable(started):
            started(folder=job.far_name, session=session)
        try:
            return _run_job(job, session, db, options, **kw)
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
            self._session = self._spare.pop() if self._spare else open_session(self.account)
        return self._session

    def _settle_unchanged(
        self,
        jobs: list[_Job],
        db: StateDB,
        options: RunOptions,
        report: AccountReport,
        *,
        targeted: bool = False,
    ) -> list[_Job]:
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
        busy: list[_Job] = []
        done: list[str] = []
        for job in jobs:
            job.status = statuses.get(job.far_name)
            settled = _settle_job(job, session, db, options) if job.status else None
            if settled is None:
                busy.append(job)
            else:
                report.folders.append(settled)
                done.append(job.far_name)
        if done and not options.dry_run:
            db.record_success(done)  # one commit (one fsync) for all of them
        return busy

    def _run_parallel(
        self, jobs: list[_Job], workers: int, options: RunOptions, report: AccountReport
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
            fresh = open_session(self.account)
            self._spare.append(fresh)
            return fresh

        def work(job: _Job) -> FolderReport | None:
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


@dataclass
class _Job:
    """One folder pair to sync: prepared (created, rules run) on the main connection."""

    shown: str
    far_name: str
    near: MaildirFolder
    policy: Policy
    trash: str | None
    new_to_new: bool
    planned: list[str]
    log: logging.LoggerAdapter[logging.Logger]
    last: bool = False  # the trash folder: synced after the folders that move mail into it
    status: StatusInfo | None = None  # the server's STATUS when already known


def _check_cancel(options: RunOptions) -> None:
    """Between two folders: stop here when the run was asked to (the daemon's stop)."""
    if options.cancel is not None and options.cancel.is_set():
        raise SyncCancelled


def _folder_sync(
    job: _Job,
    session: ImapSession,
    db: StateDB,
    options: RunOptions,
    *,
    workers: int = 1,
    writers: ThreadPoolExecutor | None = None,
    budget: ByteBudget | None = None,
) -> FolderSync:
    return FolderSync(
        session=session,
        db=db,
        far_name=job.far_name,
        near=job.near,
        policy=job.policy,
        options=options,
        log=job.log,
        new_to_new=job.new_to_new,
        trash=job.trash,
        # Folders synced side by side share the memory budget for bodies in flight.
        batch_bytes=max(1 << 20, DOWNLOAD_BATCH_BYTES // workers),
        writers=writers,
        budget=budget,
        status=job.status,
    )


def _settle_job(
    job: _Job, session: ImapSession, db: StateDB, options: RunOptions
) -> FolderReport | None:
    """The folder's report if the fast path says it is unchanged, else None."""
    try:
        result = _folder_sync(job, session, db, options).run_if_unchanged()
    except FolderError:
        return None  # the full sync says it properly
    if result is not None:
        result.planned[:0] = job.planned
    return result


def _run_job(
    job: _Job,
    session: ImapSession,
    db: StateDB,
    options: RunOptions,
    *,
    workers: int = 1,
    writers: ThreadPoolExecutor | None = None,
    budget: ByteBudget | None = None,
) -> FolderReport:
    """Sync one folder; a FolderError becomes the report's error (the others go on)."""
    try:
        result = _folder_sync(
            job, session, db, options, workers=workers, writers=writers, budget=budget
        ).run()
    # A server that breaks the protocol inside one folder (a literal it cannot mean,
    # a garbled or forged response: RELIABILITY MAL-01..03) loses that folder for
    # this run; the connection is dropped and the next folder gets a fresh one.
    except (FolderError, ProtocolError) as exc:
        job.log.error("%s", exc)
        st = db.folder(job.far_name) if not options.dry_run else None
        if st is not None:
            db.record_result(st.id, str(exc))
        return FolderReport(job.shown, error=str(exc), dropped=not session.alive)
    result.planned[:0] = job.planned
    if result.changed() or options.dry_run:
        job.log.info("%s%s", "plan: " if options.dry_run else "", result.summary())
    if not options.dry_run:
        st = db.folder(job.far_name)
        if st is not None:
            db.record_result(st.id, None)
    return result


def _prepare_folders(
    account: AccountConfig,
    session: ImapSession,
    db: StateDB,
    *,
    options: RunOptions,
    report: AccountReport,
    log: logging.LoggerAdapter[logging.Logger],
    only: Collection[str] | None = None,
    hooks: SyncHooks | None = None,
) -> list[_Job]:
    """Pair the folders of both sides, create the missing server folders and run
    the hooks (rules) for each, all on the main connection; returns what to sync."""
    policy = policy_for(account.sync, account.expunge)
    delimiter = session.delimiter()
    for reason in getattr(session, "rejected_names", []):
        log.error("server folder refused: %s", reason)
        report.folders.append(FolderReport("?", error=reason))
    far: dict[tuple[str, ...], str] = {}
    for info in session.list_folders():
        if {f.upper() for f in info.flags} & _NOT_SELECTABLE:
            continue
        far[split_name(info.name, info.delimiter or delimiter)] = info.name
    near_parts: list[tuple[str, ...]] = []
    if account.maildir.is_dir():
        near_parts, problems = discover(account.maildir, account.layout, names=account.local_names)
        for problem in problems:
            log.warning("%s", problem)
    wanted = {split_name(n, "/") for n in only} if only is not None else None
    names = sorted(
        {
            p
            for p in (*far, *near_parts)
            if matches(p, account.folders, account.exclude) and (wanted is None or p in wanted)
        },
        key=lambda p: (p != ("INBOX",), p),
    )
    for a, b in clashes(names):
        log.warning(
            "folders %s and %s differ only by case or Unicode form; they would clash "
            "on a case-insensitive file system",
            "/".join(a),
            "/".join(b),
        )
    trash = join_name(tuple(account.trash.split("/")), delimiter) if account.trash else None
    trash_parts = split_name(account.trash, "/") if account.trash else None
    if (
        trash is not None
        and trash_parts is not None
        and trash_parts not in far
        and policy.push
        and not options.dry_run
        and matches(trash_parts, account.folders, account.exclude)
    ):
        # Created now, so it is synced in this run after the folders that fill it.
        log.info("creating the trash folder %s on the server", trash)
        session.create_folder(trash)
        crashpoints.step("folder-create")
        far[trash_parts] = trash
        if wanted is None:
            names.append(trash_parts)
    jobs: list[_Job] = []

    def prepare(parts: tuple[str, ...]) -> None:
        shown = "/".join(parts)
        folder_log = account_logger(account.name, shown)
        far_name = far.get(parts, shown)
        try:
            far_name = far.get(parts) or join_name(parts, delimiter)
            near = MaildirFolder(
                local_path(account.maildir, parts, account.layout, names=account.local_names),
                fsync=account.fsync,
            )
            if parts not in far:
                st = db.folder(far_name)
                if st is not None and st.uidvalidity is not None:
                    folder_log.warning(
                        "the server folder is gone; the local copy is kept and not uploaded "
                        "again (remove %s to stop this warning)",
                        near.path,
                    )
                    return
                if not policy.push:
                    return
                if options.dry_run:
                    folder_log.info("would create the folder on the server")
                    report.folders.append(FolderReport(far_name, planned=["create far folder"]))
                    return
                folder_log.info("creating the folder on the server")
                session.create_folder(far_name)
                crashpoints.step("folder-create")
            elif not near.exists() and not policy.pull:
                return
            planned = (
                hooks.before_folder(account=account, session=session, folder=far_name)
                if hooks is not None
                else []
            )
        except FolderError as exc:
            folder_log.error("%s", exc)
            report.folders.append(FolderReport(shown, error=str(exc)))
            st = db.folder(far_name) if not options.dry_run else None
            if st is not None:
                db.record_result(st.id, str(exc))
            return
        jobs.append(
            _Job(
                shown,
                far_name,
                near,
                policy,
                trash,
                account.new_to_new,
                planned,
                folder_log,
                last=far_name == trash,
            )
        )

    for parts in names:
        prepare(parts)
    if hooks is not None and not options.dry_run:
        # Rules may have created target folders (and filed mail into them): sync
        # those in this same run, so the Maildir ends in the filed state.
        done = set(names)
        for info in session.list_folders():
            parts = split_name(info.name, info.delimiter or delimiter)
            if (
                parts in done
                or {f.upper() for f in info.flags} & _NOT_SELECTABLE
                or not matches(parts, account.folders, account.exclude)
                or (wanted is not None and parts not in wanted)
            ):
                continue
            far[parts] = info.name
            done.add(parts)
            prepare(parts)
    return jobs
