"""Seeding a folder's first sync from another sync tool's record (mbsync, offlineimap).

A user switching to syncd has a Maildir that tool filled, and its state: which
server UID each local file is, and the flags both sides agreed on at its last run.
When the tool's UIDVALIDITY is the server's, those pairs are exact: they become
syncd's pairs, with the tool's flags as the baseline, so what changed on either
side since the tool's last run propagates as a change (a local deletion deletes on
the server, under the mass-delete brake) -- nothing is copied again.  What the
record does not cover (or all of it, when the UIDVALIDITY differs) is paired by
content, ignoring the headers those tools add.

The account layer reads the tool's files and hands each folder a :class:`Seed`;
the engine only sees pairs.  :func:`seed_pairs` is called on the first sync of a
folder without syncd state; the caller writes its pairs in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.engine.recovery import pair_by_content
from syncd.message import ADDED_HEADERS
from syncd.model import Flags, MsgKey, Pair
from syncd.stores.base import FarFolder, FarView, NearFolder, NearMessage

#: Per folder and side, how many unpaired messages are named with their reason.
EXPLAINED = 20


@dataclass(frozen=True)
class Seed:
    """Another tool's record of one folder.

    ``source`` names the tool in the log (``"mbsync"``); ``uidvalidity`` is the
    server UIDVALIDITY its pairs belong to (None: it recorded none, or there is no
    record of this folder); ``pairs`` are (far key, near unique name, last-synced
    flags); ``gone`` the far keys (with their last-synced flags) whose local file
    was deleted since the tool's last run; ``notes`` what the reader could not use.
    """

    source: str
    uidvalidity: int | None
    pairs: tuple[Pair, ...] = ()
    gone: tuple[tuple[MsgKey, Flags], ...] = ()
    notes: tuple[str, ...] = ()


def gone_name(source: str, key: MsgKey) -> str:
    """The near name of a pair whose local file is gone: hidden (a leading dot), so
    no Maildir file can ever have it and reconcile sees a local deletion."""
    return f".{source}-deleted-{key}"


def seed_pairs(
    *,
    seed: Seed,
    view: FarView,
    far: FarFolder,
    near: NearFolder,
    local: Mapping[str, NearMessage],
    log: logging.LoggerAdapter[logging.Logger],
) -> tuple[list[Pair], list[str]]:
    """The pairs a folder's first sync starts from, and one line per thing done or
    not done (for ``syncd adopt`` and the log).  Reads the far listing and, for what
    the record does not cover, the Message-IDs (and sizes) of both sides; a far body
    is downloaded only when two messages can be told apart by content alone."""
    lines = [*seed.notes]
    infos = far.list_all(sizes=True)
    pairs: list[Pair] = []
    exact = seed.uidvalidity is not None and seed.uidvalidity == view.uidvalidity
    if exact:
        seen_far: set[MsgKey] = set()
        seen_near: set[str] = set()
        for p in seed.pairs:
            if p.far in seen_far or p.near in seen_near or p.far is None or p.near is None:
                continue
            seen_far.add(p.far)
            seen_near.add(p.near)
            size = infos[p.far].size if p.far in infos else None
            pairs.append(Pair(p.far, p.near, p.flags, size))
        gone = [
            Pair(key, gone_name(seed.source, key), flags, infos[key].size if key in infos else None)
            for key, flags in seed.gone
            if key not in seen_far
        ]
        seen_far.update(p.far for p in gone if p.far is not None)
        pairs += gone
        lines.append(
            f"{len(pairs) - len(gone)} paired from {seed.source}'s state (UIDVALIDITY "
            f"{seed.uidvalidity}, the server's), its last-synced flags as the baseline"
        )
        vanished = sum(1 for p in pairs if p.far not in infos)
        if gone:
            lines.append(
                f"{len(gone)} deleted here since {seed.source}'s last run: to be deleted on "
                "the server (unless changed there since)"
            )
        if vanished:
            lines.append(
                f"{vanished} deleted on the server since {seed.source}'s last run: to be "
                "deleted here (unless changed here since)"
            )
        missing = sum(1 for p in pairs[: len(pairs) - len(gone)] if p.near not in local)
        if missing:
            lines.append(f"{missing} paired files disappeared since they were read")
    else:
        seen_far, seen_near = set(), set()
        if seed.uidvalidity is None:
            lines.append(f"no usable {seed.source} state for this folder: pairing by content")
        else:
            lines.append(
                f"{seed.source}'s state is for UIDVALIDITY {seed.uidvalidity}, the server's is "
                f"{view.uidvalidity} (another server, or the folder was re-created): its "
                "pairs are not used; pairing by content"
            )
    near_left = [n for n in local if n not in seen_near]
    far_left = {k: m for k, m in infos.items() if k not in seen_far}
    content: list[Pair] = []
    if near_left and far_left:
        content, match = pair_by_content(
            far=far, near=near, local=local, names=near_left, infos=far_left, log=log
        )
    else:
        match = None
    if content or not exact:
        lines.append(
            f"{len(content)} paired by content (Message-ID and size, else the contents; "
            f"{', '.join(ADDED_HEADERS)} ignored)"
        )
    pairs += content
    paired_near = {p.near for p in content}
    paired_far = {p.far for p in content}
    lines += _unpaired(
        near=[n for n in sorted(near_left) if n not in paired_near],
        far=[k for k in sorted(far_left, key=str) if k not in paired_far],
        far_ids=match.far_ids if match else {},
        near_ids=match.near_ids if match else {},
    )
    log.warning(
        "first sync of this folder: adopted %s's Maildir (%s)",
        seed.source,
        "; ".join(lines[len(seed.notes) :][:3]),
    )
    return pairs, lines


def _unpaired(
    *,
    near: list[str],
    far: list[MsgKey],
    far_ids: Mapping[MsgKey, str | None],
    near_ids: Mapping[str, str | None],
) -> list[str]:
    """Why each message left unpaired is not paired (first :data:`EXPLAINED` per side)."""
    far_mids = {m for m in far_ids.values() if m is not None}
    near_mids = {m for m in near_ids.values() if m is not None}
    return _side(near, near_ids, far_mids, here="local", there="server",
                 verb="uploaded", label="local") + _side(
        far, far_ids, near_mids, here="server", there="local", verb="downloaded",
        label="server UID",
    )  # fmt: skip


def _side(
    keys: Sequence[MsgKey],
    ids: Mapping[Any, str | None],
    other_mids: set[str],
    *,
    here: str,
    there: str,
    verb: str,
    label: str,
) -> list[str]:
    """:func:`_unpaired` for one side: ``here`` names it, ``there`` the other side."""
    if not keys:
        return []
    lines = [f"{len(keys)} {here} messages not paired: to be {verb}"]
    for key in keys[:EXPLAINED]:
        mid = ids.get(key)
        if mid is None and key not in ids:
            why = f"no {there} message left to compare with"
        elif mid is None:
            why = f"no Message-ID, and no {there} message has the same contents"
        elif mid in other_mids:
            why = f"a {there} message has its Message-ID {mid} but other contents"
        else:
            why = f"no {there} message has its Message-ID {mid}"
        lines.append(f"  not paired: {label} {key}: {why}")
    if len(keys) > EXPLAINED:
        lines.append(f"  ... and {len(keys) - EXPLAINED} more {here} messages")
    return lines
