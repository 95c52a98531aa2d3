"""What every ``syncd`` command shares: the exit codes, the click context object
and account selection.  Command modules import this, never :mod:`syncd.cli.app`.

Exit codes (stable, for scripts):
  0   every folder of every requested account synced
  1   at least one folder, message or account failed, or a message the server
      refused is held back (the others were still synced); for ``syncd status``:
      an account's last attempt did so (failing, backing off, or partial)
  2   usage or configuration error (one line names the file and the key)
  75  another syncd process holds an account's lock (EX_TEMPFAIL: try again later)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

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


# The group's own options, also accepted after the subcommand (`syncd sync -v`).
_GLOBAL_FLAG: Final = re.compile(r"-v+|--verbose|-q|--quiet|--config=.+")
_GLOBAL_WITH_VALUE: Final = frozenset({"--config"})


class GlobalOptionsGroup(click.Group):
    """A group whose own options may also follow the subcommand, as users type them:
    ``syncd sync -v work`` is ``syncd -v sync work``.  Only whole tokens that are the
    group's options move (``-v``, ``-vv``, ``--verbose``, ``-q``, ``--quiet``,
    ``--config FILE``), never one the subcommand declares itself, and nothing after
    ``--``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Subcommands imported only when used: each `syncd` run (a status bar's
        #: `syncd status --short`, a reader's `syncd sync`) loads just its own.
        self.lazy: dict[str, Callable[[], click.Command]] = {}

    def add_lazy(self, name: str, load: Callable[[], click.Command]) -> None:
        self.lazy[name] = load

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name](), cmd_name)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None and not ctx.resilient_parsing:
            at = next((i for i, a in enumerate(args) if a in self.list_commands(ctx)), None)
            command = self.get_command(ctx, args[at]) if at is not None else None
            if at is not None and command is not None:
                args = _hoist_global_options(args, at, command)
        return super().parse_args(ctx, args)


def _own_options(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts, param.secondary_opts)
    return names


def _hoist_global_options(args: list[str], at: int, command: click.Command) -> list[str]:
    own = _own_options(command)
    before, after = list(args[: at + 1]), args[at + 1 :]
    rest: list[str] = []
    i = 0
    while i < len(after):
        arg = after[i]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest += after[i:]
            break
        if name in own:
            rest.append(arg)
        elif arg in _GLOBAL_WITH_VALUE and i + 1 < len(after):
            before[at:at] = [arg, after[i + 1]]
            at += 2
            i += 2
            continue
        elif _GLOBAL_FLAG.fullmatch(arg):
            before[at:at] = [arg]
            at += 1
        else:
            rest.append(arg)
        i += 1
    return before + rest
