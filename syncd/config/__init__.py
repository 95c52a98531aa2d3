"""TOML configuration -> frozen, validated dataclasses.

The file is read once at start-up (``load_config``); nothing reads TOML later.
Every problem is reported as one line ``FILE: KEY.PATH: what is wrong`` so a
user can fix it without reading code.  ``read_config`` returns all problems
(``syncd check`` adds the rules' and plugins', see :mod:`syncd.cli.check`),
``load_config`` raises ``ConfigError`` with the first.

The package: :mod:`~syncd.config.schema` (the frozen dataclasses),
:mod:`~syncd.config.values` (value parsing), :mod:`~syncd.config.load` (the
reader); the public names are re-exported here.

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

from syncd.config.adopt import AdoptSettings
from syncd.config.load import config_path, default_config_path, load_config, read_config
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
from syncd.config.values import format_duration, is_loopback_host, parse_duration

__all__ = [
    "ACCOUNT_NAME_RE",
    "APP_NAME",
    "DEFAULT_IDLE",
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_PORTS",
    "DEFAULT_TIMEOUT",
    "MAX_CONNECTIONS_LIMIT",
    "AccountConfig",
    "AdoptSettings",
    "AuthMode",
    "Config",
    "Layout",
    "LocalNames",
    "SyncMode",
    "TlsMode",
    "config_path",
    "default_config_path",
    "format_duration",
    "is_loopback_host",
    "load_config",
    "parse_duration",
    "read_config",
]
