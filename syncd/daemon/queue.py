"""What a daemon account's worker is asked to do and how it paces itself: the
coalescing :class:`RequestQueue` of :class:`Batch`es, the :class:`Backoff` after
failures (the IDLE listeners use it too), and the :class:`Tuning` of the timings.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

#: How long a daemon sync waits for another syncd holding the account lock.
LOCK_WAIT: Final = 5.0
#: After that, how long before it tries again.
LOCK_RETRY: Final = 15.0
#: How long a stop waits for the workers by default (a folder step in flight).


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Batch:
    """What a worker syncs next: everything (``full``) or some ``folders``
    (names with ``/`` separators, as the user writes them)."""

    full: bool
    folders: tuple[str, ...] = ()
    #: The newest request this batch answers (see RequestQueue.post_full_ticket).
    ticket: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return "full sync" if self.full else "sync of " + ", ".join(self.folders)


class RequestQueue:
    """The pending sync requests of one account, coalesced.  Thread-safe.

    A pending full sync absorbs every folder request; a folder requested twice
    is pending once.  After :meth:`close` nothing is accepted and :meth:`take`
    returns None at once (what was pending is dropped: a stopping daemon does
    not start new syncs).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._full = False
        self._folders: dict[str, None] = {}  # an ordered set: first asked, first synced
        self._closed = False
        self._ticket = 0  # counts the requests; a batch answers all up to its ticket

    def post_full(self) -> bool:
        """Ask for a full sync; False when closed."""
        return self.post_full_ticket() is not None

    def post_full_ticket(self) -> int | None:
        """Ask for a full sync; its ticket (the batch with ``ticket`` >= it answers
        it), or None when closed."""
        with self._cond:
            if self._closed:
                return None
            self._full = True
            self._folders.clear()
            self._ticket += 1
            self._cond.notify_all()
            return self._ticket

    def post_folder(self, folder: str) -> bool:
        """Ask for a sync of ``folder``; False when closed."""
        with self._cond:
            if self._closed:
                return False
            if not self._full:
                self._folders[folder] = None
            self._ticket += 1
            self._cond.notify_all()
            return True

    def post(self, batch: Batch) -> bool:
        """Ask again for what ``batch`` asked (e.g. after a failed attempt)."""
        if batch.full:
            return self.post_full()
        ok = True
        for folder in batch.folders:
            ok = self.post_folder(folder) and ok
        return ok

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._full or bool(self._folders)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def take(self, timeout: float | None = None) -> Batch | None:
        """Wait until something is pending, take all of it as one batch.

        Returns None when closed, or when ``timeout`` seconds passed with nothing.
        """
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._closed or self._full or bool(self._folders), timeout
            ):
                return None
            if self._closed:
                return None
            batch = Batch(self._full, () if self._full else tuple(self._folders), self._ticket)
            self._full = False
            self._folders.clear()
            return batch

    def close(self) -> None:
        """Refuse new requests, drop the pending ones, wake :meth:`take`."""
        with self._cond:
            self._closed = True
            self._full = False
            self._folders.clear()
            self._cond.notify_all()


# --------------------------------------------------------------------------- back-off


@dataclass
class Backoff:
    """Exponential back-off with jitter, for one thing that keeps failing.

    :meth:`failure` returns how long to wait before the next attempt: the first
    failure after a success is retried at once (``0``: a stale connection is
    the common cause), then ``initial`` doubling up to ``cap``, each multiplied
    by a random factor in ``[1 - jitter, 1 + jitter]`` (and never above
    ``cap``) so that many clients do not hammer a recovering server in step.
    :meth:`success` resets it and says whether an outage just ended.
    """

    initial: float = 5.0
    cap: float = 300.0
    jitter: float = 0.2
    rng: Callable[[], float] = field(default=random.random, repr=False)
    failures: int = 0

    def failure(self) -> float:
        self.failures += 1
        if self.failures == 1:
            return 0.0
        base = min(self.cap, self.initial * 2.0 ** min(self.failures - 2, 32))
        factor = 1.0 - self.jitter + 2.0 * self.jitter * float(self.rng())
        return min(self.cap, base * factor)

    def success(self) -> bool:
        """Reset; True when there had been failures (an outage ended)."""
        had, self.failures = self.failures, 0
        return had > 0

    @property
    def failing(self) -> bool:
        return self.failures > 0


@dataclass(frozen=True)
class Tuning:
    """Timings of the daemon's moving parts; tests and benchmarks shorten them."""

    debounce: float = 0.5  # quiet time before a local change is synced
    idle_slice: float = 60.0  # longest single IDLE before DONE (and a liveness check)
    lock_wait: float = LOCK_WAIT
    lock_retry: float = LOCK_RETRY
    backoff_initial: float = 5.0
    backoff_cap: float = 300.0
    #: Full syncs running at once across all accounts of the daemon: each may hold
    #: an account's body budget in memory, so this bounds the peak of a daemon of
    #: many accounts (their start-up syncs), whatever their number.  Folder syncs
    #: (IDLE, the watcher) never wait for it.
    full_syncs: int = 4
