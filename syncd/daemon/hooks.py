"""The daemon's side of ``SyncHooks``: stop between folders, and tell the Maildir
watcher which changes are syncd's own."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from syncd.daemon.watch import EchoFilter
from syncd.engine.options import SyncCancelled
from syncd.errors import UnsafeNameError
from syncd.folders import local_path, split_name
from syncd.stores.maildir.fsio import directory_signature

if TYPE_CHECKING:
    from syncd.account.syncer import AccountReport, SyncHooks
    from syncd.config import AccountConfig
    from syncd.stores.imap.session import ImapSession


class DaemonHooks:
    """The daemon's side of ``SyncHooks``: stop between folders, and tell the
    watcher what syncd itself writes (each folder is *busy* while its own sync
    runs, and its signature right after is remembered as syncd's), then delegate
    to the configured hooks, if any.

    The engine calls ``before_folder`` only between folders, so raising
    :class:`SyncCancelled` there never interrupts a folder half-way.
    ``folder_started``/``folder_finished`` bracket each folder's own sync, on the
    thread that runs it (folders may sync side by side).
    """

    def __init__(
        self,
        account: AccountConfig,
        cancel: threading.Event,
        echo: EchoFilter,
        inner: SyncHooks | None = None,
    ) -> None:
        self.account = account
        self.cancel = cancel
        self.echo = echo
        self.inner = inner
        self._lock = threading.Lock()  # folders may sync side by side
        self._parts: dict[str, tuple[str, ...]] = {}

    def before_account(self, *, account: AccountConfig) -> None:
        if self.inner is not None:
            self.inner.before_account(account=account)

    def before_folder(
        self, *, account: AccountConfig, session: ImapSession, folder: str
    ) -> list[str]:
        if self.cancel.is_set():
            raise SyncCancelled
        if session.selected == folder:
            # The engine may ask STATUS first, and a server answers STATUS of the
            # mailbox this session still has selected from the last cycle from the
            # session's own, stale view (Dovecot does; RFC 3501 6.3.10 warns against
            # it): a NOOP brings that view up to date.  Only a long-lived session
            # (the daemon's) meets this.
            session.noop()
        if self.inner is not None:
            return self.inner.before_folder(account=account, session=session, folder=folder)
        return []

    def after_account(self, *, account: AccountConfig, report: AccountReport) -> None:
        if self.inner is not None:
            self.inner.after_account(account=account, report=report)

    def folder_started(self, *, folder: str, session: ImapSession) -> None:
        parts = split_name(folder, session.delimiter())
        with self._lock:
            self._parts[folder] = parts
        self.echo.begin(parts)

    def folder_finished(self, *, folder: str, session: ImapSession) -> None:
        # Not session.delimiter() again: the sync may have left the session dead.
        with self._lock:
            parts = self._parts.pop(folder, None)
        if parts is None:
            return
        try:
            path = local_path(
                self.account.maildir, parts, self.account.layout, names=self.account.local_names
            )
        except UnsafeNameError:
            self.echo.end(parts, None)
            return
        self.echo.end(parts, directory_signature(path))
