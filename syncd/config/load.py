"""Reading the config file: where it is, TOML -> validated :mod:`~syncd.config.schema`
objects, every problem as one line ``FILE: KEY.PATH: what is wrong``."""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast, get_args

import platformdirs

from syncd.config.adopt import AdoptSettings, parse_adopt_table
from syncd.config.oauth2 import OAuth2Settings, parse_oauth2_table
from syncd.config.schema import (
    ACCOUNT_NAME_RE,
    APP_NAME,
    DEFAULT_IDLE,
    DEFAULT_INTERVAL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORTS,
    DEFAULT_TIMEOUT,
    MAX_CONNECTIONS_LIMIT,
    AccountConfig,
    AuthMode,
    Config,
    Layout,
    LocalNames,
    SyncMode,
    TlsMode,
)
from syncd.config.values import (
    argv,
    describe,
    expand_path,
    is_loopback_host,
    parse_duration,
    quote,
    same_or_inside,
    suggest,
    toml_key,
    valid_host,
)
from syncd.errors import ConfigError

# The name the whole config module had before the split: users' log filters use it.
logger = logging.getLogger("syncd.config")

_TOP_KEYS: Final = ("general", "accounts", "plugins")
_GENERAL_KEYS: Final = ("state_dir",)
_ACCOUNT_KEYS: Final = (
    "host", "port", "tls", "ca_file", "user", "password_command", "allow_plaintext",
    "maildir", "layout", "folders", "exclude", "sync", "expunge", "timeout",
    "max_connections", "interval", "idle", "fsync", "new_to_new", "trash",
    "rules", "local_names", "auth", "oauth2", "oauth2_token_command", "adopt",
)  # fmt: skip


# --------------------------------------------------------------------------- locating


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/syncd/config.toml``, else platformdirs' user config dir."""
    xdg = environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_NAME / "config.toml"
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def config_path(explicit: Path | None, environ: Mapping[str, str] = os.environ) -> Path:
    """The config file to read: *explicit* (``--config``), ``$SYNCD_CONFIG``, or the default.

    Does not check that the file exists: ``load_config`` reports a missing file.
    """
    if explicit is not None:
        return Path(explicit)
    from_env = environ.get("SYNCD_CONFIG", "")
    if from_env:
        return Path(from_env)
    return default_config_path(environ)


# --------------------------------------------------------------------------- reading

_T = TypeVar("_T")


