"""One ``[accounts.NAME]`` table -> :class:`~syncd.config.schema.AccountConfig`:
the keys both protocols share, the IMAP-only and the POP3-only ones."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, cast, get_args

from syncd.config.adopt import AdoptSettings, parse_adopt_table
from syncd.config.oauth2 import OAuth2Settings, parse_oauth2_table
from syncd.config.schema import (
    DEFAULT_IDLE,
    DEFAULT_INTERVAL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORTS,
    DEFAULT_TIMEOUT,
    MAX_CONNECTIONS_LIMIT,
    POP3_PORTS,
    AccountConfig,
    AuthMode,
    Layout,
    LocalNames,
    Pop3Login,
    Protocol,
    SyncMode,
    TlsMode,
)
from syncd.config.table import Problems, Table
from syncd.config.values import argv, describe, is_loopback_host, quote, valid_host
from syncd.errors import ConfigError

ACCOUNT_KEYS: Final = (
    "host", "port", "tls", "ca_file", "user", "password_command", "allow_plaintext",
    "maildir", "layout", "folders", "exclude", "sync", "expunge", "timeout",
    "max_connections", "interval", "idle", "fsync", "new_to_new", "trash",
    "rules", "local_names", "auth", "oauth2", "oauth2_token_command", "protocol",
    "keep_on_server", "delete_after_days", "allow_no_uidl", "collect_into", "adopt",
    "pop3_login", "subscribed_only",
)  # fmt: skip
#: Keys that mean nothing for a POP3 maildrop (one folder, no flags, no push).
IMAP_ONLY_KEYS: Final = (
    "folders", "exclude", "sync", "expunge", "max_connections", "idle", "new_to_new",
    "trash", "rules", "local_names", "adopt", "subscribed_only",
)  # fmt: skip
POP3_ONLY_KEYS: Final = (
    "keep_on_server", "delete_after_days", "allow_no_uidl", "collect_into", "pop3_login",
)  # fmt: skip


def _rules(value: object) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(
            f"must be an array of tables ([[accounts.NAME.rules]]) (got {describe(value)})"
        )
    return tuple(MappingProxyType(item) for item in value)


def _plaintext_password_message(account: str) -> str:
    return (
        "a plaintext password in the config is not supported; use password_command "
        f'(e.g. "pass show mail/{account}") or store it in the keyring with '
        f"`syncd password set {account}`"
    )


def _oauth2_table(table: Table) -> OAuth2Settings | None:
    raw = table.data.get("oauth2")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        table.problem("oauth2", f"must be a table ([{table.key('oauth2')}])")
        return None
    try:
        return parse_oauth2_table(raw, f"{table.problems.file}: {table.key('oauth2')}")
    except ConfigError as exc:
        table.problems.lines.append(str(exc))
        return None


def _adopt_table(table: Table, base: Path) -> AdoptSettings | None:
    raw = table.data.get("adopt")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        table.problem("adopt", f"must be a table ([{table.key('adopt')}])")
        return None
    try:
        return parse_adopt_table(raw, f"{table.problems.file}: {table.key('adopt')}", base)
    except ConfigError as exc:
        table.problems.lines.append(str(exc))
        return None


def _check_auth(
    table: Table,
    auth: AuthMode,
    oauth2: OAuth2Settings | None,
    token_command: tuple[str, ...] | None,
    password_command: tuple[str, ...] | None,
) -> None:
    table_key = table.key("oauth2")
    if auth == "oauth2":
        if "oauth2" not in table.data and token_command is None:
            table.problem(
                "auth",
                f'"oauth2" needs a [{table_key}] table (provider, client_id) '
                "or oauth2_token_command (a command that prints an access token)",
            )
        elif "oauth2" in table.data and token_command is not None:
            table.problem(
                "oauth2_token_command",
                f"set either oauth2_token_command or the [{table_key}] table, not both",
            )
        if password_command is not None:
            table.problem("password_command", 'not used with auth = "oauth2"; remove it')
    elif "oauth2" in table.data or token_command is not None:
        which = f"[{table_key}]" if "oauth2" in table.data else "oauth2_token_command"
        table.problem("auth", f'is "password" but {which} is set: write auth = "oauth2"')


def read_account(
    problems: Problems, name: str, data: Mapping[str, Any], base: Path
) -> AccountConfig | None:
    table = Table(problems, ("accounts", name), data, ACCOUNT_KEYS)
    protocol = cast(Protocol, table.choice("protocol", get_args(Protocol)))
    special = {"password": _plaintext_password_message(name)}
    if protocol == "pop3":
        special.update(
            (key, 'is an IMAP setting; a protocol = "pop3" account has one folder (INBOX)')
            for key in IMAP_ONLY_KEYS
        )
    else:
        special.update((key, 'needs protocol = "pop3"') for key in POP3_ONLY_KEYS)
    table.check_unknown(special)

    host = table.string("host", required=True).strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host and not valid_host(host):
        table.problem("host", f"must be a host name or an IP address (got {quote(host)})")
    tls = cast(TlsMode, table.choice("tls", get_args(TlsMode)))
    port = table.integer(
        "port", (POP3_PORTS if protocol == "pop3" else DEFAULT_PORTS)[tls], 1, 65535
    )
    allow_plaintext = table.boolean("allow_plaintext", default=False)
    if tls == "none" and host and not allow_plaintext and not is_loopback_host(host):
        table.problem(
            "tls",
            f'"none" would send the password to {host} across the network in clear text; '
            'use "tls" or "starttls", or set allow_plaintext = true if you accept that',
        )
    ca_file = table.path("ca_file", base)
    if ca_file is not None:
        if not ca_file.exists():
            table.problem("ca_file", f"{ca_file} does not exist")
        elif not ca_file.is_file():
            table.problem("ca_file", f"{ca_file} is not a file")
        elif not os.access(ca_file, os.R_OK):
            table.problem("ca_file", f"{ca_file} is not readable")

    user = table.string("user", required=True)
    password_command = table.get("password_command", None, argv)
    auth = cast(AuthMode, table.choice("auth", get_args(AuthMode)))
    oauth2 = _oauth2_table(table)
    token_command = table.get("oauth2_token_command", None, argv)
    _check_auth(table, auth, oauth2, token_command, password_command)
    maildir = table.path("maildir", base, required=True)
    keep, after_days, no_uidl = _pop3_keys(table) if protocol == "pop3" else (True, None, False)
    account = AccountConfig(
        name=name,
        host=host,
        port=port,
        tls=tls,
        ca_file=ca_file,
        user=user,
        password_command=password_command,
        allow_plaintext=allow_plaintext,
        maildir=maildir or base,
        layout=cast(Layout, table.choice("layout", get_args(Layout))),
        folders=table.strings("folders", ("*",)),
        exclude=table.strings("exclude", ()),
        sync=cast(SyncMode, table.choice("sync", get_args(SyncMode))),
        expunge=table.boolean("expunge", default=True),
        timeout=table.duration("timeout", DEFAULT_TIMEOUT),
        max_connections=table.integer(
            "max_connections", DEFAULT_MAX_CONNECTIONS, 1, MAX_CONNECTIONS_LIMIT
        ),
        interval=table.duration("interval", DEFAULT_INTERVAL),
        # No push over POP3: the account is polled on `interval`.
        idle=() if protocol == "pop3" else table.strings("idle", DEFAULT_IDLE),
        fsync=table.boolean("fsync", default=True),
        # What POP3 downloads is unread: it lands in new/, as a delivery would.
        new_to_new=protocol == "pop3" or table.boolean("new_to_new", default=False),
        trash=table.optional_string("trash"),
        rules=table.get("rules", (), _rules),
        local_names=cast(LocalNames, table.choice("local_names", get_args(LocalNames))),
        auth=auth,
        oauth2=oauth2,
        oauth2_token_command=token_command,
        protocol=protocol,
        keep_on_server=keep,
        delete_after_days=after_days,
        allow_no_uidl=no_uidl,
        pop3_login=cast(Pop3Login, table.choice("pop3_login", get_args(Pop3Login))),
        collect_into=table.get("collect_into", None, _collect_target)
        if protocol == "pop3"
        else None,
        adopt=_adopt_table(table, base) if protocol != "pop3" else None,
        subscribed_only=table.boolean("subscribed_only", default=False),
    )
    return account if maildir is not None else None


def _collect_target(value: object) -> tuple[str, str]:
    if not isinstance(value, str):
        raise ValueError(f'must be a string "ACCOUNT/FOLDER" (got {describe(value)})')
    account, _, folder = value.partition("/")
    parts = folder.split("/")
    if not account or not folder or not all(p.strip() for p in parts):
        raise ValueError(
            f'must be "ACCOUNT/FOLDER", an IMAP account of this file and one of its '
            f"folders (got {quote(value)})"
        )
    return account, folder


def _pop3_keys(table: Table) -> tuple[bool, int | None, bool]:
    """``keep_on_server``, ``delete_after_days``, ``allow_no_uidl``, checked together."""
    keep = table.boolean("keep_on_server", default=True)
    days: int | None = table.integer("delete_after_days", None, 1, 36500)
    no_uidl = table.boolean("allow_no_uidl", default=False)
    if days is not None and not keep:
        table.problem(
            "delete_after_days",
            "keep_on_server = false already deletes mail as soon as it is stored; "
            "remove one of the two",
        )
    if no_uidl and keep:
        table.problem(
            "allow_no_uidl",
            "without UIDL syncd cannot tell new mail from old, so it can only download "
            "and delete: set keep_on_server = false as well",
        )
    return keep, days, no_uidl
