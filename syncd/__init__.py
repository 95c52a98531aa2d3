"""syncd: keep local Maildirs and IMAP accounts in step, in both directions."""

__version__ = "0.1.0"
