"""The sync state: one SQLite database per account (WAL, file mode 0600).

Per folder: the far name, UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT and the outcome
of the last sync; the local messages the server refused for good
(:mod:`syncd.engine.refusals`) and the keywords already reported as kept locally only.
Per pair: far UID, near unique name, the baseline flags and
the size.  Plus the *intent log*: a copy is recorded before it starts and
cleared in the same transaction that records its result, so a crash between
the two leaves an intent that the next run resolves (adopting what was
already copied) instead of copying again.

Renaming and forgetting a folder, the last agreed subscriptions and the rights
granted on each folder (MYRIGHTS) are :mod:`syncd.engine.folderstate`, mixed in.

Per account (one row, ``account_attempts``): the last attempt to sync it, by a
one-shot ``syncd sync`` or the daemon alike, its outcome and error, the last
success and since when it has been failing -- what ``syncd status`` reports.
Added in schema 2 with ``CREATE TABLE IF NOT EXISTS``: a database of schema 1
gains the table when opened, and a syncd of schema 1 ignores it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from syncd.engine.folderstate import FolderExtras
from syncd.engine.pairsql import per_pair
from syncd.engine.refusals import Refusal
from syncd.engine.schema import SCHEMA, SCHEMA_VERSION, migrate_1_to_2
from syncd.engine.transaction import Transaction, writer_lock
from syncd.errors import AccountError
from syncd.model import Flags, MsgKey, Pair, format_flags, parse_flags


@dataclass(frozen=True, slots=True)
class FolderState:
    id: int
    name: str
    uidvalidity: int | None
    highestmodseq: int | None
    uidnext: int | None
    near_signature: str | None
    last_sync: float | None
    last_error: str | None
    far_count: int | None
    near_count: int | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """The last attempt to sync the account.  ``outcome``: ``ok`` (everything
    synced), ``partial`` (the account synced, but a folder or message failed or is
    held back), ``failed`` (nothing synced: cannot connect, log in...).  ``error``
    is one line (None when ok); ``error_kind`` its class (see
    :mod:`syncd.account.outcome`).  ``last_success``: when the last attempt that
    was not ``failed`` ended; ``failing_since``: when the current run of failed
    attempts began (None unless failed); ``failures``: how many in a row."""

    started: float
    finished: float
    outcome: str
    error: str | None
    error_kind: str | None
    last_success: float | None
    failing_since: float | None
    failures: int


@dataclass(frozen=True, slots=True)
class Intent:
    """A copy that was started.  ``download``: far ``uid`` to near ``name``.
    ``upload``: near ``name`` to far, appended when UIDNEXT was ``uidnext``."""

    id: int
    kind: str
    uid: MsgKey | None
    name: str | None
    flags: Flags
    size: int | None
    uidnext: int | None


class StateDB(FolderExtras):
    """The state of one account.  Not thread-safe: one writer per account."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = writer_lock(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file 0600 before SQLite does (it would honour the umask).
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        try:
            self._open(path)
        except sqlite3.DatabaseError as exc:
            raise AccountError(
                f"the state database {path} is damaged ({exc}); nothing was changed. "
                "Move it away and sync again: syncd then pairs both sides by Message-ID"
            ) from exc
        for suffix in ("-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                side.chmod(0o600)

    def _open(self, path: Path) -> None:
        # Folder workers each have a connection; writes are short, so waiting is brief.
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed pair survives a power cut; we commit per batch, not per message.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # A small page cache: several connections (one per folder worker) add up.
        self._db.execute("PRAGMA cache_size=-1024")
        with self.transaction():
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version == 1:
                migrate_1_to_2(self._db)
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """For the state's companion modules (:mod:`syncd.engine.movelog`)."""
        return self._db

    def transaction(self) -> Transaction:
        return Transaction(self._db, self._writer)

    # --- folders -------------------------------------------------------------

    def folder(self, name: str) -> FolderState | None:
        row = self._db.execute(
            "SELECT id, name, uidvalidity, highestmodseq, uidnext, near_signature, last_sync,"
            " last_error, far_count, near_count FROM folders WHERE name = ?",
            (name,),
        ).fetchone()
        return FolderState(*row) if row else None

    def folders(self) -> list[FolderState]:
        rows = self._db.execute(
            "SELECT id, name, uidvalidity, highestmodseq, uidnext, near_signature, last_sync,"
            " last_error, far_count, near_count FROM folders ORDER BY name"
        ).fetchall()
        return [FolderState(*r) for r in rows]

    def ensure_folder(self, name: str) -> FolderState:
        known = self.folder(name)
        if known is not None:
            return known  # no write transaction: folder workers would queue for it
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO folders(name) VALUES (?)", (name,))
        state = self.folder(name)
        assert state is not None
        return state

    def update_folder(self, folder_id: int, **fields: object) -> None:
        allowed = {
            "uidvalidity",
            "highestmodseq",
            "uidnext",
            "near_signature",
            "last_sync",
            "last_error",
            "far_count",
            "near_count",
        }
        unknown = fields.keys() - allowed
        if unknown:
            raise ValueError(f"unknown folder fields {sorted(unknown)}")
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self._db.execute(
                f"UPDATE folders SET {cols} WHERE id = ?",  # noqa: S608 - column names are from the allow-list above
                (*fields.values(), folder_id),
            )

    def record_result(self, folder_id: int, error: str | None) -> None:
        self.update_folder(folder_id, last_sync=time.time(), last_error=error)

    def record_success(self, names: Iterable[str]) -> None:
        """A clean sync of the folders ``names`` just now, in one transaction."""
        now = time.time()
        with self.transaction():
            self._db.executemany(
                "UPDATE folders SET last_sync = ?, last_error = NULL WHERE name = ?",
                [(now, n) for n in names],
            )

    # --- the account's last attempt ------------------------------------------

    def last_attempt(self) -> Attempt | None:
        row = self._db.execute(
            "SELECT started, finished, outcome, error, error_kind, last_success,"
            " failing_since, failures FROM account_attempts WHERE id = 1"
        ).fetchone()
        return Attempt(*row) if row else None

    def record_attempt(
        self,
        started: float,
        outcome: str,
        error: str | None,
        error_kind: str | None,
        *,
        finished: float | None = None,
    ) -> Attempt:
        """Record an attempt that began at ``started`` and just ended; returns the
        row as stored (with ``last_success``/``failing_since`` carried over)."""
        end = time.time() if finished is None else finished
        with self.transaction():
            before = self.last_attempt()
            if outcome == "failed":
                was_failing = before is not None and before.outcome == "failed"
                attempt = Attempt(
                    started,
                    end,
                    outcome,
                    error,
                    error_kind,
                    before.last_success if before is not None else None,
                    before.failing_since if was_failing and before is not None else started,
                    before.failures + 1 if was_failing and before is not None else 1,
                )
            else:
                attempt = Attempt(started, end, outcome, error, error_kind, end, None, 0)
            self._db.execute(
                "INSERT OR REPLACE INTO account_attempts(id, started, finished, outcome, error,"
                " error_kind, last_success, failing_since, failures)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt.started,
                    attempt.finished,
                    attempt.outcome,
                    attempt.error,
                    attempt.error_kind,
                    attempt.last_success,
                    attempt.failing_since,
                    attempt.failures,
                ),
            )
        return attempt

    # --- pairs ---------------------------------------------------------------

    def pairs(self, folder_id: int) -> list[Pair]:
        cache: dict[str, Flags] = {}
        out = []
        for uid, name, flags, size in self._db.execute(
            "SELECT uid, name, flags, size FROM pairs WHERE folder_id = ?", (folder_id,)
        ):
            parsed = cache.get(flags)
            if parsed is None:
                parsed = cache[flags] = parse_flags(flags)
            out.append(Pair(uid, name, parsed, size))
        return out

    def pair_rows(
        self, folder_id: int, far_keys: Collection[MsgKey] | None = None
    ) -> Iterator[tuple[MsgKey | None, str | None, str, int | None]]:
        """The folder's pairs as stored (flags as text), one at a time and in the order
        of :meth:`pairs` (only those of ``far_keys`` when given): for a pass that keeps
        only a few of them."""
        sql = "SELECT rowid, uid, name, flags, size FROM pairs WHERE folder_id = ?"
        if far_keys is None:
            return (row[1:] for row in self._db.execute(sql, (folder_id,)))
        keys, rows = list(far_keys), list[tuple[int, MsgKey, str | None, str, int | None]]()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += self._db.execute(f"{sql} AND uid IN ({marks})", (folder_id, *chunk))
        return (row[1:] for row in sorted(rows, key=lambda r: int(r[0])))

    def pair_census(self, folder_id: int) -> tuple[int, int, list[str]]:
        """How many pairs have a far key, how many a near name, and the distinct
        baselines (as text): counted by SQLite, no row crosses into Python."""
        far, named = self._db.execute(
            "SELECT count(uid), count(name) FROM pairs WHERE folder_id = ?", (folder_id,)
        ).fetchone()
        rows = self._db.execute(
            "SELECT DISTINCT flags FROM pairs WHERE folder_id = ?", (folder_id,)
        )
        return int(far), int(named), [r[0] for r in rows]

    def count_pairs(self, folder_id: int) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM pairs WHERE folder_id = ?", (folder_id,))
        return int(row.fetchone()[0])

    def apply(
        self,
        folder_id: int,
        *,
        add: Iterable[Pair] = (),
        remove: Iterable[Pair] = (),
        rebase: Iterable[tuple[Pair, Flags]] = (),
        done_intents: Iterable[int] = (),
        refused: Iterable[Refusal] = (),
    ) -> None:
        """Record the results of a batch of actions in one transaction."""
        db = self._db
        with self.transaction():
            per_pair(db, "DELETE FROM pairs", folder_id, (((), p) for p in remove))
            db.executemany(
                "INSERT INTO pairs(folder_id, uid, name, flags, size) VALUES (?, ?, ?, ?, ?)",
                [(folder_id, p.far, p.near, format_flags(p.flags), p.size) for p in add],
            )
            per_pair(
                db,
                "UPDATE pairs SET flags = ?",
                folder_id,
                (((format_flags(f),), p) for p, f in rebase),
            )
            db.executemany("DELETE FROM intents WHERE id = ?", [(i,) for i in done_intents])
            db.executemany(
                "INSERT OR REPLACE INTO refusals(folder_id, name, size, code, append_limit,"
                " reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(folder_id, r.name, r.size, r.code, r.limit, r.reason, r.at) for r in refused],
            )

    def replace_pairs(self, folder_id: int, pairs: Sequence[Pair], **folder_fields: object) -> None:
        """Swap the folder's whole pair table (UIDVALIDITY recovery, a vanished local folder)."""
        with self.transaction():
            self._db.execute("DELETE FROM pairs WHERE folder_id = ?", (folder_id,))
            self._db.execute("DELETE FROM intents WHERE folder_id = ?", (folder_id,))
            self._db.executemany(
                "INSERT INTO pairs(folder_id, uid, name, flags, size) VALUES (?, ?, ?, ?, ?)",
                [(folder_id, p.far, p.near, format_flags(p.flags), p.size) for p in pairs],
            )
            if folder_fields:
                cols = ", ".join(f"{k} = ?" for k in folder_fields)
                self._db.execute(
                    f"UPDATE folders SET {cols} WHERE id = ?",  # noqa: S608 - names from callers in this package
                    (*folder_fields.values(), folder_id),
                )

    # --- intents -------------------------------------------------------------

    def add_intents(
        self,
        folder_id: int,
        kind: str,
        items: Sequence[tuple[MsgKey | None, str | None, Flags, int | None]],
        uidnext: int | None = None,
    ) -> list[int]:
        """Record copies about to start; returns their ids (in order)."""
        now = time.time()
        ids = []
        with self.transaction():
            for uid, name, flags, size in items:
                cur = self._db.execute(
                    "INSERT INTO intents(folder_id, kind, uid, name, flags, size, uidnext, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (folder_id, kind, uid, name, format_flags(flags), size, uidnext, now),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
        return ids

    def intents(self, folder_id: int) -> list[Intent]:
        rows = self._db.execute(
            "SELECT id, kind, uid, name, flags, size, uidnext FROM intents WHERE folder_id = ?"
            " ORDER BY id",
            (folder_id,),
        ).fetchall()
        return [Intent(i, k, u, n, parse_flags(f), s, x) for i, k, u, n, f, s, x in rows]

    def forget_intents(self, ids: Iterable[int]) -> None:
        with self.transaction():
            self._db.executemany("DELETE FROM intents WHERE id = ?", [(i,) for i in ids])

    # --- when far messages were first stored here (delete_after_days) -------------

    def stored_times(self, folder_id: int) -> dict[MsgKey, float]:
        """Far key -> when syncd first found it stored here (seconds since the epoch)."""
        rows = self._db.execute("SELECT uid, at FROM far_stored WHERE folder_id = ?", (folder_id,))
        return dict(rows)

    def note_stored(self, folder_id: int, keys: Iterable[MsgKey], at: float) -> None:
        """Remember ``at`` for the ``keys`` not noted yet (the first time stays)."""
        with self.transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO far_stored(folder_id, uid, at) VALUES (?, ?, ?)",
                [(folder_id, k, at) for k in keys],
            )

    def forget_stored(self, folder_id: int, keys: Iterable[MsgKey]) -> None:
        with self.transaction():
            self._db.executemany(
                "DELETE FROM far_stored WHERE folder_id = ? AND uid IS ?",
                [(folder_id, k) for k in keys],
            )

    # --- collect_into (syncd.account.collect) --------------------------------------

    def collected(
        self, folder_id: int, target: str
    ) -> dict[MsgKey, tuple[int | None, int | None, int | None]]:
        """Far key -> (target UIDVALIDITY, UIDNEXT when the APPEND started, the
        target UID: None while the APPEND is not known to be done)."""
        rows = self._db.execute(
            "SELECT uid, uidvalidity, uidnext, target_uid FROM collected"
            " WHERE folder_id = ? AND target = ?",
            (folder_id, target),
        )
        return {uid: (v, n, t) for uid, v, n, t in rows}

    def collect_start(
        self,
        folder_id: int,
        target: str,
        keys: Iterable[MsgKey],
        uidvalidity: int | None,
        uidnext: int | None,
    ) -> None:
        """The intent: these APPENDs are about to be sent."""
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO collected(folder_id, uid, target, uidvalidity, uidnext,"
                " target_uid) VALUES (?, ?, ?, ?, ?, NULL)",
                [(folder_id, k, target, uidvalidity, uidnext) for k in keys],
            )

    def collect_done(self, folder_id: int, target: str, done: Iterable[tuple[MsgKey, int]]) -> None:
        with self.transaction():
            self._db.executemany(
                "UPDATE collected SET target_uid = ? WHERE folder_id = ? AND uid IS ?"
                " AND target = ?",
                [(uid, folder_id, k, target) for k, uid in done],
            )

    # --- refusals and local-only keywords ---------------------------------------

    def refusals(self, folder_id: int | None = None) -> dict[str, Refusal]:
        """Remembered refusals of a folder by unique name (of every folder when None,
        keyed ``"<folder>/<name>"``)."""
        if folder_id is None:
            rows = self._db.execute(
                "SELECT f.name || '/' || r.name, r.name, r.size, r.code, r.append_limit,"
                " r.reason, r.at FROM refusals r JOIN folders f ON f.id = r.folder_id"
            )
        else:
            rows = self._db.execute(
                "SELECT name, name, size, code, append_limit, reason, at FROM refusals"
                " WHERE folder_id = ?",
                (folder_id,),
            )
        return {key: Refusal(n, s, c, lim, r, at) for key, n, s, c, lim, r, at in rows}

    def forget_refusals(self, folder_id: int | None, names: Iterable[str] | None = None) -> None:
        """Drop remembered refusals: ``names`` of a folder, all of a folder (``names``
        None) or all of the account (``folder_id`` None)."""
        with self.transaction():
            if folder_id is None:
                self._db.execute("DELETE FROM refusals")
            elif names is None:
                self._db.execute("DELETE FROM refusals WHERE folder_id = ?", (folder_id,))
            else:
                self._db.executemany(
                    "DELETE FROM refusals WHERE folder_id = ? AND name = ?",
                    [(folder_id, n) for n in names],
                )

    def local_only_flags(self, folder_id: int) -> frozenset[str]:
        """Keywords already reported as not kept by the server for this folder."""
        rows = self._db.execute(
            "SELECT flag FROM local_only_flags WHERE folder_id = ?", (folder_id,)
        )
        return frozenset(r[0] for r in rows)

    def set_local_only_flags(self, folder_id: int, flags: Iterable[str]) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM local_only_flags WHERE folder_id = ?", (folder_id,))
            self._db.executemany(
                "INSERT INTO local_only_flags(folder_id, flag) VALUES (?, ?)",
                [(folder_id, f) for f in sorted(flags)],
            )
