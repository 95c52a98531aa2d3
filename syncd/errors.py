"""Scoped errors.  Each is caught in exactly one place:

- ``ConfigError``: before any sync; the CLI prints one line and exits 2.
- ``AccountError``: an account cannot be synced this time (login refused,
  server unreachable, Maildir root missing); the others go on.
- ``FolderError``: one folder is skipped this cycle; the account goes on.
- ``MessageError``: one message is skipped; the folder goes on.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every handled error; ``str()`` is the one-line message."""


class ConfigError(SyncdError):
    """The configuration is invalid.  The message names the key and the file."""


class CredentialError(SyncdError):
    """No password could be obtained for an account."""


class AccountError(SyncdError):
    """The account cannot be synced this cycle."""


class FolderError(SyncdError):
    """The folder is skipped this cycle."""


class MessageError(SyncdError):
    """One message is skipped."""


class UnsafeNameError(FolderError):
    """A folder name would leave the Maildir root or cannot be mapped safely."""


class ProtocolError(AccountError):
    """The server said something we refuse to act on (too large, malformed, insecure)."""


class LockedError(SyncdError):
    """Another syncd process holds the account's lock."""
