"""The folder life-cycle planner (:mod:`syncd.engine.folderplan`): one case per row --
renamed on either side, deleted on either side (empty, full, allowed), gone from both,
protected folders, ambiguous matches, and the order of the steps."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from syncd.engine.folderplan import (
    DeleteFar,
    DeleteNear,
    Forget,
    KeepNear,
    Known,
    Listings,
    Parts,
    RenameFar,
    RenameNear,
    Step,
    plan_folders,
)

A = Known("A", ("A",), 10)
AC = Known("A/c", ("A", "c"), 11)
B = Known("B", ("B",), 12)
INBOX = Known("INBOX", ("INBOX",), 1)


def listings(
    known: list[Known],
    far: list[Parts],
    near: list[Parts],
    *,
    far_uidvalidity: Mapping[Parts, int] | None = None,
    near_names: Mapping[Parts, frozenset[str]] | None = None,
    pair_names: Mapping[str, frozenset[str]] | None = None,
    far_counts: Mapping[str, int] | None = None,
    near_counts: Mapping[Parts, int] | None = None,
) -> Listings:
    return Listings(
        known=known,
        far={p: "/".join(p) for p in far},
        near=near,
        far_uidvalidity=far_uidvalidity or {},
        near_names=near_names or {},
        pair_names=pair_names or {},
        far_counts=far_counts or {},
        near_counts=near_counts or {},
    )


def names(*items: str) -> frozenset[str]:
    return frozenset(items)


CASES: list[tuple[str, Listings, dict[str, bool], list[Step]]] = [
    ("nothing gone", listings([A], [("A",)], [("A",)]), {}, []),
    (
        "renamed on the far side",
        listings([A], [("X",)], [("A",)], far_uidvalidity={("X",): 10}),
        {},
        [RenameNear(A, ("X",), "X")],
    ),
    (
        "renamed on the far side with its child, parent first",
        listings(
            [AC, A],
            [("X",), ("X", "c")],
            [("A",), ("A", "c")],
            far_uidvalidity={("X",): 10, ("X", "c"): 11},
        ),
        {},
        [RenameNear(A, ("X",), "X"), RenameNear(AC, ("X", "c"), "X/c")],
    ),
    (
        "a new far folder of another UIDVALIDITY is no rename",
        listings([A], [("X",)], [("A",)], far_uidvalidity={("X",): 99}, near_counts={("A",): 3}),
        {},
        [KeepNear(A, 3)],
    ),
    (
        "two far candidates of one UIDVALIDITY: no guess",
        listings(
            [A],
            [("X",), ("Y",)],
            [("A",)],
            far_uidvalidity={("X",): 10, ("Y",): 10},
            near_counts={("A",): 0},
        ),
        {},
        [DeleteNear(A, 0)],
    ),
    (
        "far rename onto a name that exists here: no rename",
        listings([A], [("X",)], [("A",), ("X",)], far_uidvalidity={("X",): 10}),
        {"allow_delete": True},
        [DeleteNear(A, 0)],
    ),
    (
        "renamed on the near side",
        listings(
            [A],
            [("A",)],
            [("X",)],
            near_names={("X",): names("m1", "m2", "new")},
            pair_names={"A": names("m1", "m2")},
            far_counts={"A": 2},
        ),
        {},
        [RenameFar(A, ("X",))],
    ),
    (
        "near candidate holding less than half of the pairs: no rename",
        listings(
            [A],
            [("A",)],
            [("X",)],
            near_names={("X",): names("m1")},
            pair_names={"A": names("m1", "m2", "m3")},
            far_counts={"A": 3},
        ),
        {},
        [],
    ),
    (
        "two near candidates equally good: no guess",
        listings(
            [A],
            [("A",)],
            [("X",), ("Y",)],
            near_names={("X",): names("m1"), ("Y",): names("m1")},
            pair_names={"A": names("m1")},
            far_counts={"A": 1},
        ),
        {},
        [],
    ),
    (
        "a folder without pairs cannot be recognised: deleted there when empty",
        listings([A], [("A",)], [("X",)], near_names={("X",): names()}, far_counts={"A": 0}),
        {},
        [DeleteFar(A, 0)],
    ),
    (
        "deleted on the far side, empty here",
        listings([A], [], [("A",)], near_counts={("A",): 0}),
        {},
        [DeleteNear(A, 0)],
    ),
    (
        "deleted on the far side, full here",
        listings([A], [], [("A",)], near_counts={("A",): 4}),
        {},
        [KeepNear(A, 4)],
    ),
    (
        "deleted on the far side, full here, allowed",
        listings([A], [], [("A",)], near_counts={("A",): 4}),
        {"allow_delete": True},
        [DeleteNear(A, 4)],
    ),
    (
        "deleted on the near side, full there: fetched again (nothing planned)",
        listings([A], [("A",)], [], far_counts={"A": 5}),
        {},
        [],
    ),
    (
        "deleted on the near side, full there, allowed",
        listings([A], [("A",)], [], far_counts={"A": 5}),
        {"allow_delete": True},
        [DeleteFar(A, 5)],
    ),
    (
        "deleted on the near side, empty there",
        listings([A], [("A",)], [], far_counts={"A": 0}),
        {},
        [DeleteFar(A, 0)],
    ),
    ("gone from both sides", listings([A], [], []), {}, [Forget(A)]),
    (
        "children deleted before their parent",
        listings([A, AC], [], [("A",), ("A", "c")]),
        {},
        [DeleteNear(AC, 0), DeleteNear(A, 0)],
    ),
    (
        "INBOX is never deleted nor renamed",
        listings(
            [INBOX],
            [("INBOX",)],
            [("X",)],
            far_counts={"INBOX": 0},
            near_names={("X",): names("m")},
            pair_names={"INBOX": names("m")},
        ),
        {"allow_delete": True},
        [],
    ),
    (
        "pull only: the far side is not changed",
        listings([A], [("A",)], [], far_counts={"A": 0}),
        {"push": False},
        [],
    ),
    (
        "push only: the near side is not changed",
        listings([A], [("X",)], [("A",)], far_uidvalidity={("X",): 10}),
        {"pull": False},
        [KeepNear(A, 0, deletable=False)],
    ),
    (
        "one rename on each side at once",
        listings(
            [A, B],
            [("A",), ("Y",)],
            [("X",), ("B",)],
            far_uidvalidity={("Y",): 12},
            near_names={("X",): names("m")},
            pair_names={"A": names("m")},
            far_counts={"A": 1},
        ),
        {},
        [RenameFar(A, ("X",)), RenameNear(B, ("Y",), "Y")],
    ),
]


@pytest.mark.parametrize(("case", "at", "kw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_plan(case: str, at: Listings, kw: dict[str, bool], expected: list[Step]) -> None:
    protected = {("INBOX",)}
    assert plan_folders(at, protected=protected, **kw) == expected


def test_steps_read_as_the_dry_run_prints_them() -> None:
    assert str(RenameNear(A, ("X", "y"), "X.y")) == "rename near folder A -> X/y"
    assert str(RenameFar(AC, ("X",))) == "rename far folder A/c -> X"
    assert str(DeleteNear(A, 3)) == "delete near folder A (3 messages)"
    assert str(DeleteFar(A, 0)) == "delete far folder A (0 messages)"
    assert str(KeepNear(A, 2)) == "keep near folder A (2 messages)"
    assert str(Forget(A)) == "forget folder A (gone on both sides)"
