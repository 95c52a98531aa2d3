"""``syncd adopt ACCOUNT [--dry-run]``: the first sync of a Maildir another tool
(mbsync, offlineimap) synced, explicitly, saying per folder what is paired, what is
copied and why anything is not paired.

The adoption itself happens in any first sync of a folder without syncd state
(``[accounts.NAME.adopt]``, see :mod:`syncd.account.adoption`); this command runs
that sync for one account and prints the adoption's own lines.  ``--dry-run``
changes nothing on either side and writes no state.
"""

from __future__ import annotations

import sys

import click

from syncd.cli.common import EXIT_FAILED, EXIT_LOCKED, Context, select_accounts
from syncd.errors import ConfigError


@click.command("adopt")
@click.argument("account")
@click.option(
    "-n",
    "--dry-run",
    is_flag=True,
    help="Show what would be paired, copied and why anything is not; change nothing.",
)
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="Let the local deletions made since the other tool's last run delete more "
    "than half of a server folder. Without it such a folder is skipped with an error.",
)
@click.pass_obj
def adopt(obj: Context, account: str, dry_run: bool, allow_mass_delete: bool) -> None:
    """Adopt ACCOUNT's Maildir from mbsync or offlineimap ([accounts.ACCOUNT.adopt],
    written by `syncd import`): start each folder's first sync from the tool's pairs
    and flags, so nothing is downloaded or uploaded again.

    Folders that syncd has synced before are synced as usual.  Exit status as for
    `syncd sync`.
    """
    from syncd.account.syncer import AccountSyncer
    from syncd.engine.options import RunOptions
    from syncd.ext.hooks import load_hooks

    config = obj.load()
    [name] = select_accounts(config, (account,))
    settings = config.accounts[name]
    if settings.adopt is None:
        raise ConfigError(
            f"{config.path}: accounts.{name}: no [accounts.{name}.adopt] table saying where "
            "mbsync's or offlineimap's state is (`syncd import mbsync|offlineimap` writes it)"
        )
    options = RunOptions(dry_run=dry_run, allow_mass_delete=allow_mass_delete)
    syncer = AccountSyncer(config, settings, hooks=load_hooks(config, options))
    try:
        report = syncer.sync(options)
    finally:
        syncer.close()
    tool = settings.adopt.tool
    for line in report.notes:
        click.echo(f"{name}: {line}")
    for folder in report.folders:
        where = f"{name}/{folder.name}"
        if folder.adoption:
            click.echo(f"{where}: adopted from {tool}:" if not dry_run else f"{where}: {tool}:")
            for line in folder.adoption:
                click.echo(f"{where}:   {line}")
        elif folder.error is None:
            click.echo(
                f"{where}: nothing to adopt (synced by syncd before, or neither local mail "
                f"nor a {tool} record): synced as usual"
            )
        if folder.error is not None:
            click.echo(f"{where}: not synced: {folder.error}")
        elif dry_run:
            click.echo(
                f"{where}: would copy {folder.downloaded} here, {folder.uploaded} to the server"
            )
            for line in folder.planned:
                click.echo(f"{where}:   plan: {line}")
        else:
            click.echo(f"{where}: {folder.summary()}")
    if report.error is not None:
        click.echo(f"{name}: failed: {report.error}", err=True)
    if report.locked:
        sys.exit(EXIT_LOCKED)
    if not report.ok:
        sys.exit(EXIT_FAILED)