class _Problems:
    """Collects one-line problems ``FILE: KEY: message`` in the order found."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.file}: {key}: {message}")

    def add_file(self, message: str) -> None:
        self.lines.append(f"{self.file}: {message}")


class _Table:
    """Typed access to one TOML table; every bad value becomes a problem and a default."""

    def __init__(
        self,
        problems: _Problems,
        prefix: tuple[str, ...],
        data: Mapping[str, Any],
        allowed: Iterable[str],
    ) -> None:
        self.problems = problems
        self.prefix = prefix
        self.data = data
        self.allowed = tuple(allowed)

    def key(self, name: str) -> str:
        return toml_key(*self.prefix, name)

    def problem(self, name: str, message: str) -> None:
        self.problems.add(self.key(name), message)

    def check_unknown(self, special: Mapping[str, str] = MappingProxyType({})) -> None:
        for name in self.data:
            if name in special:
                self.problem(name, special[name])
            elif name not in self.allowed:
                self.problem(name, "unknown key" + suggest(name, self.allowed))

    def get(
        self, name: str, default: _T, convert: Callable[[object], _T], *, required: bool = False
    ) -> _T:
        if name not in self.data:
            if required:
                self.problem(name, "required key is missing")
            return default
        try:
            return convert(self.data[name])
        except ValueError as exc:
            self.problem(name, str(exc))
            return default

    def string(self, name: str, default: str = "", *, required: bool = False) -> str:
        def convert(value: object) -> str:
            if not isinstance(value, str):
                raise ValueError(f"must be a string (got {describe(value)})")
            if not value.strip():
                raise ValueError("must not be empty")
            return value

        return self.get(name, default, convert, required=required)

    def optional_string(self, name: str) -> str | None:
        return self.string(name) if name in self.data else None

    def boolean(self, name: str, default: bool) -> bool:
        def convert(value: object) -> bool:
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, without quotes (got {describe(value)})")
            return value

        return self.get(name, default, convert)

    def integer(self, name: str, default: _T, low: int, high: int | None = None) -> int | _T:
        def convert(value: object) -> int | _T:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"must be a whole number (got {describe(value)})")
            if value < low or (high is not None and value > high):
                bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
                raise ValueError(f"must be {bounds} (got {value})")
            return value

        fallback: int | _T = default
        return self.get(name, fallback, convert)

    def duration(self, name: str, default: float) -> float:
        def convert(value: object) -> float:
            seconds = parse_duration(value)
            if seconds <= 0:
                raise ValueError(f"must be longer than zero (got {describe(value)})")
            return seconds

        return self.get(name, default, convert)

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        def convert(value: object) -> str:
            if value not in choices:
                allowed = ", ".join(quote(c) for c in choices)
                raise ValueError(f"must be one of {allowed} (got {describe(value)})")
            return value

        return self.get(name, choices[0], convert)

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        def convert(value: object) -> tuple[str, ...]:
            if not isinstance(value, list):
                raise ValueError(f"must be an array of strings (got {describe(value)})")
            for item in value:
                if not isinstance(item, str) or not item:
                    raise ValueError(
                        f"must be an array of non-empty strings (found {describe(item)})"
                    )
            return tuple(value)

        return self.get(name, default, convert)

    def path(self, name: str, base: Path, *, required: bool = False) -> Path | None:
        def convert(value: object) -> Path:
            if not isinstance(value, str):
                raise ValueError(f"must be a path string (got {describe(value)})")
            return expand_path(value, base, os.environ)

        return self.get(name, None, convert, required=required)


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


def _oauth2_table(table: _Table) -> OAuth2Settings | None:
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


def _adopt_table(table: _Table, base: Path) -> AdoptSettings | None:
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
    table: _Table,
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


def _read_account(
    problems: _Problems, name: str, data: Mapping[str, Any], base: Path
) -> AccountConfig | None:
    table = _Table(problems, ("accounts", name), data, _ACCOUNT_KEYS)
    table.check_unknown({"password": _plaintext_password_message(name)})

    host = table.string("host", required=True).strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host and not valid_host(host):
        table.problem("host", f"must be a host name or an IP address (got {quote(host)})")
    tls = cast(TlsMode, table.choice("tls", get_args(TlsMode)))
    port = table.integer("port", DEFAULT_PORTS[tls], 1, 65535)
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
        idle=table.strings("idle", DEFAULT_IDLE),
        fsync=table.boolean("fsync", default=True),
        new_to_new=table.boolean("new_to_new", default=False),
        trash=table.optional_string("trash"),
        rules=table.get("rules", (), _rules),
        local_names=cast(LocalNames, table.choice("local_names", get_args(LocalNames))),
        auth=auth,
        oauth2=oauth2,
        oauth2_token_command=token_command,
        adopt=_adopt_table(table, base),
    )
    return account if maildir is not None else None


def _check_overlaps(problems: _Problems, state_dir: Path, accounts: list[AccountConfig]) -> None:
    """Maildirs must not overlap the state dir or each other (symlinks resolved)."""
    real_state = Path(os.path.realpath(state_dir))
    seen: list[tuple[AccountConfig, Path]] = []
    for account in accounts:
        key = toml_key("accounts", account.name, "maildir")
        real = Path(os.path.realpath(account.maildir))
        if same_or_inside(real, real_state) or same_or_inside(real_state, real):
            problems.add(
                key,
                f"{account.maildir} overlaps the state directory {state_dir}; "
                "keep mail and syncd's state apart",
            )
        for other, other_real in seen:
            if same_or_inside(real, other_real) or same_or_inside(other_real, real):
                problems.add(
                    key,
                    f"{account.maildir} overlaps the Maildir of account {other.name} "
                    f"({other.maildir}); two accounts syncing one Maildir tree delete "
                    "each other's mail",
                )
        seen.append((account, real))


def _read(path: Path, problems: _Problems) -> Config | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problems.add_file(
            "config file not found (syncd reads --config FILE, else $SYNCD_CONFIG, else "
            f"{default_config_path()}); start from contrib/config.example.toml"
        )
        return None
    except OSError as exc:
        problems.add_file(f"cannot read the config file: {exc.strerror or exc}")
        return None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        problems.add_file(f"not valid UTF-8 (at byte {exc.start})")
        return None
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        problems.add_file(f"invalid TOML: {exc}")
        return None

    base = path.absolute().parent
    top = _Table(problems, (), data, _TOP_KEYS)
    top.check_unknown()

    general_data = data.get("general", {})
    if not isinstance(general_data, dict):
        top.problem("general", f"must be a table (got {describe(general_data)})")
        general_data = {}
    general = _Table(problems, ("general",), general_data, _GENERAL_KEYS)
    general.check_unknown()
    state_dir = general.path("state_dir", base) or Path(platformdirs.user_state_dir(APP_NAME))

    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        top.problem("plugins", f"must be a table (got {describe(plugins)})")
        plugins = {}

    accounts_data = data.get("accounts", {})
    if not isinstance(accounts_data, dict):
        top.problem(
            "accounts",
            f"must be a table of [accounts.NAME] tables (got {describe(accounts_data)})",
        )
        accounts_data = {}
    if not accounts_data:
        problems.add("accounts", "no account configured; add an [accounts.NAME] table")
    accounts: list[AccountConfig] = []
    for name, account_data in accounts_data.items():
        key = toml_key("accounts", name)
        if not ACCOUNT_NAME_RE.fullmatch(name):
            problems.add(key, "account names may use only letters, digits, '_', '.' and '-'")
            continue
        if set(name) == {"."}:  # "." and ".." would name directories in file paths
            problems.add(key, "an account name cannot be only dots")
            continue
        if not isinstance(account_data, dict):
            problems.add(key, f"must be a table (got {describe(account_data)})")
            continue
        account = _read_account(problems, name, account_data, base)
        if account is not None:
            accounts.append(account)
    _check_overlaps(problems, state_dir, accounts)

    if problems.lines:
        return None
    _warn_if_world_writable(path, accounts)
    return Config(
        path=path.absolute(),
        state_dir=state_dir,
        accounts=MappingProxyType({a.name: a for a in accounts}),
        plugins=MappingProxyType(plugins),
    )


def _warn_if_world_writable(path: Path, accounts: list[AccountConfig]) -> None:
    commands = [a.password_command or a.oauth2_token_command for a in accounts]
    if not any(commands):
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IWOTH:
        logger.warning(
            "%s is writable by every user and sets a credential command: anyone on this "
            "machine could replace the command and capture your password (chmod o-w %s)",
            path,
            path,
        )


def read_config(path: Path) -> tuple[Config | None, list[str]]:
    """Read and validate *path*: the config, or None and every problem found, one
    line each, in the order found (``syncd check`` adds the rules' and plugins')."""
    problems = _Problems(Path(path))
    return _read(Path(path), problems), problems.lines


def load_config(path: Path) -> Config:
    """Read and validate *path*; ``ConfigError`` with the first problem (one line)."""
    config, problems = read_config(path)
    if config is None:
        raise ConfigError(problems[0])
    return config
