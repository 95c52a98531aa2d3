"""The POP3 side of the store seam: a maildrop as a pull-only
:class:`~syncd.stores.base.FarFolder`.

One folder (``INBOX``), no flags, no APPEND, no UIDVALIDITY: message keys are UIDL
strings (RFC 1939 §7), stable across sessions, so the engine downloads each message
once and needs nothing beyond the capabilities (``SPOOL``: what leaves the
maildrop keeps its local copy).

A server without UIDL (allowed only for download-and-delete, see
``allow_no_uidl``): each message's key is a digest of its contents, so what a run
stored but could not delete (a crash before QUIT) is recognised next time instead
of being stored twice.  That costs one extra RETR per message listed.

Deletion: :meth:`Pop3Folder.mark_deleted` sends DELE, which takes effect only when
the session ends with QUIT (:meth:`Pop3Folder.commit`); any other end undoes it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

from syncd.errors import FolderError
from syncd.model import NO_FLAGS, Flags, MsgKey, MsgMeta
from syncd.stores.base import (
    AppendOutcome,
    Capability,
    Checkpoint,
    FarBody,
    FarStatus,
    FarView,
    NewMessage,
)
from syncd.stores.pop3.client import (
    DEFAULT_MAX_MESSAGE,
    MessageRefused,
    NoUidlError,
    Pop3Client,
)

Log = logging.LoggerAdapter[logging.Logger] | logging.Logger

INBOX = "INBOX"
#: Keys of a server without UIDL start with this; a UIDL cannot hold a space
#: (RFC 1939 §7: 0x21-0x7E), so the two kinds never collide.
DIGEST_PREFIX = "sha256 "
CAPABILITIES = Capability.UID_STABLE | Capability.SPOOL

_HEADER_END = re.compile(rb"\r?\n\r?\n")


class Pop3Folder:
    """The maildrop of one logged-in :class:`Pop3Client` session.

    ``digest_keys``: the server has no UIDL and the account allows
    download-and-delete; keys are content digests.  Used from one thread."""

    def __init__(
        self,
        client: Pop3Client,
        log: Log,
        *,
        digest_keys: bool = False,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        self.client = client
        self.log = log
        self.digest_keys = digest_keys
        self.max_message = max_message
        self._numbers: dict[MsgKey, list[int]] = {}  # key -> message numbers this session
        self._sizes: dict[MsgKey, int] = {}
        #: RETR answered -ERR this session (skipped; tried again next run).
        self.refused: list[MsgKey] = []

    @property
    def name(self) -> str:
        return INBOX

    @property
    def capabilities(self) -> Capability:
        return CAPABILITIES

    @property
    def append_limit(self) -> int | None:
        return None

    @property
    def max_fetch_size(self) -> int | None:
        return self.max_message

    def status(self) -> FarStatus | None:
        return None  # no MODSEQ: the engine never asks

    def open(self, checkpoint: Checkpoint | None, *, readonly: bool) -> FarView:
        """List the maildrop (UIDL and LIST) once for this session."""
        sizes = self.client.list_sizes()
        if self.digest_keys:
            by_number = self._digests(sorted(sizes))
        else:
            if not self.client.has_uidl:
                raise NoUidlError(
                    "the server does not support UIDL, so syncd cannot tell new mail from "
                    "mail it already downloaded; set keep_on_server = false and "
                    "allow_no_uidl = true to download and delete everything each time"
                )
            by_number = {n: k for n, k in self.client.uidl().items() if n in sizes}
        self._numbers, self._sizes = {}, {}
        for number, key in sorted(by_number.items()):
            self._numbers.setdefault(key, []).append(number)
            self._sizes.setdefault(key, sizes[number])
        return FarView(None, 0, None, readonly=readonly, permanent_flags=None)

    def _digests(self, numbers: Sequence[int]) -> dict[int, MsgKey]:
        out: dict[int, MsgKey] = {}
        for number in numbers:
            try:
                data = self.client.retr(number, self.max_message)
            except MessageRefused as exc:
                self.log.warning("%s; tried again next time", exc)
                continue
            out[number] = DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
        return out

    def listing(
        self, since: int | None, known: Mapping[MsgKey, MsgMeta], *, full: bool
    ) -> dict[MsgKey, MsgMeta]:
        return self.list_all(sizes=True)

    def list_all(self, *, sizes: bool) -> dict[MsgKey, MsgMeta]:
        return {k: MsgMeta(NO_FLAGS, self._sizes[k] if sizes else None) for k in self._numbers}

    def keys_from(self, low: int) -> list[MsgKey]:
        return []  # nothing is ever appended here

    def metas(self, keys: Iterable[MsgKey]) -> dict[MsgKey, MsgMeta]:
        return {k: MsgMeta(NO_FLAGS, self._sizes[k]) for k in keys if k in self._numbers}

    def headers(self, keys: Sequence[MsgKey], fields: Sequence[str]) -> dict[MsgKey, bytes]:
        """By RETR (TOP is optional in POP3): costly, used only to pair a Maildir
        that already holds the mail with a first sync."""
        wanted = {f.lower().encode("ascii") for f in fields}
        return {body.key: _header_lines(body.data, wanted) for body in self.fetch(keys)}

    def fetch(
        self, keys: Sequence[MsgKey], sizes: Mapping[MsgKey, int] | None = None
    ) -> Iterator[FarBody]:
        """RETR each key; one refused (``-ERR``) or over the size cap is logged and
        left out (the engine tries it again next run); a lost connection raises."""
        for key in keys:
            numbers = self._numbers.get(key)
            if not numbers:
                continue
            if self._sizes.get(key, 0) > self.max_message:
                # Not read at all; the engine counts it as failed from its size.
                self.log.warning(
                    "message %s is larger than the %d-byte cap; skipped", key, self.max_message
                )
                continue
            try:
                data = self.client.retr(numbers[0], self.max_message)
            except MessageRefused as exc:
                self.log.warning("%s; tried again next time", exc)
                self.refused.append(key)
                continue
            yield FarBody(key, data, None)

    def append(
        self, messages: Sequence[NewMessage], *, uidvalidity: int | None
    ) -> list[AppendOutcome]:
        raise FolderError("a POP3 maildrop takes no new messages")

    def add_flags(self, keys: Iterable[MsgKey], flags: Flags) -> None:
        """No flags are kept: nothing to do."""

    def remove_flags(self, keys: Iterable[MsgKey], flags: Flags) -> None:
        """No flags are kept: nothing to do."""

    def mark_deleted(self, keys: Sequence[MsgKey]) -> None:
        """DELE each key still in the maildrop; final only at :meth:`commit`.  A
        message the server refuses to mark is logged and left for next time."""
        for key in keys:
            for number in self._numbers.get(key, ()):
                try:
                    self.client.dele(number)
                except MessageRefused as exc:
                    self.log.warning("%s; tried again next time", exc)

    def expunge(self, keys: Sequence[MsgKey]) -> bool:
        """Deletions become final when the session ends (:meth:`commit`)."""
        return True

    def move_to(self, keys: Sequence[MsgKey], target: str) -> dict[MsgKey, MsgKey]:
        raise FolderError("a POP3 maildrop has no other folders")

    def commit(self) -> None:
        """QUIT: the server removes what :meth:`mark_deleted` marked; the session ends."""
        self.client.quit()

    def close(self) -> None:
        """End the session without QUIT: nothing marked is removed."""
        self.client.close()


def _header_lines(data: bytes, wanted: set[bytes]) -> bytes:
    """The header fields of ``data`` named in ``wanted`` (lower case), unfolded
    lines included, as raw bytes."""
    end = _HEADER_END.search(data)
    head = data[: end.start()] if end else data
    out: list[bytes] = []
    keep = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        keep = line.split(b":", 1)[0].strip().lower() in wanted
        if keep:
            out.append(line)
    return b"".join(out)
