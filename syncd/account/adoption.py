"""Adopting another sync tool's Maildir, at the account level (issue 10).

When an account has an ``[accounts.NAME.adopt]`` table and some of its folders have
no syncd state yet, the tool's record is read once (:mod:`syncd.adopt`: nothing is
written, the server is not contacted) and each such folder job gets a
:class:`~syncd.engine.seed.Seed`: the tool's folder whose directory is the job's
(``local_path`` under the account's layout and local names), else an empty seed
that says so -- the engine then pairs by content, ignoring the tool's headers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from syncd.adopt.common import AdoptedFolder, AdoptError
from syncd.adopt.mbsync import MbsyncStore, read_mbsync_store
from syncd.adopt.offlineimap import OfflineimapAccount, read_offlineimap_account
from syncd.engine.seed import Seed
from syncd.engine.state import StateDB

if TYPE_CHECKING:
    from syncd.account.prepare import Job
    from syncd.config import AccountConfig, AdoptSettings
    from syncd.config.adopt import SubFolders


def read_adopted(account: AccountConfig, settings: AdoptSettings) -> list[AdoptedFolder]:
    """Every folder the tool left a record of, read with the account's paths.

    What the table does not say is taken from the account: the Maildir root is
    mbsync's ``Path`` (``Inbox`` for Maildir++) and offlineimap's ``localfolders``;
    the layout gives mbsync's ``SubFolders``/``Flatten`` and offlineimap's ``sep``;
    ``local_names = "utf-8"`` means the tool wrote UTF-8 names.  AdoptError when a
    file of the tool cannot be read."""
    utf8 = account.local_names == "utf-8"
    root = account.maildir
    if settings.tool == "offlineimap":
        assert settings.metadata is not None
        assert settings.account is not None and settings.remote_repository is not None
        return read_offlineimap_account(
            OfflineimapAccount(
                localfolders=root,
                metadata=settings.metadata,
                account=settings.account,
                remote_repository=settings.remote_repository,
                sep="/" if account.layout == "nested" else ".",
                utf8=utf8,
            )
        )
    assert settings.sync_state is not None
    default: SubFolders = "maildir++" if account.layout == "maildir++" else "verbatim"
    subfolders = settings.subfolders or default
    maildirpp = subfolders == "maildir++"
    store = MbsyncStore(
        inbox=settings.inbox or (root if maildirpp else root / "INBOX"),
        path=None if maildirpp else root,
        subfolders=subfolders,
        flatten=settings.flatten or ("." if account.layout == "flat" else None),
        sync_state=settings.sync_state,
        utf8=utf8,
        global_state_stores=settings.state_stores,
    )
    return read_mbsync_store(store)


def seed_of(folder: AdoptedFolder) -> Seed:
    return Seed(
        source=folder.source,
        uidvalidity=folder.uidvalidity,
        pairs=tuple(folder.state_pairs()),
        gone=tuple((g.far, g.flags) for g in folder.gone),
        notes=folder.notes,
    )


def _key(path: Path) -> str:
    return os.path.normpath(path)


def needs_adoption(db: StateDB, far_name: str) -> bool:
    """No syncd state for the folder yet (never synced, or a first sync that died
    before recording anything)."""
    st = db.folder(far_name)
    return st is None or (st.uidvalidity is None and db.count_pairs(st.id) == 0)


def attach_seeds(
    account: AccountConfig,
    jobs: Sequence[Job],
    db: StateDB,
    log: logging.LoggerAdapter[logging.Logger],
) -> list[str]:
    """Give each job without syncd state its seed; returns account-level lines (what
    of the tool's record no job uses, and why).  Nothing is read when every folder
    has syncd state already."""
    settings = account.adopt
    if settings is None:
        return []
    fresh = [j for j in jobs if needs_adoption(db, j.far_name)]
    if not fresh:
        return []
    tool = settings.tool
    try:
        adopted = read_adopted(account, settings)
    except AdoptError as exc:
        line = f"cannot read {tool}'s state ({exc}); the first sync pairs by content instead"
        log.warning("%s", line)
        for job in fresh:
            job.seed = Seed(tool, None, notes=(line,))
        return [line]
    by_dir = {_key(f.maildir_path): f for f in adopted}
    for job in fresh:
        folder = by_dir.pop(_key(job.near.path), None)
        if folder is None:
            job.seed = Seed(tool, None, notes=(f"{tool} left no state for {job.near.path}",))
        else:
            job.seed = seed_of(folder)
    synced = {_key(j.near.path) for j in jobs}
    lines = []
    for path, folder in sorted(by_dir.items()):
        why = (
            "it has syncd state already (adopted before)"
            if path in synced
            else "no folder syncd syncs has this directory (excluded by folders/exclude, or "
            "another layout or spelling of its name)"
        )
        lines.append(
            f"{tool} folder {folder.server_name} ({folder.maildir_path}): not adopted: {why}"
        )
    return lines
