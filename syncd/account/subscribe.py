"""Folder subscriptions, synced: the server's (``LSUB``) and the Maildir's
(Dovecot's ``subscriptions`` file, :mod:`syncd.stores.maildir.subscriptions`) are
merged three-way against the last agreed set in the state
(:mod:`syncd.engine.subscriptions`); ``subscribed_only`` then syncs only those.

Only folders the config selects take part; the others' subscriptions are left as
they are on both sides.  One ``LSUB`` per full run; a targeted run (the daemon's
IDLE or watcher syncs) asks nothing and uses the last agreed set.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.engine.subscriptions import merge_subscriptions
from syncd.errors import FolderError, UnsafeNameError
from syncd.folders import join_name, matches, split_name
from syncd.stores.maildir.subscriptions import read_subscriptions, write_subscriptions

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.stores.imap.session import ImapSession

Parts = tuple[str, ...]


def _both_sides(
    account: AccountConfig, session: ImapSession, delimiter: str | None
) -> tuple[dict[Parts, str], set[Parts] | None]:
    """The server's subscribed folders (parts -> server name) and the Maildir's
    (None when there is no Maildir yet).  FolderError when either cannot be read."""
    listed = {
        split_name(info.name, info.delimiter or delimiter): info.name
        for info in session.subscribed()
    }
    near = (
        read_subscriptions(account.maildir, layout=account.layout, names=account.local_names)
        if account.maildir.is_dir()
        else None
    )
    return listed, near


def sync_subscriptions(
    account: AccountConfig,
    session: ImapSession,
    db: StateDB,
    *,
    push: bool,
    pull: bool,
    dry_run: bool,
    errors: list[FolderReport],
    log: logging.LoggerAdapter[logging.Logger],
) -> frozenset[Parts]:
    """Merge and write the subscriptions of both sides; returns the folders
    subscribed now (selected by the config).  A side that cannot be read or
    written is said in one line and the last agreed set is kept."""
    delimiter = session.delimiter()

    def selected(parts: Parts) -> bool:
        return matches(parts, account.folders, account.exclude)

    base = {p for p in db.subscriptions() if selected(p)}
    try:
        listed, near_all = _both_sides(account, session, delimiter)
    except FolderError as exc:
        log.warning("subscriptions not synced this time: %s", exc)
        return frozenset(base)
    far = {p for p in listed if selected(p)}
    near = {p for p in near_all if selected(p)} if near_all is not None else None
    plan = merge_subscriptions(base, far, near, push=push, pull=pull)
    if dry_run:
        lines = plan.lines() + (["write the local subscriptions file"] if plan.near_changed else [])
        for line in lines:
            log.info("would %s", line)
        if lines:
            errors.append(FolderReport("subscriptions", planned=lines))
        return plan.agreed
    try:
        for parts in sorted(plan.subscribe):
            session.subscribe(join_name(parts, delimiter))
            log.info("subscribed %s on the server (subscribed here)", "/".join(parts))
        for parts in sorted(plan.unsubscribe):
            session.subscribe(listed[parts], on=False)
            log.info("unsubscribed %s on the server (unsubscribed here)", "/".join(parts))
        if plan.near_changed:
            # The names outside the selection stay in the file as they were.
            others = {p for p in near_all or () if not selected(p)}
            write_subscriptions(
                account.maildir,
                others | plan.agreed,
                names=account.local_names,
                fsync=account.fsync,
            )
            for parts in sorted(plan.agreed - (near or set())):
                log.info("subscribed %s here (subscribed on the server)", "/".join(parts))
            for parts in sorted((near or set()) - plan.agreed):
                log.info("unsubscribed %s here (unsubscribed on the server)", "/".join(parts))
    except (FolderError, UnsafeNameError) as exc:
        log.warning("subscriptions not synced this time: %s", exc)
        return frozenset(base)
    if plan.agreed != base:
        db.set_subscriptions(plan.agreed)
    return plan.agreed


def subscribed_filter(
    account: AccountConfig,
    session: ImapSession,
    db: StateDB,
    *,
    targeted: bool,
    push: bool,
    pull: bool,
    dry_run: bool,
    errors: list[FolderReport],
    log: logging.LoggerAdapter[logging.Logger],
) -> frozenset[Parts] | None:
    """Sync the subscriptions (a full run) and return the folders to keep under
    ``subscribed_only`` (INBOX and the trash always), or None to keep them all."""
    if targeted:
        agreed = frozenset(db.subscriptions())
    else:
        agreed = sync_subscriptions(
            account, session, db, push=push, pull=pull, dry_run=dry_run, errors=errors, log=log
        )
    if not account.subscribed_only:
        return None
    always = {("INBOX",)} | ({split_name(account.trash, "/")} if account.trash else set())
    return agreed | always


def move_subscription(
    account: AccountConfig,
    session: ImapSession,
    db: StateDB,
    old: Parts,
    new: Parts,
    *,
    log: logging.LoggerAdapter[logging.Logger],
) -> None:
    """A folder was renamed ``old`` -> ``new``: its subscription follows it on both
    sides and in the baseline (a server's RENAME leaves subscriptions where they
    are -- Dovecot's does).  Nothing happens for a folder subscribed nowhere."""
    delimiter = session.delimiter()
    base = db.subscriptions()
    try:
        listed, near = _both_sides(account, session, delimiter)
        if old in listed:
            session.subscribe(join_name(new, delimiter))
            session.subscribe(listed[old], on=False)
        if near is not None and old in near:
            write_subscriptions(
                account.maildir,
                (near - {old}) | {new},
                names=account.local_names,
                fsync=account.fsync,
            )
    except (FolderError, UnsafeNameError) as exc:
        log.warning("the subscription did not follow the rename: %s", exc)
        return
    if old in base:
        db.set_subscriptions((base - {old}) | {new})
