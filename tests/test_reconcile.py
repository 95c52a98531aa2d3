"""The pure reconciliation: one row per case of the presence x flags matrix,
plus properties (hypothesis) that hold for any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.engine.reconcile import (
    Copy,
    Delete,
    Forget,
    Limits,
    Plan,
    Policy,
    SetFlags,
    mass_delete_problems,
    merge_flags,
    reconcile,
)
from syncd.model import DELETED, FLAGGED, SEEN, MsgMeta, Pair, Side

S, F, D = SEEN, FLAGGED, DELETED
BOTH, PULL, PUSH = Policy(), Policy(push=False), Policy(pull=False)
DROP = Policy(push=False, far_deletes=False)  # a mail drop (POP3) pulled from


def fs(*flags: str) -> frozenset[str]:
    return frozenset(flags)


def one(
    pair: Pair | None,
    far: frozenset[str] | None,
    near: frozenset[str] | None,
    policy: Policy = BOTH,
) -> list[object]:
    pairs = [pair] if pair else []
    far_l = {1: MsgMeta(far, 10)} if far is not None else {}
    near_l = {"n1": MsgMeta(near, 10)} if near is not None else {}
    return list(reconcile(pairs, far_l, near_l, policy))


P = Pair(1, "n1", fs(S))

# (name, pair, far flags, near flags, policy, expected actions)
MATRIX = [
    ("new on far is downloaded", None, fs(S), None, BOTH, [Copy(Side.FAR, 1, fs(S), 10)]),
    ("new on near is uploaded", None, None, fs(F), BOTH, [Copy(Side.NEAR, "n1", fs(F), 10)]),
    ("new on far, push only: left alone", None, fs(S), None, PUSH, []),
    ("new on near, pull only: left alone", None, None, fs(), PULL, []),
    ("new on far flagged deleted: not copied", None, fs(D), None, BOTH, []),
    ("new on near flagged trashed: not copied", None, None, fs(D), BOTH, []),
    ("unchanged pair: nothing", P, fs(S), fs(S), BOTH, []),
    (
        "far added a flag",
        P,
        fs(S, F),
        fs(S),
        BOTH,
        [SetFlags(P, near_add=fs(F), baseline=fs(S, F))],
    ),
    ("near removed a flag", P, fs(S), fs(), BOTH, [SetFlags(P, far_remove=fs(S), baseline=fs())]),
    (
        "both added the same flag: only the baseline moves",
        P,
        fs(S, F),
        fs(S, F),
        BOTH,
        [SetFlags(P, baseline=fs(S, F))],
    ),
    (
        "far added F, near removed S: both apply",
        P,
        fs(S, F),
        fs(),
        BOTH,
        [SetFlags(P, far_remove=fs(S), near_add=fs(F), baseline=fs(F))],
    ),
    (
        "pull: near change is not pushed, far change arrives",
        P,
        fs(S, F),
        fs(),
        PULL,
        [SetFlags(P, near_add=fs(F), baseline=fs(S, F))],
    ),
    (
        "push: far change is not pulled",
        P,
        fs(S, F),
        fs(),
        PUSH,
        [SetFlags(P, far_remove=fs(S), baseline=fs())],
    ),
    ("deleted on near, unchanged on far: delete far", P, fs(S), None, BOTH, [Delete(P, Side.FAR)]),
    (
        "deleted on far, unchanged on near: delete near",
        P,
        None,
        fs(S),
        BOTH,
        [Delete(P, Side.NEAR)],
    ),
    (
        "deleted on near, changed on far: the change wins",
        P,
        fs(S, F),
        None,
        BOTH,
        [Copy(Side.FAR, 1, fs(S, F), 10, replaces=P)],
    ),
    (
        "deleted on far, changed on near: the change wins",
        P,
        None,
        fs(),
        BOTH,
        [Copy(Side.NEAR, "n1", fs(), 10, replaces=P)],
    ),
    ("deleted on both: forget", P, None, None, BOTH, [Forget(P)]),
    ("mail drop: gone from far, near copy kept", P, None, fs(S), DROP, [Forget(P, keep=Side.NEAR)]),
    (
        "mail drop: gone from far, near changed, kept",
        P,
        None,
        fs(F),
        DROP,
        [Forget(P, keep=Side.NEAR)],
    ),
    (
        "mail drop: near deletion leaves a far tombstone",
        P,
        fs(S),
        None,
        DROP,
        [Forget(P, keep=Side.FAR)],
    ),
    ("mail drop: new on far is downloaded", None, fs(), None, DROP, [Copy(Side.FAR, 1, fs(), 10)]),
    (
        "pull: near deletion leaves a far tombstone",
        P,
        fs(S),
        None,
        PULL,
        [Forget(P, keep=Side.FAR)],
    ),
    (
        "push: far deletion leaves a near tombstone",
        P,
        None,
        fs(S),
        PUSH,
        [Forget(P, keep=Side.NEAR)],
    ),
    ("far tombstone, far still there: nothing", Pair(1, None, fs(S)), fs(S), None, BOTH, []),
    (
        "far tombstone, far gone: forget",
        Pair(1, None, fs(S)),
        None,
        None,
        BOTH,
        [Forget(Pair(1, None, fs(S)))],
    ),
    (
        "near tombstone with far message of same uid is not re-paired",
        Pair(None, "n1", fs()),
        fs(S),
        fs(),
        BOTH,
        [Copy(Side.FAR, 1, fs(S), 10)],
    ),
]


@pytest.mark.parametrize(
    ("pair", "far", "near", "policy", "expected"),
    [m[1:] for m in MATRIX],
    ids=[m[0] for m in MATRIX],
)
def test_matrix(
    pair: Pair | None,
    far: frozenset[str] | None,
    near: frozenset[str] | None,
    policy: Policy,
    expected: list[object],
) -> None:
    assert one(pair, far, near, policy) == expected


def test_recent_is_never_synced() -> None:
    assert one(P, fs(S, "\\Recent"), fs(S)) == []
    assert one(None, fs("\\Recent"), None) == [Copy(Side.FAR, 1, fs(), 10)]


def test_keywords_outside_syncable_are_ignored() -> None:
    policy = Policy(syncable=fs(S, F))
    assert one(P, fs(S, "$Junk"), fs(S), policy) == []


def test_actions_print_for_dry_run() -> None:
    plan = reconcile([P], {1: MsgMeta(fs(S, F))}, {"n1": MsgMeta(fs(S))}, BOTH)
    assert [str(a) for a in plan] == ["near n1: +\\Flagged"]
    assert "near: +0 new, 1 flagged" in plan.summary()


def test_mass_delete_brake() -> None:
    pairs = [Pair(i, f"n{i}", fs()) for i in range(10)]
    far = {i: MsgMeta(fs()) for i in range(10)}
    near = {f"n{i}": MsgMeta(fs()) for i in range(4)}  # six deleted locally
    plan = reconcile(pairs, far, near, BOTH)
    assert plan.deletions_on(Side.FAR) == 6
    assert mass_delete_problems(plan) == ["would delete 6 of 10 messages on the server side"]
    # emptying a side counts even when small
    plan = reconcile(pairs[:3], {i: MsgMeta(fs()) for i in range(3)}, {}, BOTH)
    assert mass_delete_problems(plan) == ["would delete all 3 messages on the server side"]
    # a few deletions are fine
    plan = reconcile(pairs, far, {f"n{i}": MsgMeta(fs()) for i in range(8)}, BOTH)
    assert mass_delete_problems(plan) == []
    assert mass_delete_problems(Plan(), Limits()) == []


# --- properties -----------------------------------------------------------------

flag_sets = st.frozensets(st.sampled_from([S, F, "\\Answered", "\\Draft", "$Forwarded", "kw"]))


@given(flag_sets, flag_sets, flag_sets)
def test_merge_properties(b: frozenset[str], f: frozenset[str], n: frozenset[str]) -> None:
    m = merge_flags(b, f, n)
    assert merge_flags(b, f, n) == merge_flags(b, n, f)  # symmetric
    assert merge_flags(b, b, n) == n  # one side unchanged: the other wins
    assert merge_flags(b, f, f) == f  # both agree
    assert (f - b) <= m and (n - b) <= m  # additions survive
    assert not ((b - f) & m) and not ((b - n) & m)  # removals survive


world = st.dictionaries(
    st.integers(1, 30),
    st.tuples(st.booleans(), st.booleans(), flag_sets, flag_sets, flag_sets),
    max_size=25,
)


def apply(
    plan: Plan, pairs: list[Pair], far: dict[int, MsgMeta], near: dict[str, MsgMeta]
) -> tuple[list[Pair], dict[int, MsgMeta], dict[str, MsgMeta]]:
    """A model executor: what the engine does, on dicts."""
    pairs = list(pairs)
    far, near = dict(far), dict(near)
    next_uid = max(far, default=0) + 100
    for a in plan:
        if isinstance(a, Copy):
            if a.replaces is not None:
                pairs.remove(a.replaces)
            if a.src is Side.FAR:
                near[f"c{a.key}"] = MsgMeta(a.flags)
                pairs.append(Pair(int(a.key), f"c{a.key}", a.flags))
            else:
                next_uid += 1
                far[next_uid] = MsgMeta(a.flags)
                pairs.append(Pair(next_uid, str(a.key), a.flags))
        elif isinstance(a, SetFlags):
            p = a.pair
            if p.far is not None:
                far[p.far] = MsgMeta((far[p.far].flags | a.far_add) - a.far_remove)
            if p.near is not None:
                near[p.near] = MsgMeta((near[p.near].flags | a.near_add) - a.near_remove)
            pairs[pairs.index(p)] = Pair(p.far, p.near, a.baseline)
        elif isinstance(a, Delete):
            key = a.pair.key(a.side)
            (far if a.side is Side.FAR else near).pop(key)  # type: ignore[call-overload]
            pairs.remove(a.pair)
        elif isinstance(a, Forget):
            pairs.remove(a.pair)
            if a.keep is Side.FAR:
                pairs.append(Pair(a.pair.far, None, a.pair.flags))
            elif a.keep is Side.NEAR:
                pairs.append(Pair(None, a.pair.near, a.pair.flags))
    return pairs, far, near


@given(world, st.sampled_from([BOTH, PULL, PUSH]))
def test_converges_in_one_run(
    spec: dict[int, tuple[bool, bool, frozenset[str], frozenset[str], frozenset[str]]],
    policy: Policy,
) -> None:
    """After executing a plan, a second reconcile finds nothing to do, and with
    sync = both every surviving message exists on both sides with equal flags."""
    pairs, far, near = [], {}, {}
    for uid, (on_far, on_near, base, ff, nf) in spec.items():
        name = f"n{uid}"
        pairs.append(Pair(uid, name, base))
        if on_far:
            far[uid] = MsgMeta(ff)
        if on_near:
            near[name] = MsgMeta(nf)
    plan = reconcile(pairs, far, near, policy)
    pairs2, far2, near2 = apply(plan, pairs, far, near)
    again = reconcile(pairs2, far2, near2, policy)
    assert not list(again), [str(a) for a in again]
    if policy == BOTH:
        by_far = {p.far: p for p in pairs2}
        assert len(far2) == len(near2)
        for uid, meta in far2.items():
            assert near2[by_far[uid].near].flags == meta.flags  # type: ignore[index]
        # a message changed on one side and deleted on the other survives on both
        for uid, (on_far, on_near, base, ff, nf) in spec.items():
            if on_far and not on_near and ff != base and D not in ff:
                assert uid in far2 and any(p.far == uid and p.near for p in pairs2)
            if on_near and not on_far and nf != base and D not in nf:
                assert any(p.near == f"n{uid}" and p.far for p in pairs2)


@given(world)
def test_never_deletes_a_changed_message(
    spec: dict[int, tuple[bool, bool, frozenset[str], frozenset[str], frozenset[str]]],
) -> None:
    pairs, far, near = [], {}, {}
    for uid, (on_far, on_near, base, ff, nf) in spec.items():
        pairs.append(Pair(uid, f"n{uid}", base))
        if on_far:
            far[uid] = MsgMeta(ff)
        if on_near:
            near[f"n{uid}"] = MsgMeta(nf)
    for d in reconcile(pairs, far, near, BOTH).deletes:
        listing = far if d.side is Side.FAR else near
        assert listing[d.pair.key(d.side)].flags == d.pair.flags  # type: ignore[index]
