"""The daemon: every account of a config kept in step, until it is stopped.

Each account is an :class:`~syncd.daemon.runner.AccountRunner` (its queue, worker,
IDLE listeners and watcher); the :class:`Daemon` starts them, reloads the config
(SIGHUP), serves ``syncd sync`` on its control socket
(:mod:`syncd.daemon.control`) and stops them.  Nothing here exits on a network
error.

Stopping (:meth:`Daemon.stop`): no new requests are accepted, each worker stops
at the next folder boundary or, inside a long folder, at the next batch boundary
(everything copied so far is committed; see ``RunOptions.cancel``), sessions are
logged out and the threads joined, within ``timeout``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING

from syncd.daemon.control import ControlServer, runtime_dir, socket_path
from syncd.daemon.queue import Tuning
from syncd.daemon.rendezvous import config_link_name
from syncd.status.runtime import StatusFile

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from syncd.account.syncer import SyncHooks
    from syncd.config import AccountConfig, Config


from syncd.daemon.runner import (
    DEFAULT_TUNING,
    STOP_TIMEOUT,
    AccountRunner,
    HooksFactory,
    SyncerFactory,
    default_hooks,
    default_syncer,
)

# The name it had before the package split: users' log filters use it.
logger = logging.getLogger("syncd.daemon")


def _make_scheduler() -> BackgroundScheduler:
    from apscheduler.schedulers.background import BackgroundScheduler

    # UTC: interval triggers need no local time zone (and tzlocal has nothing to guess).
    return BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1},
        daemon=True,
    )


class Daemon:
    """All accounts of a config, kept in step until :meth:`stop`.

    ``accounts`` restricts the daemon to those names (default: all, also after
    a reload).  :meth:`start` once; :meth:`reload` any number of times;
    :meth:`stop` once.  Not thread-safe: drive it from one thread (the CLI's
    main thread, which also receives the signals).
    """

    def __init__(
        self,
        config: Config,
        accounts: Sequence[str] = (),
        *,
        tuning: Tuning = DEFAULT_TUNING,
        syncer_factory: SyncerFactory = default_syncer,
        hooks_factory: HooksFactory = default_hooks,
        scheduler: BackgroundScheduler | None = None,
        config_stamp: list[int] | None = None,
    ) -> None:
        """``config_stamp``: the config file's :func:`~syncd.daemon.rendezvous.config_stamp`
        taken *before* it was read (None: unknown; ``syncd sync`` then always reads
        the config before it asks)."""
        self.config = config
        self.config_stamp = config_stamp
        self.only = tuple(accounts)
        self.tuning = tuning
        self.syncer_factory = syncer_factory
        self.hooks_factory = hooks_factory
        self.scheduler = scheduler if scheduler is not None else _make_scheduler()
        self.runners: dict[str, AccountRunner] = {}
        self.full_syncs = threading.BoundedSemaphore(max(1, tuning.full_syncs))
        self.control: ControlServer | None = None
        self.status = StatusFile(config.state_dir)

    def selected(self, config: Config) -> dict[str, AccountConfig]:
        """The accounts of ``config`` this daemon runs."""
        if not self.only:
            return dict(config.accounts)
        return {name: config.accounts[name] for name in self.only if name in config.accounts}

    def start(self) -> None:
        """Start every account.  ConfigError (invalid rules or plugins) before
        anything has started."""
        accounts = self.selected(self.config)
        hooks = {name: self.hooks_factory(self.config) for name in accounts}
        self.status.start()
        self.scheduler.start()
        for name, account in accounts.items():
            self._start_runner(self.config, account, hooks[name])
        self._start_control()

    def _start_control(self) -> None:
        try:
            link = runtime_dir() / config_link_name(str(self.config.path))
            control = ControlServer(self, socket_path(self.config.state_dir), link)
            control.start()
        except OSError as exc:
            logger.warning("no control socket (%s): `syncd sync` will not ride this daemon", exc)
            return
        self.control = control

    def _start_runner(
        self, config: Config, account: AccountConfig, hooks: SyncHooks | None
    ) -> None:
        runner = AccountRunner(
            config,
            account,
            scheduler=self.scheduler,
            tuning=self.tuning,
            syncer_factory=self.syncer_factory,
            hooks=hooks,
            status=self.status,
            full_syncs=self.full_syncs,
        )
        self.runners[account.name] = runner
        runner.start()

    def reload(self, config: Config, *, config_stamp: list[int] | None = None) -> list[str]:
        """Switch to ``config``: accounts that are new start, removed ones stop,
        changed ones restart (after finishing their current folder).  Returns
        one line per change, for the log.  ConfigError (invalid rules or
        plugins) before anything has changed.  ``config_stamp`` as for the
        constructor."""
        new = self.selected(config)
        restart_all = (config.state_dir, config.plugins) != (
            self.config.state_dir,
            self.config.plugins,
        )
        changes: list[str] = []
        leaving = {
            name: "removed" if name not in new else "changed, restarting"
            for name, runner in self.runners.items()
            if name not in new or restart_all or new[name] != runner.account
        }
        starting = [name for name in new if name not in self.runners or name in leaving]
        hooks = {name: self.hooks_factory(config) for name in starting}
        stopping: list[AccountRunner] = []
        for name, what in leaving.items():
            changes.append(f"{name}: {what}")
            runner = self.runners.pop(name)
            runner.request_stop()
            stopping.append(runner)
            self.status.drop(name)
        # The old worker must let go of the account (its lock and state) first.
        deadline = time.monotonic() + STOP_TIMEOUT
        for runner in stopping:
            if not runner.join(deadline):
                runner.log.warning("still finishing a folder; the new settings apply after it")
        if config.state_dir != self.config.state_dir:
            self.status.remove()
            self.status = StatusFile(config.state_dir)
            self.status.start()
        for name in starting:
            if name not in leaving:
                changes.append(f"{name}: added")
            self._start_runner(config, new[name], hooks[name])
        self.config = config
        self.config_stamp = config_stamp
        return changes

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop everything; returns the accounts whose worker was still busy at
        ``timeout`` (their state is committed per batch, so exiting is safe)."""
        self.scheduler.shutdown(wait=False)
        if self.control is not None:
            self.control.stop()
        for runner in self.runners.values():
            runner.request_stop()
        deadline = time.monotonic() + timeout
        busy = [name for name, runner in self.runners.items() if not runner.join(deadline)]
        self.status.remove()
        return busy
