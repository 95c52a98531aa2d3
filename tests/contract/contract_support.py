"""Helpers of the store contract suite: each store under test with another
client's hands on the same folder (to change it behind the store's back)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support.imap import session
from support.mail import make_message

from devserver.dovecot import DevServer
from syncd.auth.credentials import PasswordAuthenticator
from syncd.message import to_lf
from syncd.model import Flags
from syncd.stores.base import FarFolder, NearFolder
from syncd.stores.imap.session import ImapSession
from syncd.stores.imap.store import ImapFolder
from syncd.stores.maildir.folder import MaildirFolder
from syncd.stores.maildir.store import MaildirStore
from syncd.stores.memory import MemoryFar, MemoryNear

LOG = logging.LoggerAdapter(logging.getLogger("syncd.contract"), {})


@dataclass(frozen=True)
class _Secret:
    value: str

    def password(self) -> str:
        return self.value


class FarHandle:
    """A far folder under test, and another client's hands on the same mailbox."""

    kind: str
    folder: FarFolder

    def put(self, data: bytes, flags: Iterable[str] = ()) -> int:
        """Another client appends a message; returns its key."""
        raise NotImplementedError

    def set_flags(self, key: int, flags: Iterable[str]) -> None:
        raise NotImplementedError

    def expunge(self, key: int) -> None:
        """Another client deletes the message for good."""
        raise NotImplementedError

    def other(self, name: str) -> FarFolder:
        """Another folder of the same account."""
        raise NotImplementedError


class MemoryFarHandle(FarHandle):
    kind = "memory"

    def __init__(self) -> None:
        self.store = MemoryFar()
        self.folder = self.store.folder("INBOX")

    def put(self, data: bytes, flags: Iterable[str] = ()) -> int:
        return self.store.other_append("INBOX", data, flags)

    def set_flags(self, key: int, flags: Iterable[str]) -> None:
        self.store.other_set_flags("INBOX", key, flags)

    def expunge(self, key: int) -> None:
        self.store.other_expunge("INBOX", key)

    def other(self, name: str) -> FarFolder:
        return self.store.folder(name)


class ImapFarHandle(FarHandle):
    kind = "imap"

    def __init__(self, server: DevServer) -> None:
        user = server.add_user()
        self.server, self.user = server, user
        self.session = ImapSession.connect(
            host=server.host,
            port=server.port,
            tls=server.tls,
            ca_file=server.ca_file,
            auth=PasswordAuthenticator(user.name, _Secret(user.password)),
            timeout=20.0,
        )
        self.side = ImapSession.connect(
            host=server.host,
            port=server.port,
            tls=server.tls,
            ca_file=server.ca_file,
            auth=PasswordAuthenticator(user.name, _Secret(user.password)),
            timeout=20.0,
        )
        self.folder = ImapFolder(self.session, "INBOX", LOG)

    def put(self, data: bytes, flags: Iterable[str] = ()) -> int:
        uid = self.side.append("INBOX", data, flags=frozenset(flags), date=None)
        if uid is None:  # no UIDPLUS: the newest message is the one just appended
            self.side.select("INBOX")
            uid = max(self.side.search("ALL"))
        return uid

    def set_flags(self, key: int, flags: Iterable[str]) -> None:
        self.side.select("INBOX")
        wanted = frozenset(flags)
        infos, _ = self.side.fetch_flags([key])
        have = infos[key].flags if key in infos else frozenset()
        if have - wanted:
            self.side.remove_flags([key], have - wanted)
        if wanted - have:
            self.side.add_flags([key], wanted - have)

    def expunge(self, key: int) -> None:
        with session(self.server, self.user) as client:
            client.select_folder("INBOX")
            client.add_flags([key], [b"\\Deleted"], silent=True)
            client.expunge()  # bare: the server may lack UIDPLUS

    def other(self, name: str) -> FarFolder:
        return ImapFolder(self.session, name, LOG)

    def close(self) -> None:
        self.session.logout()
        self.side.logout()


class NearHandle:
    """A near folder under test, and a mail reader's hands on it."""

    kind: str
    folder: NearFolder

    def add(self, data: bytes, flags: Flags = frozenset()) -> str:
        raise NotImplementedError

    def set_flags(self, name: str, flags: Flags) -> None:
        """A mail reader changes the flags of message ``name``."""
        raise NotImplementedError

    def remove(self, name: str) -> None:
        """A mail reader deletes message ``name``."""
        raise NotImplementedError


class MemoryNearHandle(NearHandle):
    kind = "memory"

    def __init__(self) -> None:
        self.store = MemoryNear(exists=False)
        self.folder = self.store

    def add(self, data: bytes, flags: Flags = frozenset()) -> str:
        return self.store.other_add(data, flags)

    def set_flags(self, name: str, flags: Flags) -> None:
        self.store.other_set_flags(name, flags)

    def remove(self, name: str) -> None:
        self.store.other_delete(name)


class MaildirNearHandle(NearHandle):
    kind = "maildir"

    def __init__(self, path: Path) -> None:
        # A second MaildirFolder on the same directory plays the mail reader.
        self.reader = MaildirFolder(path, fsync=False)
        self.folder = MaildirStore(MaildirFolder(path, fsync=False))

    def add(self, data: bytes, flags: Flags = frozenset()) -> str:
        msg = self.reader.deliver(to_lf(data), name=self.reader.new_name(), flags=flags, mtime=None)
        return msg.name

    def set_flags(self, name: str, flags: Flags) -> None:
        self.reader.set_flags(self.reader.scan()[0][name], flags)

    def remove(self, name: str) -> None:
        self.reader.delete(self.reader.scan()[0][name])


def message(n: int, **kw: Any) -> bytes:
    """A small distinct message in wire form (CRLF); the same bytes for the same ``n``."""
    if not kw:
        return _plain(n)
    kw.setdefault("message_id", f"<{n}.contract@syncd.test>")
    kw.setdefault("date", datetime(2024, 1, 1, tzinfo=UTC))
    return make_message(subject=f"message {n}", **kw)


@functools.cache
def _plain(n: int) -> bytes:
    return message(n, message_id=f"<{n}.contract@syncd.test>")
