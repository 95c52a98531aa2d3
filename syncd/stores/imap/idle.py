"""IDLE (RFC 2177) on the selected mailbox: wait for the server to say something."""

from __future__ import annotations

import select
import ssl

from syncd.errors import AccountError
from syncd.stores.imap.parse import clean_text
from syncd.stores.imap.results import Event
from syncd.stores.imap.runner import CommandRunner


class IdleCommands(CommandRunner):
    """IDLE; mixed into ImapSession."""

    def idle_wait(self, timeout: float) -> list[Event]:
        """IDLE on the selected mailbox for up to ``timeout`` seconds or until the server
        says something, then DONE; returns the events (as :meth:`drain`).

        Without IDLE: a NOOP.  Wakes on data from the socket; a response that arrived
        together with the IDLE continuation may only be seen at ``timeout``.
        """
        self._need_selected("IDLE")
        if not self.has_idle:
            self.noop()
            return self.drain()
        self._run("IDLE", self._client.idle)
        sock = self._client.socket()
        ready = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not ready:
            try:
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLIN)
                poller.poll(max(0.0, timeout) * 1000)
            except OSError as exc:
                self._kill(str(exc))
                raise AccountError(
                    f"{self._where}: connection lost during IDLE: {clean_text(exc)}"
                ) from exc
        self._run("IDLE", self._client.idle_done)
        return self.drain()
