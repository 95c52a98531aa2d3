"""Pairing the folders of both sides of an account, before any is synced.

On the main connection: list the server's folders and the Maildir's, keep those
the config selects, create what is missing on the server (the trash first), and
give each pair its job.  What the rules (hooks) plan for a folder is asked here
too, through the ``before_folder`` callback the account syncer passes in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd import crashpoints
from syncd.account.folderlife import FolderLife, settle_folders
from syncd.account.rights import policy_for_rights
from syncd.account.subscribe import subscribed_filter
from syncd.engine.reconcile import Policy
from syncd.engine.report import FolderReport
from syncd.engine.seed import Seed
from syncd.engine.state import StateDB
from syncd.errors import FolderError
from syncd.folders import (
    clashes,
    inbox_first,
    join_name,
    local_path,
    matches,
    selectable,
    selectable_folders,
    split_name,
)
from syncd.logsetup import account_logger
from syncd.stores.maildir.discover import discover
from syncd.stores.maildir.folder import MaildirFolder

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.stores.imap.session import ImapSession, StatusInfo


@dataclass
class Job:
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
    seed: Seed | None = None  # another tool's record, for a first sync (account.adoption)


#: Asked for each folder about to be synced (the rules' hook); returns planned lines.
BeforeFolder = Callable[[str], list[str]]


def prepare_folders(
    account: AccountConfig,
    session: ImapSession,
    db: StateDB,
    *,
    policy: Policy,
    dry_run: bool,
    errors: list[FolderReport],
    log: logging.LoggerAdapter[logging.Logger],
    only: Collection[str] | None = None,
    before_folder: BeforeFolder | None = None,
    allow_mass_delete: bool = False,
) -> list[Job]:
    """Pair the folders of both sides, create the missing server folders and run
    ``before_folder`` (rules) for each, all on the main connection; returns what to
    sync.  Folders that fail here are added to ``errors``."""
    delimiter = session.delimiter()
    for reason in getattr(session, "rejected_names", []):
        log.error("server folder refused: %s", reason)
        errors.append(FolderReport("?", error=reason))
    far = selectable_folders(session.list_folders(), delimiter)
    near_parts: list[tuple[str, ...]] = []
    if account.maildir.is_dir():
        near_parts, problems = discover(account.maildir, account.layout, names=account.local_names)
        for problem in problems:
            log.warning("%s", problem)
    # Folders renamed or deleted since the last sync, on either side (folderlife).
    life = settle_folders(
        account,
        session,
        db,
        FolderLife(far, near_parts),
        push=policy.push,
        pull=policy.pull,
        dry_run=dry_run,
        allow_delete=allow_mass_delete,
        errors=errors,
    )
    far, near_parts = life.far, life.near
    keep = subscribed_filter(
        account,
        session,
        db,
        targeted=only is not None,
        push=policy.push,
        pull=policy.pull,
        dry_run=dry_run,
        errors=errors,
        log=log,
    )
    wanted = {split_name(n, "/") for n in only} if only is not None else None
    names = sorted(
        {
            p
            for p in (*far, *near_parts)
            if matches(p, account.folders, account.exclude)
            and (wanted is None or p in wanted)
            and p not in life.skip
            and (keep is None or p in keep)
        },
        key=inbox_first,
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
        and not dry_run
        and matches(trash_parts, account.folders, account.exclude)
    ):
        # Created now, so it is synced in this run after the folders that fill it.
        log.info("creating the trash folder %s on the server", trash)
        session.create_folder(trash)
        crashpoints.step("folder-create")
        far[trash_parts] = trash
        if wanted is None:
            names.append(trash_parts)
    jobs: list[Job] = []

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
                if dry_run:
                    folder_log.info("would create the folder on the server")
                    errors.append(FolderReport(far_name, planned=["create far folder"]))
                    return
                folder_log.info("creating the folder on the server")
                session.create_folder(far_name)
                crashpoints.step("folder-create")
            elif not near.exists() and not policy.pull:
                return
            planned = before_folder(far_name) if before_folder is not None else []
            job_policy = policy_for_rights(
                session, db, far_name, policy, folder_log, dry_run=dry_run
            )
        except FolderError as exc:
            folder_log.error("%s", exc)
            errors.append(FolderReport(shown, error=str(exc)))
            st = db.folder(far_name) if not dry_run else None
            if st is not None:
                db.record_result(st.id, str(exc))
            return
        jobs.append(
            Job(
                shown,
                far_name,
                near,
                job_policy,
                trash,
                account.new_to_new,
                planned,
                folder_log,
                last=far_name == trash,
            )
        )

    for parts in names:
        prepare(parts)
    if before_folder is not None and not dry_run:
        # Rules may have created target folders (and filed mail into them): sync
        # those in this same run, so the Maildir ends in the filed state.
        done = set(names)
        for info in session.list_folders():
            parts = split_name(info.name, info.delimiter or delimiter)
            if (
                parts in done
                or not selectable(info.flags)
                or not matches(parts, account.folders, account.exclude)
                or (wanted is not None and parts not in wanted)
                or parts in life.skip
                or (keep is not None and parts not in keep)
            ):
                continue
            far[parts] = info.name
            done.add(parts)
            prepare(parts)
    return jobs
