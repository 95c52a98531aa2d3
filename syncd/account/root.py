"""The account's Maildir root is the one synced before, never an empty mount point."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from syncd.errors import AccountError

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.engine.options import RunOptions
    from syncd.engine.state import FolderState, StateDB

ROOT_MARKER = ".syncd-maildir"  # tells the Maildir syncd synced from an empty mount point


def check_root(
    account: AccountConfig, db: StateDB, options: RunOptions, known: Sequence[FolderState]
) -> None:
    """Make sure the account's Maildir root is the one synced before (``known``:
    the folders synced into it) -- never an empty mount point -- creating it and
    its marker on a first sync.  AccountError when it is not."""
    root = account.maildir
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
                f"This directory is the Maildir of syncd account {account.name!r}.\n"
                "syncd refuses to sync it when this file is missing (an unmounted disk).\n"
            )
