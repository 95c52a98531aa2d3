"""The daemon's coordinator: one queue and one worker thread per account.

Everything that wants a sync only *posts a request* into the account's
:class:`RequestQueue`: the scheduler tick ("full"), IDLE listeners and the
Maildir watcher ("folder X").  The account's worker thread takes what is
pending as one :class:`Batch` (a pending full sync absorbs folder requests;
repeated requests collapse) and runs it with the account's
:class:`~syncd.account.syncer.AccountSyncer`, which is used from that thread only.  So
syncs of one account never overlap, and a burst of events costs one sync.

The account lock is taken per sync call (``AccountSyncer.sync``): a one-shot
``syncd sync`` started while the daemon is in the middle of a sync exits 75
("being synced by another syncd process"); one started between two daemon syncs
runs, and the daemon waits for it (:data:`~syncd.daemon.queue.LOCK_WAIT`, then retries every
:data:`~syncd.daemon.queue.LOCK_RETRY`).  There are never two writers.

Faults: a sync whose report has ``error`` set (server unreachable, connection
dropped, login refused) is retried at once when the last sync had worked (a
stale connection after a server restart or a kick is the common case), then
with exponential back-off (:class:`~syncd.daemon.queue.Backoff`: 5 s doubling to 5 min, jittered).
The error is logged once per outage, not once per retry, and the end of the
outage is logged too.  Nothing here exits on a network error.

Stopping (:meth:`Daemon.stop`): no new requests are accepted, each worker stops
at the next folder boundary or, inside a long folder, at the next batch boundary
(everything copied so far is committed; see ``RunOptions.cancel``), sessions are
logged out and the threads joined, within ``timeout``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Final

from syncd.account.factory import Syncer, syncer_for
from syncd.daemon.hooks import DaemonHooks
from syncd.daemon.idle import IdleListener
from syncd.daemon.queue import Backoff, Batch, RequestQueue, Tuning
from syncd.daemon.watch import EchoFilter, MaildirWatcher
from syncd.engine.options import RunOptions, SyncCancelled
from syncd.logsetup import account_logger

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from syncd.account.syncer import SyncHooks
    from syncd.config import AccountConfig, Config


#: The timings of a daemon that nobody tuned (a Tuning is frozen: one can be shared).
DEFAULT_TUNING: Final = Tuning()

# The name it had before the package split: users' log filters use it.
logger = logging.getLogger("syncd.daemon")

#: How long a stop waits for the workers by default (a folder step in flight).
STOP_TIMEOUT: Final = 10.0


class _RepeatFilter(logging.Filter):
    """Drops repeats of account-level errors while an outage is being retried.

    ``AccountSyncer.sync`` logs every failed attempt at ERROR; the daemon wants
    one line per outage.  Attached to the account's logger for the daemon's
    lifetime; only records of the account itself (not its folders) at ERROR
    and above are dropped (the daemon's own notes are warnings), and only
    while ``active``.  Shown at DEBUG level
    (``-v``) instead.
    """

    def __init__(self, account: str) -> None:
        super().__init__()
        self.account = account
        self.active = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.active or record.levelno < logging.ERROR:
            return True
        if getattr(record, "syncd_context", None) != self.account:
            return True
        if logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return True
        return False


# --------------------------------------------------------------------------- hooks
# --------------------------------------------------------------------------- one account


SyncerFactory = Callable[["Config", "AccountConfig", "SyncHooks"], Syncer]


HooksFactory = Callable[["Config"], "SyncHooks | None"]


def _default_syncer(config: Config, account: AccountConfig, hooks: SyncHooks) -> Syncer:
    return syncer_for(config, account, hooks)


def _default_hooks(config: Config) -> SyncHooks:
    """The rules and plugins, as ``syncd sync`` runs them (never a mass delete)."""
    from syncd.ext.hooks import load_hooks

    return load_hooks(config)


class AccountRunner:
    """One account in the daemon: its queue, worker thread, IDLE listeners,
    Maildir watcher and scheduler job.  ``start`` once, ``stop`` once."""

    def __init__(
        self,
        config: Config,
        account: AccountConfig,
        *,
        scheduler: BackgroundScheduler | None,
        tuning: Tuning = DEFAULT_TUNING,
        syncer_factory: SyncerFactory = _default_syncer,
        hooks: SyncHooks | None = None,
    ) -> None:
        """``hooks``: the configured engine hooks (rules, plugins), built by the
        caller so that a bad config fails there; used in the worker thread only."""
        self.config = config
        self.account = account
        self.scheduler = scheduler
        self.tuning = tuning
        self.syncer_factory = syncer_factory
        self.hooks = hooks
        self.log = account_logger(account.name)
        self.queue = RequestQueue()
        self.echo = EchoFilter()
        self.cancel = threading.Event()
        self.backoff = Backoff(tuning.backoff_initial, tuning.backoff_cap)
        self.syncs = 0  # completed sync calls, for tests and the benchmark
        self._repeat = _RepeatFilter(account.name)
        self._locked = False
        self._worker = threading.Thread(
            target=self._work, name=f"syncd-{account.name}", daemon=True
        )
        self.watcher = MaildirWatcher(
            account,
            post_folder=self.queue.post_folder,
            post_full=self.queue.post_full,
            echo=self.echo,
            debounce=tuning.debounce,
        )
        self.listeners = [
            IdleListener(
                account,
                folder,
                post=self.queue.post_folder,
                backoff=Backoff(tuning.backoff_initial, tuning.backoff_cap),
                slice_seconds=tuning.idle_slice,
            )
            for folder in self._idle_folders()
        ]

    def _idle_folders(self) -> list[str]:
        # The syncer's own connection counts against max_connections.
        budget = max(0, self.account.max_connections - 1)
        folders = list(dict.fromkeys(self.account.idle))
        if len(folders) > budget:
            self.log.warning(
                "max_connections = %d leaves room for IDLE on %d of %d folders; "
                "not watching %s (they are synced every %s)",
                self.account.max_connections,
                budget,
                len(folders),
                ", ".join(folders[budget:]),
                _duration(self.account.interval),
            )
        return folders[:budget]

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        logging.getLogger(self.log.logger.name).addFilter(self._repeat)
        self.queue.post_full()
        self._worker.start()
        if self.scheduler is not None:
            interval = self.account.interval
            self.scheduler.add_job(
                self.queue.post_full,
                "interval",
                seconds=interval,
                id=self.account.name,
                name=f"full sync of {self.account.name}",
                coalesce=True,
                max_instances=1,
                # A tick late by up to one interval (suspend, busy pool) still runs;
                # the default of 1 s would silently drop it (LIBRARIES.md §2).
                misfire_grace_time=max(1, int(interval)),
                replace_existing=True,
            )
        if self._watches and self.account.maildir.is_dir():
            self.watcher.start()
        for listener in self.listeners:
            listener.start()
        self.log.info(
            "daemon started: full sync every %s, IDLE on %s, watching %s",
            _duration(self.account.interval),
            ", ".join(lst.folder for lst in self.listeners) or "no folder",
            self.account.maildir if self._watches else "nothing (a POP3 account)",
        )

    @property
    def _watches(self) -> bool:
        """Whether local changes are pushed: a POP3 server takes none, so local
        changes need no sync (its account is polled on ``interval``)."""
        return self.account.protocol != "pop3"

    def request_stop(self) -> None:
        """Stop accepting requests; the worker stops at the next folder boundary."""
        if self.scheduler is not None:
            with contextlib.suppress(LookupError):  # JobLookupError: already gone
                self.scheduler.remove_job(self.account.name)
        self.queue.close()
        self.cancel.set()
        for listener in self.listeners:
            listener.request_stop()
        self.watcher.stop()

    def join(self, deadline: float) -> bool:
        """Wait for the worker (and briefly the listeners) until ``deadline``
        (``time.monotonic()``); True when the worker is done."""
        self._worker.join(max(0.0, deadline - time.monotonic()))
        for listener in self.listeners:
            # A listener blocked in IDLE wakes up within one idle slice; it holds
            # no state, so a stopping process need not wait for it.
            listener.join(max(0.0, min(0.5, deadline - time.monotonic())))
        done = not self._worker.is_alive()
        if done:
            logging.getLogger(self.log.logger.name).removeFilter(self._repeat)
        return done

    @property
    def busy(self) -> bool:
        return self._worker.is_alive()

    # -- the worker ----------------------------------------------------------------------

    def _work(self) -> None:
        hooks = DaemonHooks(self.account, self.cancel, self.echo, self.hooks)
        syncer = self.syncer_factory(self.config, self.account, hooks)
        try:
            while True:
                batch = self.queue.take()
                if batch is None:
                    return
                delay = self._run(syncer, batch)
                if delay is None:
                    return
                if delay > 0 and self.cancel.wait(delay):
                    return
        finally:
            syncer.close()
            # Not part of the SyncHooks protocol; the rules' hooks hold open files.
            close = getattr(self.hooks, "close", None)
            if callable(close):
                close()
            self.log.debug("worker stopped")

    def _run(self, syncer: Syncer, batch: Batch) -> float | None:
        """Run one batch; returns how long to wait before the next one (None: stop)."""
        self.log.debug("starting %s", batch)
        try:
            report = syncer.sync(
                RunOptions(cancel=self.cancel),
                None if batch.full else self._with_rule_targets(batch.folders),
                lock_wait=self.tuning.lock_wait,
            )
        except SyncCancelled:
            self.log.info("stopped; the next run goes on from here")
            return None
        self.syncs += 1
        if self.cancel.is_set():
            return None
        if report.locked:
            self.queue.post(batch)
            if not self._locked:
                self.log.info(
                    "another syncd process is syncing this account; trying again every %s",
                    _duration(self.tuning.lock_retry),
                )
                self._locked = self._repeat.active = True
            return self.tuning.lock_retry
        if report.error is not None:
            # The failed request is not lost: after an error the next attempt is a full
            # sync (whatever IDLE or the watcher reported meanwhile may have been missed).
            self.queue.post_full()
            delay = self.backoff.failure()
            # The syncer already logged the first failure; its repeats are dropped.
            self._repeat.active = True
            if self.backoff.failures == 1:
                self.log.debug("retrying at once (a stale connection?)")
            elif self.backoff.failures == 2:
                self.log.warning(
                    "still cannot sync (%s); retrying in %.0fs, then less and less often "
                    "(up to every %s); not logged again until it works",
                    report.error,
                    delay,
                    _duration(self.tuning.backoff_cap),
                )
            else:
                self.log.debug("still failing (%s); next try in %.0fs", report.error, delay)
            return delay
        attempts = self.backoff.failures
        if self.backoff.success() and attempts > 1:
            self.log.info("the account is reachable again; syncing (after %d attempts)", attempts)
        elif self._locked:
            self.log.info("the other syncd process is done; syncing again")
        self._locked = self._repeat.active = False
        self._after_sync()
        return 0.0

    def _with_rule_targets(self, folders: tuple[str, ...]) -> tuple[str, ...]:
        """``folders`` plus where the account's rules in them file mail: the rules
        run inside the sync, and what they move must arrive locally in the same
        cycle, not at the next full sync.  (Rules that plugins add are not known
        here: what they file arrives with the next full sync.)"""
        wanted = dict.fromkeys(folders)
        for rule in self.account.rules:
            if str(rule.get("folder", "INBOX")) not in folders:
                continue
            action, target = rule.get("action"), rule.get("target")
            if action in ("move", "copy") and isinstance(target, str):
                wanted[target] = None
            elif action == "delete" and self.account.trash:
                wanted[self.account.trash] = None
        return tuple(wanted)

    def _after_sync(self) -> None:
        # The first sync may have created the Maildir root: watch it from now on.
        if self._watches and not self.watcher.started and self.account.maildir.is_dir():
            self.watcher.start()


# --------------------------------------------------------------------------- the daemon


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
        syncer_factory: SyncerFactory = _default_syncer,
        hooks_factory: HooksFactory = _default_hooks,
        scheduler: BackgroundScheduler | None = None,
    ) -> None:
        self.config = config
        self.only = tuple(accounts)
        self.tuning = tuning
        self.syncer_factory = syncer_factory
        self.hooks_factory = hooks_factory
        self.scheduler = scheduler if scheduler is not None else _make_scheduler()
        self.runners: dict[str, AccountRunner] = {}

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
        self.scheduler.start()
        for name, account in accounts.items():
            self._start_runner(self.config, account, hooks[name])

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
        )
        self.runners[account.name] = runner
        runner.start()

    def reload(self, config: Config) -> list[str]:
        """Switch to ``config``: accounts that are new start, removed ones stop,
        changed ones restart (after finishing their current folder).  Returns
        one line per change, for the log.  ConfigError (invalid rules or
        plugins) before anything has changed."""
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
        # The old worker must let go of the account (its lock and state) first.
        deadline = time.monotonic() + STOP_TIMEOUT
        for runner in stopping:
            if not runner.join(deadline):
                runner.log.warning("still finishing a folder; the new settings apply after it")
        for name in starting:
            if name not in leaving:
                changes.append(f"{name}: added")
            self._start_runner(config, new[name], hooks[name])
        self.config = config
        return changes

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop everything; returns the accounts whose worker was still busy at
        ``timeout`` (their state is committed per batch, so exiting is safe)."""
        self.scheduler.shutdown(wait=False)
        for runner in self.runners.values():
            runner.request_stop()
        deadline = time.monotonic() + timeout
        return [name for name, runner in self.runners.items() if not runner.join(deadline)]


def _duration(seconds: float) -> str:
    from syncd.config import format_duration

    return format_duration(seconds)
