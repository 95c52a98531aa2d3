"""``syncd daemon``: run in the foreground until told to stop.

Signals (the process's main thread handles them; the work runs in threads):

- SIGTERM, SIGINT: stop accepting work, let each account finish the folder it
  is syncing (state is committed per batch), log out, exit 0.  A second
  SIGTERM/SIGINT while stopping exits at once (status 1; the next run resumes,
  as after any crash).
- SIGHUP: read the config again; accounts that were added, removed or changed
  are started, stopped or restarted.  A config that does not load is logged
  (one line) and the old one stays in force.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import click

from syncd.cli.common import Context, select_accounts
from syncd.errors import ConfigError

if TYPE_CHECKING:
    from syncd.config import Config
    from syncd.daemon.core import Daemon

logger = logging.getLogger("syncd.daemon")

_STOP = (signal.SIGTERM, signal.SIGINT)


@click.command()
@click.argument("accounts", nargs=-1)
@click.pass_obj
def daemon(obj: Context, accounts: tuple[str, ...]) -> None:
    """Keep ACCOUNTS (default: all) in step until stopped.

    A full sync at start-up and every `interval`; IMAP IDLE on the folders
    listed in `idle` syncs server changes within seconds; local changes in
    the Maildir are synced after a short pause.  Logs go to stderr.

    SIGTERM/SIGINT stop it cleanly (exit 0); SIGHUP reloads the config.  A
    one-shot `syncd sync` meanwhile waits for the daemon's current sync or
    exits 75; there is never more than one writer per account.
    """
    from syncd.daemon.core import Daemon
    from syncd.daemon.rendezvous import config_stamp

    stamp = config_stamp(str(obj.path()))  # before reading: a later edit never matches
    config = obj.load()
    select_accounts(config, accounts)  # ConfigError naming an unknown one
    if not config.accounts:
        raise ConfigError(f"{config.path}: no accounts configured")
    # watchdog 7.1 warns "Callback with id ... already exists for watch" when a new
    # folder's directories appear in quick succession (as every new folder's do); the
    # watch works, and logging.captureWarnings would print the whole watch table.
    warnings.filterwarnings(
        "ignore", message="Callback with id", category=RuntimeWarning, module="watchdog"
    )
    runner = Daemon(config, accounts, config_stamp=stamp)
    sys.exit(serve(runner, obj.load))


def serve(runner: Daemon, load: Callable[[], Config]) -> int:
    """Start ``runner``, handle signals until told to stop, stop it; the exit status."""
    with _signals() as wait:
        runner.start()
        logger.info("running (pid %d); SIGTERM stops, SIGHUP reloads the config", os.getpid())
        while True:
            signum = wait()
            if signum in _STOP:
                break
            if signum == signal.SIGHUP:
                _reload(runner, load)
        logger.info("stopping (%s)", signal.Signals(signum).name)
        for sig in _STOP:
            signal.signal(sig, _exit_now)
        busy = runner.stop()
    if busy:
        logger.warning(
            "%s still busy; exiting anyway (state is committed per batch: the next run resumes)",
            ", ".join(busy),
        )
        logging.shutdown()
        # A worker thread is still inside a sync: do not let interpreter shutdown
        # run under it; leaving now is as safe as a crash, which syncd survives.
        os._exit(0)
    logger.info("stopped")
    return 0


def _reload(runner: Daemon, load: Callable[[], Config]) -> None:
    from syncd.daemon.rendezvous import config_stamp

    stamp = config_stamp(str(runner.config.path))  # before reading, as at start-up
    try:
        config = load()
    except ConfigError as exc:
        logger.error("reload refused, keeping the running config: %s", exc)
        return
    missing = [a for a in runner.only if a not in config.accounts]
    if missing:
        logger.error(
            "reload refused, keeping the running config: %s no longer defines %s",
            config.path,
            ", ".join(missing),
        )
        return
    changes = runner.reload(config, config_stamp=stamp)
    logger.info("config reloaded: %s", "; ".join(changes) or "nothing changed")


def _exit_now(signum: int, frame: object) -> None:
    os.write(2, b"syncd: second signal, exiting at once\n")
    os._exit(1)


@contextlib.contextmanager
def _signals() -> Iterator[Callable[[], int]]:
    """Route SIGTERM/SIGINT/SIGHUP to a ``wait()`` that returns the next one.

    The Python handlers only record the signal; ``signal.set_wakeup_fd`` wakes
    the ``select`` in ``wait()``, so no signal is lost between two waits and no
    lock is taken inside a handler.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    pending: list[int] = []
    handled = (*_STOP, signal.SIGHUP)
    old = {sig: signal.getsignal(sig) for sig in handled}

    def record(signum: int, frame: object) -> None:
        pending.append(signum)

    def wait() -> int:
        while not pending:
            select.select([read_fd], [], [])
            with contextlib.suppress(BlockingIOError):
                os.read(read_fd, 512)
        return pending.pop(0)

    old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    try:
        for sig in handled:
            signal.signal(sig, record)
        yield wait
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(old_fd)
        os.close(read_fd)
        os.close(write_fd)
