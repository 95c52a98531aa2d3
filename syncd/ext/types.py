"""What plugin hooks receive and return: the account as plugins see it, the
sync summary, and the rule model (:class:`Action`, :class:`Rule`).

The lowest floor of :mod:`syncd.ext`: the hookspecs, the loader, the rules and the
runner all import it, and it imports none of them (only :mod:`syncd.ext.search`,
since a Rule checks its SEARCH text).  Plugin authors import these names from
:mod:`syncd.api`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, cast, get_args

from syncd.ext.search import check_search
from syncd.folders import split_name
from syncd.stores.imap.parse import is_flag_atom

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.engine.report import FolderReport

ActionKind = Literal["move", "copy", "flag", "unflag", "delete"]
ACTIONS: Final = cast(tuple[str, ...], get_args(ActionKind))
NEEDS_TARGET: Final = ("move", "copy")
NEEDS_FLAGS: Final = ("flag", "unflag")
_FORBIDDEN_FLAGS: Final = ("\\RECENT", "\\DELETED")  # \Deleted: use action "delete"
_SYSTEM_FLAGS: Final = {
    f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted")
}


# --------------------------------------------------------------------------- what plugins see


@dataclass(frozen=True)
class AccountInfo:
    """An account as plugins see it: no password, no credential command, no keyring.

    ``settings`` maps a plugin name to its ``[plugins.NAME]`` table (read-only).
    """

    name: str
    host: str
    user: str
    maildir: Path
    layout: str
    trash: str | None
    settings: Mapping[str, Mapping[str, Any]]
    #: how folder names are spelled under ``maildir`` ("utf-8" or "imap-utf-7"): a plugin
    #: building a folder's path uses ``syncd.folders.local_path(..., names=local_names)``
    local_names: str = "utf-8"
    #: syncd's state directory, where a plugin may keep a file of its own, named
    #: ``<account>.<plugin>.db`` (None when the caller gave none, as in unit tests)
    state_dir: Path | None = None

    @classmethod
    def of(
        cls,
        account: AccountConfig,
        settings: Mapping[str, Mapping[str, Any]],
        state_dir: Path | None = None,
    ) -> AccountInfo:
        return cls(
            name=account.name,
            host=account.host,
            user=account.user,
            maildir=account.maildir,
            layout=account.layout,
            trash=account.trash,
            settings=settings,
            local_names=account.local_names,
            state_dir=state_dir,
        )

    def settings_for(self, plugin: str) -> Mapping[str, Any]:
        """The ``[plugins.<plugin>]`` table, or an empty mapping."""
        return self.settings.get(plugin, MappingProxyType({}))


@dataclass(frozen=True)
class FolderSummary:
    """One folder's outcome in a sync (``name`` as the user writes it)."""

    name: str
    downloaded: int = 0
    uploaded: int = 0
    flagged: int = 0
    deleted_local: int = 0
    deleted_server: int = 0
    rule_actions: int = 0
    error: str | None = None

    @classmethod
    def of(cls, report: FolderReport, name: str, rule_actions: int = 0) -> FolderSummary:
        """The plugin's view of the engine's report: "local"/"server" words instead of
        the engine's "near"/"far", and the rules' actions added."""
        return cls(
            name=name,
            downloaded=report.downloaded,
            uploaded=report.uploaded,
            flagged=report.flagged,
            deleted_local=report.deleted_near,
            deleted_server=report.deleted_far,
            rule_actions=rule_actions,
            error=report.error,
        )


@dataclass(frozen=True)
class SyncSummary:
    """What a sync of one account did, for ``syncd_after_sync``."""

    account: str
    dry_run: bool
    error: str | None
    folders: tuple[FolderSummary, ...]

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.error is None for f in self.folders)

    @property
    def changed_locally(self) -> bool:
        """Whether the local Maildir changed (what ``notmuch new`` needs to know)."""
        return not self.dry_run and any(
            f.downloaded or f.deleted_local or f.flagged for f in self.folders
        )


# --------------------------------------------------------------------------- rules


