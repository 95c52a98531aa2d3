"""The ``syncd`` command: the group, ``sync``, ``password``, and :func:`run`.
Other commands live in their own modules (``check``, ``daemon``, ``status``,
``rules``/``plugins``) and are registered at the end; the exit codes are in
:mod:`syncd.cli.common`.  The console script enters through
:func:`syncd.cli.main.main`, which comes here unless the fast path answered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path

import click

from syncd import __version__
from syncd.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    Context,
    GlobalOptionsGroup,
    select_accounts,
)
from syncd.errors import ConfigError, CredentialError, SyncdError


@click.group(cls=GlobalOptionsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file. Default: $SYNCD_CONFIG, else $XDG_CONFIG_HOME/syncd/config.toml.",
)
@click.option(
    "-v", "--verbose", count=True, help="More detail (-v: syncd's debug log; -vv: libraries' too)."
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.version_option(__version__, prog_name="syncd")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, verbose: int, quiet: bool) -> None:
    """Keep local Maildirs and IMAP accounts in step, in both directions.

    New messages, flags, deletions and folders flow both ways; a second run
    right after a sync changes nothing. See `syncd COMMAND --help`.
    """
    from syncd.logsetup import setup_logging

    verbosity = -1 if quiet else verbose
    setup_logging(verbosity)
    ctx.obj = Context(config_file, verbosity)


@cli.command()
@click.argument("accounts", nargs=-1)
@click.option(
    "-n",
    "--dry-run",
    is_flag=True,
    help="Show what would be copied, flagged and deleted; change nothing.",
)
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="Let this run delete more than half of a folder (or all of it) on either "
    "side. Without it such a folder is skipped with an error.",
)
@click.option(
    "--retry-refused",
    is_flag=True,
    help="Offer again the local messages the server refused as too big. Without it "
    "they are held back until the file or the server's limit changes, or for a day.",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="No live progress line on a terminal (shown per account on copies that take "
    "more than a second: messages, bytes, rate, time left).",
)
@click.pass_obj
def sync(
    obj: Context,
    *,
    accounts: tuple[str, ...],
    dry_run: bool,
    allow_mass_delete: bool,
    retry_refused: bool,
    no_progress: bool,
) -> None:
    """Sync ACCOUNTS (default: all) once, both ways, and exit.

    When `syncd daemon` runs these accounts, it does the sync (at once, on its
    open connections) and this command prints what it did; --dry-run,
    --allow-mass-delete and --retry-refused always sync here.

    Exit status: 0 all synced, 1 some folder, message or account failed or a
    message is held back because the server refused it (the rest was synced),
    2 configuration error, 75 another syncd holds the lock.
    """
    from syncd.cli.live import wanted

    config = obj.load()
    selected = select_accounts(config, accounts)
    live = wanted(sys.stderr, verbosity=obj.verbosity, enabled=not no_progress)
    if not (dry_run or allow_mass_delete or retry_refused):
        code = _ride_daemon(config.state_dir, selected, obj.verbosity, live=live)
        if code is not None:
            sys.exit(code)

    from syncd.account.factory import syncer_for
    from syncd.cli.live import LiveLine
    from syncd.engine.options import RunOptions, progress_every

    options = RunOptions(
        dry_run=dry_run,
        allow_mass_delete=allow_mass_delete,
        retry_refused=retry_refused,
        progress_every=progress_every(),
    )
    # No [plugins] table and no rule anywhere: nothing to load (no plugin manager, no
    # scan of the installed entry points), and nothing to check in them either.
    extended = bool(config.plugins) or any(a.rules for a in config.accounts.values())
    if extended:
        from syncd.ext.hooks import load_hooks
    failed = locked = False
    for name in selected:
        started = time.monotonic()
        hooks = load_hooks(config, options) if extended else None
        syncer = syncer_for(config, config.accounts[name], hooks)
        try:
            with contextlib.ExitStack() as stack:
                run = options
                if live:
                    shown = stack.enter_context(LiveLine(name, sys.stderr))
                    run = dataclasses.replace(options, progress=shown.meter)
                report = syncer.sync(run)
        finally:
            syncer.close()
        if dry_run:
            for folder in report.folders:
                for line in folder.adoption:
                    click.echo(f"{name}/{folder.name}: adopt: {line}")
                for line in folder.planned:
                    click.echo(f"{name}/{folder.name}: {line}")
        if report.locked:
            locked = True
        elif not report.ok:
            failed = True
        if obj.verbosity >= 0:
            seconds = time.monotonic() - started
            click.echo(report.line(dry_run=dry_run, seconds=seconds), err=True)
    if failed:
        sys.exit(EXIT_FAILED)
    if locked:
        sys.exit(EXIT_LOCKED)


@cli.group()
def password() -> None:
    """Store or remove an account's password in the system keyring (service "syncd")."""


