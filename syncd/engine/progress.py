"""Progress of the copies of a sync: messages and bytes done out of planned, the
rate over a sliding window, and the time left.

A :class:`Meter` is fed by the engine as copies are planned and done, from every
folder of an account at once (folders sync in parallel threads), and read by
whoever shows progress -- the CLI's live line on a terminal, the daemon's status
file -- as a :class:`Snapshot`.  It prints nothing itself; the clock is injected,
so the arithmetic is tested without waiting.

:class:`FolderProgress` is one folder's downloads or uploads: it feeds the
account's meter (when there is one) and logs ``downloaded 2480/3000 messages,
120.4/150.2 MB, 3.1 MB/s, 0:09 left`` every few seconds on long copies, unless a
live display already shows the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: Seconds the rate is measured over: recent enough to follow a link that slows down,
#: long enough not to jump with every batch.
WINDOW: Final = 10.0
#: At most about this many samples per window are kept, however fast copies go.
SAMPLES: Final = 100
#: A folder's copy logs its progress only from this many messages on.
LOG_FROM_MESSAGES: Final = 200

Clock = Callable[[], float]


def size_text(done: int, total: int, *, decimals: int = 1) -> str:
    """``120.4/150.2 MB``: both in the unit the total reads best in (decimal units)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if total >= scale:
            return f"{done / scale:.{decimals}f}/{total / scale:.{decimals}f} {unit}"
    return f"{done}/{total} B"


