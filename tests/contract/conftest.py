"""Fixtures of the store contract suite: each store behind the seam, with a way to
change its side as another mail client would.

``far`` is parametrised over the memory store and the IMAP store (a fresh user on
the session's private Dovecot, and on a shared Dovecot without MOVE and UIDPLUS);
``near`` over the memory store and a Maildir
folder under ``tmp_path``.  The tests in this folder only use the protocols of
:mod:`syncd.stores.base` plus these handles.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_support import (
    FarHandle,
    ImapFarHandle,
    MaildirNearHandle,
    MemoryFarHandle,
    MemoryNearHandle,
    NearHandle,
)
from support import StartServer

from devserver.dovecot import DevServer, capabilities_without


@pytest.fixture(params=["memory", "imap", "imap-no-move-uidplus"])
def far(request: pytest.FixtureRequest) -> Iterator[FarHandle]:
    if request.param == "memory":
        yield MemoryFarHandle()
        return
    if request.param == "imap":
        server: DevServer = request.getfixturevalue("dovecot")
    else:  # the adapter, not the engine, makes up for a server without MOVE and UIDPLUS
        start: StartServer = request.getfixturevalue("dovecot_server")
        server = start(capability=capabilities_without("MOVE", "UIDPLUS"))
    handle = ImapFarHandle(server)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(params=["memory", "maildir"])
def near(request: pytest.FixtureRequest, tmp_path: Path) -> NearHandle:
    if request.param == "memory":
        return MemoryNearHandle()
    return MaildirNearHandle(tmp_path / "box")
