"""The delta path: gather only the messages that changed, when both sides can say
which they are, so a cycle costs what changed rather than what exists.

The full path (:mod:`syncd.engine.cycle`) scans every near message (a ``stat``
each), loads every pair and reconciles them all.  Yet for a pair that changed on
neither side -- far flags as the state knows them (the far side's modseq delta
does not name it) and near flags equal to its baseline -- :func:`reconcile`
plans nothing: the three-way merge of three equal sets is that set.  So here:

- the far side says what changed since the last modseq (:meth:`FarFolder.changes`,
  QRESYNC); nothing is listed;
- the near side is listed by names alone (:meth:`NearFolder.index`: one
  directory listing, no ``stat``), and streamed against the pairs as stored;
- a pair is kept when its far key changed or went, its near name is gone or
  carries other flags than the baseline, or its baseline is not what the policy
  would keep; a near name no pair has and a far key no pair has are kept too;
- only those are looked at closely (:meth:`NearFolder.lookup`) and handed to the
  same pure :func:`~syncd.engine.reconcile.reconcile`, with the folder totals the
  full path would have counted (for the mass-delete brake).

The plan is the full path's plan: the same actions, in the same order (pairs in
state order, copies sorted by key).  Whenever the shortcut could differ, the
full path runs instead: no modseq delta, a first sync or a new UIDVALIDITY,
an intent left by a crash, or keywords the far folder keeps only locally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from syncd.model import Flags, MsgKey, MsgMeta, Pair, Side, parse_flags
from syncd.stores.base import FarChanges, FarView, Skipped

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from syncd.engine.reconcile import Policy
    from syncd.engine.refusals import Refusal
    from syncd.engine.state import FolderState, StateDB
    from syncd.stores.base import FarFolder, NearFolder, NearMessage


@dataclass
class Gathered:
    """What a cycle reconciles: the pairs, the far and near listings of the messages
    concerned, the near messages themselves, the entries skipped, the totals of
    each side, and the refused names no longer on the near side."""

    pairs: list[Pair]
    far: dict[MsgKey, MsgMeta]
    near: dict[str, MsgMeta]
    local: dict[str, NearMessage]
    counts: dict[Side, int]
    skipped: list[Skipped] = field(default_factory=list)
    refusals_gone: list[str] = field(default_factory=list)


def possible(st: FolderState, view: FarView, db: StateDB) -> bool:
    """Whether the folder's state lets a delta stand for the whole: a synced folder
    under the same UIDVALIDITY, no intent to resolve, and no keyword kept only
    locally (those are masked by what every near message carries)."""
    if st.uidvalidity is None or st.highestmodseq is None or view.uidvalidity != st.uidvalidity:
        return False
    if db.local_only_flags(st.id):
        return False
    perm = view.permanent_flags
    if not view.readonly and perm is not None and "\\*" not in perm:
        return False
    return not db.intents(st.id)


def gather(
    *,
    st: FolderState,
    view: FarView,
    far: FarFolder,
    near: NearFolder,
    db: StateDB,
    policy: Policy,
    refusals: Mapping[str, Refusal],
    signature: str | None = None,
) -> Gathered | None:
    """The messages concerned by what changed since the last sync (see the module),
    or None, having listed nothing, when the full path must run.  ``signature`` is
    the near folder's at the start of the cycle."""
    if not possible(st, view, db):
        return None
    changes = far.changes(st.highestmodseq)
    if changes is None:
        return None
    if signature is not None and signature == st.near_signature and not refusals:
        got = _near_unchanged(
            st=st, changes=changes, near=near, db=db, policy=policy, signature=signature
        )
        if got is not None:
            return got
    return _streamed(st=st, changes=changes, near=near, db=db, policy=policy, refusals=refusals)


