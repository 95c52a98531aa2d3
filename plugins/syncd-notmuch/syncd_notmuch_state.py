"""The tag sync's memory: ``<state_dir>/<account>.notmuch.db`` (SQLite, mode 0600).

- ``agreed``: per message id, the synced flags (IMAP names) both sides had
  after the last run -- the baseline of the three-way merge -- and the unique
  names of the message's files then;
- ``pending``: ids whose last run could not finish (a file that could not be
  renamed): looked at again next run even if nothing changed;
- ``bookmark``: the notmuch database (uuid) and revision (lastmod) the last run
  read up to -- the next run asks only for messages changed after it -- and the
  lowest revision the database can have had when that run ended (``floor``).

Everything a run learnt is written in one transaction at its end: a run that
dies half-way leaves the previous state, and the next run merges again --
against a baseline both sides have left, which changes nothing twice.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agreed (
    id TEXT PRIMARY KEY, flags TEXT NOT NULL, files TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bookmark (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    uuid TEXT NOT NULL,
    lastmod INTEGER NOT NULL,
    floor INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Agreed:
    """A message's baseline: its synced ``flags`` and the unique ``files`` names
    (Maildir file names without ``:2,...``) it had when both sides agreed."""

    flags: frozenset[str]
    files: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Bookmark:
    """Where the last run left notmuch's database: its ``uuid``, the revision it
    read up to (``lastmod``), and a revision the database had reached by the
    end of the run (``floor``, above ``lastmod`` when the run wrote)."""

    uuid: str
    lastmod: int
    floor: int


class TagState:
    """One account's file; open for the length of a run, then :meth:`close`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def bookmark(self) -> Bookmark | None:
        row = self._db.execute("SELECT uuid, lastmod, floor FROM bookmark").fetchone()
        return Bookmark(str(row[0]), int(row[1]), int(row[2])) if row is not None else None

    def pending(self) -> list[str]:
        return [str(r[0]) for r in self._db.execute("SELECT id FROM pending ORDER BY id")]

    def agreed(self, ids: Iterable[str]) -> dict[str, Agreed]:
        """The baseline of each id that has one."""
        out: dict[str, Agreed] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, flags, files in self._db.execute(
                f"SELECT id, flags, files FROM agreed WHERE id IN ({marks})",  # noqa: S608 -- ?s
                chunk,
            ):
                out[str(key)] = Agreed(
                    frozenset(str(flags).split()), frozenset(str(files).split("/")) - {""}
                )
        return out

    def save(
        self,
        agreed: Mapping[str, Agreed],
        pending: Iterable[str],
        bookmark: Bookmark,
        forget: Iterable[str] = (),
        *,
        complete: bool = False,
    ) -> None:
        """Record a run: new baselines, the ids to retry (replacing the old
        list), ids no longer in this account, and the bookmark.  ``complete``:
        the run saw every message, so a baseline of an id neither in ``agreed``
        nor in ``pending`` belongs to a message that is gone, and is dropped."""
        pending = set(pending)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if complete:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (id TEXT PRIMARY KEY)")
                self._db.execute("DELETE FROM keep")
                self._db.executemany(
                    "INSERT OR IGNORE INTO keep (id) VALUES (?)",
                    ((k,) for k in [*agreed, *pending]),
                )
                self._db.execute("DELETE FROM agreed WHERE id NOT IN (SELECT id FROM keep)")
            self._db.executemany(
                "INSERT OR REPLACE INTO agreed (id, flags, files) VALUES (?, ?, ?)",
                (
                    # A keyword is an atom (no space); a file name has no "/".
                    (key, " ".join(sorted(a.flags)), "/".join(sorted(a.files)))
                    for key, a in agreed.items()
                ),
            )
            self._db.executemany("DELETE FROM agreed WHERE id = ?", ((k,) for k in forget))
            self._db.execute("DELETE FROM pending")
            self._db.executemany(
                "INSERT OR IGNORE INTO pending (id) VALUES (?)", ((k,) for k in pending)
            )
            self._db.execute(
                "INSERT OR REPLACE INTO bookmark (one, uuid, lastmod, floor) VALUES (1, ?, ?, ?)",
                (bookmark.uuid, bookmark.lastmod, bookmark.floor),
            )
