"""The ``[accounts.NAME.adopt]`` table: where another sync tool left its state.

A user switching from mbsync or offlineimap keeps their Maildir; this table tells
syncd where that tool's record of it is, so the first sync of each folder starts
from the tool's pairs and flags instead of copying anything (``syncd import``
writes it).  Keys::

    tool = "mbsync" | "offlineimap"                   (required)
    # mbsync
    sync_state = "*" | "PATH-PREFIX"                  (required: mbsync's SyncState)
    state_stores = ["FAR-STORE", "NEAR-STORE"]        (the global SyncState only)
    inbox = "PATH"                                    (mbsync's Inbox; default from
                                                       maildir and layout)
    subfolders = "verbatim" | "maildir++" | "legacy"  (default from layout)
    flatten = "."                                     (mbsync's Flatten)
    # offlineimap
    metadata = "PATH"                                 (default "~/.offlineimap")
    account = "NAME"                                  (required: [Account NAME])
    remote_repository = "NAME"                        (required: its remoterepository)

``parse_adopt_table`` validates once at start-up and raises ``ConfigError`` with one
line naming the key.  Nothing here reads the tool's files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast, get_args

from syncd.config.values import describe, expand_path, quote
from syncd.errors import ConfigError

AdoptTool = Literal["mbsync", "offlineimap"]
SubFolders = Literal["verbatim", "maildir++", "legacy"]

_COMMON: Final = ("tool",)
_MBSYNC: Final = ("sync_state", "state_stores", "inbox", "subfolders", "flatten")
_OFFLINEIMAP: Final = ("metadata", "account", "remote_repository")
DEFAULT_METADATA: Final = "~/.offlineimap"


@dataclass(frozen=True)
class AdoptSettings:
    """One account's ``adopt`` table, validated; paths absolute.

    mbsync: ``sync_state`` is ``"*"`` (``.mbsyncstate`` in each folder) or an absolute
    path prefix (a directory keeps its trailing ``/``); ``state_stores`` the (Far,
    Near) store names when that prefix is mbsync's global SyncState (state files
    named ``:FAR:box_:NEAR:box``).  offlineimap: ``metadata``, ``account`` and
    ``remote_repository``.  Fields of the other tool are None."""

    tool: AdoptTool
    sync_state: str | None = None
    state_stores: tuple[str, str] | None = None
    inbox: Path | None = None
    subfolders: SubFolders | None = None
    flatten: str | None = None
    metadata: Path | None = None
    account: str | None = None
    remote_repository: str | None = None


def parse_adopt_table(raw: Mapping[str, object], where: str, base: Path) -> AdoptSettings:
    """Validate an ``[accounts.NAME.adopt]`` table; ``where`` prefixes every message
    (``"FILE: accounts.NAME.adopt"``), ``base`` anchors relative paths.  Raises
    ``ConfigError`` (one line) at the first problem."""

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}.{key}: {message}")

    def text(key: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(key, f"must be a non-empty string (got {describe(value)})")
        return value

    def path(key: str) -> Path | None:
        value = text(key)
        if value is None:
            return None
        try:
            return expand_path(value, base, os.environ)
        except ValueError as exc:
            raise fail(key, str(exc)) from None

    def choice(key: str, choices: tuple[str, ...], *, required: bool = False) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                raise fail(key, "missing (" + " or ".join(quote(c) for c in choices) + ")")
            return None
        if value not in choices:
            allowed = ", ".join(quote(c) for c in choices)
            raise fail(key, f"must be one of {allowed} (got {describe(value)})")
        return str(value)

    tool = choice("tool", get_args(AdoptTool), required=True)
    own, other = (_MBSYNC, _OFFLINEIMAP) if tool == "mbsync" else (_OFFLINEIMAP, _MBSYNC)
    for key in raw:
        if key in other:
            raise fail(key, f'is an {_tool_of(key)} setting; this table has tool = "{tool}"')
        if key not in _COMMON + own:
            known = ", ".join(_COMMON + own)
            raise fail(key, f"unknown key (known with tool = {quote(str(tool))}: {known})")
    if tool == "mbsync":
        return _mbsync(raw, fail, text, path, choice)
    account = text("account")
    remote = text("remote_repository")
    if account is None:
        raise fail("account", "missing (the NAME of offlineimap's [Account NAME])")
    if remote is None:
        raise fail("remote_repository", "missing (the account's remoterepository)")
    return AdoptSettings(
        "offlineimap",
        metadata=path("metadata") or expand_path(DEFAULT_METADATA, base, os.environ),
        account=account,
        remote_repository=remote,
    )


def _tool_of(key: str) -> str:
    return "mbsync" if key in _MBSYNC else "offlineimap"


def _mbsync(
    raw: Mapping[str, object],
    fail: Callable[[str, str], ConfigError],
    text: Callable[[str], str | None],
    path: Callable[[str], Path | None],
    choice: Callable[..., str | None],
) -> AdoptSettings:
    state = text("sync_state")
    if state is None:
        raise fail(
            "sync_state",
            'missing (mbsync\'s SyncState: "*" for a .mbsyncstate in each folder, else its '
            'path, by default "~/.mbsync/")',
        )
    if state != "*":
        directory = state.endswith("/")
        expanded = path("sync_state")
        assert expanded is not None
        state = str(expanded) + ("/" if directory else "")
    stores_raw = raw.get("state_stores")
    stores: tuple[str, str] | None = None
    if stores_raw is not None:
        if (
            not isinstance(stores_raw, list)
            or len(stores_raw) != 2
            or not all(isinstance(s, str) and s for s in stores_raw)
        ):
            raise fail(
                "state_stores",
                'must be two store names, ["FAR-STORE", "NEAR-STORE"] '
                f"(got {describe(stores_raw)})",
            )
        if state == "*":
            raise fail("state_stores", 'only with a SyncState path, not with sync_state = "*"')
        stores = (stores_raw[0], stores_raw[1])
    flatten = text("flatten")
    subfolders = choice("subfolders", get_args(SubFolders))
    return AdoptSettings(
        "mbsync",
        sync_state=state,
        state_stores=stores,
        inbox=path("inbox"),
        subfolders=cast("SubFolders | None", subfolders),
        flatten=flatten,
    )