def check_folder_name(value: object) -> str:
    """A folder name as users write it (``Lists/python``); ValueError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty folder name")
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError(f"must not contain control characters (got {json.dumps(value)})")
    parts = value.split("/")
    if any(not p.strip() or p in (".", "..") for p in parts):
        raise ValueError(f"has an empty, '.' or '..' level (got {json.dumps(value)})")
    return "/".join(split_name(value, "/"))


def check_flags(value: object) -> frozenset[str]:
    """Flag names for flag/unflag: system flags or keywords; ValueError otherwise."""
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError('must be an array of flag names, e.g. ["\\\\Flagged"]')
    out: set[str] = set()
    for flag in value:
        if not isinstance(flag, str) or not is_flag_atom(flag):
            raise ValueError(f"not a flag name: {json.dumps(flag, default=str)}")
        if flag.upper() in _FORBIDDEN_FLAGS:
            raise ValueError(f'{flag} cannot be set by a rule (use action = "delete")')
        if flag.startswith("\\") and flag.upper() not in _SYSTEM_FLAGS:
            raise ValueError(f"unknown system flag {flag}")
        out.add(_SYSTEM_FLAGS.get(flag.upper(), flag))
    if not out:
        raise ValueError("must name at least one flag")
    return frozenset(out)


@dataclass(frozen=True)
class Action:
    """What to do with the messages a rule matched.

    ``target`` (a folder, ``/`` between levels) is required for move and copy
    and refused otherwise; ``flags`` for flag and unflag.  Invalid values raise
    ValueError.  ``str(action)`` is what logs and dry runs show.
    """

    kind: ActionKind
    target: str | None = None
    flags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.kind not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)} (got {self.kind!r})")
        if self.kind in NEEDS_TARGET:
            object.__setattr__(self, "target", check_folder_name(self.target))
        elif self.target is not None:
            raise ValueError(f"a {self.kind} action takes no target")
        if self.kind in NEEDS_FLAGS:
            object.__setattr__(self, "flags", check_flags(self.flags))
        elif self.flags:
            raise ValueError(f"a {self.kind} action takes no flags")

    @classmethod
    def move(cls, target: str) -> Action:
        return cls("move", target=target)

    @classmethod
    def copy(cls, target: str) -> Action:
        return cls("copy", target=target)

    @classmethod
    def flag(cls, *flags: str) -> Action:
        return cls("flag", flags=frozenset(flags))

    @classmethod
    def unflag(cls, *flags: str) -> Action:
        return cls("unflag", flags=frozenset(flags))

    @classmethod
    def delete(cls) -> Action:
        return cls("delete")

    @property
    def removes(self) -> bool:
        """Whether the message leaves the folder (move, delete)."""
        return self.kind in ("move", "delete")

    def __str__(self) -> str:
        if self.kind in NEEDS_TARGET:
            return f"{self.kind} to {self.target}"
        if self.kind in NEEDS_FLAGS:
            sign = "+" if self.kind == "flag" else "-"
            return f"{self.kind} " + " ".join(sign + f for f in sorted(self.flags))
        return "delete"


@dataclass(frozen=True)
class Rule:
    """A SEARCH in ``folder`` and the ``action`` for every message it finds.

    ``search`` is IMAP SEARCH criteria as RFC 9051 §6.4.4 writes them
    (``'FROM "alerts@example.org" UNSEEN'``); it is checked against that
    grammar here (:func:`~syncd.ext.search.check_search`) and by the server when
    it runs.  Invalid
    values raise ValueError.
    """

    name: str
    folder: str
    search: str
    action: Action

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a rule needs a non-empty name")
        object.__setattr__(self, "folder", check_folder_name(self.folder))
        check_search(self.search)
        if not isinstance(self.action, Action):
            raise ValueError(f"action must be an Action (got {type(self.action).__name__})")
        if self.action.kind in NEEDS_TARGET and self.action.target == self.folder:
            raise ValueError(f"target {self.folder} is the folder the rule searches")

    def __str__(self) -> str:
        return f"{self.name}: in {self.folder} SEARCH {self.search} -> {self.action}"
