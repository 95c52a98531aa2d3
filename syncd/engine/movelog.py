"""The intent log of moves between folders (table ``moves``, added to the schema
with ``CREATE TABLE IF NOT EXISTS``, so an older database gains it when opened).

A move is recorded before it starts and cleared in the same transaction that
moves its pair from the source folder's state to the target's, so a crash
between the two leaves a row that the next run settles first
(:func:`syncd.engine.relocate.resolve_moves`): the message then exists once on
each side, paired in exactly one folder.

``side`` is where the move is made: ``far`` (the reader moved the file here; the
server moves its message: ``uid`` in the source -> a new UID in the target, found
by ``message_id`` + ``size`` above ``uidnext`` when the server did not say) or
``near`` (the server moved it; the file ``name`` is renamed into the target, to be
paired with ``dst_uid``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from syncd.engine.pairsql import where_pair
from syncd.engine.state import StateDB
from syncd.model import Flags, MsgKey, Pair, format_flags, parse_flags


@dataclass(frozen=True, slots=True)
class MoveIntent:
    """One move between folders, as recorded before it started."""

    side: str  # "far" or "near": where the move is made
    src_folder: int
    dst_folder: int
    pair: Pair  # the source folder's pair
    dst_uid: MsgKey | None  # side "near": the target's far key
    dst_name: str | None  # side "far": the target's local file
    message_id: str | None
    uidnext: int | None  # side "far": the target's UIDNEXT before the move
    id: int = 0

    @property
    def flags(self) -> Flags:
        return self.pair.flags


def record(db: StateDB, moves: Sequence[MoveIntent]) -> list[MoveIntent]:
    """Record ``moves`` about to start (one transaction); returns them with their ids."""
    out = []
    now = time.time()
    with db.transaction():
        for m in moves:
            cur = db.connection.execute(
                "INSERT INTO moves(side, src_folder, dst_folder, uid, name, dst_uid, dst_name,"
                " flags, size, message_id, uidnext, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    m.side,
                    m.src_folder,
                    m.dst_folder,
                    m.pair.far,
                    m.pair.near,
                    m.dst_uid,
                    m.dst_name,
                    format_flags(m.pair.flags),
                    m.pair.size,
                    m.message_id,
                    m.uidnext,
                    now,
                ),
            )
            assert cur.lastrowid is not None
            out.append(_with_id(m, cur.lastrowid))
    return out


def pending(db: StateDB) -> list[MoveIntent]:
    rows = db.connection.execute(
        "SELECT id, side, src_folder, dst_folder, uid, name, dst_uid, dst_name, flags, size,"
        " message_id, uidnext FROM moves ORDER BY id"
    ).fetchall()
    return [
        MoveIntent(side, src, dst, Pair(uid, name, parse_flags(flags), size), du, dn, mid, nxt, i)
        for i, side, src, dst, uid, name, du, dn, flags, size, mid, nxt in rows
    ]


def finish(db: StateDB, done: Iterable[tuple[MoveIntent, Pair | None]]) -> None:
    """One transaction: each move with its target pair (None: it did not happen, the
    folders' own syncs take over) -- the source pair dropped, the target's added,
    the intent cleared."""
    conn = db.connection
    with db.transaction():
        for move, new in done:
            if new is not None:
                p = move.pair
                where, params = where_pair(move.src_folder, p)
                conn.execute(f"DELETE FROM pairs WHERE {where}", params)  # noqa: S608 - fixed forms
                conn.execute(  # OR IGNORE: a target taken meanwhile is the sync's to settle
                    "INSERT OR IGNORE INTO pairs(folder_id, uid, name, flags, size)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (move.dst_folder, new.far, new.near, format_flags(new.flags), new.size),
                )
            conn.execute("DELETE FROM moves WHERE id = ?", (move.id,))


def _with_id(m: MoveIntent, ident: int) -> MoveIntent:
    return MoveIntent(
        m.side,
        m.src_folder,
        m.dst_folder,
        m.pair,
        m.dst_uid,
        m.dst_name,
        m.message_id,
        m.uidnext,
        ident,
    )


def forget(db: StateDB, folder_ids: Iterable[int]) -> None:
    """Drop the moves into or out of ``folder_ids`` (folders no longer synced)."""
    ids = [(i, i) for i in folder_ids]
    with db.transaction():
        db.connection.executemany("DELETE FROM moves WHERE src_folder = ? OR dst_folder = ?", ids)
