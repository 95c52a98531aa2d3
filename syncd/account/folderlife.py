"""Folder life-cycle, carried out: renames and deletions of whole folders, before the
folders are paired (:mod:`syncd.account.prepare`).

:func:`syncd.engine.folderplan.plan_folders` decides; this module gathers what it
looks at -- only when a folder synced before is missing on one side, so an
ordinary run costs nothing more than the listings it already has -- and carries the
steps out, each one crash-safe without an intent: the side is changed first, the
state after (one transaction).  A crash in between leaves the same picture as a
rename or deletion done by another client, which the next run recognises and
finishes by updating the state alone.  No message is copied by a rename.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from syncd import crashpoints
from syncd.account.subscribe import move_subscription
from syncd.engine.folderplan import (
    DeleteFar,
    DeleteNear,
    Forget,
    KeepNear,
    Known,
    Listings,
    Parts,
    RenameFar,
    RenameNear,
    Step,
    far_gone,
    near_gone,
    plan_folders,
)
from syncd.engine.report import FolderReport
from syncd.engine.state import FolderState, StateDB
from syncd.errors import FolderError, UnsafeNameError
from syncd.folders import INBOX, join_name, local_path, matches, selectable_folders, split_name
from syncd.logsetup import account_logger, printable
from syncd.stores.maildir.discover import discover
from syncd.stores.maildir.folder import MaildirFolder
from syncd.stores.maildir.fsio import fsync_dir

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.stores.imap.session import ImapSession

#: Rounds of planning per run: a far rename moves the far children too, which the
#: next round then finds renamed (a near layout that keeps children apart).
MAX_ROUNDS = 3


@dataclass
class FolderLife:
    """The two listings after the life-cycle steps, and the folders to leave out of
    this run (kept with a warning, or only planned in a dry run)."""

    far: dict[Parts, str]
    near: list[Parts]
    skip: set[Parts] = field(default_factory=set)


def settle_folders(
    account: AccountConfig,
    session: ImapSession,
    db: StateDB,
    life: FolderLife,
    *,
    push: bool,
    pull: bool,
    dry_run: bool,
    allow_delete: bool,
    errors: list[FolderReport],
) -> FolderLife:
    """Find folders renamed or deleted on either side since the last sync and do the
    same on the other side (see :mod:`syncd.engine.folderplan`); returns the
    listings as they are now."""
    delimiter = session.delimiter()
    protected: set[Parts] = {(INBOX,)}
    if account.trash:
        protected.add(split_name(account.trash, "/"))
    for _ in range(MAX_ROUNDS):
        states = {
            st.name: st
            for st in db.folders()
            if st.uidvalidity is not None
            and matches(split_name(st.name, delimiter), account.folders, account.exclude)
        }
        known = [
            Known(st.name, split_name(st.name, delimiter), st.uidvalidity)
            for st in states.values()
            if st.uidvalidity is not None
        ]
        listings = _gather(account, session, db, life, known=known, states=states)
        if listings is None:
            return life
        steps = plan_folders(
            listings, protected=protected, allow_delete=allow_delete, push=push, pull=pull
        )
        changed = False
        for step in steps:
            changed |= _carry_out(
                account,
                session,
                db,
                life,
                step=step,
                dry_run=dry_run,
                errors=errors,
                delimiter=delimiter,
            )
        if not changed or dry_run:
            return life
        # The sides moved: list them again for the next round and for the pairing.
        life.far = selectable_folders(session.list_folders(), delimiter)
        if account.maildir.is_dir():
            life.near = discover(account.maildir, account.layout, names=account.local_names)[0]
    return life


def _near(account: AccountConfig, parts: Parts) -> MaildirFolder:
    return MaildirFolder(
        local_path(account.maildir, parts, account.layout, names=account.local_names),
        fsync=account.fsync,
    )


def _gather(
    account: AccountConfig,
    session: ImapSession,
    db: StateDB,
    life: FolderLife,
    *,
    known: Collection[Known],
    states: dict[str, FolderState],
) -> Listings | None:
    """What the planner needs, asked only for folders missing on one side; None
    when no folder synced before is missing anywhere."""
    near = set(life.near)
    # Present but not listed (discovery skipped it, unreadable...) is not gone.
    near |= {k.parts for k in near_gone(known, life.far, near) if _exists(account, k.parts)}
    selected = [
        parts
        for parts in (*life.far, *life.near)
        if matches(parts, account.folders, account.exclude)
    ]
    gone_far = far_gone(known, life.far)
    gone_near = near_gone(known, life.far, near)
    if not gone_far and not gone_near:
        return None
    known_parts = {k.parts for k in known}
    far_uidvalidity: dict[Parts, int] = {}
    if gone_far:
        for parts in selected:
            if parts in life.far and parts not in known_parts:
                try:
                    far_uidvalidity[parts] = session.status(life.far[parts]).uidvalidity
                except FolderError:
                    continue  # not a candidate then
    near_names: dict[Parts, frozenset[str]] = {}
    pair_names: dict[str, frozenset[str]] = {}
    far_counts: dict[str, int] = {}
    if gone_near:
        for parts in selected:
            if parts in near and parts not in life.far and parts not in known_parts:
                near_names[parts] = _names(account, parts)
        for k in gone_near:
            pair_names[k.name] = frozenset(
                p.near for p in db.pairs(states[k.name].id) if p.near is not None
            )
            try:
                far_counts[k.name] = session.status(k.name).messages
            except FolderError:
                continue
    near_counts = {k.parts: len(_names(account, k.parts)) for k in gone_far if k.parts in near}
    return Listings(
        known=known,
        far=life.far,
        near=near,
        far_uidvalidity=far_uidvalidity,
        near_names=near_names,
        pair_names=pair_names,
        far_counts=far_counts,
        near_counts=near_counts,
    )


def _exists(account: AccountConfig, parts: Parts) -> bool:
    try:
        return _near(account, parts).exists()
    except (UnsafeNameError, FolderError):
        return True  # unreadable is not gone


def _names(account: AccountConfig, parts: Parts) -> frozenset[str]:
    try:
        return frozenset(_near(account, parts).scan()[0])
    except (UnsafeNameError, FolderError):
        return frozenset()


def _carry_out(
    account: AccountConfig,
    session: ImapSession,
    db: StateDB,
    life: FolderLife,
    *,
    step: Step,
    dry_run: bool,
    errors: list[FolderReport],
    delimiter: str | None,
) -> bool:
    """One step; True when a side or the state changed."""
    if step.old.parts in life.skip:
        return False  # said once in an earlier round already
    shown = "/".join(step.old.parts)
    log = account_logger(account.name, shown)
    if isinstance(step, KeepNear):
        log.warning(
            "the server folder is gone; the local copy (%d messages, %s) is kept and not "
            "uploaded again: delete it%s",
            step.count,
            printable(_near(account, step.old.parts).path),
            ", or run `syncd sync --allow-mass-delete` to delete it here too"
            if step.deletable
            else " to stop this warning",
        )
        life.skip.add(step.old.parts)
        return False
    if dry_run:
        log.info("would %s", step)
        errors.append(FolderReport(shown, planned=[str(step)]))
        life.skip.add(step.old.parts)
        if isinstance(step, RenameNear | RenameFar):
            life.skip.add(step.new)
        return False
    try:
        if isinstance(step, RenameNear):
            if not _rename_near(account, db, step, log, life):
                return False
            move_subscription(account, session, db, step.old.parts, step.new, log=log)
        elif isinstance(step, RenameFar):
            _rename_far(session, db, step, log, delimiter)
            move_subscription(account, session, db, step.old.parts, step.new, log=log)
        elif isinstance(step, DeleteNear):
            if not step.count and _names(account, step.old.parts):
                return False  # mail arrived since it was counted: next run decides
            _remove_maildir(_near(account, step.old.parts).path)
            crashpoints.step("folder-delete")
            db.forget_folder(step.old.name)
            log.info(
                "deleted on the server: the local folder (%d messages) is deleted too",
                step.count,
            )
        elif isinstance(step, DeleteFar):
            if not step.count and session.status(step.old.name).messages:
                return False  # mail arrived since it was counted: next run decides
            session.delete_folder(step.old.name)
            crashpoints.step("folder-delete")
            db.forget_folder(step.old.name)
            log.info("deleted here: the server folder (%d messages) is deleted too", step.count)
        elif isinstance(step, Forget):
            db.forget_folder(step.old.name)
            log.info("gone on both sides; forgotten")
    # ValueError: the state holds the new name already (another folder synced there).
    except (FolderError, UnsafeNameError, OSError, ValueError) as exc:
        line = f"{step} failed: {exc}"
        log.error("%s", line)
        errors.append(FolderReport(shown, error=line))
        life.skip.add(step.old.parts)
        return False
    return True


def _rename_near(
    account: AccountConfig,
    db: StateDB,
    step: RenameNear,
    log: logging.LoggerAdapter[logging.Logger],
    life: FolderLife,
) -> bool:
    """Rename the near folder and the state; False when a folder is in the way."""
    src = _near(account, step.old.parts).path
    dst = _near(account, step.new).path
    if src.exists() and dst.exists():
        log.warning(
            "renamed on the server to %s, but %s already exists here: neither is synced "
            "until one of them is moved away",
            step.new_name,
            printable(dst),
        )
        life.skip |= {step.old.parts, step.new}
        return False
    if src.exists():
        dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        src.rename(dst)
        if account.fsync:
            fsync_dir(dst.parent)
            if src.parent != dst.parent:
                fsync_dir(src.parent)
        crashpoints.step("folder-rename")
    db.rename_folder(step.old.name, step.new_name)
    log.info("renamed on the server to %s: renamed here too, no message copied", step.new_name)
    return True


def _rename_far(
    session: ImapSession,
    db: StateDB,
    step: RenameFar,
    log: logging.LoggerAdapter[logging.Logger],
    delimiter: str | None,
) -> None:
    new_name = join_name(step.new, delimiter)
    listed = {f.name for f in session.list_folders()}
    if step.old.name in listed and new_name in listed:
        raise FolderError(f"cannot rename it to {new_name} on the server: both exist there")
    if step.old.name in listed:
        session.rename_folder(step.old.name, new_name)
        crashpoints.step("folder-rename")
    db.rename_folder(step.old.name, new_name)
    log.info("renamed here to %s: renamed on the server too, no message copied", new_name)


def _remove_maildir(path: Path) -> None:
    """Remove a Maildir folder: its ``cur``/``new``/``tmp`` and its own files; the
    directory itself once empty (in the nested layout it may hold child folders)."""
    if not path.exists():
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            if entry.name in ("cur", "new", "tmp"):
                shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)  # noqa: PTH108 - a DirEntry path
    if not any(path.iterdir()):
        path.rmdir()
    fsync_dir(path.parent)
