"""Statements on one pair seek the state's indexes instead of scanning every pair
(:mod:`syncd.engine.pairsql`): told by SQLite's own query plan, and the same rows
changed as by the old ``uid IS ? AND name IS ?`` form."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.engine.pairsql import per_pair, where_pair
from syncd.engine.state import StateDB
from syncd.model import Pair

PAIRS = [
    Pair(1, "a", frozenset(), 10),
    Pair(None, "b", frozenset(), 20),
    Pair(3, None, frozenset(), 30),
]


@pytest.mark.parametrize("pair", PAIRS)
def test_one_pair_is_an_index_seek(tmp_path: Path, pair: Pair) -> None:
    db = StateDB(tmp_path / "s.db")
    where, params = where_pair(1, pair)
    plan = db.connection.execute(
        f"EXPLAIN QUERY PLAN UPDATE pairs SET flags = '' WHERE {where}", params
    ).fetchall()
    assert "SCAN" not in str(plan) and "USING INDEX" in str(plan), plan


def test_the_rows_changed_are_those_the_pair_names(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "s.db")
    fid = db.ensure_folder("INBOX").id
    conn = db.connection
    rows = [*PAIRS, Pair(4, "d", frozenset(), 40), Pair(None, "e", frozenset(), 50)]
    with db.transaction():
        conn.executemany(
            "INSERT INTO pairs(folder_id, uid, name, flags, size) VALUES (?, ?, ?, '', ?)",
            [(fid, p.far, p.near, p.size) for p in rows],
        )
        per_pair(conn, "UPDATE pairs SET flags = ?", fid, [(("\\Seen",), p) for p in PAIRS])
        per_pair(conn, "DELETE FROM pairs", fid, [((), rows[3])])
    got = sorted(
        (r[0] if r[0] is not None else -1, r[1] or "", r[2])
        for r in conn.execute("SELECT uid, name, flags FROM pairs WHERE folder_id = ?", (fid,))
    )
    assert got == [(-1, "b", "\\Seen"), (-1, "e", ""), (1, "a", "\\Seen"), (3, "", "\\Seen")]
