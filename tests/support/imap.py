"""The far side as a user (or another mail client) sees it, via IMAPClient.

All helpers take the :class:`devserver.dovecot.DevServer` and the
:class:`devserver.dovecot.User`; each opens its own short connection, so they can be
called between two ``syncd`` runs without state leaking. Folder names are Unicode with
``/`` as the hierarchy separator whatever the server's separator is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.header
import email.parser
import email.policy
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import imapclient

from devserver.dovecot import DevServer, User

_RECENT = "\\Recent"
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


@dataclasses.dataclass(frozen=True)
class MessageView:
    """One message on the server, as seen by a user.

    ``flags`` are IMAP names (``\\Seen``, ``$Forwarded``, keywords) without ``\\Recent``;
    ``sha256`` is the hex digest of the whole message with CRLF normalised to LF;
    ``message_id`` is the stripped Message-ID header (None when absent); ``subject`` is
    the decoded Subject (None when absent).
    """

    uid: int
    flags: frozenset[str]
    size: int
    sha256: str
    message_id: str | None
    subject: str | None


def connect(server: DevServer, user: User) -> imapclient.IMAPClient:
    """An IMAPClient logged in as ``user`` (TLS as the server requires). Call
    ``logout()`` when done, or use :func:`session`."""
    client: imapclient.IMAPClient = server.connect(user)
    return client


@contextlib.contextmanager
def session(server: DevServer, user: User) -> Iterator[imapclient.IMAPClient]:
    """``with session(server, user) as c:`` -- :func:`connect`, then log out."""
    client = connect(server, user)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def delimiter(client: imapclient.IMAPClient) -> str:
    """The server's hierarchy separator for the personal namespace."""
    personal = client.namespace().personal or [("", "/")]
    delim = personal[0][1]
    return delim if isinstance(delim, str) else delim.decode()


def _server_name(client: imapclient.IMAPClient, folder: str) -> str:
    return "INBOX" if folder.upper() == "INBOX" else folder.replace("/", delimiter(client))


def _decode(value: str | None) -> str | None:
    if value is None:
        return None
    return str(email.header.make_header(email.header.decode_header(value)))


def _headers(raw: bytes) -> tuple[str | None, str | None]:
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        raw, headersonly=True
    )
    mid = parsed.get("Message-ID")
    return (str(mid).strip() if mid is not None else None, _decode(parsed.get("Subject")))


def digest(raw: bytes) -> str:
    """SHA-256 (hex) of a message with CRLF normalised to LF, as both snapshots use."""
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def _str_flags(flags: Iterable[bytes | str]) -> frozenset[str]:
    out = (f.decode() if isinstance(f, bytes) else f for f in flags)
    return frozenset(f for f in out if f != _RECENT)


def folder_messages(client: imapclient.IMAPClient, name: str) -> list[MessageView]:
    """The messages of server folder ``name`` (server spelling), by UID, read-only."""
    client.select_folder(name, readonly=True)
    uids = client.search("ALL")  # fetch("1:*") raises ValueError in IMAPClient 4.x
    views = []
    if uids:
        data = client.fetch(uids, ["FLAGS", "RFC822.SIZE", "BODY.PEEK[]"])
        for uid in sorted(data):
            item: dict[bytes, Any] = data[uid]
            raw: bytes = item[b"BODY[]"]
            mid, subject = _headers(raw)
            views.append(
                MessageView(
                    uid=uid,
                    flags=_str_flags(item[b"FLAGS"]),
                    size=int(item[b"RFC822.SIZE"]),
                    sha256=digest(raw),
                    message_id=mid,
                    subject=subject,
                )
            )
    client.unselect_folder()
    return views


def server_snapshot(server: DevServer, user: User) -> dict[str, list[MessageView]]:
    """Every selectable folder of ``user`` -> its messages sorted by UID.

    Keys are Unicode folder names with ``/`` as separator (``INBOX``,
    ``Projets/Été``); folders without messages are included with an empty list.
    """
    snapshot: dict[str, list[MessageView]] = {}
    with session(server, user) as client:
        delim = delimiter(client)
        for flags, _d, name in client.list_folders():
            if {b"\\Noselect", b"\\NonExistent"} & set(flags):
                continue
            key = name.replace(delim, "/") if delim != "/" else name
            snapshot[key] = folder_messages(client, name)
    return snapshot


def append(
    server: DevServer,
    user: User,
    folder: str,
    raw: bytes,
    flags: Iterable[str] = (),
    date: datetime | None = None,
) -> int:
    """APPEND ``raw`` to ``folder`` (created if missing) and return its UID."""
    with session(server, user) as client:
        name = _server_name(client, folder)
        if not client.folder_exists(name):
            client.create_folder(name)
        response = client.append(name, raw, flags=tuple(flags), msg_time=date)
    match = _APPENDUID.search(response if isinstance(response, bytes) else b"")
    if match is None:
        raise AssertionError(f"no APPENDUID in {response!r}")
    return int(match.group(1))


def set_flags(
    server: DevServer,
    user: User,
    folder: str,
    uids: Iterable[int],
    flags: Iterable[str],
    *,
    mode: str = "set",
) -> None:
    """Change flags as another client would: ``mode`` is ``set``, ``add`` or ``remove``."""
    uid_list = list(uids)
    with session(server, user) as client:
        client.select_folder(_server_name(client, folder))
        op = {"set": client.set_flags, "add": client.add_flags, "remove": client.remove_flags}
        op[mode](uid_list, tuple(flags), silent=True)


def expunge(server: DevServer, user: User, folder: str, uids: Iterable[int]) -> None:
    """Mark ``uids`` \\Deleted and UID EXPUNGE exactly those (as another client would)."""
    uid_list = list(uids)
    with session(server, user) as client:
        client.select_folder(_server_name(client, folder))
        client.add_flags(uid_list, [b"\\Deleted"], silent=True)
        client.uid_expunge(uid_list)


def create_folder(server: DevServer, user: User, folder: str) -> None:
    """CREATE ``folder`` (``/``-separated) if it does not exist."""
    with session(server, user) as client:
        name = _server_name(client, folder)
        if not client.folder_exists(name):
            client.create_folder(name)


def delete_folder(server: DevServer, user: User, folder: str) -> None:
    """DELETE ``folder`` on the server (its messages go with it)."""
    with session(server, user) as client:
        client.delete_folder(_server_name(client, folder))


def fill_inbox(server: DevServer, user: User, raw: Callable[[int], bytes], n: int) -> None:
    """Put messages ``raw(0)`` .. ``raw(n-1)`` (LF line ends) into ``user``'s server-side
    INBOX in seconds rather than minutes: write them straight into the Maildir Dovecot
    created (owned like it), every third one ``\\Seen``, then let Dovecot index them.
    For tests that need thousands of messages; APPEND costs a round trip each."""
    with session(server, user) as client:
        client.select_folder("INBOX")  # Dovecot creates the Maildir as its mail user
    maildir = server.maildir(user)
    owner = maildir.stat()
    cur = maildir / "cur"
    for i in range(n):
        path = f"{cur}/1700000000.M{i:06d}P1.syncdtest:2,{'S' if i % 3 == 0 else ''}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, raw(i))
        finally:
            os.close(fd)
        os.chown(path, owner.st_uid, owner.st_gid)
    with session(server, user) as client:
        exists = client.select_folder("INBOX", readonly=True)[b"EXISTS"]
    if exists != n:
        raise AssertionError(f"Dovecot indexed {exists} of the {n} messages written")
