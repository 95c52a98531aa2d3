"""Add one ``[accounts.NAME]`` table to a config file's text, keeping everything else.

tomlkit edits the document in place: comments, blank lines, key order and the
tables already there come back byte for byte; the new account is appended after
the existing ones.  This module only renders text: validating it
(``syncd.cli.check.check_config``) and writing it atomically are the caller's.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import tomlkit
import tomlkit.items
from tomlkit.toml_document import TOMLDocument

NEW_FILE_HEADER = (
    "# syncd configuration, written by `syncd init`.\n"
    "# Every key is explained in contrib/config.example.toml; check with `syncd check`.\n"
)


class TomlEditError(ValueError):
    """The existing text cannot take the account (one line)."""


def _account_table(values: Mapping[str, Any], comment: str | None) -> tomlkit.items.Table:
    table = tomlkit.table()
    if comment:
        table.add(tomlkit.comment(comment))
    for key, value in values.items():
        if isinstance(value, Mapping):
            continue  # sub-tables after the keys, as TOML requires
        if isinstance(value, Sequence) and not isinstance(value, str):
            array = tomlkit.array()
            array.extend(value)
            table.add(key, array)
        else:
            table.add(key, value)
    for key, value in values.items():
        if isinstance(value, Mapping):
            sub = tomlkit.table()
            for sub_key, sub_value in value.items():
                sub.add(sub_key, sub_value)
            table.add(key, sub)
    return table


def render_account(name: str, values: Mapping[str, Any], *, comment: str | None = None) -> str:
    """``[accounts.<name>]`` (and its sub-tables) as TOML text, escaped by tomlkit."""
    doc: TOMLDocument = tomlkit.document()
    accounts = tomlkit.table(is_super_table=True)
    accounts.add(name, _account_table(values, comment))
    doc.add("accounts", accounts)
    return tomlkit.dumps(doc)


def add_account(
    text: str | None, name: str, values: Mapping[str, Any], *, comment: str | None = None
) -> str:
    """*text* (``None``: no file yet) with ``[accounts.<name>]`` = *values* appended.

    The existing text is kept byte for byte and the new table goes at the end:
    inserting it after the last account would detach the comment block that
    precedes the next table (tomlkit counts it as trailing the account before).
    TOML allows ``[accounts.b]`` after ``[plugins]``; the result is re-read to
    prove it.  *values* holds strings, numbers, booleans, lists of strings and
    one level of sub-tables (``{"oauth2": {"provider": "google"}}``); *comment*
    becomes the table's first line.  ``TomlEditError`` when *text* is not TOML,
    ``accounts`` is not a table, or the account already exists.
    """
    block = render_account(name, values, comment=comment)
    if text is None or not text.strip():
        combined = NEW_FILE_HEADER + "\n" + block
    else:
        try:
            existing = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TomlEditError(f"the config file is not valid TOML ({exc})") from None
        accounts = existing.get("accounts", {})
        if not isinstance(accounts, dict):
            raise TomlEditError("'accounts' in the config file is not a table")
        if name in accounts:
            raise TomlEditError(f"the config already has an account named {name!r}")
        combined = text + ("" if text.endswith("\n") else "\n") + "\n" + block
    try:
        merged = tomllib.loads(combined)
    except tomllib.TOMLDecodeError as exc:  # e.g. accounts = {...} as an inline table
        raise TomlEditError(f"cannot add [accounts.{name}] to this file ({exc})") from None
    if name not in merged.get("accounts", {}):
        raise TomlEditError(f"cannot add [accounts.{name}] to this file")
    return combined
