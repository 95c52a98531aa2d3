"""IDLE listeners against a real Dovecot: what a second client does to the watched folder
is reported; a kick is survived; a server without IDLE is left to the periodic sync; a
dead server is retried with back-off and logged once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import StartServer
from support.imap import append, create_folder, expunge, set_flags
from support.mail import make_message
from support.run import account_config, write_config

from devserver.dovecot import DevServer, User, capabilities_without
from syncd.config import AccountConfig, load_config
from syncd.daemon.idle import IdleListener
from syncd.daemon.queue import Backoff
from syncd.errors import AccountError

DEADLINE = 30.0


def wait_for(check: Callable[[], Any], what: str) -> Any:
    end = time.monotonic() + DEADLINE
    while not (result := check()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


class Posts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[str] = []

    def __call__(self, folder: str) -> None:
        with self.lock:
            self.items.append(folder)

    def count(self) -> int:
        with self.lock:
            return len(self.items)

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.items)


def account_for(tmp_path: Path, server: DevServer, user: User) -> AccountConfig:
    table = account_config(server, user, tmp_path / "Mail")
    return load_config(write_config(tmp_path, {"test": table})).accounts["test"]


@pytest.fixture
def listen(tmp_path: Path) -> Iterator[Callable[..., tuple[IdleListener, Posts]]]:
    started: list[IdleListener] = []

    def make(server: DevServer, user: User, folder: str = "INBOX") -> tuple[IdleListener, Posts]:
        posts = Posts()
        listener = IdleListener(
            account_for(tmp_path, server, user),
            folder,
            post=posts,
            backoff=Backoff(initial=0.05, cap=0.2),
            slice_seconds=1.0,
        )
        listener.start()
        started.append(listener)
        wait_for(lambda: listener.connections, "the IDLE connection")
        return listener, posts

    yield make
    for listener in started:
        listener.request_stop()
        listener.join(DEADLINE)


def test_changes_by_another_client_are_reported(
    dovecot: DevServer, account: User, listen: Any
) -> None:
    create_folder(dovecot, account, "Lists/python")
    listener, posts = listen(dovecot, account, "Lists/python")
    uid = append(dovecot, account, "Lists/python", make_message())
    wait_for(lambda: posts.count() >= 1, "EXISTS")
    seen = posts.count()
    set_flags(dovecot, account, "Lists/python", [uid], ["\\Flagged"])
    wait_for(lambda: posts.count() > seen, "FETCH")
    seen = posts.count()
    expunge(dovecot, account, "Lists/python", [uid])
    wait_for(lambda: posts.count() > seen, "EXPUNGE")
    assert set(posts.snapshot()) == {"Lists/python"}
    assert listener.connections == 1


class _AppendBeforeNoop:
    """A real session whose first NOOP is preceded by another client's APPEND (so
    that NOOP, not IDLE, collects the EXISTS); records what was posted each time
    IDLE starts."""

    def __init__(self, session: Any, server: DevServer, user: User, posts: Posts) -> None:
        self._session, self._server, self._user, self._posts = session, server, user, posts
        self.posted_at_idle: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def noop(self) -> None:
        if not self.posted_at_idle:
            append(self._server, self._user, "INBOX", make_message())
        self._session.noop()

    def idle_wait(self, timeout: float) -> Any:
        self.posted_at_idle.append(self._posts.count())
        return self._session.idle_wait(timeout)


def test_a_change_noop_collects_is_posted_before_idle_blocks(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    # Posted only after IDLE's next wake-up, it would wait for a keep-alive: up to
    # the slice (60 s) or the server's "still here" (2 min by default).
    from syncd.daemon.idle import _open

    posts = Posts()
    sessions: list[_AppendBeforeNoop] = []

    def connect(acc: AccountConfig) -> Any:
        sessions.append(_AppendBeforeNoop(_open(acc), dovecot, account, posts))
        return sessions[-1]

    listener = IdleListener(
        account_for(tmp_path, dovecot, account),
        "INBOX",
        post=posts,
        backoff=Backoff(initial=0.05, cap=0.2),
        slice_seconds=1.0,
        connect=connect,
    )
    listener.start()
    try:
        wait_for(lambda: sessions and len(sessions[0].posted_at_idle) >= 2, "two IDLEs")
    finally:
        listener.request_stop()
        listener.join(DEADLINE)
    assert sessions[0].posted_at_idle[0] == 1  # the EXISTS NOOP saw, before IDLE
    assert posts.snapshot()[0] == "INBOX"


def test_a_kick_is_survived_and_pushes_keep_coming(
    dovecot: DevServer, account: User, listen: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd")
    listener, posts = listen(dovecot, account)
    dovecot.kick(account)
    wait_for(lambda: listener.connections == 2, "the reconnect")
    wait_for(lambda: posts.count() >= 1, "the catch-up request after the reconnect")
    seen = posts.count()
    append(dovecot, account, "INBOX", make_message())
    wait_for(lambda: posts.count() > seen, "EXISTS after the reconnect")
    assert listener.alive
    assert any("IDLE connected again" in r.getMessage() for r in caplog.records)


def test_a_stopped_listener_ends_and_logs_out(
    dovecot: DevServer, account: User, listen: Any
) -> None:
    listener, _posts = listen(dovecot, account)
    listener.request_stop()
    listener.join(DEADLINE)
    assert not listener.alive


def test_without_idle_the_listener_leaves_it_to_the_periodic_sync(
    tmp_path: Path,
    dovecot_server: StartServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="syncd")
    server = dovecot_server(capability=capabilities_without("IDLE"))
    user = server.add_user()
    posts = Posts()
    listener = IdleListener(
        account_for(tmp_path, server, user), "INBOX", post=posts, backoff=Backoff()
    )
    listener.start()
    listener.join(DEADLINE)
    assert not listener.alive
    assert posts.snapshot() == []
    assert any("the server has no IDLE" in r.getMessage() for r in caplog.records)


def test_an_unreachable_server_is_retried_with_back_off_and_logged_once(
    tmp_path: Path, dovecot: DevServer, account: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="syncd")
    attempts: list[float] = []

    def refuse(_account: AccountConfig) -> Any:
        attempts.append(time.monotonic())
        raise AccountError("test (127.0.0.1:1): cannot connect: Connection refused")

    backoff = Backoff(initial=0.01, cap=0.05)
    listener = IdleListener(
        account_for(tmp_path, dovecot, account),
        "INBOX",
        post=Posts(),
        backoff=backoff,
        connect=refuse,
    )
    listener.start()
    wait_for(lambda: len(attempts) >= 10, "ten attempts")
    listener.request_stop()
    listener.join(DEADLINE)
    assert not listener.alive
    assert backoff.failures >= 10
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings  # the error, then "retrying ... not logged again"
    assert "Connection refused" in warnings[0]
