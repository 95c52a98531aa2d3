"""The configuration's shape: frozen dataclasses, their literal types and defaults.

Built once by :func:`syncd.config.load.load_config`; nothing reads TOML later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from syncd.config.adopt import AdoptSettings
from syncd.config.oauth2 import OAuth2Settings
from syncd.config.values import quote
from syncd.errors import ConfigError

TlsMode = Literal["tls", "starttls", "none"]
Layout = Literal["maildir++", "nested", "flat"]
LocalNames = Literal["utf-8", "imap-utf-7"]  # how folder names are spelled on disk
SyncMode = Literal["both", "pull", "push"]
Pop3Login = Literal["auto", "user", "plain", "apop"]
AuthMode = Literal["password", "oauth2"]
Protocol = Literal["imap", "pop3"]

APP_NAME: Final = "syncd"
ACCOUNT_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")

DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_MAX_CONNECTIONS: Final = 4
MAX_CONNECTIONS_LIMIT: Final = 16
DEFAULT_INTERVAL: Final = 300.0
DEFAULT_IDLE: Final = ("INBOX",)
DEFAULT_PORTS: Final[Mapping[str, int]] = MappingProxyType(
    {"tls": 993, "starttls": 143, "none": 143}
)
POP3_PORTS: Final[Mapping[str, int]] = MappingProxyType({"tls": 995, "starttls": 110, "none": 110})


@dataclass(frozen=True)
class AccountConfig:
    """One ``[accounts.NAME]`` table, validated.  Paths are absolute."""

    name: str
    host: str
    port: int
    tls: TlsMode
    ca_file: Path | None
    user: str
    password_command: tuple[str, ...] | None  # argv, run without a shell; None: keyring
    allow_plaintext: bool
    maildir: Path
    layout: Layout
    folders: tuple[str, ...]
    exclude: tuple[str, ...]
    sync: SyncMode
    expunge: bool
    timeout: float
    max_connections: int
    interval: float
    idle: tuple[str, ...]
    fsync: bool
    new_to_new: bool
    trash: str | None
    rules: tuple[Mapping[str, Any], ...]  # opaque until the rules engine parses them
    # Last, with a default, so that code building an AccountConfig by hand keeps working.
    local_names: LocalNames = "utf-8"
    auth: AuthMode = "password"
    oauth2: OAuth2Settings | None = None  # the [accounts.NAME.oauth2] table
    oauth2_token_command: tuple[str, ...] | None = None  # argv printing an access token
    protocol: Protocol = "imap"
    # POP3 only: leave downloaded mail on the server; delete it this many days after
    # it was first stored here (None: never); a server without UIDL may be emptied.
    keep_on_server: bool = True
    delete_after_days: int | None = None
    allow_no_uidl: bool = False
    # POP3 only: "auto" = SASL PLAIN where the server offers it, else USER/PASS;
    # "apop" = APOP (RFC 1939: the password never crosses the wire, even in TLS).
    pop3_login: Pop3Login = "auto"
    collect_into: tuple[str, str] | None = None  # (IMAP account, folder with "/")
    adopt: AdoptSettings | None = None  # the [accounts.NAME.adopt] table (another tool's state)
    subscribed_only: bool = False  # sync only the folders subscribed (INBOX always)


@dataclass(frozen=True)
class Config:
    """The whole configuration.  ``accounts`` keeps the order of the file."""

    path: Path
    state_dir: Path
    accounts: Mapping[str, AccountConfig]
    plugins: Mapping[str, Any]  # opaque until the plugin manager reads it

    def account(self, name: str) -> AccountConfig:
        """The account called *name*; ``ConfigError`` naming the known ones otherwise."""
        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(self.accounts) or "none"
            raise ConfigError(
                f"{self.path}: no account named {quote(name)} (configured: {known})"
            ) from None
