"""Server-side rules from the TOML config: ``[[accounts.NAME.rules]]`` -> :class:`Rule`.

A rule is an IMAP SEARCH in one folder plus what to do with what it finds
(move, copy, flag, unflag, delete).  Rules come from the TOML config (parsed
here) and from plugins; per-message decisions come from plugins'
``syncd_classify``.  Plugins only *describe* actions: the model lives in
:mod:`syncd.ext.types` (re-exported here), the SEARCH syntax in
:mod:`syncd.ext.search`, and :mod:`syncd.ext.runner` runs every SEARCH and
every action, so dry-run, the mass-delete brake and the log cover all of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

from syncd.errors import ConfigError
from syncd.ext.search import check_search
from syncd.ext.types import (
    ACTIONS,
    NEEDS_FLAGS,
    NEEDS_TARGET,
    Action,
    ActionKind,
    Rule,
    check_flags,
    check_folder_name,
)

if TYPE_CHECKING:
    from syncd.config import AccountConfig

__all__ = ["Action", "ActionKind", "Rule", "parse_rules"]

_RULE_KEYS: Final = ("name", "folder", "search", "action", "target", "flags")


def parse_rules(account: AccountConfig, *, file: Path | None = None) -> tuple[Rule, ...]:
    """The account's ``[[accounts.NAME.rules]]`` tables as Rules, in file order.

    Raises ConfigError with one line ``FILE: accounts.NAME.rules[i].KEY: problem``.
    Keys: ``name`` (default ``rules[i]``, unique per account), ``folder``
    (default INBOX), ``search`` (required), ``action`` (required), ``target``
    (move/copy), ``flags`` (flag/unflag).
    """
    account_key = (
        account.name if re.fullmatch(r"[A-Za-z0-9_-]+", account.name) else json.dumps(account.name)
    )
    seen: dict[str, int] = {}
    out: list[Rule] = []
    for index, table in enumerate(account.rules):
        prefix = f"accounts.{account_key}.rules[{index}]"

        def fail(key: str, message: str, prefix: str = prefix) -> ConfigError:
            where = f"{file}: " if file is not None else ""
            return ConfigError(f"{where}{prefix}.{key}: {message}")

        for key in table:
            if key not in _RULE_KEYS:
                raise fail(key, f"unknown key (known: {', '.join(_RULE_KEYS)})")
        name = table.get("name", f"rules[{index}]")
        if not isinstance(name, str) or not name.strip():
            raise fail("name", "must be a non-empty string")
        if name in seen:
            raise fail("name", f"{json.dumps(name)} is already the name of rules[{seen[name]}]")
        seen[name] = index
        try:
            folder = check_folder_name(table.get("folder", "INBOX"))
        except ValueError as exc:
            raise fail("folder", str(exc)) from None
        if "search" not in table:
            raise fail("search", "required key is missing (IMAP SEARCH criteria, e.g. 'UNSEEN')")
        try:
            check_search(table["search"])
        except ValueError as exc:
            raise fail("search", str(exc)) from None
        kind = table.get("action")
        if kind not in ACTIONS:
            got = "missing" if kind is None else json.dumps(kind, default=str)
            raise fail("action", f"must be one of {', '.join(ACTIONS)} (got {got})")
        target = table.get("target")
        if kind in NEEDS_TARGET:
            if target is None:
                raise fail("target", f"required for action {kind!r}")
            try:
                target = check_folder_name(target)
            except ValueError as exc:
                raise fail("target", str(exc)) from None
            if target == folder:
                raise fail("target", f"is the folder the rule searches ({folder})")
        elif target is not None:
            raise fail("target", f"only move and copy take a target, not {kind!r}")
        flags: frozenset[str] = frozenset()
        if kind in NEEDS_FLAGS:
            if "flags" not in table:
                raise fail("flags", f"required for action {kind!r}")
            try:
                flags = check_flags(table["flags"])
            except ValueError as exc:
                raise fail("flags", str(exc)) from None
        elif "flags" in table:
            raise fail("flags", f"only flag and unflag take flags, not {kind!r}")
        action = Action(cast(ActionKind, kind), target=target, flags=flags)
        out.append(Rule(name=name, folder=folder, search=table["search"], action=action))
    return tuple(out)
