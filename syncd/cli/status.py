"""``syncd status``: per account its state, last attempt and outcome, last success,
current error, next run and folders; whether a daemon runs.  Three forms: text,
``--json`` (a versioned, stable format: the README's "syncd status --json, schema 1")
and ``--short`` (one line for status bars).

Exit status: 0 when every requested account's last attempt synced everything (or
it was never synced); 1 when one failed, is backing off, or synced only in part (a
folder or message failed, or a message is held back) -- the same rule as the last
``syncd sync``'s exit status; 2 configuration error.
"""

from __future__ import annotations

import json
import sys

import click

from syncd.cli.common import EXIT_FAILED, Context, select_accounts


@click.command()
@click.argument("accounts", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (schema 1).")
@click.option("--short", is_flag=True, help="One line, for status bars.")
@click.pass_obj
def status(obj: Context, accounts: tuple[str, ...], as_json: bool, short: bool) -> None:
    """Show, per account, its state (syncing, idle, backing off, failing, never
    synced), the last attempt and its outcome, the last success, the current error,
    the next run and, per folder, the last sync, message counts and the local
    messages the server refused (held back until they change); and whether a daemon
    runs.

    Exit status: 0 all fine (or never synced), 1 an account's last attempt failed or
    synced only in part, 2 configuration error.
    """
    from syncd.status.collect import as_json as json_document
    from syncd.status.collect import collect
    from syncd.status.render import can_print, short_line, text_lines

    config = obj.load()
    snapshot = collect(config, select_accounts(config, accounts))
    if as_json:
        click.echo(json.dumps(json_document(snapshot), indent=2, ensure_ascii=False))
    elif short:
        click.echo(short_line(snapshot, unicode=can_print(sys.stdout.encoding)))
    else:
        for line in text_lines(snapshot):
            click.echo(line)
    if not snapshot.ok:
        sys.exit(EXIT_FAILED)
