"""The daemon's control socket: ``syncd sync`` asks a running daemon to sync now.

Without it, a ``syncd sync`` started while the daemon holds the account would have
to wait for the lock or give up (exit 75), and would pay for a second login, a
second LIST-STATUS and the whole start-up of the engine.  With it, the command
sends one request over a Unix socket, the daemon's own worker syncs the account
on its warm connection (coalesced with whatever IDLE or the watcher asked for),
and the command prints what the daemon's log says about it and exits with the
same codes as a one-shot run.

The socket lives in a private directory (``$XDG_RUNTIME_DIR/syncd``, else
``/tmp/syncd-<uid>``, mode 0700, owned by the user), is mode 0600, and the
daemon checks the peer's uid (``SO_PEERCRED``) before reading a byte.  One socket
per state directory: two daemons with different configs do not meet.

Wire protocol (JSON, one object per line).  Request:
``{"sync": ["work", ...]}`` (empty: every account the daemon runs).  Answers:
``{"log": "<a log line>"}`` any number of times, then
``{"exit": 0|1|75, "lines": ["<the per-account summary line>", ...]}``, or
``{"refused": "<why>"}`` when the daemon does not hold an account asked for (the
command then syncs by itself, as without a daemon).

The fast path of ``syncd sync`` (:mod:`syncd.cli.ride`) has not read the config:
it reaches the daemon through the config file's link (see
:mod:`syncd.daemon.rendezvous`) and adds ``"config": "<path>", "stamp": [...]``;
the daemon answers only while that is the file it loaded, unchanged since (else
``refused``: the command reads the config and goes the ordinary way), and reads
an empty list as every account of that config, as the command would.

This module is imported by the ``syncd sync`` client too: it imports nothing from
the engine at module level, so the client stays light.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from syncd.daemon import rendezvous
from syncd.daemon.rendezvous import RendezvousError, config_link_name, peer_uid

if TYPE_CHECKING:
    from syncd.account.syncer import AccountReport

# The name the daemon's loggers have: users' log filters use it.
logger = logging.getLogger("syncd.daemon")

MAX_REQUEST: Final = 64 * 1024
EXIT_OK, EXIT_FAILED, EXIT_LOCKED = 0, 1, 75


ControlError = RendezvousError  # the socket directory cannot be used


def runtime_dir() -> Path:
    """The private directory of the user's control sockets (created 0700)."""
    return Path(rendezvous.runtime_dir())


def socket_path(state_dir: Path) -> Path:
    """The control socket of the daemon that keeps its state in ``state_dir``."""
    return runtime_dir() / rendezvous.socket_name(str(Path(state_dir).absolute()))


def _send(conn: socket.socket, obj: dict[str, Any]) -> None:
    conn.sendall(json.dumps(obj, ensure_ascii=False).encode() + b"\n")


def _lines(conn: socket.socket) -> Iterator[dict[str, Any]]:
    buffer = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buffer += chunk
        if len(buffer) > MAX_REQUEST and b"\n" not in buffer:
            raise ValueError("message too long")
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            yield obj


# --------------------------------------------------------------------------- server


