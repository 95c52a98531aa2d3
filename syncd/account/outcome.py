"""What one sync call of an account came to, in the terms ``syncd status`` reports:
an outcome (``ok``, ``partial``, ``failed``), one line of error and its kind.

The kind is read from the exception where the account's run ended -- its type and
its cause (an ``OSError`` under "cannot connect", imapclient's ``LoginError`` under
"login refused") -- with the message's wording as the fallback, so that the raise
sites stay as they are.  Pure: no I/O.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Final

from syncd.errors import CredentialError, FolderError, ProtocolError

if TYPE_CHECKING:
    from syncd.engine.report import FolderReport

#: Error kinds of a failed attempt (the account could not be synced at all).
CONNECTION, LOGIN, OAUTH2, KEYRING, PASSWORD = (
    "connection",
    "login",
    "oauth2",
    "keyring",
    "password",
)
TLS, PROTOCOL, MAILDIR, STATE, SERVER, OTHER = (
    "tls",
    "protocol",
    "maildir",
    "state",
    "server",
    "other",
)
#: Error kinds of a partial attempt (the account synced, something in it did not).
FOLDER, MESSAGE, QUOTA, HELD = "folder", "message", "quota", "held back"

#: Kinds that only the user can end (a password, a login, a keyring): the daemon
#: waits its longest back-off between attempts instead of retrying at once.
NEEDS_USER: Final = frozenset({LOGIN, OAUTH2, KEYRING, PASSWORD})

#: A few words per kind, for ``syncd status --short``.
SHORT: Final = {
    CONNECTION: "cannot connect",
    LOGIN: "login refused",
    OAUTH2: "OAuth2 refused",
    KEYRING: "keyring",
    PASSWORD: "no password",
    TLS: "TLS",
    PROTOCOL: "protocol error",
    MAILDIR: "Maildir missing",
    STATE: "state damaged",
    SERVER: "server refused",
    OTHER: "error",
    FOLDER: "folder failed",
    MESSAGE: "messages failed",
    QUOTA: "over quota",
    HELD: "held back",
}


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks folded into single spaces."""
    return " ".join(text.split())


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cause = exc.__cause__
    while cause is not None and cause not in chain and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__
    return chain


def error_kind(exc: BaseException) -> str:
    """The kind of the exception that ended an account's run."""
    text = str(exc)
    causes = _causes(exc)
    names = {cls.__name__ for c in causes for cls in type(c).__mro__}
    if "OAuth2" in text:
        return OAUTH2
    if isinstance(exc, CredentialError):
        return KEYRING if "keyring" in text.lower() else PASSWORD
    if "LoginError" in names or ": login refused" in text:
        # RFC 5530: the server is down for a moment, not the password wrong.
        return SERVER if "[UNAVAILABLE]" in text or "[INUSE]" in text else LOGIN
    if any(isinstance(c, ssl.SSLError) for c in causes) or "TLS" in text or "certificate" in text:
        return TLS
    if isinstance(exc, ProtocolError):
        return PROTOCOL
    if isinstance(exc, FolderError):
        return SERVER
    if "state database" in text:
        return STATE
    if "Maildir" in text:
        return MAILDIR
    if any(isinstance(c, OSError) for c in causes) or "connect" in text:
        return CONNECTION
    return OTHER


def partial_error(folders: list[FolderReport]) -> tuple[str, str] | None:
    """One line and its kind for an attempt whose folders did not all sync (None: they
    did): the first folder error, else the messages that failed, else those held back."""
    bad = [f for f in folders if f.error]
    if bad:
        more = f" (and {len(bad) - 1} more folders)" if len(bad) > 1 else ""
        return one_line(f"{bad[0].name}: {bad[0].error}{more}"), FOLDER
    failed = [f for f in folders if f.failed]
    if failed:
        count = sum(f.failed for f in failed)
        where = ", ".join(f.name for f in failed)
        problem = next((f.problem for f in failed if f.problem), None)
        line = f"{count} message{'s' if count > 1 else ''} could not be synced ({where})"
        if problem:
            line += f": {problem}"
        return one_line(line), QUOTA if problem and "OVERQUOTA" in problem else MESSAGE
    held = sum(f.held for f in folders)
    if held:
        return (
            f"{held} local message{'s' if held > 1 else ''} held back (refused by the server "
            "as too big; see the folders)",
            HELD,
        )
    return None
