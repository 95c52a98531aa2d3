"""Moves between folders: a message that left one folder and arrived in another of
the same account is moved on the other side too, instead of being deleted there
and copied again (no body crosses the wire).

Seen per folder pair, a move on one side is a deletion in folder A and a new
message in folder B.  Before the folders are synced, the account gathers those
of every changed folder and pairs them by content:

- side ``far`` (a mail reader moved the file here): a pair of A whose local file
  is gone while its server message is still there, and a local file of B no pair
  knows -- the server then moves its message (IMAP ``UID MOVE``);
- side ``near`` (moved on the server): a pair of A whose server message is gone
  while its local file is still there, and a server message of B no pair knows --
  the file is then renamed from A's Maildir into B's.

Identity is content, never a guess: the same unique name (a renamed file) first,
else the same size and the same identifying header lines (Message-ID, Date, From,
Subject and the whole Received chain: :func:`syncd.message.header_identity`; a
second delivery of one Message-ID differs there).  No body is read for it.  Only
a one-to-one match is a move: a message still in A is not a candidate (a copy
stays a copy), and two candidates for one key leave both to the ordinary sync
(copied, as before).  A message without a
Message-ID is never moved: after a crash it could not be found again for sure.

This module gathers and matches (read-only); :mod:`syncd.engine.relocate` carries
the moves out through the intent log (:mod:`syncd.engine.movelog`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from syncd.engine.reconcile import Policy
from syncd.engine.state import FolderState, StateDB
from syncd.errors import MessageError
from syncd.message import IDENTITY_FIELDS, header_identity, message_id
from syncd.model import MsgKey, MsgMeta, Pair, Side
from syncd.stores.base import Capability, Checkpoint, FarFolder, NearFolder, NearMessage

Log = logging.LoggerAdapter[logging.Logger]
S = TypeVar("S")
T = TypeVar("T")


@dataclass(eq=False)
class MoveFolder:
    """One folder pair as the move pass sees it.  ``planned`` takes the dry-run
    lines of moves into this folder; the rest is filled by :func:`gather`."""

    far: FarFolder
    near: NearFolder
    policy: Policy
    state: FolderState
    log: Log
    planned: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    local: dict[str, NearMessage] = field(default_factory=dict)
    listing: dict[MsgKey, MsgMeta] = field(default_factory=dict)
    uidnext: int = 0
    gathered: bool = False
    prints: dict[str, tuple[str | None, str | None, int]] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.state.id

    def gone_far(self) -> list[Pair]:
        """Pairs whose server message is gone and local file still here."""
        return [
            p
            for p in self.pairs
            if p.far is not None and p.far not in self.listing and p.near in self.local
        ]

    def gone_near(self) -> list[Pair]:
        """Pairs whose local file is gone and server message still there."""
        return [
            p
            for p in self.pairs
            if p.near is not None and p.near not in self.local and p.far in self.listing
        ]

    def new_far(self) -> list[MsgKey]:
        paired = {p.far for p in self.pairs}
        return [k for k in self.listing if k not in paired]

    def new_near(self) -> list[str]:
        paired = {p.near for p in self.pairs}
        return [n for n in self.local if n not in paired]

    def can_move(self, side: Side) -> bool:
        """Whether this folder may take part in a move made on ``side``."""
        p = self.policy
        if side is Side.FAR:
            # move_to works without MOVE (COPY + delete); EXPUNGE (UIDPLUS) gives the
            # new keys and makes the deletion exact.
            need = Capability.APPEND | Capability.EXPUNGE | Capability.UID_STABLE
            return p.push and p.expunge and need in self.far.capabilities
        return p.pull and p.far_deletes and Capability.MOVE in self.near.capabilities


@dataclass(frozen=True, slots=True)
class Move:
    """Move ``pair`` of folder ``src`` to folder ``dst``, made on ``side``: there it
    becomes ``key`` (side far: the target's local file, whose server copy is the
    moved message; side near: the target's server message, whose local copy is the
    moved file)."""

    side: Side | None  # None: moved on both sides already (``also``: the local file)
    src: int
    dst: int
    pair: Pair
    key: MsgKey
    message_id: str
    also: str | None = None

    def line(self, folders: Mapping[int, MoveFolder]) -> str:
        """The dry run's line (and the log's)."""
        a, b = folders[self.src].far.name, folders[self.dst].far.name
        if self.side is None:
            return (
                f"move far {self.pair.far} and near {self.pair.near} from {a} to {b}: "
                f"moved on both sides, paired as far {self.key}, near {self.also}"
            )
        if self.side is Side.FAR:
            return f"move far {self.pair.far} from {a} to {b} (moved here: no upload)"
        return f"move near {self.pair.near} from {a} to {b} (moved on the server: no download)"


@dataclass(frozen=True, slots=True)
class Hints:
    """What may have changed in a folder since its last clean sync, told cheaply:
    local files of pairs gone (``near_gone``) or files no pair knows come
    (``near_new``) -- by their names alone, one listing without a ``stat``, only
    when the near signature changed -- and server messages gone (``far_gone``) or
    come (``far_new``), by the far status.  A far side without a status may have
    done anything."""

    near_gone: bool
    near_new: bool
    far_gone: bool
    far_new: bool


def hints(folder: MoveFolder, db: StateDB) -> Hints:
    st = folder.state
    near_gone = near_new = False
    if folder.near.signature() != st.near_signature:
        near_gone, near_new = _near_delta(folder, db)
    status = folder.far.status() if Capability.MODSEQ in folder.far.capabilities else None
    if (
        status is None
        or st.highestmodseq is None
        or st.uidnext is None
        or st.far_count is None
        or status.uidvalidity != st.uidvalidity
        or status.uidnext is None
    ):
        return Hints(near_gone, near_new, True, True)
    arrived = status.uidnext - st.uidnext  # at most this many came
    return Hints(near_gone, near_new, status.messages < st.far_count + arrived, arrived > 0)


def _near_delta(folder: MoveFolder, db: StateDB) -> tuple[bool, bool]:
    """(a pair's local file is gone, a local file no pair names is here), told by
    names: flag changes and deletions alone make no move, and must not cost a scan
    of every file and every pair of the folder (a reader's day at 100k messages)."""
    names, _ = folder.near.index()
    gone, known = False, 0
    for _uid, name, _flags, _size in db.pair_rows(folder.state.id):
        if name is None:
            continue
        if name in names:
            known += 1
        else:
            gone = True
    return gone, len(names) > known


def worth_gathering(found: Mapping[int, Hints]) -> set[int]:
    """The folders that can take part in a move: one that lost messages and another
    that gained some, on either side (a move on both sides between two runs is a
    loss on both sides in one folder and a gain on both in another)."""
    out: set[int] = set()
    for lost, gained in (("near_gone", "near_new"), ("far_gone", "far_new")):
        gone = {i for i, h in found.items() if getattr(h, lost)}
        new = {i for i, h in found.items() if getattr(h, gained)}
        if gone and new and len(gone | new) >= 2:
            out |= {i for i in gone if new - {i}} | {i for i in new if gone - {i}}
    return out


def gather(folder: MoveFolder, db: StateDB, *, dry_run: bool) -> bool:
    """Open, list and scan the folder (read-only); False when it cannot take part
    (never synced, a new UIDVALIDITY, no local folder)."""
    st = folder.state
    if st.uidvalidity is None or not folder.near.exists():
        return False
    view = folder.far.open(Checkpoint(st.uidvalidity, st.highestmodseq), readonly=dry_run)
    if view.uidvalidity != st.uidvalidity:
        return False
    folder.pairs = db.pairs(st.id)
    known = {p.far: MsgMeta(p.flags, p.size) for p in folder.pairs if p.far is not None}
    folder.listing = folder.far.listing(st.highestmodseq, known, full=False)
    folder.local = folder.near.scan()[0]
    folder.uidnext = view.uidnext
    folder.gathered = True
    return True


def one_to_one(
    sources: Mapping[Hashable, Sequence[tuple[int, S]]],
    targets: Mapping[Hashable, Sequence[tuple[int, T]]],
) -> list[tuple[int, S, int, T]]:
    """(source folder, source, target folder, target) for each key with exactly one
    source and one target, in two different folders."""
    out = []
    for key, found in sources.items():
        wanted = targets.get(key, ())
        if len(found) == 1 and len(wanted) == 1 and found[0][0] != wanted[0][0]:
            out.append((found[0][0], found[0][1], wanted[0][0], wanted[0][1]))
    return out


def find_moves(folders: Sequence[MoveFolder], log: Log) -> list[Move]:
    """Every move between the gathered ``folders``, both sides.  Reads local files
    and server headers of the candidates only; downloads no body."""
    moves = _far_moves([f for f in folders if f.can_move(Side.FAR)], log)
    moves += _near_moves([f for f in folders if f.can_move(Side.NEAR)], log)
    return moves + _both_moves(folders, log)


def _both_moves(folders: Sequence[MoveFolder], log: Log) -> list[Move]:
    """Moved on both sides between two runs (a reader here, another client there):
    the pair is gone from A on both sides, and B has one new server message and one
    new local file with its size and the same Message-ID.  Left alone, B would copy
    each to the other side: the message twice on both.  They are paired instead."""
    gone = [
        (f.id, p, p.size)
        for f in folders
        for p in f.pairs
        if p.far is not None and p.near is not None and p.size
        and p.far not in f.listing and p.near not in f.local
    ]  # fmt: skip
    sources = {size: found[0] for size, found in _group(gone).items() if len(found) == 1}
    moves: list[Move] = []
    for folder in folders if sources else ():
        new_near = [(folder.id, n, _near_print(folder, n, log)) for n in folder.new_near()]
        near = _group(
            (i, n, (key[1], key[2])) for i, n, key in new_near if key[1] and key[2] in sources
        )
        new_far = folder.new_far()
        if not near or not new_far:
            continue
        folder.far.open(None, readonly=True)
        metas = folder.far.metas(new_far)
        keys = [k for k, m in metas.items() if m.size in sources]
        heads = _far_heads(folder, keys)
        far = _group((folder.id, k, (header_identity(heads[k]), metas[k].size)) for k in keys)
        for key, names in near.items():
            uids = far.get(key, [])
            size = cast("tuple[str, int]", key)[1]
            src, pair = sources[size]
            if len(names) == 1 == len(uids) and src != folder.id:
                mid = message_id(heads[uids[0][1]])
                assert mid is not None  # an identity needs one
                moves.append(Move(None, src, folder.id, pair, uids[0][1], mid, names[0][1]))
    return moves


def _far_moves(folders: Sequence[MoveFolder], log: Log) -> list[Move]:
    sources = [(f, p) for f in folders for p in f.gone_near()]
    targets = [(f, n) for f in folders for n in f.new_near()]
    if not sources or not targets or len({f.id for f, _ in sources + targets}) < 2:
        return []
    by = {f.id: f for f in folders}
    moves: list[Move] = []
    # The same unique name: the reader renamed the file into the other folder.
    named = one_to_one(
        _group((f.id, p, p.near) for f, p in sources), _group((f.id, n, n) for f, n in targets)
    )
    taken_pairs: set[tuple[int, Pair]] = set()
    taken_names: set[tuple[int, str]] = set()
    for src, pair, dst, name in named:
        mid = _near_print(by[dst], name, log)[0]
        if mid is not None:
            moves.append(Move(Side.FAR, src, dst, pair, name, mid))
        taken_pairs.add((src, pair))
        taken_names.add((dst, name))
    sources = [(f, p) for f, p in sources if (f.id, p) not in taken_pairs]
    targets = [(f, n) for f, n in targets if (f.id, n) not in taken_names]
    if not sources or not targets:
        return moves
    # Else the same identifying headers and size (a reader that wrote a new file).
    src_prints: list[tuple[int, Pair, Hashable]] = []
    for folder, group in _by_folder(sources).items():
        pairs = [p for _, p in group]
        folder.far.open(None, readonly=True)  # another folder may be selected now
        heads = _far_heads(folder, [p.far for p in pairs if p.far is not None])
        for p in pairs:
            ident = header_identity(heads[p.far]) if p.far is not None else None
            if ident is not None and p.size is not None:
                src_prints.append((folder.id, p, (ident, p.size)))
    dst_prints = []
    for folder, name in targets:
        _, ident, size = _near_print(folder, name, log)
        if ident is not None:
            dst_prints.append((folder.id, name, (ident, size)))
    for src, pair, dst, name in one_to_one(_group(src_prints), _group(dst_prints)):
        mid = _near_print(by[dst], name, log)[0]
        assert mid is not None
        moves.append(Move(Side.FAR, src, dst, pair, name, mid))
    return moves


def _near_moves(folders: Sequence[MoveFolder], log: Log) -> list[Move]:
    sources = [(f, p) for f in folders for p in f.gone_far()]
    targets = [(f, k) for f in folders for k in f.new_far()]
    if not sources or not targets or len({f.id for f, _ in sources + targets}) < 2:
        return []
    src_prints: list[tuple[int, Pair, Hashable]] = []
    sizes: set[int] = set()
    for folder, pair in sources:
        assert pair.near is not None
        _, ident, _ = _near_print(folder, pair.near, log)
        if ident is not None and pair.size is not None:
            src_prints.append((folder.id, pair, (ident, pair.size)))
            sizes.add(pair.size)
    dst_prints: list[tuple[int, MsgKey, Hashable]] = []
    for folder, group in _by_folder(targets).items():
        folder.far.open(None, readonly=True)
        metas = folder.far.metas([k for _, k in group])
        keys = [k for k, m in metas.items() if m.size in sizes]
        heads = _far_heads(folder, keys)
        for k in keys:
            ident = header_identity(heads[k])
            if ident is not None:
                dst_prints.append((folder.id, k, (ident, metas[k].size)))
    pick = one_to_one(_group(src_prints), _group(dst_prints))
    by = {f.id: f for f in folders}
    moves = []
    for src, pair, dst, key in pick:
        assert pair.near is not None
        if by[dst].near.locate(pair.near) is None:  # its unique name is free there
            mid = _near_print(by[src], pair.near, log)[0]
            assert mid is not None
            moves.append(Move(Side.NEAR, src, dst, pair, key, mid))
    return moves


def _far_heads(folder: MoveFolder, keys: Sequence[MsgKey]) -> dict[MsgKey, bytes]:
    """The identifying header lines of server messages (empty for one that is gone)."""
    got = folder.far.headers(keys, IDENTITY_FIELDS) if keys else {}
    return {k: got.get(k, b"") for k in keys}


def _near_print(folder: MoveFolder, name: str, log: Log) -> tuple[str | None, str | None, int]:
    """(Message-ID, header identity, wire size) of a local message; (None, None, 0)
    when unreadable."""
    known = folder.prints.get(name)
    if known is not None:
        return known
    try:
        head, size = folder.near.head_and_size(folder.local[name])
    except (MessageError, KeyError) as exc:
        log.debug("not compared for a move: %s", exc)
        return None, None, 0
    folder.prints[name] = found = (message_id(head), header_identity(head), size)
    return found


def _group(items: Iterable[tuple[int, T, Hashable]]) -> dict[Hashable, list[tuple[int, T]]]:
    out: dict[Hashable, list[tuple[int, T]]] = defaultdict(list)
    for folder, item, key in items:
        out[key].append((folder, item))
    return out


def _by_folder(
    items: Sequence[tuple[MoveFolder, T]],
) -> dict[MoveFolder, list[tuple[MoveFolder, T]]]:
    out: dict[MoveFolder, list[tuple[MoveFolder, T]]] = {}
    for folder, item in items:
        out.setdefault(folder, []).append((folder, item))
    return out
