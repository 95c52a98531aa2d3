"""POP3: the protocol layer of a pull-only far store (issue 13).

:class:`Pop3Client` is one connection; the store on the store seam builds on it.
See :mod:`syncd.stores.pop3.client` for the error and deletion contracts.
"""

from syncd.stores.pop3.client import (
    DEFAULT_MAX_MESSAGE,
    DEFAULT_PORTS,
    AuthMethod,
    LoginRefused,
    MessageRefused,
    MessageTooLarge,
    NoUidlError,
    Pop3Client,
    TlsMode,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_PORTS",
    "AuthMethod",
    "LoginRefused",
    "MessageRefused",
    "MessageTooLarge",
    "NoUidlError",
    "Pop3Client",
    "TlsMode",
]
