"""Reading the config file: where it is, TOML -> validated :mod:`~syncd.config.schema`
objects, every problem as one line ``FILE: KEY.PATH: what is wrong``."""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from syncd.config.account import read_account
from syncd.config.schema import ACCOUNT_NAME_RE, APP_NAME, AccountConfig, Config
from syncd.config.table import Problems, Table
from syncd.config.values import describe, same_or_inside, toml_key
from syncd.errors import ConfigError

# The name the whole config module had before the split: users' log filters use it.
logger = logging.getLogger("syncd.config")

_TOP_KEYS: Final = ("general", "accounts", "plugins")
_GENERAL_KEYS: Final = ("state_dir",)

# --------------------------------------------------------------------------- locating


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/syncd/config.toml``, else platformdirs' user config dir."""
    xdg = environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_NAME / "config.toml"
    import platformdirs  # here: a run given --config never needs it

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


def _check_overlaps(problems: Problems, state_dir: Path, accounts: list[AccountConfig]) -> None:
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


def _check_collect_targets(problems: Problems, accounts: list[AccountConfig]) -> None:
    """``collect_into`` names an IMAP account of the same file."""
    by_name = {a.name: a for a in accounts}
    for account in accounts:
        if account.collect_into is None:
            continue
        target = by_name.get(account.collect_into[0])
        key = toml_key("accounts", account.name, "collect_into")
        if target is None:
            known = ", ".join(a.name for a in accounts if a.protocol == "imap") or "none"
            problems.add(
                key, f"no account named {account.collect_into[0]!r} (IMAP accounts: {known})"
            )
        elif target.protocol != "imap":
            problems.add(key, f"{target.name} is not an IMAP account; mail is collected into IMAP")


def _read(path: Path, problems: Problems) -> Config | None:
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
    top = Table(problems, (), data, _TOP_KEYS)
    top.check_unknown()

    general_data = data.get("general", {})
    if not isinstance(general_data, dict):
        top.problem("general", f"must be a table (got {describe(general_data)})")
        general_data = {}
    general = Table(problems, ("general",), general_data, _GENERAL_KEYS)
    general.check_unknown()
    state_dir = general.path("state_dir", base) or _default_state_dir()

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
        account = read_account(problems, name, account_data, base)
        if account is not None:
            accounts.append(account)
    _check_overlaps(problems, state_dir, accounts)
    _check_collect_targets(problems, accounts)

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
    problems = Problems(Path(path))
    return _read(Path(path), problems), problems.lines


def load_config(path: Path) -> Config:
    """Read and validate *path*; ``ConfigError`` with the first problem (one line)."""
    config, problems = read_config(path)
    if config is None:
        raise ConfigError(problems[0])
    return config


def _default_state_dir() -> Path:
    import platformdirs  # here: a config that names its state_dir never needs it

    return Path(platformdirs.user_state_dir(APP_NAME))
