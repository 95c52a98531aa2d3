"""The IMAP side: :class:`ImapSession` (one connection, typed API) and the wire
helpers in :mod:`syncd.stores.imap.parse`."""

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