class _Forward(logging.Handler):
    """Sends the log lines of the accounts being synced for one request."""

    def __init__(self, accounts: set[str], send: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.accounts = accounts
        self.send = send
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.rpartition(".")[2] not in self.accounts:
            return
        with contextlib.suppress(OSError):  # the client went away: its sync goes on
            self.send(self.format(record))


class _Runner(Protocol):
    def sync_now(self) -> tuple[AccountReport, float] | None: ...


class _Config(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def accounts(self) -> Mapping[str, object]: ...


class _Daemon(Protocol):
    """What the server needs of :class:`syncd.daemon.core.Daemon` (which owns it)."""

    @property
    def runners(self) -> Mapping[str, _Runner]: ...
    @property
    def config(self) -> _Config: ...
    @property
    def config_stamp(self) -> list[int] | None: ...


class ControlServer:
    """Accepts ``sync`` requests for ``daemon`` on its control socket, one thread
    per connection.  ``start`` once, ``stop`` once."""

    def __init__(self, daemon: _Daemon, path: Path, link: Path | None = None) -> None:
        """``link``: made a symbolic link to ``path`` while the server runs (the
        config file's name for it, see :mod:`syncd.daemon.rendezvous`)."""
        self.daemon = daemon
        self.path = path
        self.link = link
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="syncd-control", daemon=True)

    def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a daemon that died (the lock is ours)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.listen(8)
        self._sock = sock
        self._thread.start()
        if self.link is not None:
            # A relative link, swapped in whole: a reader never finds it half made.
            fresh = self.link.with_name(f".{self.link.name}.{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                fresh.unlink()
            fresh.symlink_to(self.path.name)
            fresh.replace(self.link)

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self.link is not None:
            with contextlib.suppress(OSError):  # unless another daemon took the name since
                if self.link.readlink() == Path(self.path.name):
                    self.link.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            if peer_uid(conn) != os.getuid():
                logger.warning("control socket: refused a connection from another user")
                return
            try:
                request = next(_lines(conn), None)
            except ValueError:
                return
            if request is None or not isinstance(request.get("sync"), list):
                return
            wanted = [str(a) for a in request["sync"]]
            if "config" in request:  # the fast path: it has not read the config
                why = self._stale(request)
                if why:
                    _send(conn, {"refused": why})
                    return
                wanted = wanted or list(self.daemon.config.accounts)
            self._sync(conn, wanted)

    def _stale(self, request: dict[str, Any]) -> str | None:
        """Why a request naming the config file cannot be answered from the config
        this daemon loaded (None: it can)."""
        config = self.daemon.config
        if config_link_name(str(request["config"])) != config_link_name(str(config.path)):
            return f"the daemon runs {config.path}"
        stamp = self.daemon.config_stamp
        if stamp is None or request.get("stamp") != stamp:
            return f"{config.path} changed since the daemon read it"
        return None

    def _sync(self, conn: socket.socket, wanted: list[str]) -> None:
        runners = self.daemon.runners
        names = wanted or list(runners)
        missing = [n for n in names if n not in runners]
        if missing:
            _send(conn, {"refused": "the daemon does not sync " + ", ".join(missing)})
            return
        lock = threading.Lock()

        def send(line: str) -> None:
            with lock:
                _send(conn, {"log": line})

        forward = _Forward(set(names), send)
        root = logging.getLogger("syncd")
        root.addHandler(forward)
        try:
            outcomes = [runners[n].sync_now() for n in names]
        finally:
            root.removeHandler(forward)
        code = EXIT_OK
        lines = []
        for outcome in outcomes:
            if outcome is None:
                code = max(code, EXIT_LOCKED)  # the daemon is stopping
                continue
            report, seconds = outcome
            lines.append(report.line(dry_run=False, seconds=seconds))
            if report.locked:
                code = max(code, EXIT_LOCKED)
            elif not report.ok:
                code = EXIT_FAILED if code != EXIT_LOCKED else code
        with lock:
            _send(conn, {"exit": code, "lines": lines})


# --------------------------------------------------------------------------- client


def ask_daemon(state_dir: Path, accounts: list[str], out: Callable[[str], None]) -> int | None:
    """Ask the daemon of ``state_dir`` to sync ``accounts`` now; print its lines with
    ``out``.  Returns the exit code, or None when no daemon answers (or it does not
    sync one of ``accounts``): the caller then syncs by itself."""
    try:
        path = socket_path(state_dir)
    except OSError:
        return None
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        try:
            sock.connect(str(path))
            if peer_uid(sock) != os.getuid():  # not our daemon: never trust its answer
                return None
            _send(sock, {"sync": accounts})
            for answer in _lines(sock):
                if "log" in answer:
                    out(str(answer["log"]))
                elif "refused" in answer:
                    return None
                elif "exit" in answer:
                    for line in answer.get("lines", []):
                        out(str(line))
                    return int(answer["exit"])
        except (OSError, ValueError):
            return None
    return None
