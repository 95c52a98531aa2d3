"""Put a new account into the config file: validated first, then replaced atomically.

The new text (``tomlwrite.add_account``) is written to a temporary file beside
the config, checked with ``syncd.cli.check.check_config`` exactly as ``syncd check``
would, and renamed over the config only when the new account has no problem.
Problems elsewhere in an existing file are passed back as notes: they were
there before and are the user's to fix, not a reason to refuse the account.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syncd.discover.tomlwrite import TomlEditError, add_account


class ConfigWriteError(Exception):
    """Nothing was written; ``lines`` say why (the first is a summary)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0])
        self.lines = lines


def _account_key(name: str) -> str:
    # As syncd.config prints it: accounts.work.host, accounts."a.b".host
    part = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)
    return f"accounts.{part}."


def write_account(
    path: Path, name: str, values: Mapping[str, Any], *, comment: str | None = None
) -> list[str]:
    """Add ``[accounts.<name>]`` to *path* (created with mode 0600 when missing).

    Returns notes (problems ``check_config`` found that are not the new
    account's).  Raises ``ConfigWriteError`` when the file cannot take the
    account or the account does not validate; the file is then unchanged.
    """
    from syncd.cli.check import check_config

    try:
        existing = path.read_text(encoding="utf-8") if path.exists() else None
        text = add_account(existing, name, values, comment=comment)
    except (TomlEditError, OSError, UnicodeDecodeError) as exc:
        raise ConfigWriteError([f"{path}: {exc}"]) from None

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".syncd-init-", suffix=".toml", dir=path.parent)
    tmp = Path(tmp_name)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if existing is not None:
            tmp.chmod(path.stat().st_mode & 0o777)
        problems = [line.replace(str(tmp), str(path)) for line in check_config(tmp)]
        key = _account_key(name)
        fatal = [p for p in problems if key in p]
        if fatal:
            raise ConfigWriteError(
                [f"{path}: the new account does not validate; nothing written:"]
                + [f"  {p}" for p in fatal]
            )
        tmp.replace(path)
        with contextlib.suppress(OSError):  # not every file system lets a directory sync
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return problems
    finally:
        tmp.unlink(missing_ok=True)
