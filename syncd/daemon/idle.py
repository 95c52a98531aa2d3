"""Server push: one IMAP IDLE connection per watched folder (RFC 2177).

An :class:`IdleListener` thread keeps its own connection (one of the
account's ``max_connections``: the syncer's pool gets the rest), EXAMINEs
its folder read-only, and IDLEs in slices of ``slice_seconds``: each slice is
a fresh IDLE command, so IDLE is re-issued long before the server's 29-minute
limit and a dead connection (a laptop resume, a NAT that forgot us) is found
within a slice plus the account's timeout.  When the server reports EXISTS,
EXPUNGE, VANISHED or FETCH (or too many events to keep), the listener posts
"sync folder X"; it never touches the Maildir or the state itself.

A server without IDLE: the listener says so once and ends; the account's
periodic full sync is then the polling.  A dropped connection or a refused
login: logged once, then reconnect with the daemon's exponential back-off
(capped, jittered); the listener never spins and never dies of a network
error.  An error only the user can end (a refused login or OAuth2 token, no
password) waits the longest back-off at once, as the account's worker does.
After a reconnect it posts a sync of its folder, since events may have been
missed while it was away.

The stop flag is checked between IDLE slices: a stopping listener ends
within one slice.  It holds no state, so the daemon does not wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from syncd.account.outcome import NEEDS_USER, error_kind
from syncd.errors import AccountError, CredentialError, FolderError
from syncd.folders import join_name, split_name
from syncd.logsetup import account_logger

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.daemon.queue import Backoff
    from syncd.stores.imap.results import Event
    from syncd.stores.imap.session import ImapSession

# The name it had before the package split: users\' log filters use it.

logger = logging.getLogger("syncd.idle")

#: Server events that mean "this folder changed" (OVERFLOW: too many to keep).
TRIGGERS: Final = frozenset({"EXISTS", "EXPUNGE", "VANISHED", "FETCH", "OVERFLOW"})


def _open(account: AccountConfig) -> ImapSession:
    from syncd.account.syncer import open_session

    return open_session(account)


class IdleListener:
    """IDLE on ``folder`` (``/``-separated, as in the config's ``idle`` list) of
    ``account``; ``post(folder)`` when it changes.  ``start`` once, then
    ``request_stop`` and (optionally) ``join``."""

    def __init__(
        self,
        account: AccountConfig,
        folder: str,
        *,
        post: Callable[[str], object],
        backoff: Backoff,
        slice_seconds: float = 60.0,
        connect: Callable[[AccountConfig], ImapSession] = _open,
    ) -> None:
        self.account = account
        self.folder = folder
        self.post = post
        self.backoff = backoff
        self.slice_seconds = slice_seconds
        self.connect = connect
        self.log = account_logger(account.name, folder)
        self.stopping = threading.Event()
        self.connections = 0  # successful connects, for tests
        self._thread = threading.Thread(
            target=self._run, name=f"syncd-idle-{account.name}-{folder}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self.stopping.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self._listen():
                    return
            except (AccountError, CredentialError, FolderError) as exc:
                if self.stopping.is_set():
                    return
                delay = self.backoff.failure()
                if error_kind(exc) in NEEDS_USER:
                    delay = max(delay, self.backoff.cap)
                if self.backoff.failures == 1:
                    self.log.warning("IDLE: %s; reconnecting", exc)
                elif self.backoff.failures == 2:
                    self.log.warning(
                        "IDLE still failing; retrying in %.0fs, then less and less often; "
                        "not logged again until it works",
                        delay,
                    )
                else:
                    self.log.debug("IDLE: %s; next try in %.0fs", exc, delay)
                if self.stopping.wait(delay):
                    return

    def _listen(self) -> bool:
        """One connection's life; False when the listener should end for good."""
        session = self.connect(self.account)
        try:
            if not session.has_idle:
                self.log.info(
                    "the server has no IDLE; changes are picked up by the full sync every %.0fs",
                    self.account.interval,
                )
                return False
            far_name = join_name(split_name(self.folder, "/"), session.delimiter())
            session.select(far_name, readonly=True)
            self.connections += 1
            reconnected = self.backoff.failing
            if self.backoff.success():
                self.log.info("IDLE connected again")
            if reconnected or self.connections > 1:
                self.post(self.folder)  # what happened while we were away
            self.log.debug("IDLE on %s", far_name)
            while not self.stopping.is_set():
                # NOOP first: a change the server noticed just before IDLE would come
                # in the same read as IDLE's "+" and sit unseen in imaplib's buffer
                # until the next wake-up; NOOP collects it instead, and what it
                # collected is posted before IDLE blocks (not after IDLE's next
                # wake-up: a keep-alive, up to a slice away).
                session.noop()
                self._react(session.drain())
                self._react(session.idle_wait(self.slice_seconds))
            return False
        finally:
            session.logout()

    def _react(self, events: list[Event]) -> None:
        kinds = {kind for kind, _ in events}
        if kinds & TRIGGERS:
            self.log.debug("server reports %s", ", ".join(sorted(kinds & TRIGGERS)))
            self.post(self.folder)
