"""How one run is asked to go: its options, and the limits on memory and batches.

One options object travels one way, from the caller (CLI, daemon) down to each
folder's cycle.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from syncd.engine.progress import Meter
from syncd.engine.reconcile import Policy

T = TypeVar("T")

# Bodies in memory at once per folder: two batches (one being stored, one fetched).
DOWNLOAD_BATCH_BYTES = 4 * 1024 * 1024
ACCOUNT_BODY_BUDGET = 16 * 1024 * 1024  # all folders of an account together
DOWNLOAD_BATCH_COUNT = 1000
UPLOAD_BATCH_BYTES = 8 * 1024 * 1024
UPLOAD_BATCH_COUNT = 100
WRITERS = 4  # threads storing downloads; fsyncs in parallel let the file system batch them
PROGRESS_EVERY = 5.0  # seconds between progress lines on long copies
PROGRESS_EVERY_ENV = "SYNCD_PROGRESS_EVERY"  # overrides it (tests, a chatty journal)


class SyncCancelled(Exception):
    """The run was asked to stop (:attr:`RunOptions.cancel`).  Raised only where all
    that was done so far is committed: between folders, or between two batches of
    a folder's copies.  What is left is picked up by the next run, as after a crash."""


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    allow_mass_delete: bool = False
    retry_refused: bool = False  # offer messages the server refused for good again now
    # Set by the daemon on SIGTERM: a long folder stops at its next batch boundary.
    cancel: threading.Event | None = None
    # The account's copies, as they go (a live line, the daemon's status file).
    progress: Meter | None = None
    progress_every: float = PROGRESS_EVERY  # seconds between progress log lines


def progress_every(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds between progress log lines: ``$SYNCD_PROGRESS_EVERY`` when it is a
    number of seconds (0 or more), else :data:`PROGRESS_EVERY`."""
    try:
        value = float(environ.get(PROGRESS_EVERY_ENV, ""))
    except ValueError:
        return PROGRESS_EVERY
    return value if value >= 0 else PROGRESS_EVERY


class ByteBudget:
    """Message bytes in memory at once, shared by the folders of an account that
    are synced side by side, so a few multi-megabyte messages arriving together
    cannot push the peak RSS up.  A request larger than the whole budget waits
    until it is all free and then takes all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._cond = threading.Condition()

    def try_acquire(self, amount: int) -> int | None:
        amount = min(amount, self.limit)
        with self._cond:
            if self._used + amount > self.limit:
                return None
            self._used += amount
            return amount

    def acquire(self, amount: int) -> int:
        amount = min(amount, self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self._used + amount <= self.limit)
            self._used += amount
            return amount

    def release(self, amount: int) -> None:
        with self._cond:
            self._used -= amount
            self._cond.notify_all()


def batched(
    items: Sequence[T], size_of: Callable[[T], int], max_bytes: int, max_count: int
) -> Iterator[list[T]]:
    """Plan steps in batches of at most ``max_count`` items and ``max_bytes`` message
    bytes (a bigger item goes alone): the unit of memory and of a state commit.
    (How many keys fit on one command line is the far store's business.)"""
    batch: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if batch and (total + size > max_bytes or len(batch) >= max_count):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size
    if batch:
        yield batch


def policy_for(sync: str, expunge: bool) -> Policy:
    return Policy(pull=sync in ("both", "pull"), push=sync in ("both", "push"), expunge=expunge)
