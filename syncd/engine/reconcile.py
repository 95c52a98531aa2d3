"""The reconciliation: a pure function of (baseline, far, near, policy) -> Plan.

No I/O happens here.  The engine gathers a full listing of each side and the
pairs from the state store, calls :func:`reconcile`, checks the plan against
the safety limits (:func:`mass_delete_problems`) and executes it.

The cases, per message (B = baseline flags, F = far flags, N = near flags):

==========  ==========  ==========  ============================================
pair        far         near        outcome
==========  ==========  ==========  ============================================
none        present     -           new on far: copy to near (if pulling)
none        -           present     new on near: copy to far (if pushing)
yes         present     present     three-way flag merge against B
yes         present     gone        near deleted it: delete on far, unless F
                                    changed since B (a change wins: copy again)
yes         gone        present     far deleted it: delete on near, unless N
                                    changed since B (a change wins: copy again)
yes         gone        gone        forget the pair
==========  ==========  ==========  ============================================

A side that may not be written (``sync = "pull"`` never writes far, ``"push"``
never writes near) turns a deletion into a *tombstone*: the pair keeps only
the surviving side, so the message is not copied back next time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from syncd.model import DELETED, NO_FLAGS, Flags, MsgKey, MsgMeta, Pair, Side, intern_flags


@dataclass(frozen=True, slots=True)
class Policy:
    """What this folder pair may do.

    ``pull``: far changes reach near.  ``push``: near changes reach far.
    ``expunge``: a deletion reaching far is followed by ``UID EXPUNGE``.
    ``syncable``: which flags both sides can carry (None = all but \\Recent).
    ``far_deletes``: a message gone from far is deleted on near (False for a far
    side that is a mail drop: the near copy is kept as a tombstone).
    """

    pull: bool = True
    push: bool = True
    expunge: bool = True
    syncable: Flags | None = None
    far_deletes: bool = True

    def writes(self, side: Side) -> bool:
        return self.pull if side is Side.NEAR else self.push

    def clean(self, flags: Flags) -> Flags:
        if self.syncable is None:
            return flags - _RECENT if "\\Recent" in flags else flags
        return intern_flags(flags & self.syncable)


_RECENT = frozenset({"\\Recent"})


@dataclass(frozen=True, slots=True)
class Copy:
    """Copy message ``key`` of side ``src`` to the other side with ``flags``.

    ``replaces`` is the pair this copy supersedes (a change that won over a
    deletion); it is dropped when the copy is recorded.
    """

    src: Side
    key: MsgKey
    flags: Flags
    size: int | None = None
    replaces: Pair | None = None

    def __str__(self) -> str:
        return f"copy {self.src.value} {self.key} -> {self.src.other.value} {_fmt(self.flags)}"

    @property
    def why(self) -> str:
        """Why the plan copies it, in the user's words."""
        if self.replaces is None:
            return f"new {_where(self.src)}"
        return (
            f"changed {_where(self.src)} after it was deleted {_where(self.src.other)}: "
            "the change wins"
        )


