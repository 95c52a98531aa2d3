"""How a statement names one pair of the state's ``pairs`` table.

A pair is found by its keys, either of which may be NULL.  ``uid IS ?`` and
``name IS ?`` compare NULLs too, but SQLite cannot use the partial unique indexes
(``pairs_uid``, ``pairs_name``: ``WHERE ... IS NOT NULL``) for them, since the
parameter might be NULL: each such UPDATE or DELETE scanned every pair of every
folder.  A 1 % flag change on a 100 000-message account was a hundred million
row visits (5.8 s).  Matching by ``=`` on the key the pair has is an index seek.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable

from syncd.model import Pair

_BY_UID = "folder_id = ? AND uid = ? AND name IS ?"
_BY_NAME = "folder_id = ? AND name = ? AND uid IS NULL"
_NEITHER = "folder_id = ? AND uid IS NULL AND name IS NULL"


def where_pair(folder_id: int, pair: Pair) -> tuple[str, tuple[object, ...]]:
    """The WHERE clause (without the keyword) and its parameters for ``pair``."""
    if pair.far is not None:
        return _BY_UID, (folder_id, pair.far, pair.near)
    if pair.near is not None:
        return _BY_NAME, (folder_id, pair.near)
    return _NEITHER, (folder_id,)


def per_pair(
    db: sqlite3.Connection,
    statement: str,
    folder_id: int,
    rows: Iterable[tuple[tuple[object, ...], Pair]],
) -> None:
    """Run ``statement WHERE <pair>`` once for each row: ``(leading parameters,
    pair)``; grouped into one ``executemany`` per form of the clause."""
    groups: dict[str, list[tuple[object, ...]]] = defaultdict(list)
    for leading, pair in rows:
        where, params = where_pair(folder_id, pair)
        groups[where].append((*leading, *params))
    for where, batch in groups.items():
        db.executemany(f"{statement} WHERE {where}", batch)
