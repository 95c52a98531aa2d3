"""The account's pass over moves between folders, before its folders are synced.

The concrete stores are built here for the engine's move pass
(:mod:`syncd.engine.moves` finds, :mod:`syncd.engine.relocate` makes): a message a
mail reader moved between two local folders is moved on the server (``UID MOVE``:
nothing uploaded), one moved on the server is renamed between the Maildir folders
(nothing downloaded).  Only folders that changed are looked at, and only when at
least two changed on the same side.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from syncd.engine import movelog
from syncd.engine.moves import Move, MoveFolder, find_moves, gather, hints, worth_gathering
from syncd.engine.options import RunOptions, SyncCancelled
from syncd.engine.relocate import carry_out, resolve_moves
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.errors import FolderError, ProtocolError
from syncd.model import Side
from syncd.stores.imap.store import ImapFolder
from syncd.stores.maildir.store import MaildirStore

if TYPE_CHECKING:
    from syncd.account.prepare import Job
    from syncd.stores.imap.session import ImapSession


@dataclass
class MovePass:
    """What the pass leaves for the folder syncs: ``held``, the server names of
    folders with a move still unsettled (they must not be synced this time); in a
    dry run, ``superseded``: per folder, the plan steps a move replaces (its
    deletion in the source, its copy in the target), left out of the plan."""

    held: set[str] = field(default_factory=set)
    superseded: dict[str, set[str]] = field(default_factory=dict)


def move_between_folders(
    session: ImapSession,
    db: StateDB,
    options: RunOptions,
    *,
    jobs: Sequence[Job],
    busy: Sequence[Job],
    log: logging.LoggerAdapter[logging.Logger],
    targeted: bool = False,
) -> MovePass:
    """Settle the moves an interrupted run left, then find and make (or, in a dry
    run, plan: the target folder's ``move ...`` lines) the moves between the
    ``busy`` folders (those not settled as unchanged).  A move left by an
    interrupted run whose other folder is not in a ``targeted`` run holds its
    folder back until a run with both; in a full run, such a folder is no longer
    synced at all and the move is forgotten."""
    result = MovePass()
    if len(busy) < 2 and (options.dry_run or not movelog.pending(db)):
        return result  # a move needs two changed folders (a single folder's sync: none)
    folders: dict[int, MoveFolder] = {}
    job_of: dict[int, Job] = {}
    for job in jobs:
        st = db.folder(job.far_name)
        if st is None or st.uidvalidity is None:
            continue
        folders[st.id] = MoveFolder(
            far=ImapFolder(session, job.far_name, job.log, status=job.status),
            near=MaildirStore(job.near),
            policy=job.policy,
            state=st,
            log=job.log,
            planned=job.planned,
        )
        job_of[st.id] = job
    left: set[int] = set()
    try:
        if not options.dry_run:
            left = resolve_moves(db, folders, log)
            if left and not targeted:
                log.warning("forgot the moves of an interrupted run into or out of a folder "
                            "no longer synced")  # fmt: skip
                movelog.forget(db, left)
                left = set()
        wanted = {id(j) for j in busy}
        candidates = [f for i, f in folders.items() if id(job_of[i]) in wanted and i not in left]
        look = worth_gathering({f.id: hints(f, db) for f in candidates})
        gathered = []
        for folder in candidates:
            if folder.id in look:
                if options.cancel is not None and options.cancel.is_set():
                    raise SyncCancelled
                if _gather(folder, db, options):
                    gathered.append(folder)
        moves = find_moves(gathered, log)
        if options.dry_run:
            for move in moves:
                folders[move.dst].planned.append(move.line(folders))
                for folder_id, step in _superseded(move):
                    result.superseded.setdefault(job_of[folder_id].far_name, set()).add(step)
        elif moves:
            carry_out(db, moves, folders, log)
            for move in moves:  # their STATUS changed: the fast path asks again
                job_of[move.src].status = job_of[move.dst].status = None
    except (FolderError, ProtocolError) as exc:
        log.warning("moves between folders not looked for this time: %s", exc)
    if not options.dry_run:
        for intent in movelog.pending(db):
            left |= {intent.src_folder, intent.dst_folder}
    result.held = {job_of[i].far_name for i in left if i in job_of}
    return result


def _gather(folder: MoveFolder, db: StateDB, options: RunOptions) -> bool:
    try:
        return gather(folder, db, dry_run=options.dry_run)
    except FolderError as exc:  # its own sync says it properly
        folder.log.debug("not looked at for moves between folders: %s", exc)
        return False


def _superseded(move: Move) -> list[tuple[int, str]]:
    """The plan steps (as the dry run prints them, in brackets) that ``move``
    replaces, by folder: the deletion in its source, the copy into its target."""
    far, near = move.pair.far, move.pair.near
    if move.side is None:  # moved on both sides: the target's two copies
        return [(move.dst, f"[copy far {move.key} -> near "),
                (move.dst, f"[copy near {move.also} -> far ")]  # fmt: skip
    if move.side is Side.FAR:
        return [(move.src, f"[delete far {far}]"), (move.dst, f"[copy near {move.key} -> far ")]
    return [(move.src, f"[delete near {near}]"), (move.dst, f"[copy far {move.key} -> near ")]


_COUNTS = {"[delete far": "deleted_far", "[delete near": "deleted_near",
           "[copy near": "uploaded", "[copy far": "downloaded"}  # fmt: skip


def drop_superseded(reports: Sequence[FolderReport], superseded: dict[str, set[str]]) -> None:
    """A dry run: leave out of the folders' plans (and counts) the deletions and
    copies that a move replaces, so that it reads as the real run would go."""
    for report in reports:
        steps = superseded.get(report.name)
        if not steps:
            continue
        kept = []
        for line in report.planned:
            step = next((s for s in steps if s in line), None)
            if step is None or line.startswith("move "):
                kept.append(line)
                continue
            for prefix, attr in _COUNTS.items():
                if step.startswith(prefix):
                    setattr(report, attr, max(0, getattr(report, attr) - 1))
        report.planned = kept


def unsettled(job: Job) -> FolderReport:
    """The report of a folder left out of this run: a move from or to it that an
    interrupted run left could not be settled (a targeted run without the other
    folder, or the server failed meanwhile); syncing it now could copy the message
    twice."""
    return FolderReport(
        job.shown,
        error="a move between folders that an interrupted run left is not settled yet; "
        "not synced this time",
    )