@password.command("set")
@click.argument("account")
@click.pass_obj
def password_set(obj: Context, account: str) -> None:
    """Store ACCOUNT's password: read from stdin, or asked for (hidden) on a terminal."""
    from syncd.auth.credentials import set_password

    config = obj.load()
    select_accounts(config, (account,))
    if sys.stdin.isatty():
        secret = click.prompt(f"Password for {account}", hide_input=True)
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise CredentialError("empty password; nothing stored")
    set_password(account, secret)
    click.echo(f"password for {account} stored in the keyring", err=True)


@password.command("delete")
@click.argument("account")
@click.pass_obj
def password_delete(obj: Context, account: str) -> None:
    """Remove ACCOUNT's password from the keyring."""
    from syncd.auth.credentials import delete_password

    delete_password(account)
    click.echo(f"password for {account} removed from the keyring", err=True)


def _ride_daemon(state_dir: Path, accounts: list[str], verbosity: int, *, live: bool) -> int | None:
    """When a daemon runs these accounts, it syncs them now on its warm connections and
    this command only relays what it says (same lines, same exit codes; with ``live``,
    the progress it publishes as live lines).  None: no daemon answered, or it does
    not run one of them -- sync here instead."""
    from syncd.daemon.control import ask_daemon

    def show(line: str) -> None:
        if verbosity >= 0 or not line.startswith(("INFO ", "DEBUG ")):
            click.echo(line, err=True)

    with contextlib.ExitStack() as stack:
        if live:
            from syncd.cli.live import DaemonLines

            stack.enter_context(DaemonLines(state_dir, accounts, sys.stderr))
        return ask_daemon(state_dir, accounts, show)


def _tune_malloc() -> None:
    """Cap glibc's per-thread malloc arenas (as MALLOC_ARENA_MAX=2 would), and fix
    its mmap threshold at the initial 128 KiB (as MALLOC_MMAP_THRESHOLD_ would).

    syncd's folder workers and writer threads each free megabytes of message
    bodies; with an arena per thread, that freed memory stays mapped and the peak
    RSS of a large initial sync grows with the thread count.  And glibc raises the
    threshold to the size of each mapped block freed (up to 32 MiB): after the
    first large bodies, later ones come from the heap, and a heap that once held a
    burst of them keeps its size.  A daemon of 10 accounts of 3000 messages stayed
    at 130 MB after its initial syncs; with the threshold fixed, 82 MB (bodies
    over 128 KiB are mapped and returned one by one).  No-op elsewhere."""
    if sys.platform != "linux":
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        if not os.environ.get("MALLOC_ARENA_MAX"):
            libc.mallopt(-8, 2)  # M_ARENA_MAX
        if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
            libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def run(argv: list[str] | None = None) -> int:
    """The click application: handled errors become one line and an exit code; bugs
    keep their traceback."""
    _tune_malloc()
    try:
        cli.main(args=argv, prog_name="syncd", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_CONFIG
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_FAILED
    except ConfigError as exc:
        click.echo(f"syncd: {exc}", err=True)
        return EXIT_CONFIG
    except SyncdError as exc:
        click.echo(f"syncd: {exc}", err=True)
        return EXIT_FAILED
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_FAILED
    return EXIT_OK


# The commands that live in their own modules, loaded only when one is run.
def _check() -> click.Command:
    from syncd.cli.check import check

    return check


def _daemon() -> click.Command:
    from syncd.cli.daemon import daemon

    return daemon


def _status() -> click.Command:
    from syncd.cli.status import status

    return status


def _rules() -> click.Command:
    from syncd.cli.rules import rules

    return rules


def _plugins() -> click.Command:
    from syncd.cli.rules import plugins

    return plugins


def _init() -> click.Command:
    from syncd.cli.init import init_command

    return init_command


def _login() -> click.Command:
    from syncd.cli.login import login

    return login


def _import() -> click.Command:
    from syncd.cli.importer import import_group

    return import_group


def _adopt() -> click.Command:
    from syncd.cli.adopt import adopt

    return adopt


for _name, _load in {
    "check": _check, "daemon": _daemon, "status": _status, "rules": _rules,
    "plugins": _plugins, "init": _init, "login": _login, "import": _import, "adopt": _adopt,
}.items():  # fmt: skip
    cli.add_lazy(_name, _load)
