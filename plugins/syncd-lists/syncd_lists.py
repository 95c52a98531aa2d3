"""syncd-lists: file mailing-list mail by its ``List-Id`` into ``Lists/<name>``.

A per-message plugin (``syncd_classify``): ``List-Id`` cannot be turned into a
folder name by an IMAP SEARCH.  Installed, it does nothing until ``[plugins]
enable`` names it (``enable = ["lists"]``).  Settings (``[plugins.lists]``):

- ``folders``: where to look for list mail (default ``["INBOX"]``);
- ``prefix``: the parent folder (default ``"Lists"``);
- ``names``: an optional table mapping a list's name to another folder name,
  e.g. ``names = { "python-list" = "python" }``.

``List-Id: Python <python-list.python.org>`` files into ``Lists/python-list``:
the first label of the identifier, lower-cased, with anything but letters,
digits, ``-`` and ``_`` replaced by ``-`` (a hostile header cannot name a
folder outside ``prefix``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.message import Message
from typing import Any

from syncd.api import AccountInfo, Action, hookimpl

NAME = "lists"
_ID_RE = re.compile(r"<([^<>]+)>")
_UNSAFE_RE = re.compile(r"[^a-z0-9_-]+")


def list_name(list_id: str | None) -> str | None:
    """The folder-safe name of a list from its ``List-Id`` value (RFC 2919), or None."""
    if not list_id:
        return None
    match = _ID_RE.search(list_id)
    ident = (match.group(1) if match else list_id).strip()
    label = ident.split(".", 1)[0].lower()
    name = _UNSAFE_RE.sub("-", label).strip("-")[:64]
    return name or None


def _settings(account: AccountInfo) -> Mapping[str, Any]:
    return account.settings_for(NAME)


@hookimpl
def syncd_classify_headers(account: AccountInfo, folder: str) -> list[str] | None:
    return ["List-Id"] if folder in _settings(account).get("folders", ["INBOX"]) else None


@hookimpl
def syncd_classify(account: AccountInfo, folder: str, headers: Message) -> Action | None:
    name = list_name(headers.get("List-Id"))
    if name is None:
        return None
    settings = _settings(account)
    renamed = settings.get("names", {}).get(name, name)
    return Action.move(f"{settings.get('prefix', 'Lists')}/{renamed}")