def rate_text(rate: float) -> str:
    """``3.1 MB/s``."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if rate >= scale:
            return f"{rate / scale:.1f} {unit}/s"
    return f"{rate:.0f} B/s"


def duration_text(seconds: float) -> str:
    """``0:09``, ``12:30``, ``1:02:03``: minutes and seconds, hours when there are any."""
    s = max(0, round(seconds))
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class Snapshot:
    """The copies of a sync at one moment.  ``rate``: bytes per second over the last
    :data:`WINDOW` seconds (None: nothing copied yet); ``eta``: seconds left at that
    rate (None: unknown -- nothing measured, or nothing moving); ``folder``: the
    folder that copied last (``INBOX +2`` when others copy alongside it)."""

    messages_done: int
    messages_total: int
    bytes_done: int
    bytes_total: int
    rate: float | None
    eta: float | None
    elapsed: float
    folder: str | None = None

    @property
    def finished(self) -> bool:
        return self.messages_done >= self.messages_total

    @property
    def percent(self) -> int:
        """How far, in whole percent: by bytes when their total is known."""
        done, total = (
            (self.bytes_done, self.bytes_total)
            if self.bytes_total
            else (self.messages_done, self.messages_total)
        )
        return min(100, 100 * done // total) if total else 100

    def parts(self, *, decimals: int = 1, rate: bool = True) -> list[str]:
        out = [f"{self.messages_done}/{self.messages_total} messages"]
        if self.bytes_total:
            out.append(size_text(self.bytes_done, self.bytes_total, decimals=decimals))
        if rate and self.rate is not None:
            out.append(rate_text(self.rate))
        if self.eta is not None:
            out.append(f"{duration_text(self.eta)} left")
        return out

    def text(self) -> str:
        """For a log line: ``2480/3000 messages, 120.4/150.2 MB, 3.1 MB/s, 0:09 left``."""
        return ", ".join(self.parts())

    def brief(self) -> str:
        """For ``syncd status``: ``2480/3000 messages, 120/150 MB, 0:09 left``."""
        return ", ".join(self.parts(decimals=0, rate=False))

    def columns(self) -> list[str]:
        """For the live line: folder, messages, bytes, rate, time left (blank when unknown)."""
        return [
            self.folder or "",
            f"{self.messages_done}/{self.messages_total} msgs",
            size_text(self.bytes_done, self.bytes_total) if self.bytes_total else "",
            rate_text(self.rate) if self.rate is not None else "",
            f"{duration_text(self.eta)} left" if self.eta is not None else "",
        ]


class Meter:
    """Copies planned and done, for one account (or one folder).  Thread-safe.

    ``quiet``: a live display shows this progress, so the periodic log lines are
    left out."""

    def __init__(
        self, *, clock: Clock = time.monotonic, window: float = WINDOW, quiet: bool = False
    ) -> None:
        self.clock = clock
        self.window = window
        self.quiet = quiet
        self._lock = threading.Lock()
        self._messages_total = self._bytes_total = 0
        self._messages_done = self._bytes_done = 0
        self._started: float | None = None
        self._busy_since: float | None = None
        self._samples: deque[tuple[float, int, int]] = deque()  # (time, messages, bytes)
        self._active: dict[str, int] = {}  # folder -> copies it still has planned
        self._last_folder: str | None = None

    @property
    def started(self) -> float | None:
        """When the first copy was planned (the clock's time), or None."""
        with self._lock:
            return self._started

    @property
    def busy_since(self) -> float | None:
        """Since when copies have been waiting without a break (None: none now), so
        a display can leave out a copy that is over in a moment."""
        with self._lock:
            return self._busy_since

    def plan(self, messages: int, size: int, folder: str | None = None) -> None:
        """``messages`` copies of ``size`` bytes in all are about to start."""
        if messages <= 0:
            return
        with self._lock:
            now = self.clock()
            if self._started is None:
                self._started = now
                self._samples.append((now, 0, 0))
            if self._messages_done >= self._messages_total:
                self._busy_since = now
            self._messages_total += messages
            self._bytes_total += size
            if folder is not None:
                self._active[folder] = self._active.get(folder, 0) + messages
                self._last_folder = self._last_folder or folder

    def advance(self, messages: int, size: int, folder: str | None = None) -> None:
        """``messages`` copies of ``size`` bytes are done (or given up: they count)."""
        with self._lock:
            now = self.clock()
            self._messages_done += messages
            self._bytes_done += size
            sample = (now, self._messages_done, self._bytes_done)
            samples = self._samples
            if len(samples) >= 2 and now - samples[-2][0] < self.window / SAMPLES:
                samples[-1] = sample  # thousands of messages a second: a bounded deque
            else:
                samples.append(sample)
            self._prune(now)
            if folder is not None:
                self._active[folder] = self._active.get(folder, 0) - messages
                self._last_folder = folder
            if self._messages_done >= self._messages_total:
                self._busy_since = None

    def drop(self, messages: int, size: int, folder: str | None = None) -> None:
        """Planned copies that will not be made in this run (gone meanwhile, stopped):
        they leave the totals.  With ``folder``, that folder is no longer active."""
        with self._lock:
            self._messages_total = max(self._messages_done, self._messages_total - messages)
            self._bytes_total = max(self._bytes_done, self._bytes_total - size)
            if folder is not None:
                self._active.pop(folder, None)
                if self._last_folder == folder:
                    self._last_folder = next(iter(self._active), folder)
            if self._messages_done >= self._messages_total:
                self._busy_since = None

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self.clock()
            self._prune(now)
            rate = eta = None
            if self._messages_done:  # nothing copied yet: nothing measured
                t0, m0, b0 = self._samples[0]
                span = now - t0
                if span > 0:
                    rate = (self._bytes_done - b0) / span
                    messages_rate = (self._messages_done - m0) / span
                    if self._bytes_total and rate > 0:
                        eta = max(0, self._bytes_total - self._bytes_done) / rate
                    elif not self._bytes_total and messages_rate > 0:
                        eta = max(0, self._messages_total - self._messages_done) / messages_rate
            folder = self._last_folder
            others = sum(1 for f, left in self._active.items() if left > 0 and f != folder)
            if folder is not None and others:
                folder = f"{folder} +{others}"
            return Snapshot(
                messages_done=self._messages_done,
                messages_total=self._messages_total,
                bytes_done=self._bytes_done,
                bytes_total=self._bytes_total,
                rate=rate,
                eta=eta,
                elapsed=0.0 if self._started is None else now - self._started,
                folder=folder,
            )

    def _prune(self, now: float) -> None:
        # Keep the last sample at or before the window's start: the rate spans the
        # whole window, and a stall of longer than the window reads as a rate of 0.
        samples = self._samples
        while len(samples) >= 2 and samples[1][0] <= now - self.window:
            samples.popleft()


class FolderProgress:
    """One folder's downloads or uploads: feeds the account's ``meter`` and logs
    ``<verb> 2480/3000 messages, 120.4/150.2 MB, 3.1 MB/s, 0:09 left`` every
    ``every`` seconds on a copy of :data:`LOG_FROM_MESSAGES` messages or more
    (never when the account's meter is shown live)."""

    def __init__(
        self,
        log: logging.LoggerAdapter[logging.Logger],
        verb: str,
        folder: str,
        messages: int,
        size: int,
        *,
        meter: Meter | None = None,
        every: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.log, self.verb, self.folder = log, verb, folder
        self.account = meter
        self.every = every
        self.clock = clock
        self.own = Meter(clock=clock)
        self.own.plan(messages, size)
        self.messages, self.size = messages, size
        self._done = self._done_bytes = 0
        self._last = clock()
        if meter is not None:
            meter.plan(messages, size, folder)

    def advance(self, messages: int, size: int) -> None:
        self._done += messages
        self._done_bytes += size
        self.own.advance(messages, size)
        if self.account is not None:
            self.account.advance(messages, size, self.folder)
        now = self.clock()
        if (
            self.messages >= LOG_FROM_MESSAGES
            and now - self._last >= self.every
            and not (self.account is not None and self.account.quiet)
        ):
            self._last = now
            self.log.info("%s %s", self.verb, self.own.snapshot().text())

    def close(self) -> None:
        """The copy is over (done, stopped or failed): what was not copied leaves the
        account's totals."""
        if self.account is not None:
            self.account.drop(
                max(0, self.messages - self._done),
                max(0, self.size - self._done_bytes),
                self.folder,
            )
