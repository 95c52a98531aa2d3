"""The delta path (:mod:`syncd.engine.delta`) plans exactly what the full path plans.

First the seam it stands on, on every store: a far store's changes applied to what
the state knows are its full listing; a near store's index names what a scan
lists, and its lookup sees what a scan sees.  Then the engine, on every far store
(memory, Dovecot with and without MOVE/UIDPLUS) times every near store (memory,
Maildir): both sides changed at random, the delta path's dry run is the full
path's, and carrying it out converges.  Last, a property over many random
situations and policies on the memory stores: same plan, same end state.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from contract_support import LOG, FarHandle, MemoryFarHandle, MemoryNearHandle, NearHandle, message
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from syncd.engine import delta
from syncd.engine.cycle import FolderSync
from syncd.engine.options import RunOptions
from syncd.engine.reconcile import Policy
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.errors import FolderError
from syncd.message import body_hash
from syncd.model import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, Flags, MsgKey
from syncd.stores.base import Checkpoint

FLAG_SETS: list[Flags] = [
    frozenset(),
    frozenset({SEEN}),
    frozenset({SEEN, FLAGGED}),
    frozenset({ANSWERED}),
    frozenset({SEEN, "$label"}),
    frozenset({DRAFT, DELETED}),
]


# --- the seam -------------------------------------------------------------------------


def test_changes_applied_to_the_known_are_the_full_listing(far: FarHandle) -> None:
    keys = [far.put(message(i), [SEEN]) for i in range(4)]
    view = far.folder.open(None, readonly=False)
    known = far.folder.list_all(sizes=False)
    far.set_flags(keys[1], [SEEN, FLAGGED])
    far.expunge(keys[2])
    new = far.put(message(9), [ANSWERED])
    far.folder.open(Checkpoint(view.uidvalidity, view.highestmodseq), readonly=False)
    changes = far.folder.changes(view.highestmodseq)
    full = far.folder.list_all(sizes=False)
    if changes is None:  # a store that cannot tell: the engine lists the folder instead
        assert view.highestmodseq is None
        return
    merged: dict[MsgKey, Flags] = {
        k: m.flags for k, m in known.items() if k not in changes.vanished
    }
    merged.update({k: m.flags for k, m in changes.changed.items() if k not in changes.vanished})
    assert merged == {k: m.flags for k, m in full.items()}
    assert new in changes.changed
    assert keys[0] not in changes.changed
    assert keys[2] in changes.vanished


def test_no_changes_without_a_modseq(far: FarHandle) -> None:
    far.put(message(1))
    far.folder.open(None, readonly=False)
    assert far.folder.changes(None) is None


def test_the_index_names_what_a_scan_lists(near: NearHandle) -> None:
    near.folder.create()
    near.add(message(1))
    near.add(message(2), frozenset({SEEN, FLAGGED}))
    near.add(message(3), frozenset({"$label", ANSWERED}))
    scanned, _ = near.folder.scan()
    assert near.folder.index() == ({name: m.flags for name, m in scanned.items()}, [])


def test_lookup_sees_what_a_scan_sees(near: NearHandle) -> None:
    near.folder.create()
    a = near.add(message(1), frozenset({SEEN}))
    b = near.add(message(2))
    index, _ = near.folder.index()
    near.remove(b)  # gone since the index: left out
    found, skipped = near.folder.lookup([a, b, "no-such-name"])
    assert skipped == []
    assert set(found) == {a}
    scanned, _ = near.folder.scan()
    assert found[a].flags == scanned[a].flags == index[a]
    assert found[a].size == scanned[a].size
    assert body_hash(near.folder.read(found[a])) == body_hash(message(1))


def test_the_index_tracks_own_changes_like_a_scan(near: NearHandle) -> None:
    near.folder.create()
    near.add(message(1))
    before = near.folder.signature()
    [name] = near.folder.index()[0]
    [msg] = near.folder.lookup([name])[0].values()
    near.folder.set_flags(msg, frozenset({SEEN}))
    near.folder.deliver(
        message(2), name=near.folder.new_name(), flags=frozenset(), mtime=None, to_new=False
    )
    near.folder.flush()
    assert near.folder.trusted_signature(before, changed=True, settled_before=True) is not None


# --- the engine: delta plan == full plan ----------------------------------------------


class Paths:
    """Runs of one folder pair, through the delta path or (forced) the full one."""

    def __init__(self, far: FarHandle, near: NearHandle, db_path: Path) -> None:
        self.far, self.near, self.db_path = far, near, db_path
        self.delta_runs = 0

    def run(self, policy: Policy, *, dry: bool = False, full: bool = False) -> FolderReport:
        real = delta.gather

        def spy(**kw: Any) -> delta.Gathered | None:
            got = None if full else real(**kw)
            self.delta_runs += got is not None
            return got

        db = StateDB(self.db_path)
        delta.gather = spy
        try:
            return FolderSync(
                far=self.far.folder,
                near=self.near.folder,
                db=db,
                policy=policy,
                options=RunOptions(dry_run=dry),
                log=LOG,
            ).run()
        finally:
            delta.gather = real
            db.close()


def _planned(report: FolderReport) -> tuple[list[str], tuple[int, ...]]:
    r = report
    return r.planned, (r.uploaded, r.downloaded, r.flagged, r.deleted_far, r.deleted_near)


def _change_both_sides(far: FarHandle, near: NearHandle, rng: random.Random) -> None:
    """Another client and a mail reader each change a few messages: flags, deletions
    and new mail, sometimes of the same message on both sides."""
    far.folder.open(None, readonly=True)
    far_keys = sorted(int(k) for k in far.folder.list_all(sizes=False))
    names = sorted(near.folder.scan()[0])
    for key in rng.sample(far_keys, min(3, len(far_keys))):
        far.set_flags(key, rng.choice(FLAG_SETS[:5]))
    for key in rng.sample(far_keys, min(2, len(far_keys))):
        if rng.random() < 0.6:
            far.expunge(key)
    for i in range(rng.randint(0, 2)):
        far.put(message(1000 + rng.randrange(10**6) + i), rng.choice(FLAG_SETS))
    for name in rng.sample(names, min(3, len(names))):
        near.set_flags(name, rng.choice(FLAG_SETS[:5]))
    for name in rng.sample(names, min(2, len(names))):
        if rng.random() < 0.6:
            near.remove(name)
    for i in range(rng.randint(0, 2)):
        near.add(message(2000 + rng.randrange(10**6) + i), rng.choice(FLAG_SETS[:5]))


def _contents(far: FarHandle, near: NearHandle) -> tuple[dict[str, Flags], dict[str, Flags]]:
    far.folder.open(None, readonly=True)
    listed = far.folder.list_all(sizes=False)
    bodies = {b.key: body_hash(b.data) for b in far.folder.fetch(sorted(listed))}
    far_side = {bodies[k]: m.flags for k, m in listed.items() if DELETED not in m.flags}
    near_side = {
        body_hash(near.folder.read(m)): m.flags
        for m in near.folder.scan()[0].values()
        if DELETED not in m.flags
    }
    return far_side, near_side


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_delta_path_plans_what_the_full_path_plans(
    far: FarHandle, near: NearHandle, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    policy = Policy()
    for i in range(10):
        far.put(message(i), rng.choice(FLAG_SETS[:5]))
    paths = Paths(far, near, tmp_path / "state.db")
    paths.run(policy)  # first sync: the full path
    for i in range(3):
        near.add(message(100 + i), rng.choice(FLAG_SETS[:5]))
    paths.run(policy)
    _change_both_sides(far, near, rng)
    paths.delta_runs = 0
    by_delta = _planned(paths.run(policy, dry=True))
    assert paths.delta_runs == 1
    by_full = _planned(paths.run(policy, dry=True, full=True))
    assert by_delta == by_full
    assert by_delta[0], "the changes made no plan: the test proves nothing"
    paths.run(policy)
    assert _planned(paths.run(policy, dry=True, full=True))[0] == []
    far_side, near_side = _contents(far, near)
    assert far_side == near_side


# --- a property: any situation, any policy ----------------------------------------------

POLICIES = [
    Policy(),
    Policy(pull=False),
    Policy(push=False),
    Policy(expunge=False),
    Policy(syncable=frozenset({SEEN, FLAGGED, DELETED})),
    Policy(far_deletes=False),
]
_flags = st.sampled_from(FLAG_SETS)
_index = st.integers(0, 30)
_situations = st.fixed_dictionaries(
    {
        "start": st.lists(_flags, max_size=8),
        "near_only": st.lists(_flags, max_size=3),
        "first": st.sampled_from(POLICIES),
        "then": st.sampled_from(POLICIES),
        "far_flags": st.lists(st.tuples(_index, _flags), max_size=4),
        "far_gone": st.lists(_index, max_size=3),
        "far_new": st.lists(_flags, max_size=2),
        "near_flags": st.lists(st.tuples(_index, _flags), max_size=4),
        "near_gone": st.lists(_index, max_size=3),
        "near_new": st.lists(_flags, max_size=2),
    }
)


def _build(s: dict[str, Any], db_path: Path) -> tuple[Paths, MemoryFarHandle, MemoryNearHandle]:
    far, near = MemoryFarHandle(), MemoryNearHandle()
    for i, flags in enumerate(s["start"]):
        far.put(message(i), flags)
    paths = Paths(far, near, db_path)
    paths.run(s["first"])
    for i, flags in enumerate(s["near_only"]):
        near.add(message(50 + i), flags)
    paths.run(s["first"])
    far_keys = sorted(far.store.contents("INBOX"))
    names = sorted(near.store.messages)
    for i, flags in s["far_flags"]:
        if far_keys:
            far.set_flags(far_keys[i % len(far_keys)], flags)
    for i in s["far_gone"]:
        if far_keys:
            far.expunge(far_keys[i % len(far_keys)])
    for i, flags in enumerate(s["far_new"]):
        far.put(message(70 + i), flags)
    for i, flags in s["near_flags"]:
        if names:
            near.set_flags(names[i % len(names)], flags)
    for i in s["near_gone"]:
        if names and names[i % len(names)] in near.store.messages:
            near.remove(names[i % len(names)])
    for i, flags in enumerate(s["near_new"]):
        near.add(message(90 + i), flags)
    return paths, far, near


def _state(paths: Paths) -> list[tuple[object, ...]]:
    db = StateDB(paths.db_path)
    try:
        folder = db.folder("INBOX")
        assert folder is not None
        return sorted(
            (str(p.far), str(p.near), sorted(p.flags), p.size) for p in db.pairs(folder.id)
        )
    finally:
        db.close()


def _memory_contents(far: MemoryFarHandle, near: MemoryNearHandle) -> tuple[object, object]:
    return (
        sorted((u, d, sorted(f)) for u, (d, f) in far.store.contents("INBOX").items()),
        sorted((n, m.data, sorted(m.flags)) for n, m in near.store.messages.items()),
    )


@pytest.fixture
def fresh_db(tmp_path: Path) -> Iterator[Callable[[], Path]]:
    counter = iter(range(10**9))
    yield lambda: tmp_path / f"state-{next(counter)}.db"


def _outcome(paths: Paths, policy: Policy, **kw: bool) -> object:
    """The run's plan (dry) or counts, or the one line of a refusal (the mass-delete
    brake), which either path must give alike."""
    try:
        return _planned(paths.run(policy, **kw))
    except FolderError as exc:
        return str(exc)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(s=_situations)
@example(  # both paths refuse: the near side lost all it had (the mass-delete brake)
    s={
        "start": [],
        "near_only": [frozenset(), frozenset()],
        "first": Policy(),
        "then": Policy(),
        "far_flags": [],
        "far_gone": [],
        "far_new": [],
        "near_flags": [],
        "near_gone": [0, 1],
        "near_new": [],
    }
)
def test_any_situation_same_plan_same_end(s: dict[str, Any], fresh_db: Callable[[], Path]) -> None:
    """Two identical situations, one synced through the delta path, the other through
    the full path: the same dry-run plan (or refusal), then the same stores and the
    same state."""
    by_delta, far_d, near_d = _build(s, fresh_db())
    by_full, far_f, near_f = _build(s, fresh_db())
    assert _memory_contents(far_d, near_d) == _memory_contents(far_f, near_f)
    by_delta.delta_runs = 0
    planned = _outcome(by_delta, s["then"], dry=True)
    unchanged = planned == ([], (0, 0, 0, 0, 0))
    assert by_delta.delta_runs == 1 or unchanged  # or the fast path took it
    kind = "refused" if isinstance(planned, str) else "unchanged" if unchanged else "plan"
    event(f"delta path: {by_delta.delta_runs}, outcome: {kind}")
    assert planned == _outcome(by_full, s["then"], dry=True, full=True)
    assert _outcome(by_delta, s["then"]) == _outcome(by_full, s["then"], full=True)
    assert _memory_contents(far_d, near_d) == _memory_contents(far_f, near_f)
    assert _state(by_delta) == _state(by_full)
