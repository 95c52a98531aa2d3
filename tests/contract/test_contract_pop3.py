"""The far-store contract where it applies to a POP3 maildrop (the read-only part:
open, listing, metas, headers, fetch; no flags, no APPEND, no UIDVALIDITY), proved
on :class:`syncd.stores.pop3.store.Pop3Folder` against Dovecot's POP3 server, plus
the engine on it: pull-only, and a message gone from the maildrop keeps its copy.

The shared ``far`` fixture is not parametrised over POP3: most of its tests put
flags or append, which a maildrop cannot; these are the ones that apply.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_support import message
from support.imap import append, expunge, session

import devserver.dovecot as devserver
from devserver.dovecot import DevServer, User
from syncd.engine.cycle import FolderSync
from syncd.engine.options import RunOptions
from syncd.engine.reconcile import Policy
from syncd.engine.state import StateDB
from syncd.message import message_id, wire_size
from syncd.model import NO_FLAGS
from syncd.stores.base import Capability, Checkpoint
from syncd.stores.memory import MemoryNear
from syncd.stores.pop3.client import Pop3Client
from syncd.stores.pop3.store import Pop3Folder

LOG = logging.LoggerAdapter(logging.getLogger("syncd.contract.pop3"), {})


@pytest.fixture(scope="module")
def pop3d() -> Iterator[DevServer]:
    root = Path(tempfile.mkdtemp(prefix="syncd-pop3contract-"))
    root.chmod(0o755)
    try:
        server = devserver.start(root, pop3=True)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


class _Secret:
    def __init__(self, value: str) -> None:
        self.value = value

    def password(self) -> str:
        return self.value


class Maildrop:
    """A POP3 user: ``open()`` gives a fresh session's folder (a POP3 session sees
    the maildrop as of its login); ``put`` is another client delivering mail."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.user: User = server.add_user()
        self.sessions: list[Pop3Client] = []

    def put(self, data: bytes) -> int:
        return append(self.server, self.user, "INBOX", data)

    def remove(self, uid: int) -> None:
        expunge(self.server, self.user, "INBOX", [uid])

    def open(self, max_message: int = 1 << 26) -> Pop3Folder:
        assert self.server.pop3_port is not None
        client = Pop3Client.connect(
            host=self.server.host,
            user=self.user.name,
            port=self.server.pop3_port,
            tls="none",
            password=_Secret(self.user.password),
        )
        self.sessions.append(client)
        folder = Pop3Folder(client, LOG, max_message=max_message)
        folder.open(None, readonly=False)
        return folder

    def close(self) -> None:
        for client in self.sessions:
            client.close()


@pytest.fixture
def drop(pop3d: DevServer) -> Iterator[Maildrop]:
    handle = Maildrop(pop3d)
    try:
        with session(pop3d, handle.user) as client:
            client.select_folder("INBOX")  # Dovecot creates the mailbox
        yield handle
    finally:
        handle.close()


def test_capabilities_say_pull_only_mail_drop(drop: Maildrop) -> None:
    caps = drop.open().capabilities
    assert Capability.SPOOL in caps and Capability.UID_STABLE in caps
    for absent in (Capability.APPEND, Capability.FLAGS, Capability.UIDVALIDITY):
        assert absent not in caps
    assert Capability.MODSEQ not in caps and drop.open().status() is None


def test_open_has_no_epoch_and_no_modseq(drop: Maildrop) -> None:
    folder = drop.open()
    view = folder.open(Checkpoint(None, None), readonly=True)
    assert (view.uidvalidity, view.highestmodseq, view.readonly) == (None, None, True)
    assert folder.keys_from(view.uidnext) == []


def test_listing_shows_every_message_under_a_stable_string_key(drop: Maildrop) -> None:
    drop.put(message(1))
    drop.put(message(2, body="two\n" * 50))
    folder = drop.open()
    listed = folder.list_all(sizes=True)
    assert len(listed) == 2 and all(isinstance(k, str) for k in listed)
    assert all(m.flags == NO_FLAGS for m in listed.values())
    assert sorted(m.size for m in listed.values()) == sorted(
        wire_size(message(i) if i == 1 else message(2, body="two\n" * 50)) for i in (1, 2)
    )
    assert folder.listing(None, {}, full=False) == listed
    assert drop.open().list_all(sizes=True) == listed  # the same keys next session


def test_fetch_gives_the_bytes_and_skips_gone_keys(drop: Maildrop) -> None:
    drop.put(message(1, body="line one\nline two\n"))
    folder = drop.open()
    [key] = folder.list_all(sizes=False)
    bodies = list(folder.fetch([key, "no-such-key"]))
    assert [b.key for b in bodies] == [key]
    assert bodies[0].data == message(1, body="line one\nline two\n")  # wire form, as put
    assert folder.metas([key, "gone"]) == {key: folder.list_all(sizes=True)[key]}


def test_a_message_over_the_size_cap_is_not_fetched(drop: Maildrop) -> None:
    drop.put(message(1))
    drop.put(message(2, body="x" * 5000))
    folder = drop.open(max_message=2000)
    assert folder.max_fetch_size == 2000
    sizes = folder.list_all(sizes=True)
    got = [b.key for b in folder.fetch(list(sizes))]
    assert got == [k for k, m in sizes.items() if (m.size or 0) <= 2000]
    assert len(got) == 1 and folder.refused == []


def test_headers_are_the_asked_fields(drop: Maildrop) -> None:
    drop.put(message(7))
    folder = drop.open()
    [key] = folder.list_all(sizes=False)
    got = folder.headers([key], ["Message-ID"])
    assert message_id(got[key]) == message_id(message(7))
    assert got[key].lower().startswith(b"message-id:")


def test_the_engine_pulls_once_and_keeps_what_left_the_drop(drop: Maildrop, tmp_path: Path) -> None:
    uids = [drop.put(message(i)) for i in range(3)]
    near = MemoryNear()
    db = StateDB(tmp_path / "state.db")

    def run() -> tuple[int, int, int]:
        report = FolderSync(
            far=drop.open(), near=near, db=db, policy=Policy(), options=RunOptions(), log=LOG
        ).run()
        return report.downloaded, report.uploaded, report.deleted_near

    try:
        assert run() == (3, 0, 0)
        assert run() == (0, 0, 0)
        drop.remove(uids[0])  # another client took it
        near.deliver(message(9), name="local-only", flags=NO_FLAGS, mtime=None, to_new=False)
        assert run() == (0, 0, 0)  # not uploaded (no APPEND), nothing deleted here
        assert len(near.messages) == 4
    finally:
        db.close()
