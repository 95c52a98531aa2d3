"""The values :class:`~syncd.stores.imap.session.ImapSession` returns and the
APPEND refusal it raises.  Import them from :mod:`syncd.stores.imap.session` (or
:mod:`syncd.stores.imap`), their public home; they live here so that the session's
command modules can share them without importing the session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncd.errors import MessageError
from syncd.stores.imap.parse import FlagInfo

#: An unsolicited response kept for :meth:`ImapSession.drain`, e.g. ``("EXISTS", 3)``.
Event = tuple[str, object]


@dataclass(frozen=True)
class FolderInfo:
    """One LIST entry: the decoded name, the hierarchy delimiter (None for a flat
    namespace) and the mailbox attributes (``\\Noselect``, ``\\HasChildren``, ``\\Trash``...)."""

    name: str
    delimiter: str | None
    flags: frozenset[str]


@dataclass(frozen=True)
class StatusInfo:
    """STATUS of a mailbox; ``highestmodseq`` is None without CONDSTORE."""

    messages: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int | None


@dataclass(frozen=True)
class SelectInfo:
    """The result of SELECT/EXAMINE.

    ``highestmodseq`` is None when the server has no CONDSTORE or said NOMODSEQ.
    ``vanished`` and ``changed`` are filled only by a QRESYNC select: UIDs expunged and
    messages changed since the given modseq (empty when the given UIDVALIDITY no longer
    matches: then the caller must do a full resync anyway).  ``readonly`` is True for
    EXAMINE or when the server opened the mailbox read-only.
    """

    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None
    vanished: frozenset[int]
    changed: dict[int, FlagInfo]
    readonly: bool = False
    sticky: bool = True  # False after "NO [UIDNOTSTICKY]" (RFC 4315 §3): UIDs do not last
    # PERMANENTFLAGS as sent, ``\\*`` included; None when the server sent none (then
    # every flag is permanent, RFC 3501 §7.1).
    permanent_flags: frozenset[str] | None = None


@dataclass(frozen=True)
class Body:
    """One downloaded message: exactly the bytes of the BODY[] literal."""

    uid: int
    data: bytes
    internaldate: datetime | None


class AppendError(MessageError):
    """The server refused an APPEND.  ``appended`` holds the results (UID or None) of
    the messages of the batch that *were* appended before the refusal, in order: retry
    only ``messages[len(appended):]``.  With MULTIAPPEND it is always empty (RFC 3502:
    all or nothing).  ``code`` is the response code of the refusal, upper-cased
    (``"TOOBIG"``, ``"LIMIT"``, ``"OVERQUOTA"``...), or None; ``reason`` the server's
    text (cleaned for a log line)."""

    def __init__(
        self,
        message: str,
        appended: list[int | None],
        code: str | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.appended = appended
        self.code = code
        self.reason = reason
