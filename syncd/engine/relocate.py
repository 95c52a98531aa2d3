"""Carrying out the moves between folders that :mod:`syncd.engine.moves` found,
crash-safe through the intent log :mod:`syncd.engine.movelog`.

Per batch (one source folder, one target folder, one side):

1. the intents are recorded (what moves, and for a server move the target's
   UIDNEXT before it);
2. the move is made: one ``UID MOVE`` (or COPY + EXPUNGE) for the batch, or one
   rename per file;
3. one transaction drops the pairs from the source folder's state, adds them to
   the target's with the same baseline flags (so the target's three-way merge
   keeps a flag changed meanwhile on either side) and clears the intents.

A kill -9 between any two steps leaves intents that :func:`resolve_moves` settles
at the start of the next run, before any folder is synced: a server move is
looked for in the target by Message-ID and size above the recorded UIDNEXT (and
the source message, still there after an interrupted COPY + EXPUNGE, is expunged),
a renamed file by its unique name.  A move that did not happen is forgotten: the
folders' own syncs then delete and copy as they always did.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from syncd import crashpoints
from syncd.engine import movelog
from syncd.engine.movelog import MoveIntent
from syncd.engine.moves import Move, MoveFolder
from syncd.engine.state import StateDB
from syncd.errors import MessageError
from syncd.message import message_id
from syncd.model import MsgKey, Pair, Side
from syncd.stores.base import FarFolder

Log = logging.LoggerAdapter[logging.Logger]


def carry_out(
    db: StateDB, moves: Sequence[Move], folders: Mapping[int, MoveFolder], log: Log
) -> int:
    """Make ``moves``; returns how many were made."""
    batches: dict[tuple[Side | None, int, int], list[Move]] = defaultdict(list)
    for move in moves:
        batches[(move.side, move.src, move.dst)].append(move)
    made = 0
    for (side, src, dst), batch in batches.items():
        a, b = folders[src], folders[dst]
        if side is Side.FAR:
            made += _on_far(db, batch, a, b)
        elif side is Side.NEAR:
            made += _on_near(db, batch, a, b)
        else:  # made already: the state only, in one transaction (no intent needed)
            movelog.finish(db, [(_both(m, a, b), Pair(m.key, m.also, m.pair.flags,
                                                       m.pair.size)) for m in batch])  # fmt: skip
            made += len(batch)
        for move in batch:
            log.debug("%s", move.line(folders))
    return made


def _both(m: Move, a: MoveFolder, b: MoveFolder) -> MoveIntent:
    return MoveIntent("both", a.id, b.id, m.pair, m.key, m.also, m.message_id, None)


def _on_far(db: StateDB, batch: Sequence[Move], a: MoveFolder, b: MoveFolder) -> int:
    intents = movelog.record(
        db,
        [
            MoveIntent("far", a.id, b.id, m.pair, None, str(m.key), m.message_id, b.uidnext)
            for m in batch
        ],
    )
    crashpoints.step("move-intent")
    keys = [m.pair.far for m in batch if m.pair.far is not None]
    a.far.open(None, readonly=False)
    mapping = a.far.move_to(keys, b.far.name)
    crashpoints.step("move-far")
    missing = [i for i in intents if i.pair.far not in mapping]
    if missing:
        b.far.open(None, readonly=False)
        found = find_moved(b.far, missing, claimed=_claimed(b, mapping.values()))
        mapping.update({i.pair.far: k for i, k in found.items() if i.pair.far is not None})
    done = [
        (i, _far_pair(i, mapping.get(i.pair.far) if i.pair.far is not None else None))
        for i in intents
    ]
    movelog.finish(db, done)
    crashpoints.step("move-state")
    made = sum(1 for _, p in done if p is not None)
    if made:
        b.log.info(
            "moved %d messages here from %s on the server: nothing uploaded", made, a.far.name
        )
    return made


def _on_near(db: StateDB, batch: Sequence[Move], a: MoveFolder, b: MoveFolder) -> int:
    intents = movelog.record(
        db,
        [MoveIntent("near", a.id, b.id, m.pair, m.key, None, m.message_id, None) for m in batch],
    )
    crashpoints.step("move-intent")
    done: list[tuple[MoveIntent, Pair | None]] = []
    for intent in intents:
        name = intent.pair.near
        assert name is not None
        try:
            a.near.move_into(a.local[name], b.near)
        except MessageError as exc:
            a.log.warning("not moved to %s: %s (synced as usual)", b.far.name, exc)
            done.append((intent, None))
            continue
        crashpoints.step("move-near")
        done.append((intent, Pair(intent.dst_uid, name, intent.flags, intent.pair.size)))
    b.near.flush()  # the renames durable before the state says so
    a.near.flush()
    movelog.finish(db, done)
    crashpoints.step("move-state")
    made = sum(1 for _, p in done if p is not None)
    if made:
        b.log.info("moved %d messages here from %s locally: nothing downloaded", made, a.far.name)
    return made


def resolve_moves(db: StateDB, folders: Mapping[int, MoveFolder], log: Log) -> set[int]:
    """Settle the moves an interrupted run left.  Returns the ids of the folders
    with a move that could not be settled now (its folders are not all at hand):
    they must not be synced this time."""
    left: set[int] = set()
    done: list[tuple[MoveIntent, Pair | None]] = []
    far_side: dict[tuple[int, int], list[MoveIntent]] = defaultdict(list)
    for intent in movelog.pending(db):
        a, b = folders.get(intent.src_folder), folders.get(intent.dst_folder)
        if a is None or b is None:
            left |= {intent.src_folder, intent.dst_folder}
        elif intent.side == "near":
            name = intent.pair.near
            assert name is not None
            here = b.near.locate(name) is not None
            done.append(
                (
                    intent,
                    Pair(intent.dst_uid, name, intent.flags, intent.pair.size) if here else None,
                )
            )
        else:
            far_side[(a.id, b.id)].append(intent)
    for (src, dst), intents in far_side.items():
        a, b = folders[src], folders[dst]
        b.far.open(None, readonly=False)
        found = find_moved(b.far, intents, claimed=_claimed(b, (), db))
        stale = [i.pair.far for i in found if i.pair.far is not None]
        if stale:
            # An interrupted COPY + EXPUNGE leaves the original: finish the move.
            a.far.open(None, readonly=False)
            still = list(a.far.metas(stale))
            if still:
                a.far.mark_deleted(still)
                a.far.expunge(still)
        done += [(i, _far_pair(i, found.get(i))) for i in intents]
    if done:
        movelog.finish(db, done)
        made = sum(1 for _, p in done if p is not None)
        log.info(
            "settled %d moves between folders of an interrupted run (%d made)", len(done), made
        )
    return left


def find_moved(
    far: FarFolder, intents: Iterable[MoveIntent], *, claimed: set[MsgKey]
) -> dict[MoveIntent, MsgKey]:
    """Find the moved messages of ``intents`` in the open target folder ``far``:
    above the UIDNEXT each intent recorded, unclaimed, the same Message-ID and
    size, one candidate per intent and one intent per candidate."""
    wanted = [i for i in intents if i.message_id is not None and i.pair.size is not None]
    if not wanted:
        return {}
    low = min(i.uidnext or 1 for i in wanted)
    keys = [k for k in far.keys_from(low) if k not in claimed]
    metas = far.metas(keys) if keys else {}
    sizes = {i.pair.size for i in wanted}
    cands = [k for k, m in metas.items() if m.size in sizes]
    heads = far.headers(cands, ["Message-ID"]) if cands else {}
    by_print: dict[tuple[str | None, int | None], list[MsgKey]] = defaultdict(list)
    for k in cands:
        by_print[(message_id(heads.get(k, b"")), metas[k].size)].append(k)
    by_intent: dict[tuple[str | None, int | None], list[MoveIntent]] = defaultdict(list)
    for i in wanted:
        by_intent[(i.message_id, i.pair.size)].append(i)
    out: dict[MoveIntent, MsgKey] = {}
    for key, group in by_intent.items():
        found = [k for k in by_print.get(key, []) if _at_or_above(k, group[0].uidnext)]
        if len(group) == 1 and len(found) == 1:
            out[group[0]] = found[0]
    return out


def _far_pair(intent: MoveIntent, key: MsgKey | None) -> Pair | None:
    if key is None:
        return None
    return Pair(key, intent.dst_name, intent.flags, intent.pair.size)


def _claimed(folder: MoveFolder, more: Iterable[MsgKey], db: StateDB | None = None) -> set[MsgKey]:
    pairs = db.pairs(folder.id) if db is not None else folder.pairs
    return {p.far for p in pairs if p.far is not None} | set(more)


def _at_or_above(key: MsgKey, low: int | None) -> bool:
    return not isinstance(key, int) or low is None or key >= low
