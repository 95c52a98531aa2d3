"""``syncd rules`` (run the rules now, on the server only) and ``syncd plugins``.

Registered on the ``syncd`` group at the end of :mod:`syncd.cli.app`.
"""

from __future__ import annotations

import sys

import click

from syncd.cli.common import EXIT_FAILED, EXIT_LOCKED, Context
from syncd.errors import AccountError, CredentialError, LockedError


@click.command("rules")
@click.argument("accounts", nargs=-1)
@click.option(
    "-n",
    "--dry-run",
    is_flag=True,
    help="Print every action with UID, From and Subject; change nothing.",
)
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="Let a rule move or delete more than half of a folder (or all of it).",
)
@click.pass_obj
def rules(obj: Context, accounts: tuple[str, ...], dry_run: bool, allow_mass_delete: bool) -> None:
    """Run the rules of ACCOUNTS (default: all) on the server now, without a sync.

    The local Maildir is not touched: the next `syncd sync` brings the result.
    Exit status: 0 every rule ran, 1 a rule, plugin or account failed,
    2 configuration error, 75 another syncd holds an account's lock.
    """
    from syncd.account.lock import AccountLock
    from syncd.account.syncer import open_session
    from syncd.engine.options import RunOptions
    from syncd.ext.hooks import load_hooks

    config = obj.load()
    selected = [config.account(a).name for a in accounts] or list(config.accounts)
    hooks = load_hooks(config, RunOptions(dry_run=dry_run, allow_mass_delete=allow_mass_delete))
    failed = locked = False
    try:
        for name in selected:
            account = config.accounts[name]
            if account.protocol == "pop3":
                if accounts:
                    click.echo(f"{name}: a POP3 account has no server-side rules", err=True)
                continue
            lock = AccountLock(config.state_dir, name)
            try:
                lock.acquire(wait=0)
            except LockedError as exc:
                click.echo(f"{name}: {exc}", err=True)
                locked = True
                continue
            try:
                session = open_session(account)
                try:
                    runs = hooks.run_account(account, session)
                finally:
                    session.logout()
            except (AccountError, CredentialError) as exc:
                click.echo(f"{name}: failed: {exc}", err=True)
                failed = True
                continue
            finally:
                lock.release()
            for run in runs:
                for line in run.lines if dry_run else ():
                    click.echo(f"{name}/{run.folder}: {line}")
            errors = [e for run in runs for e in run.errors] + hooks.plugins.failures
            failed = failed or bool(errors)
            if obj.verbosity >= 0:
                acted = sum(run.acted for run in runs)
                steps = sum(len(run.steps) for run in runs)
                what = "would act" if dry_run else "acted"
                click.echo(
                    f"{name}: {steps} rule actions {what} on {acted} messages"
                    + (f", {len(errors)} problems" if errors else ""),
                    err=True,
                )
    finally:
        hooks.close()
    if failed:
        sys.exit(EXIT_FAILED)
    if locked:
        sys.exit(EXIT_LOCKED)


@click.command("plugins")
@click.pass_obj
def plugins(obj: Context) -> None:
    """List the plugins: name, distribution and version, status, hooks implemented.

    Installed plugins are loaded only when `[plugins] enable` names them; the
    others are listed as "not enabled" (and never imported).
    Exit status 1 when a plugin failed to load or an enabled one is not installed.
    """
    from syncd.ext.loader import load_plugins
    from syncd.ext.timed import FAILED, NOT_INSTALLED

    loaded = load_plugins(obj.load())
    rows = []
    for info in loaded.infos:
        dist = " ".join(p for p in (info.distribution, info.version) if p) or "-"
        detail = ", ".join(info.hooks) or info.problem or info.note or ""
        rows.append((info.name, dist, info.status, detail))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    for row in rows:
        click.echo(
            (
                "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
            ).rstrip()
        )
    if any(i.status in (FAILED, NOT_INSTALLED) for i in loaded.infos):
        sys.exit(EXIT_FAILED)