@dataclass(frozen=True, slots=True)
class SetFlags:
    """Change the flags of a paired message on one or both sides.

    ``baseline`` is the agreed result to record once the changes are made.
    """

    pair: Pair
    far_add: Flags = NO_FLAGS
    far_remove: Flags = NO_FLAGS
    near_add: Flags = NO_FLAGS
    near_remove: Flags = NO_FLAGS
    baseline: Flags = NO_FLAGS

    def __str__(self) -> str:
        parts = []
        if self.far_add or self.far_remove:
            parts.append(f"far {self.pair.far}: {_delta(self.far_add, self.far_remove)}")
        if self.near_add or self.near_remove:
            parts.append(f"near {self.pair.near}: {_delta(self.near_add, self.near_remove)}")
        pair = f"{self.pair.far}/{self.pair.near}"
        return "; ".join(parts) or f"baseline {pair}: {_fmt(self.baseline)}"

    @property
    def why(self) -> str:
        """Which side's change the merge brings to the other, in the user's words."""
        far_changes = bool(self.far_add or self.far_remove)  # so the change came from near
        near_changes = bool(self.near_add or self.near_remove)
        if far_changes and near_changes:
            return "flag merge: changed on both sides"
        if far_changes:
            return f"flag merge: changed {_where(Side.NEAR)}"
        if near_changes:
            return f"flag merge: changed {_where(Side.FAR)}"
        return "flags already agree: recorded in the state only"


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the message of ``pair`` on ``side`` (it is gone on the other side)."""

    pair: Pair
    side: Side

    def __str__(self) -> str:
        return f"delete {self.side.value} {self.pair.key(self.side)}"

    @property
    def why(self) -> str:
        return f"deleted {_where(self.side.other)}"


@dataclass(frozen=True, slots=True)
class Forget:
    """State only: drop ``pair``, or keep it as a tombstone of ``keep``."""

    pair: Pair
    keep: Side | None = None

    def __str__(self) -> str:
        if self.keep is None:
            return f"forget {self.pair.far}/{self.pair.near}"
        return f"keep {self.keep.value} {self.pair.key(self.keep)} only"

    @property
    def why(self) -> str:
        if self.keep is None:
            return "gone on both sides: dropped from the state"
        return (
            f"deleted {_where(self.keep.other)}; the copy {_where(self.keep)} stays, as this "
            "sync does not change that side"
        )


@dataclass(frozen=True)
class Plan:
    """What one sync of a folder pair will do, grouped by kind of action."""

    uploads: tuple[Copy, ...] = ()
    downloads: tuple[Copy, ...] = ()
    flags: tuple[SetFlags, ...] = ()
    deletes: tuple[Delete, ...] = ()
    forgets: tuple[Forget, ...] = ()
    counts: Mapping[Side, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Copy | SetFlags | Delete | Forget]:
        yield from self.uploads
        yield from self.downloads
        yield from self.flags
        yield from self.deletes
        yield from self.forgets

    def __bool__(self) -> bool:
        return bool(self.uploads or self.downloads or self.flags or self.deletes or self.forgets)

    def deletions_on(self, side: Side) -> int:
        return sum(1 for d in self.deletes if d.side is side)

    def summary(self) -> str:
        def n(side: Side, kind: str) -> int:
            if kind == "new":
                return len(self.uploads if side is Side.FAR else self.downloads)
            if kind == "del":
                return self.deletions_on(side)
            return sum(
                1
                for f in self.flags
                if (f.far_add or f.far_remove if side is Side.FAR else f.near_add or f.near_remove)
            )

        return ", ".join(
            f"{side.value}: +{n(side, 'new')} new, {n(side, 'flags')} flagged, "
            f"-{n(side, 'del')} deleted"
            for side in (Side.FAR, Side.NEAR)
        )


def merge_flags(base: Flags, far: Flags, near: Flags) -> Flags:
    """Three-way merge: each side's additions and removals since ``base`` apply.

    ``B + (F-B) + (N-B) - (B-F) - (B-N)``; an addition and a removal of the
    same flag cannot both happen (one needs it in B, the other not in B).
    """
    return intern_flags(((far | near) - base) | (base & far & near))


def reconcile(
    pairs: Iterable[Pair],
    far: Mapping[MsgKey, MsgMeta],
    near: Mapping[str, MsgMeta],
    policy: Policy,
) -> Plan:
    """Compute the plan that brings ``far`` and ``near`` into agreement.

    ``far`` and ``near`` are full listings of the folder on each side; ``pairs``
    are the state's pairs for the folder.  Deterministic: actions come out in
    ascending far UID / near name order.
    """
    acc = _Actions()
    paired_far: set[MsgKey] = set()
    paired_near: set[str] = set()

    for pair in pairs:
        if pair.far is not None:
            paired_far.add(pair.far)
        if pair.near is not None:
            paired_near.add(pair.near)
        f = far.get(pair.far) if pair.far is not None else None
        n = near.get(pair.near) if pair.near is not None else None
        _reconcile_pair(pair, f, n, policy, acc)

    for uid in sorted(far.keys() - paired_far):
        meta = far[uid]
        flags = policy.clean(meta.flags)
        if policy.pull and DELETED not in flags:
            acc.downloads.append(Copy(Side.FAR, uid, flags, meta.size))
    for name in sorted(near.keys() - paired_near):
        meta = near[name]
        flags = policy.clean(meta.flags)
        if policy.push and DELETED not in flags:
            acc.uploads.append(Copy(Side.NEAR, name, flags, meta.size))

    acc.downloads.sort(key=lambda c: c.key if isinstance(c.key, int) else 0)
    return Plan(
        uploads=tuple(acc.uploads),
        downloads=tuple(acc.downloads),
        flags=tuple(acc.flags),
        deletes=tuple(acc.deletes),
        forgets=tuple(acc.forgets),
        counts={Side.FAR: len(far), Side.NEAR: len(near)},
    )


@dataclass
class _Actions:
    uploads: list[Copy] = field(default_factory=list)
    downloads: list[Copy] = field(default_factory=list)
    flags: list[SetFlags] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    forgets: list[Forget] = field(default_factory=list)


def _reconcile_pair(
    pair: Pair, f: MsgMeta | None, n: MsgMeta | None, policy: Policy, acc: _Actions
) -> None:
    base = pair.flags
    if f is None and n is None:
        acc.forgets.append(Forget(pair))
        return
    if pair.far is None or pair.near is None:
        # A tombstone: the message lives on one side only, by choice.  It ends
        # when that side's copy goes; nothing is ever copied for it.
        if (pair.far is None and n is None) or (pair.near is None and f is None):
            acc.forgets.append(Forget(pair))
        return
    if f is not None and n is not None:
        fl, nl = policy.clean(f.flags), policy.clean(n.flags)
        want_far = merge_flags(base, fl, nl) if policy.push else fl
        want_near = merge_flags(base, fl, nl) if policy.pull else nl
        if not policy.pull:
            new_base = nl
        elif not policy.push:
            new_base = fl
        else:
            new_base = want_far
        if want_far != fl or want_near != nl or new_base != base:
            acc.flags.append(
                SetFlags(
                    pair,
                    far_add=want_far - fl,
                    far_remove=fl - want_far,
                    near_add=want_near - nl,
                    near_remove=nl - want_near,
                    baseline=new_base,
                )
            )
        return
    # Exactly one side still has the message.
    survivor, meta = (Side.FAR, f) if f is not None else (Side.NEAR, n)
    assert meta is not None
    gone = survivor.other
    flags = policy.clean(meta.flags)
    if flags != base and DELETED not in flags:
        # Changed on one side, deleted on the other: the change wins (unless
        # the change itself was marking it deleted).
        if policy.writes(gone):
            copy = Copy(survivor, _key(pair, survivor), flags, meta.size, replaces=pair)
            (acc.downloads if survivor is Side.FAR else acc.uploads).append(copy)
        else:
            acc.forgets.append(Forget(pair, keep=survivor))
        return
    if policy.writes(survivor) and (survivor is Side.FAR or policy.far_deletes):
        acc.deletes.append(Delete(pair, survivor))
    else:
        acc.forgets.append(Forget(pair, keep=survivor))


def _key(pair: Pair, side: Side) -> MsgKey:
    key = pair.key(side)
    assert key is not None
    return key


@dataclass(frozen=True, slots=True)
class Limits:
    """The mass-delete brake: a run may not delete more than ``share`` of a side
    holding more than ``small`` messages, nor empty a side holding at least
    ``min_for_empty`` messages."""

    share: float = 0.5
    small: int = 5
    min_for_empty: int = 2


def mass_delete_problems(plan: Plan, limits: Limits = Limits()) -> list[str]:
    """Return one line per side where the plan deletes too much (empty = fine)."""
    problems = []
    for side in (Side.FAR, Side.NEAR):
        deleting = plan.deletions_on(side)
        total = plan.counts.get(side, 0)
        if not deleting or not total:
            continue
        if deleting >= total >= limits.min_for_empty:
            problems.append(f"would delete all {total} messages on the {_word(side)} side")
        elif total > limits.small and deleting > total * limits.share:
            problems.append(
                f"would delete {deleting} of {total} messages on the {_word(side)} side"
            )
    return problems


def _where(side: Side) -> str:
    """A side in the user's words, for a line that ends up in a log or a dry run."""
    return "on the server" if side is Side.FAR else "here"


def _word(side: Side) -> str:
    return "server" if side is Side.FAR else "local"


def _fmt(flags: Flags) -> str:
    return "(" + " ".join(sorted(flags)) + ")"


def _delta(add: Flags, remove: Flags) -> str:
    return " ".join([*("+" + f for f in sorted(add)), *("-" + f for f in sorted(remove))])
