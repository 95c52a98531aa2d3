"""``syncd import mbsync|offlineimap [PATH]``: print an equivalent syncd config.

The TOML goes to stdout (or ``--output FILE``, never overwriting an existing file);
one line per setting that could not be carried over goes to stderr, as
``syncd import: SETTING (WHERE): why``.  Nothing else is changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from syncd.errors import ConfigError

if TYPE_CHECKING:
    from syncd.adopt.toml_out import ImportResult


def default_offlineimaprc(environ: Mapping[str, str] = os.environ) -> Path:
    """``~/.offlineimaprc``, else ``$XDG_CONFIG_HOME/offlineimap/config`` if that exists."""
    home = Path(environ.get("HOME", "~")).expanduser()
    classic = home / ".offlineimaprc"
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "offlineimap" / "config"
    return xdg if not classic.exists() and xdg.exists() else classic


def _run(path: Path, output: Path | None, convert: Callable[[str, str], ImportResult]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    result = convert(text, str(path))
    for line in result.warnings:
        click.echo(f"syncd import: {line}", err=True)
    if output is None:
        click.echo(result.to_toml(), nl=False)
        return
    try:
        with output.open("x", encoding="utf-8") as out:
            out.write(result.to_toml())
    except FileExistsError:
        raise ConfigError(f"{output}: exists; not overwritten") from None
    click.echo(f"wrote {output}; check it with: syncd --config {output} check", err=True)


_OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the TOML to FILE (must not exist) instead of standard output.",
)


@click.group("import")
def import_group() -> None:
    """Print a syncd config equivalent to another tool's (mbsync, offlineimap)."""


@import_group.command("mbsync")
@click.argument("path", required=False, type=click.Path(path_type=Path, dir_okay=False))
@_OUTPUT
def import_mbsync(path: Path | None, output: Path | None) -> None:
    """Translate PATH (default ~/.mbsyncrc)."""
    from syncd.adopt.mbsyncrc import import_mbsyncrc

    _run(path or Path("~/.mbsyncrc").expanduser(), output, import_mbsyncrc)


@import_group.command("offlineimap")
@click.argument("path", required=False, type=click.Path(path_type=Path, dir_okay=False))
@_OUTPUT
def import_offlineimap(path: Path | None, output: Path | None) -> None:
    """Translate PATH (default ~/.offlineimaprc, else $XDG_CONFIG_HOME/offlineimap/config)."""
    from syncd.adopt.offlineimaprc import import_offlineimaprc

    _run(path or default_offlineimaprc(), output, import_offlineimaprc)


__all__ = ["import_group"]
