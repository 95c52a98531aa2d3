"""TOML configuration -> frozen, validated dataclasses.

The file is read once at start-up (``load_config``); nothing reads TOML later.
Every problem is reported as one line ``FILE: KEY.PATH: what is wrong`` so a
user can fix it without reading code.  ``check_config`` lists all problems
(``syncd check``), ``load_config`` raises ``ConfigError`` with the first.

Where the file is (``config_path``): ``--config FILE``, else ``$SYNCD_CONFIG``,
else ``$XDG_CONFIG_HOME/syncd/config.toml`` (``~/.config/syncd/config.toml``).

Rules a user can rely on:

- Paths expand ``~`` and ``$VAR``/``${VAR}`` (an unset variable is an error);
  a relative path is relative to the directory of the config file.
- ``password_command`` runs *without a shell*: a string is split into
  arguments like a POSIX shell would split it (``shlex.split``), but ``$(...)``,
  pipes, ``~`` and ``$VAR`` are not interpreted.  Write
  ``password_command = ["sh", "-c", "pass show mail/work | head -n1"]`` when a
  shell is really wanted.
- ``tls = "none"`` is refused for a non-loopback host unless
  ``allow_plaintext = true``; two accounts never share (or nest) a Maildir,
  and a Maildir never overlaps the state directory.
- Types are strict: ``"yes"`` is not a boolean, ``true`` is not a number.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import math
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, cast, get_args

import platformdirs

from syncd.errors import ConfigError

logger = logging.getLogger(__name__)

TlsMode = Literal["tls", "starttls", "none"]
Layout = Literal["maildir++", "nested", "flat"]
LocalNames = Literal["utf-8", "imap-utf-7"]  # how folder names are spelled on disk
SyncMode = Literal["both", "pull", "push"]

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

_TOP_KEYS: Final = ("general", "accounts", "plugins")
_GENERAL_KEYS: Final = ("state_dir",)
_ACCOUNT_KEYS: Final = (
    "host", "port", "tls", "ca_file", "user", "password_command", "allow_plaintext",
    "maildir", "layout", "folders", "exclude", "sync", "expunge", "timeout",
    "max_connections", "interval", "idle", "fsync", "new_to_new", "trash",
    "rules", "local_names",
)  # fmt: skip


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
                f"{self.path}: no account named {_quote(name)} (configured: {known})"
            ) from None


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


# --------------------------------------------------------------------------- durations

_DURATION_UNITS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "ms": 0.001,
        "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
        "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
        "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
        "d": 86400, "day": 86400, "days": 86400,
    }
)  # fmt: skip
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE_NUMBER_RE: Final = re.compile(_NUMBER)
_DURATION_PART_RE: Final = re.compile(rf"\s*({_NUMBER})\s*([a-z]+)")
_DURATION_HINT: Final = 'use seconds, or a number with a unit: "90s", "5m", "1h", "1h30m"'


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"90"``, ``"90s"``, ``"5m"``, ``"1h30m"``.

    Units: ms, s, m, h, d (and their spelled-out forms); parts add up.  Raises
    ``ValueError`` (one line, no key or file) for anything else, including
    booleans, negative, infinite or NaN values.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a number of seconds or a duration string ({_describe(value)})")
    if isinstance(value, str):
        text = value.strip().lower()
        if _BARE_NUMBER_RE.fullmatch(text):
            seconds = float(text)
        else:
            seconds = 0.0
            pos = 0
            while pos < len(text):
                match = _DURATION_PART_RE.match(text, pos)
                if match is None or match.group(2) not in _DURATION_UNITS:
                    raise ValueError(f"not a duration: {_quote(value)} ({_DURATION_HINT})")
                seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
                pos = match.end()
            if pos == 0:  # empty or blank string
                raise ValueError(f"not a duration: {_quote(value)} ({_DURATION_HINT})")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a finite, non-negative duration (got {_describe(value)})")
    return seconds


def format_duration(seconds: float) -> str:
    """A short display form (``"1h30m"``); ``parse_duration`` reads whole seconds back exactly."""
    if seconds != int(seconds):
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# --------------------------------------------------------------------------- helpers


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (also IPv4-mapped), by name only.

    Only the literal name ``localhost`` counts: other names could resolve anywhere.
    """
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _quote(text: str) -> str:
    # JSON string syntax is TOML's basic-string syntax, and it keeps a message on one line.
    return json.dumps(text, ensure_ascii=False)


