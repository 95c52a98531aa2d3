"""``syncd check``: the config file, its TOML rules and its ``[plugins]``, every
problem on one line.

Here rather than in :mod:`syncd.config` because it reaches past the config into
the rules and the plugin loader, which themselves build on the config.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from syncd.cli.common import EXIT_CONFIG, Context
from syncd.errors import ConfigError


def check_config(path: Path) -> list[str]:
    """Every problem in *path*, one line each, in the order found; empty when it is fine."""
    from syncd.config import read_config
    from syncd.ext.loader import check_plugins
    from syncd.ext.rules import parse_rules

    config, problems = read_config(path)
    if config is not None:
        for account in config.accounts.values():
            try:
                parse_rules(account, file=config.path)
            except ConfigError as exc:
                problems.append(str(exc))
        problems += check_plugins(config)
    return problems


@click.command()
@click.pass_obj
def check(obj: Context) -> None:
    """Validate the config file: one line per problem, exit 2 if any."""
    path = obj.path()
    problems = check_config(path)
    for line in problems:
        click.echo(line, err=True)
    if problems:
        sys.exit(EXIT_CONFIG)
    click.echo(f"{path}: ok")
