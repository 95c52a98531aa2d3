"""``syncd init ADDRESS``: find the server for an address, probe it, add the account.

Register with ``cli.add_command(init_command)``.  Exit codes: 0 the account was
written (or printed with ``--dry-run``); 2 bad usage, or nothing was found (one
line per source tried); 1 every server found failed its probe (one line each).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

# Only light imports here: `syncd` imports this module for every command, and
# dnspython, tomlkit and imapclient are loaded when `init` actually runs.
from syncd.discover.model import DEFAULT_ISPDB, AddressError, Server, split_address

EXIT_FAILED, EXIT_USAGE = 1, 2


def _fail(code: int, lines: list[str]) -> NoReturn:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(code)


def _dns_server(value: str | None) -> tuple[str | None, int]:
    """``HOST``, ``HOST:PORT``, ``IPV6`` or ``[IPV6]:PORT`` -> (host, port)."""
    if not value:
        return None, 53
    if value.startswith("["):
        host, _sep, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else 53
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or ":" in host:  # bare host, or a bare IPv6 address
        return value, 53
    return host, int(port)


def _config_path(ctx: click.Context, explicit: Path | None) -> Path:
    from syncd.config import config_path

    if explicit is not None:
        return explicit
    group_obj = ctx.find_root().obj
    path = getattr(group_obj, "path", None)  # syncd.cli.common.Context, when run as `syncd init`
    return Path(path()) if callable(path) else config_path(None)


def _default_name(domain: str) -> str:
    labels = domain.split(".")
    return labels[-2] if len(labels) >= 2 else labels[0]


class _NoDns:
    """Stands in when the system has no resolver configuration."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def srv(self, name: str) -> Any:
        raise LookupError(self.reason)

    def mx(self, domain: str) -> Any:
        raise LookupError(self.reason)