def _describe(value: object) -> str:
    """A TOML-ish rendering of *value* for ``(got ...)``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return f"a date/time {value.isoformat()}"
    return type(value).__name__


def _key(*parts: str) -> str:
    """A key path as TOML would write it: ``accounts.work.tls``, ``accounts."a.b".tls``."""
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else _quote(p) for p in parts)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {_quote(close[0])}?)" if close else ""


_VAR_RE: Final = re.compile(r"\$(?:(\w+)|\{([^}]*)\})")


def _expand_path(raw: str, base: Path, environ: Mapping[str, str]) -> Path:
    """Expand ``$VAR``, ``${VAR}`` and ``~``; anchor a relative path at *base*."""
    if not raw:
        raise ValueError("must not be empty")
    if "\0" in raw:
        raise ValueError("must not contain a NUL character")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in environ:
            raise ValueError(f"uses ${name}, which is not set in the environment")
        return environ[name]

    expanded = Path(_VAR_RE.sub(substitute, raw))
    try:
        expanded = expanded.expanduser()
    except RuntimeError:  # "~user" of an unknown user, or no $HOME
        raise ValueError(f"cannot expand {expanded.parts[0]}") from None
    return Path(os.path.normpath(base / expanded))


def _same_or_inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


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
        return _key(*self.prefix, name)

    def problem(self, name: str, message: str) -> None:
        self.problems.add(self.key(name), message)

    def check_unknown(self, special: Mapping[str, str] = MappingProxyType({})) -> None:
        for name in self.data:
            if name in special:
                self.problem(name, special[name])
            elif name not in self.allowed:
                self.problem(name, "unknown key" + _suggest(name, self.allowed))

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
                raise ValueError(f"must be a string (got {_describe(value)})")
            if not value.strip():
                raise ValueError("must not be empty")
            return value

        return self.get(name, default, convert, required=required)

    def optional_string(self, name: str) -> str | None:
        return self.string(name) if name in self.data else None

    def boolean(self, name: str, default: bool) -> bool:
        def convert(value: object) -> bool:
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, without quotes (got {_describe(value)})")
            return value

        return self.get(name, default, convert)

    def integer(self, name: str, default: _T, low: int, high: int | None = None) -> int | _T:
        def convert(value: object) -> int | _T:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"must be a whole number (got {_describe(value)})")
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
                raise ValueError(f"must be longer than zero (got {_describe(value)})")
            return seconds

        return self.get(name, default, convert)

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        def convert(value: object) -> str:
            if value not in choices:
                allowed = ", ".join(_quote(c) for c in choices)
                raise ValueError(f"must be one of {allowed} (got {_describe(value)})")
            return value

        return self.get(name, choices[0], convert)

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        def convert(value: object) -> tuple[str, ...]:
            if not isinstance(value, list):
                raise ValueError(f"must be an array of strings (got {_describe(value)})")
            for item in value:
                if not isinstance(item, str) or not item:
                    raise ValueError(
                        f"must be an array of non-empty strings (found {_describe(item)})"
                    )
            return tuple(value)

        return self.get(name, default, convert)

    def path(self, name: str, base: Path, *, required: bool = False) -> Path | None:
        def convert(value: object) -> Path:
            if not isinstance(value, str):
                raise ValueError(f"must be a path string (got {_describe(value)})")
            return _expand_path(value, base, os.environ)

        return self.get(name, None, convert, required=required)


def _argv(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
            raise ValueError(f"cannot split into arguments: {exc}") from None
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        argv = tuple(value)
    else:
        raise ValueError(f"must be a string or an array of strings (got {_describe(value)})")
    if not argv or not argv[0]:
        raise ValueError("must name a command")
    return argv


def _rules(value: object) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(
            f"must be an array of tables ([[accounts.NAME.rules]]) (got {_describe(value)})"
        )
    return tuple(MappingProxyType(item) for item in value)


def _plaintext_password_message(account: str) -> str:
    return (
        "a plaintext password in the config is not supported; use password_command "
        f'(e.g. "pass show mail/{account}") or store it in the keyring with '
        f"`syncd password set {account}`"
    )


def _read_account(
    problems: _Problems, name: str, data: Mapping[str, Any], base: Path
) -> AccountConfig | None:
    table = _Table(problems, ("accounts", name), data, _ACCOUNT_KEYS)
    table.check_unknown({"password": _plaintext_password_message(name)})

    host = table.string("host", required=True).strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host and not _valid_host(host):
        table.problem("host", f"must be a host name or an IP address (got {_quote(host)})")
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
    password_command = table.get("password_command", None, _argv)
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
    )
    return account if maildir is not None else None


def _valid_host(host: str) -> bool:
    if any(c.isspace() or c in "/\\@\0" for c in host):
        return False
    if ":" in host:  # only an IPv6 address may contain colons ("host:993" is a mistake)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    return True


def _check_overlaps(problems: _Problems, state_dir: Path, accounts: list[AccountConfig]) -> None:
    """Maildirs must not overlap the state dir or each other (symlinks resolved)."""
    real_state = Path(os.path.realpath(state_dir))
    seen: list[tuple[AccountConfig, Path]] = []
    for account in accounts:
        key = _key("accounts", account.name, "maildir")
        real = Path(os.path.realpath(account.maildir))
        if _same_or_inside(real, real_state) or _same_or_inside(real_state, real):
            problems.add(
                key,
                f"{account.maildir} overlaps the state directory {state_dir}; "
                "keep mail and syncd's state apart",
            )
        for other, other_real in seen:
            if _same_or_inside(real, other_real) or _same_or_inside(other_real, real):
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
        top.problem("general", f"must be a table (got {_describe(general_data)})")
        general_data = {}
    general = _Table(problems, ("general",), general_data, _GENERAL_KEYS)
    general.check_unknown()
    state_dir = general.path("state_dir", base) or Path(platformdirs.user_state_dir(APP_NAME))

    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        top.problem("plugins", f"must be a table (got {_describe(plugins)})")
        plugins = {}

    accounts_data = data.get("accounts", {})
    if not isinstance(accounts_data, dict):
        top.problem(
            "accounts",
            f"must be a table of [accounts.NAME] tables (got {_describe(accounts_data)})",
        )
        accounts_data = {}
    if not accounts_data:
        problems.add("accounts", "no account configured; add an [accounts.NAME] table")
    accounts: list[AccountConfig] = []
    for name, account_data in accounts_data.items():
        key = _key("accounts", name)
        if not ACCOUNT_NAME_RE.fullmatch(name):
            problems.add(key, "account names may use only letters, digits, '_', '.' and '-'")
            continue
        if set(name) == {"."}:  # "." and ".." would name directories in file paths
            problems.add(key, "an account name cannot be only dots")
            continue
        if not isinstance(account_data, dict):
            problems.add(key, f"must be a table (got {_describe(account_data)})")
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
    if not any(a.password_command for a in accounts):
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IWOTH:
        logger.warning(
            "%s is writable by every user and sets password_command: anyone on this "
            "machine could replace the command and capture your password (chmod o-w %s)",
            path,
            path,
        )


def load_config(path: Path) -> Config:
    """Read and validate *path*; ``ConfigError`` with the first problem (one line)."""
    problems = _Problems(Path(path))
    config = _read(Path(path), problems)
    if config is None:
        raise ConfigError(problems.lines[0])
    return config


def check_config(path: Path) -> list[str]:
    """Every problem in *path*, one line each, in the order found; empty when it is fine."""
    problems = _Problems(Path(path))
    config = _read(Path(path), problems)
    if config is not None:
        from syncd.ext.loader import check_plugins  # both build on this module
        from syncd.ext.rules import parse_rules

        for account in config.accounts.values():
            try:
                parse_rules(account, file=config.path)
            except ConfigError as exc:
                problems.lines.append(str(exc))
        problems.lines += check_plugins(config)
    return problems.lines
