"""Logging set-up for the ``syncd`` command: levels, one stderr format, secret masking.

Library code only calls ``logging.getLogger(NAME)`` (the module's dotted name as it was before the
package split, so users' log filters keep working) or ``account_logger``;
``setup_logging`` is called once by the CLI.  Lines look like::

    2024-05-01 12:00:00 INFO work/INBOX: downloaded 12 messages
    2024-05-01 12:00:00 WARNING syncd.daemon: IDLE not supported by imap.example.org

An account record (logger ``syncd.account.<name>``) shows its ``account/folder``
context instead of the logger name, which would only repeat the account.
``SYNCD_LOG_TIMESTAMPS=0`` drops the time stamp (journald adds its own).

``add_secret`` registers a password with the installed ``SecretMask`` so that
even a stray traceback that contains it is printed with ``***`` instead.  This
is defence in depth: no code should log a secret in the first place.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, Final, TextIO

ACCOUNT_LOGGER_PREFIX: Final = "syncd.account"
MASK: Final = "***"
# Masking a 1-3 character "secret" would blank out ordinary words and tell an
# attacker more (where it appeared) than it hides.
MIN_SECRET_LENGTH: Final = 4
DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
_CONTEXT_ATTR: Final = "syncd_context"


class SecretMask(logging.Filter):
    """A handler filter that replaces every registered secret with ``***``.

    It masks the formatted message, the traceback text and the stack text of
    each record, so it must be attached to a *handler* (handler filters see
    records from every logger, logger filters only their own).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, secret: str) -> None:
        """Register *secret* (and its ``repr`` escaped form); short ones are ignored."""
        if len(secret) < MIN_SECRET_LENGTH:
            return
        forms = {secret, repr(secret)[1:-1]}
        with self._lock:
            # Longest first, so a secret that contains another is masked whole.
            self._secrets = tuple(sorted(set(self._secrets) | forms, key=len, reverse=True))

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            return True  # a bad format string: the handler reports it, the record has no secret
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Pre-format the traceback (Formatter.format reuses exc_text) so it can be masked.
            record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


_TRACEBACK_FORMATTER: Final = logging.Formatter()


class SyncdFormatter(logging.Formatter):
    """``[time] LEVEL name: message``; account records show their context, not the name."""

    def __init__(self, *, timestamps: bool = True) -> None:
        prefix = "%(asctime)s " if timestamps else ""
        super().__init__(prefix + "%(levelname)s %(name)s: %(message)s", DATE_FORMAT)
        self._account = logging.Formatter(prefix + "%(levelname)s %(message)s", DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, _CONTEXT_ATTR):
            return self._account.format(record)
        return super().format(record)


class _SyncdHandler(logging.StreamHandler[TextIO]):
    """The one handler ``setup_logging`` installs; marked so a second call replaces it."""


class AccountLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each message with ``account/folder: `` and tags the record with it."""

    def __init__(self, logger: logging.Logger, context: str) -> None:
        super().__init__(logger, {_CONTEXT_ATTR: context})
        self.context = context

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return f"{self.context}: {msg}", kwargs


def account_logger(account: str, folder: str | None = None) -> AccountLogger:
    """An adapter for logger ``syncd.account.<account>``; messages read ``account/folder: …``."""
    context = f"{account}/{folder}" if folder else account
    return AccountLogger(logging.getLogger(f"{ACCOUNT_LOGGER_PREFIX}.{account}"), context)


def _timestamps_wanted(environ: Mapping[str, str]) -> bool:
    value = environ.get("SYNCD_LOG_TIMESTAMPS", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def setup_logging(
    verbosity: int,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Configure the root logger for the ``syncd`` command.

    *verbosity*: -1 (``-q``) warnings only; 0 info from syncd; 1 (``-v``) debug
    from syncd; 2 (``-vv``) debug from the other libraries too, except
    imapclient, which stays at INFO because its DEBUG lines quote message
    literals.  Other libraries log warnings and errors below 2.  Calling it
    again replaces the previous set-up and keeps the registered secrets.
    """
    root = logging.getLogger()
    mask = SecretMask()
    for old in [h for h in root.handlers if isinstance(h, _SyncdHandler)]:
        for old_filter in old.filters:
            if isinstance(old_filter, SecretMask):
                mask = old_filter
        root.removeHandler(old)
        old.close()

    handler = _SyncdHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(mask)
    handler.setFormatter(SyncdFormatter(timestamps=_timestamps_wanted(environ)))
    root.addHandler(handler)

    if verbosity < 0:
        syncd_level = logging.WARNING
    elif verbosity == 0:
        syncd_level = logging.INFO
    else:
        syncd_level = logging.DEBUG
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.getLogger("syncd").setLevel(syncd_level)
    # imapclient logs the first bytes of every APPEND literal at DEBUG: message
    # headers, which never belong in a log.  Its protocol trace stays at INFO and up.
    # At -vv its INFO lines are kept; below that they are reconnect noise
    # ("Connection closed") that the daemon logs better itself.
    logging.getLogger("imapclient").setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)
    logging.captureWarnings(True)  # e.g. platformdirs' RuntimeDirWarning


def follow_syncd_level(name: str) -> None:
    """Let logger ``name`` (a plugin's module) log at the level the user chose for
    syncd (``-q``, default, ``-v``), not at the libraries' WARNING: a plugin is part
    of syncd for its user (issue 15: plugin INFO lines only showed at ``-vv``).

    A no-op when ``setup_logging`` has not set syncd's level (syncd embedded in
    another program, which decides its own levels) or the plugin set its own."""
    level = logging.getLogger("syncd").level
    plugin = logging.getLogger(name)
    if level != logging.NOTSET and plugin.level == logging.NOTSET and not name.startswith("syncd."):
        plugin.setLevel(level)


def set_log_stream(stream: TextIO) -> TextIO | None:
    """Point the handler ``setup_logging`` installed at ``stream`` (the CLI's live
    progress line prints log lines above itself); returns the stream it wrote to
    before, or None when there is no such handler."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _SyncdHandler):
            return handler.setStream(stream)
    return None


def add_secret(secret: str) -> None:
    """Mask *secret* in everything the handler ``setup_logging`` installed prints.

    A no-op when logging was not set up by ``setup_logging`` (then nothing of
    ours prints).
    """
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _SyncdHandler):
            for handler_filter in handler.filters:
                if isinstance(handler_filter, SecretMask):
                    handler_filter.add(secret)


def printable(path: Path | str) -> str:
    """``path`` as text safe for one log line: escaped when it holds control
    characters or bytes that are not UTF-8 (no log injection, no encode error)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ascii(text)
    return text if text.isprintable() else ascii(text)
