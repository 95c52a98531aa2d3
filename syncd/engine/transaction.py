"""Write transactions on the state database, one writer at a time per file.

Folder workers each have their own connection to the account's database.  When
two of them want to write at once, SQLite makes the second poll with growing
sleeps (1, 2, 5, 10, 15... ms) while the first commits -- an fsync of a few ms.
A mutex per database file within the process wakes the next writer the moment
the first is done; SQLite's own lock still guards against other processes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

_writers: dict[Path, threading.RLock] = {}
_guard = threading.Lock()


def writer_lock(path: Path) -> threading.RLock:
    """The mutex of the database at ``path`` (the same for every connection to it)."""
    key = path.resolve()
    with _guard:
        lock = _writers.get(key)
        if lock is None:
            lock = _writers[key] = threading.RLock()
        return lock


class Transaction:
    """``with``: BEGIN IMMEDIATE under the file's mutex; COMMIT, or ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
