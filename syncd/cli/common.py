"""What every ``syncd`` command shares: the exit codes, the click context object
and account selection.  Command modules import this, never :mod:`syncd.cli.main`.

Exit codes (stable, for scripts):
  0   every folder of every requested account synced
  1   at least one folder, message or account failed, or a message the server
      refused is held back (the others were still synced)
  2   usage or configuration error (one line names the file and the key)
  75  another syncd process holds an account's lock (EX_TEMPFAIL: try again later)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from syncd.errors import ConfigError

if TYPE_CHECKING:
    from syncd.config import Config

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 75


class Context:
    def __init__(self, config_file: Path | None, verbosity: int) -> None:
        self.config_file = config_file
        self.verbosity = verbosity

    def path(self) -> Path:
        from syncd.config import config_path

        return config_path(self.config_file)

    def load(self) -> Config:
        from syncd.config import load_config

        return load_config(self.path())


def select_accounts(config: Config, accounts: tuple[str, ...]) -> list[str]:
    """The names of ``accounts`` (all configured ones when empty); ConfigError
    naming the unknown ones."""
    unknown = [a for a in accounts if a not in config.accounts]
    if unknown:
        raise ConfigError(
            f"{config.path}: no account named {', '.join(unknown)} "
            f"(configured: {', '.join(config.accounts) or 'none'})"
        )
    return list(accounts) or list(config.accounts)
