"""``syncd login ACCOUNT [--device]``: authorise syncd for an OAuth2 account.

The browser flow (authorization code with PKCE, RFC 7636) prints the
authorization URL, opens a browser where one exists, and waits on a loopback
redirect ``http://127.0.0.1:<port>/``; ``--device`` uses the device flow (RFC
8628) for machines without a browser.  Either way the refresh token goes into the
keyring and one line says so.  Errors are one line (exit 1); a config problem is
exit 2, as for every command.
"""

from __future__ import annotations

import click

from syncd.cli.common import Context, select_accounts
from syncd.errors import ConfigError


@click.command("login")
@click.argument("account")
@click.option(
    "--device",
    is_flag=True,
    help="Use the device flow (RFC 8628): a code to enter on another device's browser. "
    "For headless machines; Microsoft and custom providers allow it, Google not for mail.",
)
@click.option(
    "--no-browser",
    is_flag=True,
    help="Only print the authorization URL; do not try to open a browser here.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=10),
    default=300.0,
    show_default=True,
    help="Seconds to wait for the browser's redirect (browser flow).",
)
@click.pass_obj
def login(obj: Context, account: str, device: bool, no_browser: bool, timeout: float) -> None:
    """Authorise syncd for ACCOUNT (auth = "oauth2") and store its refresh token.

    Prints the authorization URL (and opens a browser where one exists), receives
    the answer on http://127.0.0.1:<port>/, and stores the refresh token in the
    system keyring (service "syncd", user "ACCOUNT:oauth2-refresh-token").  Run it
    again whenever syncd says the refresh token was refused.
    """
    config = obj.load()
    select_accounts(config, (account,))
    settings = config.accounts[account].oauth2
    if settings is None:
        problem = (
            "uses oauth2_token_command: the command logs in, not syncd"
            if config.accounts[account].oauth2_token_command
            else f'has no [accounts.{account}.oauth2] table (and auth = "oauth2")'
        )
        raise ConfigError(f"{config.path}: account {account} {problem}")

    def say(line: str) -> None:
        click.echo(line, err=True)

    # Imported here: authlib and requests are loaded only by the commands that need them.
    from syncd.auth.login import login_with_browser, login_with_device

    if device:
        login_with_device(settings, account, out=say)
    else:
        login_with_browser(settings, account, open_browser=not no_browser, out=say, timeout=timeout)