@click.command("init")
@click.argument("address")
@click.option("--name", help="Account name. Default: the domain's name, e.g. 'example'.")
@click.option("--user", help="Login name, when it is not the one discovered (usually ADDRESS).")
@click.option(
    "--maildir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Local Maildir root for the account. Default: ~/Mail/NAME.",
)
@click.option(
    "--layout", type=click.Choice(["maildir++", "nested", "flat"]), help="Maildir layout."
)
@click.option(
    "--password-command",
    metavar="COMMAND",
    help="Command printing the password (run without a shell), written as password_command "
    "and used to test the login. Without it the password is asked for and stored in the "
    "keyring (or, with --non-interactive, left to `syncd password set NAME`).",
)
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Extra CA certificate (PEM) to trust for the server; also written as ca_file.",
)
@click.option(
    "--ispdb",
    default=DEFAULT_ISPDB,
    show_default=True,
    metavar="URL",
    help="Base URL of the Thunderbird ISPDB (or a copy of it); the domain is appended.",
)
@click.option(
    "--dns-server",
    metavar="HOST[:PORT]",
    help="Name server for the SRV, MX and autoconfig host look-ups, instead of the system's.",
)
@click.option(
    "--client-id",
    metavar="ID",
    help="OAuth2 client ID of your app registration, for providers that sign in with "
    "OAuth2 only (Gmail, Microsoft 365): see the README, 'Gmail and Microsoft 365'.",
)
@click.option(
    "--client-secret",
    metavar="SECRET",
    help="OAuth2 client secret, when the registration has one (Google's desktop apps do).",
)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds per request.")
@click.option(
    "--non-interactive", is_flag=True, help="Never prompt: take what is missing from flags."
)
@click.option("--dry-run", is_flag=True, help="Print the account table; write nothing.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file to add the account to (default: syncd's --config, $SYNCD_CONFIG, "
    "else ~/.config/syncd/config.toml); created when missing.",
)
@click.pass_context
def init_command(
    ctx: click.Context,
    address: str,
    *,  # click passes options by keyword
    name: str | None,
    user: str | None,
    maildir: Path | None,
    layout: str | None,
    password_command: str | None,
    ca_file: Path | None,
    ispdb: str,
    dns_server: str | None,
    client_id: str | None,
    client_secret: str | None,
    timeout: float,
    non_interactive: bool,
    dry_run: bool,
    config_file: Path | None,
) -> None:
    """Set up the account of ADDRESS: find its IMAP server, check it, add it to the config.

    Looks where Thunderbird does: built-in profiles (Gmail, Microsoft 365, Fastmail,
    iCloud, Yahoo), autoconfig.DOMAIN, DOMAIN/.well-known/autoconfig, the ISPDB, DNS SRV
    records (RFC 6186), then the MX host's domain. Each server found is probed (TLS,
    certificate verified, CAPABILITY); a password is never sent without TLS.

    Exit status: 0 account written, 2 bad usage or nothing found, 1 no server passed
    the probe.
    """
    import dns.exception

    from syncd.config import ACCOUNT_NAME_RE
    from syncd.discover.dns import DnsLookup
    from syncd.discover.http import HttpFetcher
    from syncd.discover.sources import Sources

    try:
        _local, domain = split_address(address)
    except AddressError as exc:
        raise click.UsageError(str(exc)) from None
    name = name or _default_name(domain)
    if not ACCOUNT_NAME_RE.fullmatch(name) or set(name) == {"."}:
        raise click.UsageError(f"bad account name {name!r} (letters, digits, '_', '.', '-')")
    path = _config_path(ctx, config_file)
    taken = _account_names(path)
    while name in taken:
        if non_interactive:
            raise click.UsageError(f"{path} already has an account named {name!r}; use --name")
        name = click.prompt(f"{path} already has an account {name!r}; name for this one")
        if not ACCOUNT_NAME_RE.fullmatch(name) or set(name) == {"."}:
            raise click.UsageError(f"bad account name {name!r} (letters, digits, '_', '.', '-')")

    nameserver, port = _dns_server(dns_server)
    resolver: Any
    try:
        resolver = DnsLookup(nameserver, port, timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:  # e.g. no /etc/resolv.conf
        resolver = _NoDns(f"no DNS resolver ({type(exc).__name__})")
    resolve = resolver.address if nameserver is not None else None
    sources = Sources(
        fetcher=HttpFetcher(timeout=timeout, resolve=resolve), resolver=resolver, ispdb=ispdb
    )
    click.echo(f"looking up the settings for {address}:")
    discovery = sources.discover(address)
    for attempt in discovery.attempts:
        click.echo(f"  {attempt}")
    if not discovery.found:
        _fail(
            EXIT_USAGE,
            [f"syncd: no IMAP settings found for {address}; tried:"]
            + [f"  {a}" for a in discovery.attempts]
            + ["add the account by hand (see contrib/config.example.toml)"],
        )

    provider = discovery.provider
    oauth2 = provider.oauth2 if provider is not None else None
    candidates = _usable(discovery.servers, oauth2 is not None)
    if not candidates:
        _fail(
            EXIT_FAILED,
            [
                f"syncd: {s}: offers only sign-in methods syncd cannot use (OAuth2 of an "
                "unknown provider, or none)"
                for s in discovery.servers
            ],
        )

    if oauth2 is not None and client_id is None and not non_interactive:
        client_id = click.prompt(
            f"{provider.name if provider else address} signs in with OAuth2: the client ID of "
            "your app registration (README: 'Gmail and Microsoft 365')",
            default="",
            show_default=False,
        ).strip() or None
    if oauth2 is not None and client_id is None:
        _fail(
            EXIT_USAGE,
            [
                f"syncd: {provider.name if provider else address} signs in with OAuth2 only: "
                "register an app (README: 'Gmail and Microsoft 365') and give its --client-id"
                + (" and --client-secret" if oauth2 == "google" else "")
            ],
        )

    from syncd.discover.probe import ProbeError, probe

    if oauth2 is not None and password_command:
        click.echo(f"note: {provider.name if provider else address} signs in with OAuth2; "
                   "--password-command is not used", err=True)  # fmt: skip
    if user is None and candidates[0].user is None and not non_interactive:
        user = click.prompt("login name (the source did not say)", default=address)

    secret = None
    argv: tuple[str, ...] | None = None
    if oauth2 is None and password_command:
        from syncd.auth.credentials import CommandPassword
        from syncd.errors import CredentialError

        try:
            argv = tuple(shlex.split(password_command))
            secret = CommandPassword(argv, account=name).password()
        except (ValueError, CredentialError) as exc:
            raise click.UsageError(f"--password-command: {exc}") from None
    elif oauth2 is None and not non_interactive:
        first_user = user or candidates[0].user or address
        secret = (
            click.prompt(
                f"password for {first_user} (kept in the keyring; empty: set it later)",
                hide_input=True,
                default="",
                show_default=False,
            )
            or None
        )

    problems: list[str] = []
    chosen = None
    for server in candidates:
        login = user or server.user or address
        click.echo(f"probing {server} ...")
        try:
            chosen = probe(server, ca_file=ca_file, timeout=timeout, user=login, password=secret)
            break
        except ProbeError as exc:
            problems.append(f"syncd: {exc}")
            click.echo(f"  failed: {exc}")
    if chosen is None:
        _fail(EXIT_FAILED, problems)
    found = chosen.server
    login_note = ", login ok" if chosen.logged_in else ""
    click.echo(f"  ok: {found} from {found.source}{login_note}")

    values: dict[str, Any] = {"host": found.host, "port": found.port, "tls": found.tls}
    if ca_file is not None:
        values["ca_file"] = str(ca_file.absolute())
    values["user"] = user or found.user or address
    if argv is not None:
        values["password_command"] = password_command
    values["maildir"] = str(maildir.absolute()) if maildir else f"~/Mail/{name}"
    if layout:
        values["layout"] = layout
    if provider is not None and provider.exclude:
        values["exclude"] = list(provider.exclude)
    if oauth2 is not None:
        values["auth"] = "oauth2"
        values["oauth2"] = {"provider": oauth2, "client_id": client_id}
        if client_secret:
            values["oauth2"]["client_secret"] = client_secret
    comment = f"{address}: found by `syncd init` ({found.source})"

    from syncd.cli.configfile import ConfigWriteError, write_account
    from syncd.discover.tomlwrite import render_account

    if dry_run:
        click.echo(render_account(name, values, comment=comment), nl=False)
        return
    try:
        notes = write_account(path, name, values, comment=comment)
    except ConfigWriteError as exc:
        _fail(EXIT_USAGE, [f"syncd: {exc.lines[0]}", *exc.lines[1:]])
    for line in notes:
        click.echo(f"note: {line}", err=True)
    click.echo(f"wrote [accounts.{name}] to {path}")

    _next_steps(
        path,
        name=name,
        oauth2=oauth2,
        argv=argv,
        secret=secret,
        provider=provider,
    )


def _account_names(path: Path) -> set[str]:
    """The accounts *path* already has (none if it is missing or unreadable: the
    edit itself reports those problems)."""
    import tomllib

    try:
        accounts = tomllib.loads(path.read_text(encoding="utf-8")).get("accounts", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return set()
    return set(accounts) if isinstance(accounts, dict) else set()


def _usable(servers: list[Server], oauth2_known: bool) -> list[Server]:
    """The servers syncd can sign in to: password, or OAuth2 of a known provider."""
    return [s for s in servers if "password" in s.auth or (oauth2_known and "oauth2" in s.auth)]


def _next_steps(
    path: Path,
    *,
    name: str,
    oauth2: str | None,
    argv: tuple[str, ...] | None,
    secret: str | None,
    provider: Any,
) -> None:
    from syncd.auth.credentials import set_password
    from syncd.config import config_path
    from syncd.errors import CredentialError

    default = config_path(None)
    prefix = "syncd" if path == default else f"syncd --config {shlex.quote(str(path))}"
    steps: list[str] = []
    if oauth2 is not None:
        steps.append(f"{prefix} login {name}")
    elif argv is None and secret is not None:
        try:
            set_password(name, secret)
            click.echo(f"password for {name} stored in the keyring")
        except CredentialError as exc:
            click.echo(f"note: {exc}", err=True)
            steps.append(f"{prefix} password set {name}")
    elif argv is None:
        steps.append(f"{prefix} password set {name}")
    if provider is not None and provider.note:
        click.echo(f"note: {provider.note}")
    steps.append(f"{prefix} sync {name}")
    click.echo("next: " + "  then  ".join(steps))


__all__ = ["init_command"]
