"""One sync of a POP3 account: download what is new into the Maildir INBOX, then
delete on the server what the account says may go.

The download is the engine's ordinary cycle on a :class:`~syncd.stores.pop3.store.
Pop3Folder` (pull-only, a mail drop: see its capabilities), so each message is
downloaded once -- its UIDL is paired in the state -- and a crash leaves intents
that the next run settles.  The deletion is this module's: only messages whose
pair the state holds (stored, fsynced, recorded by the engine) are marked with
DELE, after a ``delete`` intent is recorded, and QUIT makes them final.  A crash
or a cut before QUIT's answer deletes nothing (RFC 1939 §6); the next run finds
them on the server, already paired, and deletes them then.

``keep_on_server = false``: everything stored is deleted in the same session.
``delete_after_days = N``: a message is deleted N days after syncd first saw it
stored here (remembered per UIDL; ``now`` is injectable for tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from syncd import crashpoints
from syncd.account.lock import AccountLock
from syncd.account.root import check_root
from syncd.account.syncer import AccountReport, SyncHooks
from syncd.engine.cycle import FolderSync
from syncd.engine.options import RunOptions, policy_for
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.errors import AccountError, CredentialError, FolderError, LockedError, ProtocolError
from syncd.folders import local_path
from syncd.logsetup import account_logger
from syncd.model import NO_FLAGS, MsgKey
from syncd.stores.maildir.folder import MaildirFolder
from syncd.stores.maildir.store import MaildirStore
from syncd.stores.pop3.client import NoUidlError, Pop3Client
from syncd.stores.pop3.store import INBOX, Pop3Folder

if TYPE_CHECKING:
    import logging

    from syncd.config import AccountConfig, Config

    Log = logging.LoggerAdapter[logging.Logger]

DAY = 86400.0


def open_client(account: AccountConfig) -> Pop3Client:
    """Connect and log in with the account's password source or OAuth2 token."""
    from syncd.auth.credentials import password_source_for

    oauth2 = account.auth == "oauth2"
    return Pop3Client.connect(
        host=account.host,
        user=account.user,
        port=account.port,
        tls=account.tls,
        ca_file=account.ca_file,
        password=None if oauth2 else password_source_for(account),
        oauth2_token=_token_source(account) if oauth2 else None,
        auth="oauth2" if oauth2 else account.pop3_login,
        timeout=account.timeout,
        label=account.name,
    )


def _token_source(account: AccountConfig) -> Callable[[], str]:
    from syncd.auth.authenticators import authenticator_for
    from syncd.auth.oauth2 import OAuth2Authenticator, TokenCommandAuthenticator
    from syncd.logsetup import add_secret

    auth = authenticator_for(account)
    if isinstance(auth, OAuth2Authenticator):
        return auth.tokens.access_token
    assert isinstance(auth, TokenCommandAuthenticator)
    command = auth.command

    def token() -> str:
        value = command.password()
        add_secret(value)
        return value

    return token


