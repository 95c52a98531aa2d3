"""The daemon's filter that keeps an outage to one log line (see :class:`RepeatFilter`)."""

from __future__ import annotations

import logging


class RepeatFilter(logging.Filter):
    """Drops repeats of account-level errors while an outage is being retried.

    ``AccountSyncer.sync`` logs every failed attempt at ERROR; the daemon wants
    one line per outage.  Attached to the account's logger for the daemon's
    lifetime; only records of the account itself (not its folders) at ERROR
    and above are dropped (the daemon's own notes are warnings), and only
    while ``active``.  Shown at DEBUG level
    (``-v``) instead.
    """

    def __init__(self, account: str) -> None:
        super().__init__()
        self.account = account
        self.active = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.active or record.levelno < logging.ERROR:
            return True
        if getattr(record, "syncd_context", None) != self.account:
            return True
        if logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return True
        return False
