"""The IMAP side: :class:`ImapSession` (one connection, typed API) and the wire
helpers in :mod:`syncd.stores.imap.parse`.

Modules, bottom up: ``parse`` (wire level: UID sets, flags, names, literals),
``results`` (the values the session returns), ``responses`` (untagged responses
read into values), ``connect`` (socket, TLS, STARTTLS, login), ``runner`` (one
command at a time, errors, events), then the commands -- ``mailboxes``,
``fetch``, ``change``, ``idle`` -- and ``session``, which puts them together.
"""

from __future__ import annotations

from syncd.stores.imap.parse import FlagInfo, format_uid_set, parse_uid_set
from syncd.stores.imap.results import AppendError, Body, FolderInfo, SelectInfo, StatusInfo
from syncd.stores.imap.session import ImapSession

__all__ = [
    "AppendError",
    "Body",
    "FlagInfo",
    "FolderInfo",
    "ImapSession",
    "SelectInfo",
    "StatusInfo",
    "format_uid_set",
    "parse_uid_set",
]
