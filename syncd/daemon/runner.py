"""One account in the daemon: its queue, worker thread, IDLE listeners, watcher.

Everything that wants a sync only *posts a request* into the account's
:class:`~syncd.daemon.queue.RequestQueue`: the scheduler tick ("full"), IDLE
listeners and the Maildir watcher ("folder X"), and ``syncd sync`` through the
control socket.  The account's worker thread takes what is pending as one
:class:`~syncd.daemon.queue.Batch` and runs it with the account's
:class:`~syncd.account.syncer.AccountSyncer`, used from that thread only.  So
syncs of one account never overlap, and a burst of events costs one sync.

The account lock is taken per sync call (``AccountSyncer.sync``): a one-shot
``syncd sync --dry-run`` started while the daemon is in the middle of a sync exits
75 ("being synced by another syncd process"); one started between two daemon syncs
runs, and the daemon waits for it (:data:`~syncd.daemon.queue.LOCK_WAIT`, then
retries every :data:`~syncd.daemon.queue.LOCK_RETRY`).  There are never two writers.

Faults: a sync whose report has ``error`` set (server unreachable, connection
dropped, login refused) is retried at once when the last sync had worked (a
stale connection after a server restart or a kick is the common case), then
with exponential back-off (:class:`~syncd.daemon.queue.Backoff`: 5 s doubling to
5 min, jittered).  An error only the user can end (a login refused, an OAuth2
refresh token refused, no password, a keyring that cannot be opened) is retried
at the longest back-off from the start: retrying sooner would not help, and would
hammer the server or the token endpoint.  The error is logged once per outage,
not once per retry, and the end of the outage is logged too.

Each account's state (syncing, idle, backing off, failing), the next run and the
current error go into the daemon's status file
(:class:`~syncd.status.runtime.StatusFile`), which ``syncd status`` reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from syncd.account.factory import Syncer, syncer_for
from syncd.account.outcome import NEEDS_USER, one_line
from syncd.account.syncer import AccountReport
from syncd.daemon.hooks import DaemonHooks
from syncd.daemon.idle import IdleListener
from syncd.daemon.progress import ProgressPublisher
from syncd.daemon.queue import Backoff, Batch, RequestQueue, Tuning
from syncd.daemon.repeat import RepeatFilter
from syncd.daemon.watch import EchoFilter, MaildirWatcher
from syncd.engine.options import RunOptions, SyncCancelled, progress_every
from syncd.logsetup import account_logger
from syncd.status.runtime import BACKING_OFF, FAILING, IDLE, SYNCING, AccountRuntime, StatusFile

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


# --------------------------------------------------------------------------- one account

SyncerFactory = Callable[["Config", "AccountConfig", "SyncHooks"], Syncer]
HooksFactory = Callable[["Config"], "SyncHooks | None"]


def default_syncer(config: Config, account: AccountConfig, hooks: SyncHooks) -> Syncer:
    return syncer_for(config, account, hooks)


def default_hooks(config: Config) -> SyncHooks:
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
        syncer_factory: SyncerFactory = default_syncer,
        hooks: SyncHooks | None = None,
        status: StatusFile | None = None,
        full_syncs: threading.Semaphore | None = None,
    ) -> None:
        """``hooks``: the configured engine hooks (rules, plugins), built by the
        caller so that a bad config fails there; used in the worker thread only.
        ``status``: the daemon's status file, told of every change of state.
        ``full_syncs``: shared by the daemon's accounts, held during a full sync
        (see ``Tuning.full_syncs``)."""
        self.config = config
        self.full_syncs = full_syncs
        self.status = status
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
        # What the last attempt answered, for `syncd sync` through the control socket.
        self._answered = threading.Condition()
        self._poke = threading.Event()  # ends a back-off wait: a stop or a `syncd sync`
        self._answered_ticket = 0
        self._last: tuple[AccountReport, float] | None = None
        self._repeat = RepeatFilter(account.name)
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
        # The syncer needs at least one connection of max_connections (its pool
        # gets what the listeners leave, see _syncer_account).
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

    def _syncer_account(self) -> AccountConfig:
        """The account as the syncer sees it: its pool gets what the IDLE
        connections leave of ``max_connections`` (the server counts them all per
        user), so syncer + listeners never hold more than the cap."""
        pool = max(1, self.account.max_connections - len(self.listeners))
        if pool == self.account.max_connections:
            return self.account
        return dataclasses.replace(self.account, max_connections=pool)

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
        self._poke.set()
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
        syncer = self.syncer_factory(self.config, self._syncer_account(), hooks)
        try:
            while True:
                batch = self.queue.take()
                if batch is None:
                    return
                delay = self._run(syncer, batch)
                if delay is None:
                    return
                if delay > 0 and self._pause(delay):
                    return
        finally:
            syncer.close()
            # Not part of the SyncHooks protocol; the rules' hooks hold open files.
            close = getattr(self.hooks, "close", None)
            if callable(close):
                close()
            self.log.debug("worker stopped")

    def _report(
        self,
        state: str,
        *,
        delay: float | None = None,
        error: str | None = None,
        kind: str | None = None,
    ) -> None:
        """Tell the status file; ``delay``: seconds to the next run (None: the next
        scheduled full sync).  A state keeps the time it began while it lasts, and
        syncing keeps the error of the attempt before (still the current one)."""
        if self.status is None:
            return
        now = time.time()
        before = self.status.get(self.account.name)
        if state == SYNCING and before is not None:
            error, kind = before.error, before.error_kind
        self.status.set(
            self.account.name,
            AccountRuntime(
                state=state,
                since=before.since if before is not None and before.state == state else now,
                next_run=now + delay if delay is not None else self._next_scheduled(),
                error=one_line(error) if error else None,
                error_kind=kind,
                failures=self.backoff.failures,
            ),
        )

    def _next_scheduled(self) -> float | None:
        job = self.scheduler.get_job(self.account.name) if self.scheduler is not None else None
        when = getattr(job, "next_run_time", None)
        return when.timestamp() if when is not None else None

    def _run(self, syncer: Syncer, batch: Batch) -> float | None:
        """Run one batch; returns how long to wait before the next one (None: stop)."""
        self.log.debug("starting %s", batch)
        started = time.monotonic()
        self._report(SYNCING, delay=0.0)
        gate = self.full_syncs if batch.full else None
        if gate is not None and not self._acquire(gate):
            self._answer(batch.ticket, None)
            return None
        try:
            with contextlib.ExitStack() as stack:
                options = RunOptions(cancel=self.cancel, progress_every=progress_every())
                if self.status is not None:
                    meter = stack.enter_context(ProgressPublisher(self.status, self.account.name))
                    options = dataclasses.replace(options, progress=meter)
                report = syncer.sync(
                    options,
                    None if batch.full else self._with_rule_targets(batch.folders),
                    lock_wait=self.tuning.lock_wait,
                )
        except SyncCancelled:
            self.log.info("stopped; the next run goes on from here")
            self._answer(batch.ticket, None)
            return None
        finally:
            if gate is not None:
                gate.release()
        self._answer(batch.ticket, (report, time.monotonic() - started))
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
            self._report(IDLE, delay=self.tuning.lock_retry)
            return self.tuning.lock_retry
        if report.error is not None:
            # The failed request is not lost: after an error the next attempt is a full
            # sync (whatever IDLE or the watcher reported meanwhile may have been missed).
            self.queue.post_full()
            delay = self.backoff.failure()
            user = report.error_kind in NEEDS_USER
            if user:
                delay = max(delay, self.tuning.backoff_cap)
            self._report(
                FAILING if user else BACKING_OFF,
                delay=delay,
                error=report.error,
                kind=report.error_kind,
            )
            # The syncer already logged the first failure; its repeats are dropped.
            self._repeat.active = True
            if user and self.backoff.failures == 1:
                self.log.warning(
                    "not retrying before %s: this needs you (%s)", _duration(delay), report.error
                )
            elif self.backoff.failures == 1:
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
        self._report(IDLE)
        return 0.0

    def _acquire(self, gate: threading.Semaphore) -> bool:
        """Wait for a turn at a full sync; False when stopped meanwhile."""
        while not gate.acquire(timeout=0.5):
            if self.cancel.is_set():
                return False
        return True

    def _answer(self, ticket: int, outcome: tuple[AccountReport, float] | None) -> None:
        with self._answered:
            self._answered_ticket = max(self._answered_ticket, ticket)
            self._last = outcome
            self._answered.notify_all()

    def _pause(self, delay: float) -> bool:
        """Wait out a back-off; True when the daemon is stopping.  A user's `syncd
        sync` ends the wait early: they asked for now (after `syncd login`, say)."""
        self._poke.wait(delay)
        self._poke.clear()
        return self.cancel.is_set()

    def sync_now(self) -> tuple[AccountReport, float] | None:
        """Ask for a full sync and wait for its outcome (the report and its seconds);
        None when the daemon stops first.  For the control socket's clients: the
        request also ends a back-off wait (the user asked for now)."""
        ticket = self.queue.post_full_ticket()
        if ticket is None:
            return None
        self._poke.set()
        with self._answered:
            self._answered.wait_for(lambda: self._answered_ticket >= ticket or self.queue.closed)
            return self._last if self._answered_ticket >= ticket else None

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


def _duration(seconds: float) -> str:
    from syncd.config import format_duration

    return format_duration(seconds)
