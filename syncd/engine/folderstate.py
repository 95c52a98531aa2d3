"""The state of whole folders beyond their sync: renames, forgetting, the last
agreed subscriptions and the rights the server granted (RFC 4314 MYRIGHTS).

Mixed into :class:`syncd.engine.state.StateDB`, whose connection and transactions
it uses; kept apart so the pair and intent store stays one module of one concern.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


class FolderExtras:
    """Folder-level state (see the module docstring)."""

    _db: sqlite3.Connection

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[None]: ...

    def rename_folder(self, old: str, new: str) -> None:
        """The folder ``old`` is now called ``new``: its pairs, baseline and intents
        follow it, in one transaction.  A row already under ``new`` that was never
        synced (no UIDVALIDITY) is dropped first; one that was raises ValueError."""
        with self.transaction():
            row = self._db.execute(
                "SELECT id, uidvalidity FROM folders WHERE name = ?", (new,)
            ).fetchone()
            if row is not None:
                if row[1] is not None:
                    raise ValueError(f"folder {new!r} is already in the state")
                self._db.execute("DELETE FROM folders WHERE id = ?", (row[0],))
            self._db.execute("UPDATE folders SET name = ? WHERE name = ?", (new, old))
            self._db.execute("DELETE FROM folder_rights WHERE name IN (?, ?)", (old, new))

    def forget_folder(self, name: str) -> None:
        """Drop the folder ``name`` and all it holds (pairs, intents...) from the state."""
        with self.transaction():
            self._db.execute("DELETE FROM folders WHERE name = ?", (name,))
            self._db.execute("DELETE FROM folder_rights WHERE name = ?", (name,))

    # --- subscriptions: the last set both sides agreed on ---------------------------

    def subscriptions(self) -> set[tuple[str, ...]]:
        """The folders (name components) subscribed on both sides at the last sync."""
        rows = self._db.execute("SELECT name FROM subscriptions")
        return {tuple(r[0].split("\t")) for r in rows}

    def set_subscriptions(self, agreed: Iterable[tuple[str, ...]]) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM subscriptions")
            self._db.executemany(
                "INSERT INTO subscriptions(name) VALUES (?)", [("\t".join(p),) for p in agreed]
            )

    # --- MYRIGHTS, asked once per folder and kept ------------------------------------

    def rights(self, name: str) -> tuple[str, float] | None:
        """The rights last granted on far folder ``name`` and when they were asked."""
        row = self._db.execute(
            "SELECT rights, at FROM folder_rights WHERE name = ?", (name,)
        ).fetchone()
        return (str(row[0]), float(row[1])) if row else None

    def set_rights(self, name: str, rights: str, at: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO folder_rights(name, rights, at) VALUES (?, ?, ?)",
                (name, rights, at),
            )