def _near_unchanged(
    *,
    st: FolderState,
    changes: FarChanges,
    near: NearFolder,
    db: StateDB,
    policy: Policy,
    signature: str,
) -> Gathered | None:
    """The near folder is as the last sync left it (its signature says so): the
    pairs concerned are those of the far delta alone, fetched by key, and their
    near files are found by name, not by listing the folder.  None when the state
    cannot vouch for the rest: near messages no pair holds (as many pairs name a
    near message as the last sync counted messages there), or a baseline the policy
    would change."""
    far_paired, named, texts = db.pair_census(st.id)
    if named != st.near_count:
        return None
    for text in texts:
        flags = parse_flags(text)
        if policy.clean(flags) != flags:
            return None
    changed, vanished = changes.changed, changes.vanished
    pairs = [
        Pair(uid, name, parse_flags(text), size)
        for uid, name, text, size in db.pair_rows(st.id, changed.keys() | vanished)
    ]
    names = {p.near: p.flags for p in pairs if p.near is not None}
    found = near.unchanged(names, signature)
    if found is None or len(found[0]) != len(names):
        return None  # changed meanwhile, or not what the state says: look at everything
    local, skipped = found
    touched = {p.far for p in pairs if p.far is not None}
    far_meta, new = _far_view(pairs, changed, vanished, touched)
    return Gathered(
        pairs=pairs,
        far=far_meta,
        near={n: MsgMeta(m.flags, m.size) for n, m in local.items()},
        local=local,
        counts={
            Side.FAR: far_paired - len(touched & vanished) + len(new),
            Side.NEAR: named,
        },
        skipped=skipped,
    )


def _streamed(
    *,
    st: FolderState,
    changes: FarChanges,
    near: NearFolder,
    db: StateDB,
    policy: Policy,
    refusals: Mapping[str, Refusal],
) -> Gathered:
    """The near folder listed by names and streamed against every pair as stored."""
    changed, vanished = changes.changed, changes.vanished
    index, skipped = near.index()
    near_total = len(index)
    parsed: dict[str, tuple[Flags, bool]] = {}
    pairs: list[Pair] = []
    names: list[str] = []  # near names to look at closely
    touched: set[MsgKey] = set()  # far keys of the delta that a pair holds
    far_paired = far_gone = 0
    present_refused: set[str] = set()
    for uid, name, text, size in db.pair_rows(st.id):
        got = parsed.get(text)
        if got is None:
            flags = parse_flags(text)
            got = parsed[text] = (flags, policy.clean(flags) != flags)
        flags, concerned = got
        if uid is not None:
            far_paired += 1
            if uid in changed or uid in vanished:
                touched.add(uid)
                concerned = True
                far_gone += uid in vanished
        if name is not None:
            now = index.pop(name, None)
            if now is None or now != flags:
                concerned = True
            if now is not None:
                if concerned:
                    names.append(name)
                if name in refusals:
                    present_refused.add(name)
        elif uid is None:
            concerned = True  # a pair of nothing: the full path forgets it
        if concerned:
            pairs.append(Pair(uid, name, flags, size))
    names.extend(index)  # what is left has no pair: new here
    local, closer = near.lookup(names)
    far_meta, new = _far_view(pairs, changed, vanished, touched)
    return Gathered(
        pairs=pairs,
        far=far_meta,
        near={n: MsgMeta(m.flags, m.size) for n, m in local.items()},
        local=local,
        counts={
            Side.FAR: far_paired - far_gone + len(new),
            Side.NEAR: near_total - (len(names) - len(local)),
        },
        skipped=skipped + closer,
        refusals_gone=[n for n in refusals if n not in local and n not in present_refused],
    )


def _far_view(
    pairs: Iterable[Pair],
    changed: Mapping[MsgKey, MsgMeta],
    vanished: Collection[MsgKey],
    touched: Collection[MsgKey],
) -> tuple[dict[MsgKey, MsgMeta], dict[MsgKey, MsgMeta]]:
    """The far listing the full path would have seen for ``pairs`` (the delta's
    metadata where it has some, else what the pair recorded), and the delta's
    messages no pair holds (new there), which the listing includes."""
    far_meta = {
        k: changed.get(k) or MsgMeta(p.flags, p.size)
        for p in pairs
        if (k := p.far) is not None and k not in vanished
    }
    new = {k: m for k, m in changed.items() if k not in touched and k not in vanished}
    far_meta.update(new)
    return far_meta, new
