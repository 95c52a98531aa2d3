"""A fault-injecting, optionally hostile TCP proxy between syncd and a real IMAP server.

The proxy runs an asyncio loop in a background thread and listens on a free port of
the upstream's loopback address (so a TLS certificate for it still matches); point
syncd's ``port`` at :attr:`Proxy.port`.  Every connection it accepts is forwarded to
``upstream`` (the real Dovecot or Cyrus).  On top of plain forwarding:

- **Faults** (:class:`Fault`): once a byte pattern has passed in one direction
  (``after``, e.g. ``b"BODY[] {"`` to act mid-literal, or ``b"UID EXPUNGE"``), forward
  ``extra`` more bytes, then ``cut`` (FIN both ways), ``rst`` (TCP reset), ``stall``
  (forward nothing more, keep the sockets open: a dead link), ``halfclose`` (FIN towards
  the client only) or ``delay`` (hold the rest for ``seconds``, then go on).  A fault
  fires ``times`` times in all (counted over every connection), then the proxy is a
  plain pipe again -- so "the next run" sees a healthy link.
- **Slow link**: ``latency`` seconds before every chunk towards the client, and
  ``rate`` bytes per second in both directions.  With ``rate`` the client-facing
  socket's kernel receive buffer is kept small (``rcvbuf``), as on a real slow link:
  otherwise loopback buffers megabytes and an upload "completes" at once.
- **Hostile rewriting** (:data:`Rewriter`): every plaintext IMAP line (CRLF included;
  literal bytes are passed through untouched and never shown to the rewriter) is
  handed to ``rewrite(direction, line, conn)``, which returns the bytes to forward
  instead (``b""`` drops the line).  ``conn.reply(data)`` sends bytes to the client
  (to answer a command the rewriter swallowed).  Once a STARTTLS command has been
  answered ``OK``, that connection is a plain pipe (the proxy cannot read TLS);
  rewriting and hooks therefore need a plaintext or STARTTLS server, not implicit TLS.
- **Hooks**: ``on_command(text)`` is called (in the proxy thread, blocking it) with
  each client command line *before* it is forwarded -- a test uses it to let "another
  client" change the server at an exact moment of the sync.

``upstream_bytes`` / ``downstream_bytes`` record everything that passed (client->server
and server->client, all connections): the wire log the security tests grep.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["up", "down"]
Action = Literal["cut", "rst", "stall", "halfclose", "delay"]

_LITERAL_RE = re.compile(rb"\{(\d+)\+?\}\r\n\Z")
_TAGGED_RE = re.compile(rb"([^ ]+) (OK|NO|BAD)\b", re.IGNORECASE)


@dataclass
class Fault:
    """What to break and when (see the module docstring)."""

    action: Action
    direction: Direction = "down"
    after: bytes = b""  # empty: counted from the first byte of the connection
    extra: int = 0
    seconds: float = 0.0  # for "delay"
    times: int = 1


@dataclass
class Conn:
    """One proxied connection, as a rewriter or hook sees it."""

    index: int
    commands: dict[bytes, bytes] = field(default_factory=dict)  # tag -> command name
    command_lines: dict[bytes, bytes] = field(default_factory=dict)  # tag -> whole line
    lines_down: int = 0
    raw: bool = False
    starttls_tag: bytes | None = None
    _client: asyncio.StreamWriter | None = None

    def reply(self, data: bytes) -> None:
        """Send ``data`` to the client now (e.g. to answer a swallowed command)."""
        if self._client is not None:
            self._client.write(data)

    def command_of(self, line: bytes) -> bytes:
        """The command name (upper case) that a tagged response line answers, or b""."""
        tag = line.split(b" ", 1)[0]
        return self.commands.get(tag, b"")


#: ``rewrite(direction, line, conn) -> bytes`` (see the module docstring).
Rewriter = Callable[[Direction, bytes, Conn], bytes]


class _Framer:
    """Splits a plaintext IMAP stream into lines for the rewriter; literals pass raw."""

    def __init__(self, direction: Direction, conn: Conn, rewrite: Rewriter | None) -> None:
        self.direction = direction
        self.conn = conn
        self.rewrite = rewrite
        self.buf = b""
        self.literal = 0

    def feed(self, data: bytes) -> bytes:
        if self.conn.raw:
            out, self.buf = self.buf + data, b""
            return out
        self.buf += data
        out = bytearray()
        while self.buf and not self.conn.raw:
            if self.literal:
                take = self.buf[: self.literal]
                out += take
                self.literal -= len(take)
                self.buf = self.buf[len(take) :]
                continue
            end = self.buf.find(b"\r\n")
            if end < 0:
                if len(self.buf) > 1 << 20:  # an overlong line: pass it on unparsed
                    out += self.buf
                    self.buf = b""
                break
            line, self.buf = self.buf[: end + 2], self.buf[end + 2 :]
            out += self._line(line)
        if self.conn.raw:
            out += self.buf
            self.buf = b""
        return bytes(out)

    def _line(self, line: bytes) -> bytes:
        conn = self.conn
        m = _LITERAL_RE.search(line)
        if m:
            self.literal = int(m.group(1))
        if self.direction == "up":
            parts = line.split(b" ", 2)
            if len(parts) >= 2:
                name = parts[1].strip().upper()
                if name == b"UID" and len(parts) == 3:
                    name = b"UID " + parts[2].split(b" ", 1)[0].strip().upper()
                conn.commands[parts[0]] = name
                conn.command_lines[parts[0]] = line.rstrip(b"\r\n")
                if name == b"STARTTLS":
                    conn.starttls_tag = parts[0]
        out = self.rewrite(self.direction, line, conn) if self.rewrite else line
        if self.direction == "down":
            conn.lines_down += 1
            tagged = _TAGGED_RE.match(line)
            if (
                conn.starttls_tag is not None
                and tagged is not None
                and tagged.group(1) == conn.starttls_tag
                and tagged.group(2).upper() == b"OK"
            ):
                conn.raw = True  # TLS follows: nothing more to read as IMAP
        return out


class Proxy:
    """Use as a context manager: ``with Proxy(port, fault=Fault("cut", after=b"FETCH")) as p:``."""

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        fault: Fault | None = None,
        rewrite: Rewriter | None = None,
        on_command: Callable[[str], None] | None = None,
        latency: float = 0.0,
        rate: int = 0,
        rcvbuf: int = 32 * 1024,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.fault = fault
        self.rewrite = rewrite
        self.on_command = on_command
        self.latency = latency
        self.rate = rate
        self.rcvbuf = rcvbuf
        self._pace: dict[Direction, tuple[float, int]] = {}  # direction -> (start, bytes)
        self.fired = 0
        self.connections = 0
        self.upstream_bytes = bytearray()
        self.downstream_bytes = bytearray()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Proxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _start(self) -> None:
        # Listen on the upstream's address: TLS certificates name it.
        self._server = await asyncio.start_server(self._handle, self.upstream[0], 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        """Stop listening, drop every connection and end the thread."""
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for w in self._writers:
                with contextlib.suppress(Exception):
                    w.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def set_fault(self, fault: Fault | None) -> None:
        """Arm another fault (or none) for the connections that follow."""
        self.fault = fault
        self.fired = 0

    # -- forwarding ---------------------------------------------------------------------

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        conn = Conn(index=self.connections, _client=cwriter)
        self.connections += 1
        csock = cwriter.get_extra_info("socket")
        if self.rate and self.rcvbuf and csock is not None:
            with contextlib.suppress(OSError):
                csock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        try:
            sreader, swriter = await asyncio.open_connection(*self.upstream)
        except OSError:
            cwriter.close()
            return
        self._writers += [cwriter, swriter]
        stalled = asyncio.Event()
        up = asyncio.ensure_future(self._pump("up", creader, swriter, cwriter, conn, stalled))
        down = asyncio.ensure_future(self._pump("down", sreader, cwriter, cwriter, conn, stalled))
        for t in (up, down):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        if stalled.is_set():
            # A dead link: keep both sockets open (and silent) until the peer gives up.
            await asyncio.wait([up, down], return_when=asyncio.ALL_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in (cwriter, swriter):
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(
        self,
        direction: Direction,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        conn: Conn,
        stalled: asyncio.Event,
    ) -> None:
        # Only a rewriter or hook needs IMAP lines; otherwise bytes pass as they come
        # (implicit TLS starts with a binary ClientHello that has no CRLF).
        parse = self.rewrite is not None or self.on_command is not None
        framer = _Framer(direction, conn, self._rewrite_and_hook if parse else None)
        if not parse:
            conn.raw = True
        tail = b""  # the last bytes seen, to find a fault pattern across chunks
        countdown: int | None = None  # bytes left before an armed fault acts
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionError, OSError):
                return
            if not chunk:
                with contextlib.suppress(Exception):
                    writer.write_eof()
                return
            if stalled.is_set():
                continue  # a dead link swallows everything
            data = framer.feed(chunk)
            fault = self.fault
            if fault is not None and self.fired < fault.times and fault.direction == direction:
                if countdown is None:
                    if fault.after:
                        hay = tail + data
                        pos = hay.find(fault.after)
                        if pos >= 0:
                            countdown = pos - len(tail) + len(fault.after) + fault.extra
                        tail = hay[-len(fault.after) :]
                    else:
                        countdown = fault.extra
                if countdown is not None and countdown <= len(data):
                    self.fired += 1
                    head, rest = data[: max(countdown, 0)], data[max(countdown, 0) :]
                    countdown = None
                    await self._send(direction, writer, head)
                    done = await self._act(fault, direction, writer, client, rest, stalled)
                    if done:
                        return
                    continue
                if countdown is not None:
                    countdown -= len(data)
            await self._send(direction, writer, data)

    async def _act(
        self,
        fault: Fault,
        direction: Direction,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        rest: bytes,
        stalled: asyncio.Event,
    ) -> bool:
        if fault.action == "delay":
            await asyncio.sleep(fault.seconds)
            await self._send(direction, writer, rest)
            return False
        if fault.action == "stall":
            stalled.set()
            return False
        if fault.action == "halfclose":
            with contextlib.suppress(Exception):
                client.write_eof()
            return True
        sock = client.get_extra_info("socket")
        if fault.action == "rst" and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        return True

    async def _send(self, direction: Direction, writer: asyncio.StreamWriter, data: bytes) -> None:
        if not data:
            return
        (self.upstream_bytes if direction == "up" else self.downstream_bytes).extend(data)
        if direction == "down" and self.latency:
            await asyncio.sleep(self.latency)
        if self.rate:
            # Paced against the clock (not "sleep after each piece"), so the rate holds
            # even when writing takes time; an idle link earns no credit for a burst.
            loop = asyncio.get_running_loop()
            step = max(1, self.rate // 20)
            for i in range(0, len(data), step):
                piece = data[i : i + step]
                writer.write(piece)
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.drain()
                epoch, sent = self._pace.get(direction, (loop.time(), 0))
                if loop.time() - (epoch + sent / self.rate) > 0.1:
                    epoch, sent = loop.time(), 0
                sent += len(piece)
                self._pace[direction] = (epoch, sent)
                await asyncio.sleep(max(0.0, epoch + sent / self.rate - loop.time()))
            return
        writer.write(data)
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()

    def _rewrite_and_hook(self, direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "up" and self.on_command is not None:
            self.on_command(line.decode("utf-8", "replace").rstrip("\r\n"))
        if self.rewrite is not None:
            return self.rewrite(direction, line, conn)
        return line


def front(server: Any, **kwargs: Any) -> Proxy:
    """A :class:`Proxy` in front of ``server`` (a DevServer or CyrusServer), on its host:
    ``with front(dovecot, fault=Fault("cut", after=b"FETCH")) as p:`` then use ``p.port``."""
    return Proxy(server.port, upstream_host=server.host, **kwargs)
