"""Finding a message again when its UID is not known for sure.

Three situations, one mechanism (match by size, then Message-ID, then a hash
of the contents):

- an upload whose APPENDUID never arrived (no UIDPLUS, or a crash between
  APPEND and the state commit): look only above the UIDNEXT recorded in the
  intent *before* the APPEND;
- a download interrupted after the file was renamed into place: the intent
  names the file, so it is adopted if it exists;
- a UIDVALIDITY change: every pair is re-made by Message-ID + size (+ hash),
  and the folder is refused when too few can be (a mailbox replaced by an
  empty or different one must not empty the other side).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from syncd.errors import FolderError, MessageError
from syncd.message import (
    ADDED_HEADERS,
    added_headers_size,
    adopted_body_hash,
    adopted_wire_size,
    body_hash,
    message_id,
    wire_size,
)
from syncd.model import MsgKey, MsgMeta, Pair, intern_flags
from syncd.stores.base import FarFolder, NearFolder, NearMessage

if TYPE_CHECKING:
    from syncd.engine.state import Intent, StateDB

REPAIR_MIN_SHARE = 0.8


def find_on_far(
    far: FarFolder, known: set[MsgKey], uidnext: int, wanted: Sequence[tuple[str, bytes]]
) -> dict[str, MsgKey]:
    """Find freshly appended copies of ``wanted`` (name, data) among UIDs >= uidnext
    that no pair claims.  Each UID is matched at most once; a match needs equal
    contents (hash over LF-normalised bytes), so a concurrent delivery of a
    different message is never adopted."""
    if not wanted:
        return {}
    found = [u for u in far.keys_from(uidnext) if u not in known]
    if not found:
        return {}
    infos = far.metas(found)
    by_size: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, data in wanted:
        by_size[wire_size(data)].append((name, body_hash(data)))
    candidates = [u for u, i in infos.items() if i.size in by_size]
    out: dict[str, MsgKey] = {}
    for body in far.fetch(sorted(candidates, key=_order)):
        size = infos[body.key].size
        assert size is not None
        digest = body_hash(body.data)
        for entry in by_size[size]:
            if entry[1] == digest and entry[0] not in out:
                out[entry[0]] = body.key
                by_size[size].remove(entry)
                break
    return out


def resolve_intents(
    *,
    db: StateDB,
    folder_id: int,
    far: FarFolder,
    near: NearFolder,
    pairs: list[Pair],
    local: Mapping[str, NearMessage],
    log: logging.LoggerAdapter[logging.Logger],
) -> list[Pair]:
    """Settle the copies a previous run started but did not record.

    A copy may *replace* a pair (reconcile's ``Copy.replaces``: a change on one
    side won over a deletion on the other, so the survivor is copied again under
    the same UID or unique name).  Its intent then names a UID or a unique name
    that the old pair still holds; the copy is adopted all the same, in place of
    that pair -- left alone, the copy would look new and be copied back, so the
    message would end up twice on both sides."""
    intents = db.intents(folder_id)
    if not intents:
        return pairs
    by_far = {p.far: p for p in pairs if p.far is not None}
    by_near = {p.near: p for p in pairs if p.near is not None}
    adopted: list[Pair] = []
    replaced: list[Pair] = []
    uploads: list[tuple[Intent, Pair | None]] = []
    for intent in intents:
        if intent.kind == "download":
            if intent.uid is None or intent.name is None or intent.name not in local:
                continue
            if intent.name in by_near:
                continue
            old = by_far.get(intent.uid)
            if old is not None and old.near is not None and old.near in local:
                continue  # the UID is paired with a file that is still here
            adopted.append(Pair(intent.uid, intent.name, intent.flags, intent.size))
            if old is not None:
                replaced.append(old)  # its local file was deleted: the new one takes over
            by_far[intent.uid] = by_near[intent.name] = adopted[-1]
        elif intent.name is not None and intent.name in local:
            uploads.append((intent, by_near.get(intent.name)))
    # An upload that replaces a pair was made because the pair's far message was
    # expunged; make sure it is gone (a key is never given out again) before
    # replacing it.
    stale = sorted({old.far for _, old in uploads if old is not None and old.far is not None})
    alive = set(far.metas(stale)) if stale else set()
    uploads = [(i, old) for i, old in uploads if old is None or old.far not in alive]
    if uploads:
        wanted = []
        for intent, _ in uploads:
            assert intent.name is not None
            try:
                wanted.append((intent.name, near.read(local[intent.name])))
            except MessageError as exc:
                log.warning("cannot check an interrupted upload: %s", exc)
        low = min(i.uidnext or 1 for i, _ in uploads)
        found = find_on_far(far, set(by_far), low, wanted)
        for intent, old in uploads:
            uid = found.get(intent.name or "")
            if uid is not None:
                adopted.append(Pair(uid, intent.name, intent.flags, intent.size))
                if old is not None:
                    replaced.append(old)
    db.apply(folder_id, add=adopted, remove=replaced, done_intents=[i.id for i in intents])
    if adopted:
        log.info("recovered %d messages copied by an interrupted run", len(adopted))
    gone = {(p.far, p.near) for p in replaced}
    return [p for p in pairs if (p.far, p.near) not in gone] + adopted


@dataclass
class ContentMatch:
    """What pairing by content found: ``found`` local name -> far key, and the
    Message-ID of each side's candidates (None: it has none), to say why the rest
    did not pair."""

    found: dict[str, MsgKey] = field(default_factory=dict)
    far_ids: dict[MsgKey, str | None] = field(default_factory=dict)
    near_ids: dict[str, str | None] = field(default_factory=dict)


def _match_on_far(
    far: FarFolder,
    items: Sequence[tuple[str, bytes, int]],
    infos: Mapping[MsgKey, MsgMeta],
) -> ContentMatch:
    """Find each local message (name, contents, wire size) among the far messages
    ``infos``: by Message-ID + size when that is unique, else by a hash of the
    contents of same-size (or same-Message-ID) messages.  Each far UID is used at
    most once.

    The headers other sync tools add (mbsync's X-TUID, offlineimap's X-OfflineIMAP
    and X-Keywords: :data:`syncd.message.ADDED_HEADERS`) are left out on both sides:
    a far message's size less its added header lines (fetched with the Message-ID,
    no body) is compared too, and the hashes are taken without them -- so a Maildir
    written by those tools pairs without downloading anything."""
    fields = ["Message-ID", *ADDED_HEADERS]
    headers = far.headers(list(infos), fields) if infos else {}
    result = ContentMatch()
    index: dict[tuple[str | None, int | None], list[MsgKey]] = defaultdict(list)
    for uid, info in sorted(infos.items(), key=lambda item: _order(item[0])):
        head = headers.get(uid, b"")
        mid = result.far_ids[uid] = message_id(head)
        far_sizes = {info.size}
        if info.size is not None:
            far_sizes.add(info.size - added_headers_size(head))
        for far_size in far_sizes:
            index[(mid, far_size)].append(uid)
    taken: set[MsgKey] = set()
    found = result.found
    unmatched: list[tuple[str, bytes, str | None, set[int]]] = []
    for name, data, size in items:
        mid = result.near_ids[name] = message_id(data)
        sizes = {size, adopted_wire_size(data)}
        uids = list(
            dict.fromkeys(u for s in sizes for u in index.get((mid, s), []) if u not in taken)
        )
        if mid is not None and len(uids) == 1:
            taken.add(uids[0])
            found[name] = uids[0]
        else:
            unmatched.append((name, data, mid, sizes))
    if unmatched:
        # No Message-ID, several candidates, or the same Message-ID with another size:
        # compare the contents (without the added headers) of those far messages.
        sizes_wanted = set().union(*(s for *_, s in unmatched))
        mids_wanted = {m for _, _, m, _ in unmatched if m is not None}
        cand = sorted(
            (
                u
                for u, i in infos.items()
                if u not in taken
                and (
                    i.size in sizes_wanted
                    or (i.size is not None and i.size - added_headers_size(headers.get(u, b"")))
                    in sizes_wanted
                    or result.far_ids.get(u) in mids_wanted
                )
            ),
            key=_order,
        )
        digests: dict[str, list[MsgKey]] = defaultdict(list)
        for body in far.fetch(cand):
            digests[adopted_body_hash(body.data)].append(body.key)
        for name, data, _, _ in unmatched:
            free = [u for u in digests.get(adopted_body_hash(data), []) if u not in taken]
            if free:
                taken.add(free[0])
                found[name] = free[0]
    return result


def _read_all(
    near: NearFolder,
    names: Sequence[str],
    local: Mapping[str, NearMessage],
    log: logging.LoggerAdapter[logging.Logger],
) -> list[tuple[str, bytes]]:
    out = []
    for name in names:
        try:
            out.append((name, near.read(local[name])))
        except MessageError as exc:
            log.warning("cannot compare %s: %s", name, exc)
    return out


def pair_existing(
    *,
    far: FarFolder,
    near: NearFolder,
    local: Mapping[str, NearMessage],
    log: logging.LoggerAdapter[logging.Logger],
) -> list[Pair]:
    """First sync of a folder that has mail on both sides (a lost state database,
    or a Maildir written by another tool): pair the messages both sides already
    hold instead of copying each of them to the other side."""
    infos = far.list_all(sizes=True)
    if not infos:
        return []
    pairs = pair_by_content(far=far, near=near, local=local, names=local, infos=infos, log=log)[0]
    if pairs:
        log.warning(
            "no sync state for this folder: paired %d messages already on both sides by "
            "Message-ID instead of copying them",
            len(pairs),
        )
    return pairs


def pair_by_content(
    *,
    far: FarFolder,
    near: NearFolder,
    local: Mapping[str, NearMessage],
    names: Collection[str],
    infos: Mapping[MsgKey, MsgMeta],
    log: logging.LoggerAdapter[logging.Logger],
) -> tuple[list[Pair], ContentMatch]:
    """Pair the local messages ``names`` with the far messages ``infos`` by content
    (:func:`_match_on_far`); the baseline is the flags both sides have now."""
    items = [(n, d, adopted_wire_size(d)) for n, d in _read_all(near, sorted(names), local, log)]
    match = _match_on_far(far, items, infos)
    pairs = [
        Pair(
            uid,
            name,
            intern_flags((infos[uid].flags & local[name].flags) - {"\\Recent"}),
            infos[uid].size,
        )
        for name, uid in match.found.items()
    ]
    return pairs, match


def recover_uidvalidity(
    *,
    far: FarFolder,
    near: NearFolder,
    pairs: list[Pair],
    local: Mapping[str, NearMessage],
    old: int | None,
    new: int | None,
    log: logging.LoggerAdapter[logging.Logger],
) -> list[Pair]:
    """Re-pair after the server changed UIDVALIDITY; never deletes, never duplicates.

    Returns the new pairs.  Local messages that cannot be re-paired become
    unpaired (uploaded again: the server lost them); far messages without a
    partner become new (downloaded).  Raises FolderError when fewer than 80 %
    of the previously paired local messages are found again.
    """
    log.warning("UIDVALIDITY changed (%s -> %s): re-pairing by Message-ID and size", old, new)
    old_pairs = {
        p.near: p for p in pairs if p.near is not None and p.near in local and p.far is not None
    }
    if not old_pairs:
        return []
    infos = far.list_all(sizes=True)
    items = [
        (n, d, old_pairs[n].size or wire_size(d))
        for n, d in _read_all(near, sorted(old_pairs), local, log)
    ]
    found = _match_on_far(far, items, infos).found
    if len(found) < REPAIR_MIN_SHARE * len(old_pairs):
        raise FolderError(
            f"UIDVALIDITY changed and only {len(found)} of {len(old_pairs)} messages were "
            "found again on the server; the server folder looks replaced, so nothing was "
            "changed. If that is expected, move the local folder away and sync again"
        )
    log.warning("UIDVALIDITY changed: re-paired %d of %d messages", len(found), len(old_pairs))
    return [
        Pair(uid, name, intern_flags(old_pairs[name].flags), old_pairs[name].size)
        for name, uid in found.items()
    ]


def _order(key: MsgKey) -> tuple[int, int | str]:
    """Far keys in the store's order: UIDs numerically (any str keys after them)."""
    return (0, key) if isinstance(key, int) else (1, key)
