"""Which syncer an account gets: by its ``protocol``."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from syncd.account.syncer import AccountReport, SyncHooks
    from syncd.config import AccountConfig, Config
    from syncd.engine.options import RunOptions


class Syncer(Protocol):
    """What the CLI and the daemon ask of an account's syncer."""

    def sync(
        self,
        options: RunOptions,
        folders: Collection[str] | None = None,
        *,
        lock_wait: float | None = 0,
    ) -> AccountReport:
        """Sync once; never raises a SyncdError (see ``AccountSyncer.sync``)."""

    def close(self) -> None:
        """Drop connections and the state database."""


def syncer_for(config: Config, account: AccountConfig, hooks: SyncHooks | None = None) -> Syncer:
    """An :class:`~syncd.account.syncer.AccountSyncer` for an IMAP account, a
    :class:`~syncd.account.pop3.Pop3Syncer` for a POP3 one."""
    if account.protocol == "pop3":
        from syncd.account.pop3 import Pop3Syncer

        return Pop3Syncer(config, account, hooks=hooks)
    from syncd.account.syncer import AccountSyncer

    return AccountSyncer(config, account, hooks=hooks)
