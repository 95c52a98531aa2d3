"""Running one prepared folder job: the concrete stores are built here, the
engine's :class:`~syncd.engine.cycle.FolderSync` runs on them, and a folder error
becomes the folder's report (the other folders go on)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from syncd.engine.cycle import FolderSync
from syncd.engine.options import DOWNLOAD_BATCH_BYTES, ByteBudget, RunOptions
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.errors import FolderError, ProtocolError
from syncd.stores.imap.store import ImapFolder
from syncd.stores.maildir.store import MaildirStore

if TYPE_CHECKING:
    from syncd.account.prepare import Job
    from syncd.stores.imap.session import ImapSession


def folder_sync(
    job: Job,
    session: ImapSession,
    db: StateDB,
    options: RunOptions,
    *,
    workers: int = 1,
    writers: ThreadPoolExecutor | None = None,
    budget: ByteBudget | None = None,
) -> FolderSync:
    return FolderSync(
        far=ImapFolder(session, job.far_name, job.log, status=job.status),
        near=MaildirStore(job.near),
        db=db,
        policy=job.policy,
        options=options,
        log=job.log,
        new_to_new=job.new_to_new,
        trash=job.trash,
        # Folders synced side by side share the memory budget for bodies in flight.
        batch_bytes=max(1 << 20, DOWNLOAD_BATCH_BYTES // workers),
        writers=writers,
        budget=budget,
        seed=job.seed,
    )


def settle_job(
    job: Job, session: ImapSession, db: StateDB, options: RunOptions
) -> FolderReport | None:
    """The folder's report if the fast path says it is unchanged, else None."""
    try:
        result = folder_sync(job, session, db, options).run_if_unchanged()
    except FolderError:
        return None  # the full sync says it properly
    if result is not None:
        result.planned[:0] = job.planned
    return result


def run_job(
    job: Job,
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
        result = folder_sync(
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
