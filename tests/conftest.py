"""Fixtures for the whole suite: a real, private Dovecot per session.

- ``dovecot`` (session) -> :class:`devserver.dovecot.DevServer`: plain IMAP on 127.0.0.1,
  every capability Dovecot has. One per session, or per worker under pytest-xdist
  (each worker is its own process). Stopping a Dovecot takes 1-3 s, so tests share it
  and are isolated by user instead.
- ``account`` (function) -> :class:`devserver.dovecot.User`: a fresh user with an empty
  mailbox on ``dovecot``.
- ``dovecot_server`` (session) -> ``(**start_kwargs) -> DevServer``: a *shared* server
  with other options, started on first use and reused for the same options, e.g.
  ``dovecot_server(tls="starttls")`` or
  ``dovecot_server(capability=capabilities_without("MOVE", "UIDPLUS"))``. Add a user per
  test; do not stop or break it.
- ``fresh_dovecot`` (function) -> ``(**start_kwargs) -> DevServer``: a *private* server
  stopped when the test ends, for tests that kill, stop or reconfigure it.
- ``full_sweep`` (session) -> bool: True under ``tests/run.sh --all``
  (``SYNCD_TEST_ALL=1``). Tests marked ``slow`` run a sample when it is False (CI) and
  everything when it is True.

All servers are stopped by pid when their scope ends; ``pytest_sessionfinish`` kills
anything of theirs still alive, so no Dovecot outlives the run. A server that cannot
start fails the test loudly: nothing here skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import StartServer

import devserver.dovecot as devserver
from devserver.dovecot import DevServer, User


def _server_root(tag: str) -> Path:
    # Not pytest's tmp_path: /tmp/pytest-of-root is mode 0700 and Dovecot's mail
    # processes (uid 65534) could not reach the mail directory; a short path also keeps
    # Dovecot's unix sockets under the 108-byte limit.
    root = Path(tempfile.mkdtemp(prefix=f"syncd-{tag}-"))
    root.chmod(0o755)
    return root


@contextlib.contextmanager
def _running(tag: str, **kwargs: Any) -> Iterator[DevServer]:
    root = _server_root(tag)
    try:
        server = devserver.start(root, **kwargs)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DevServer]:
    """The session's plain Dovecot (see the module docstring)."""
    with _running("dovecot") as server:
        yield server


@pytest.fixture(scope="session")
def full_sweep() -> bool:
    """Whether long sweeps should run in full (``tests/run.sh --all``) or as a sample."""
    return os.environ.get("SYNCD_TEST_ALL") == "1"


@pytest.fixture
def account(dovecot: DevServer) -> User:
    """A fresh user with an empty mailbox on ``dovecot``."""
    return dovecot.add_user()


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[StartServer]:
    """Shared servers with non-default options, one per distinct set of options."""
    servers: dict[tuple[tuple[str, Any], ...], DevServer] = {}
    roots: list[Path] = []

    def get(**kwargs: Any) -> DevServer:
        key = tuple(sorted(kwargs.items()))
        if key not in servers:
            roots.append(_server_root("shared"))
            servers[key] = devserver.start(roots[-1], **kwargs)
        return servers[key]

    try:
        yield get
    finally:
        # Each Dovecot takes about a second to shut down: stop them side by side.
        with ThreadPoolExecutor() as pool:
            list(pool.map(DevServer.stop, servers.values()))
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_dovecot() -> Iterator[StartServer]:
    """Private servers, stopped at the end of the test."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> DevServer:
            server: DevServer = stack.enter_context(_running("fresh", **kwargs))
            return server

        yield start


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Last line of defence: kill any Dovecot process this test process started."""
    leftovers = devserver.leftover_pids()
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if leftovers:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"killed leftover dovecot processes: {leftovers}", red=True)