class Pop3Syncer:
    """Syncs one POP3 account, once (the CLI) or on every poll (the daemon).  The
    same interface as :class:`~syncd.account.syncer.AccountSyncer`; no connection
    is kept between syncs (POP3 locks the maildrop while a session is open)."""

    def __init__(
        self,
        config: Config,
        account: AccountConfig,
        *,
        hooks: SyncHooks | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.account = account
        self.hooks = hooks
        self.now = now
        self.log = account_logger(account.name)
        self._db: StateDB | None = None

    @property
    def db(self) -> StateDB:
        if self._db is None:
            self._db = StateDB(self.config.state_dir / f"{self.account.name}.db")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def sync(
        self,
        options: RunOptions,
        folders: Collection[str] | None = None,
        *,
        lock_wait: float | None = 0,
    ) -> AccountReport:
        """Download what is new and delete what may go; never raises a SyncdError
        (the outcome is in the report).  ``folders`` is ignored: there is only INBOX."""
        report = AccountReport(self.account.name)
        try:
            lock = AccountLock(self.config.state_dir, self.account.name)
            lock.acquire(wait=lock_wait)
            try:
                if self.hooks is not None:
                    self.hooks.before_account(account=self.account)
                report.folders.extend(self._sync(options))
            finally:
                lock.release()
        except LockedError as exc:
            report.locked = True
            report.error = str(exc)
            self.log.error("%s", exc)
        except (AccountError, CredentialError) as exc:
            report.error = str(exc)
            self.log.error("%s", exc)
            self._record(str(exc), options)
        finally:
            if self.hooks is not None:
                self.hooks.after_account(account=self.account, report=report)
        return report

    def _record(self, error: str | None, options: RunOptions) -> None:
        if options.dry_run:
            return
        st = self.db.folder(INBOX)
        if st is not None:
            self.db.record_result(st.id, error)

    def _sync(self, options: RunOptions) -> list[FolderReport]:
        account, db = self.account, self.db
        check_root(account, db, options, [f for f in db.folders() if f.last_sync is not None])
        near = MaildirStore(
            MaildirFolder(
                local_path(account.maildir, (INBOX,), account.layout, names=account.local_names),
                fsync=account.fsync,
            )
        )
        log = account_logger(account.name, INBOX)
        client = open_client(account)
        try:
            far = Pop3Folder(client, log, digest_keys=self._no_uidl_mode(client))
            st = db.ensure_folder(INBOX)
            pending = [i for i in db.intents(st.id) if i.kind == "delete"]
            if pending:
                log.info(
                    "a previous run was deleting %d messages on the server when it stopped; "
                    "checking them again",
                    len(pending),
                )
            try:
                report = self._download(far, near, options)
            except NoUidlError as exc:
                if not self._may_drain():
                    raise AccountError(_no_uidl_line(str(exc))) from None
                far = Pop3Folder(client, log, digest_keys=True)
                report = self._download(far, near, options)
            report.failed += len(far.refused)
            collected = self._collect(st.id, near, options, log)
            self._delete(far, st.id, options, report)
        except (FolderError, ProtocolError) as exc:
            client.close()
            log.error("%s", exc)
            self._record(str(exc), options)
            return [FolderReport(INBOX, error=str(exc))]
        except BaseException:
            client.close()  # nothing marked is deleted
            raise
        if report.changed() or options.dry_run:
            log.info("%s%s", "plan: " if options.dry_run else "", report.summary())
        self._record(None, options)
        return [report] if collected is None else [report, collected]

    def _collect(
        self, folder_id: int, near: MaildirStore, options: RunOptions, log: Log
    ) -> FolderReport | None:
        """``collect_into``: append what is stored here to the IMAP account's folder."""
        into = self.account.collect_into
        if into is None or options.dry_run:
            return None
        from syncd.account.collect import collect

        return collect(
            db=self.db,
            folder_id=folder_id,
            near=near,
            target=self.config.accounts[into[0]],
            folder=into[1],
            log=log,
        )

    def _may_drain(self) -> bool:
        return self.account.allow_no_uidl and not self.account.keep_on_server

    def _no_uidl_mode(self, client: Pop3Client) -> bool:
        if client.has_uidl:
            return False
        if not self._may_drain():
            raise AccountError(_no_uidl_line("the server does not support UIDL"))
        return True

    def _download(self, far: Pop3Folder, near: MaildirStore, options: RunOptions) -> FolderReport:
        return FolderSync(
            far=far,
            near=near,
            db=self.db,
            policy=policy_for("pull", expunge=False),
            options=options,
            log=account_logger(self.account.name, INBOX),
            new_to_new=True,
        ).run()

    def _due(self, far: Pop3Folder, folder_id: int, *, record: bool) -> list[MsgKey]:
        """The messages on the server that are stored here and may now be deleted;
        ``record``: remember now as the first time the new ones were seen stored."""
        present = far.list_all(sizes=False)
        stored = [p.far for p in self.db.pairs(folder_id) if p.far is not None and p.far in present]
        into = self.account.collect_into
        if into is not None:
            # Collected first: a message leaves the server only once it is in the
            # IMAP folder too (or that server refused it for good).
            done = self.db.collected(folder_id, "/".join(into))
            stored = [k for k in stored if done.get(k, (None, None, None))[2] is not None]
        now = self.now()
        if record:
            self.db.note_stored(folder_id, stored, now)
        if not self.account.keep_on_server:
            return stored
        days = self.account.delete_after_days
        if days is None:
            return []
        since = self.db.stored_times(folder_id)
        return [k for k in stored if k in since and since[k] + days * DAY <= now]

    def _delete(
        self, far: Pop3Folder, folder_id: int, options: RunOptions, report: FolderReport
    ) -> None:
        """DELE what is due, then QUIT (which ends the session either way)."""
        if options.dry_run:
            due = self._due(far, folder_id, record=False)
            report.planned.extend(f"delete far {k} (stored here)" for k in due)
            report.deleted_far = len(due)
            far.close()
            return
        due = self._due(far, folder_id, record=True)
        if not due:
            far.commit()
            return
        ids = self.db.add_intents(folder_id, "delete", [(k, None, NO_FLAGS, None) for k in due])
        crashpoints.step("pop3-delete-intent")
        far.mark_deleted(due)
        crashpoints.step("pop3-dele")
        far.commit()
        crashpoints.step("pop3-quit")
        self.db.forget_intents(ids)
        self.db.forget_stored(folder_id, due)
        report.deleted_far += len(due)
        st = self.db.folder(INBOX)
        if st is not None and st.far_count is not None:
            self.db.update_folder(folder_id, far_count=max(0, st.far_count - len(due)))
        self.log.debug("deleted %d messages on the server", len(due))


def _no_uidl_line(problem: str) -> str:
    return (
        f"{problem}: without UIDL syncd cannot tell new mail from mail it already "
        "downloaded, so keep_on_server = true is refused; to download and delete "
        "everything instead, set keep_on_server = false and allow_no_uidl = true"
    )
