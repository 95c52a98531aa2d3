"""Moves between folders on the memory stores: found by content only, one to one,
made on the other side, flags merged three-way, and a crash at every step of a move
(the engine's intent log) neither loses nor doubles a message."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
from contract_support import message

from syncd import crashpoints
from syncd.engine.cycle import FolderSync
from syncd.engine.moves import (
    Hints,
    Move,
    MoveFolder,
    find_moves,
    gather,
    one_to_one,
    worth_gathering,
)
from syncd.engine.options import RunOptions
from syncd.engine.reconcile import Policy
from syncd.engine.relocate import carry_out, resolve_moves
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.message import body_hash
from syncd.model import ANSWERED, FLAGGED, SEEN, Side
from syncd.stores.base import Capability
from syncd.stores.memory import FAR_DEFAULT, NEAR_DEFAULT, MemoryFar, MemoryNear

LOG = logging.LoggerAdapter(logging.getLogger("syncd.contract.moves"), {})
FOLDERS = ("INBOX", "Archive")
VARIANTS = {"move": FAR_DEFAULT, "copy-expunge": FAR_DEFAULT & ~Capability.MOVE}


def test_one_to_one_takes_only_unambiguous_pairs_across_folders() -> None:
    sources = {"a": [(1, "s1")], "b": [(1, "s2")], "c": [(1, "s3"), (2, "s4")], "d": [(1, "s5")]}
    targets = {"a": [(2, "t1")], "b": [(1, "t2")], "c": [(3, "t3")], "d": [(2, "t4"), (3, "t5")]}
    # b: the same folder (a copy inside it); c: two sources; d: two targets
    assert one_to_one(sources, targets) == [(1, "s1", 2, "t1")]


@pytest.mark.parametrize(
    ("found", "gathered"),
    [
        # (near_gone, near_new, far_gone, far_new) per folder
        ({1: (1, 0, 0, 0), 2: (0, 1, 0, 0), 3: (0, 0, 0, 0)}, {1, 2}),  # a local move
        ({1: (1, 0, 0, 0), 2: (1, 0, 0, 0)}, set()),  # local deletions only: no move
        ({1: (1, 1, 0, 0), 2: (0, 0, 0, 0)}, set()),  # gone and new in one folder only
        ({1: (0, 0, 1, 0), 2: (0, 0, 0, 1), 3: (0, 0, 0, 1), 4: (0, 0, 0, 0)}, {1, 2, 3}),
        ({1: (0, 0, 1, 1), 2: (0, 0, 0, 0)}, set()),  # gone and new in the same folder
        ({1: (1, 0, 1, 0), 2: (0, 1, 0, 1)}, {1, 2}),  # moved on both sides
        ({1: (0, 0, 0, 0), 2: (0, 0, 0, 0)}, set()),  # flag changes only
    ],
)
def test_only_folders_that_can_take_part_are_gathered(
    found: dict[int, tuple[int, int, int, int]], gathered: set[int]
) -> None:
    hints = {i: Hints(*(bool(x) for x in h)) for i, h in found.items()}
    assert worth_gathering(hints) == gathered


class Account:
    """Two folders of one account on the memory stores, with one state database."""

    def __init__(self, tmp_path: Path, caps: Capability = FAR_DEFAULT) -> None:
        self.far = MemoryFar(caps)
        self.far.box("Archive")
        self.near = {n: MemoryNear(NEAR_DEFAULT | Capability.MOVE, name=n) for n in FOLDERS}
        self.db_path = tmp_path / "state.db"

    def sync(self, *, dry: bool = False) -> tuple[list[Move], dict[str, FolderReport]]:
        """The account's run: settle, find and make moves, then sync each folder."""
        db = StateDB(self.db_path)
        try:
            folders = {}
            for name in FOLDERS:
                st = db.folder(name)
                if st is not None:
                    folders[st.id] = MoveFolder(
                        far=self.far.folder(name), near=self.near[name], policy=Policy(),
                        state=st, log=LOG,
                    )  # fmt: skip
            if not dry:
                resolve_moves(db, folders, LOG)
            moves = find_moves([f for f in folders.values() if gather(f, db, dry_run=dry)], LOG)
            if not dry:
                carry_out(db, moves, folders, LOG)
            reports = {
                name: FolderSync(
                    far=self.far.folder(name), near=self.near[name], db=db, policy=Policy(),
                    options=RunOptions(dry_run=dry), log=LOG,
                ).run()
                for name in FOLDERS
            }  # fmt: skip
            return moves, reports
        finally:
            db.close()

    def far_bodies(self, name: str) -> Counter[str]:
        return Counter(body_hash(d) for d, _ in self.far.contents(name).values())

    def near_bodies(self, name: str) -> Counter[str]:
        return Counter(body_hash(m.data) for m in self.near[name].messages.values())

    def name_of(self, folder: str, n: int) -> str:
        (name,) = [k for k, m in self.near[folder].messages.items() if m.data == message(n)]
        return name

    def uid_of(self, folder: str, n: int) -> int:
        (uid,) = [k for k, (d, _) in self.far.contents(folder).items() if d == message(n)]
        return uid

    def move_here(self, n: int, src: str = "INBOX", dst: str = "Archive") -> None:
        name = self.name_of(src, n)
        msg = self.near[src].messages[name]
        self.near[src].other_delete(name)
        self.near[dst].other_add(msg.data, msg.flags, name=name)

    def move_on_server(self, n: int, src: str = "INBOX", dst: str = "Archive") -> None:
        self.far.folder(src).move_to([self.uid_of(src, n)], dst)

    def same_both_sides(self) -> dict[str, Counter[str]]:
        for name in FOLDERS:
            assert self.far_bodies(name) == self.near_bodies(name), name
            assert max(self.far_bodies(name).values(), default=1) == 1, name
        return {name: self.far_bodies(name) for name in FOLDERS}


def _filled(tmp_path: Path, caps: Capability = FAR_DEFAULT, n: int = 4) -> Account:
    account = Account(tmp_path, caps)
    for i in range(n):
        account.far.other_append("INBOX", message(i), [SEEN])
    account.sync()
    return account


def _quiet(reports: dict[str, FolderReport]) -> bool:
    return all(not (r.uploaded or r.downloaded or r.deleted_far or r.deleted_near)
               for r in reports.values())  # fmt: skip


@pytest.mark.parametrize("caps", list(VARIANTS.values()), ids=list(VARIANTS))
def test_a_move_here_is_made_on_the_server(tmp_path: Path, caps: Capability) -> None:
    account = _filled(tmp_path, caps)
    account.move_here(0)
    moves, reports = account.sync()
    assert [(m.side, m.key) for m in moves] == [(Side.FAR, account.name_of("Archive", 0))]
    assert _quiet(reports), reports
    mids = account.same_both_sides()
    assert mids["Archive"] == Counter([body_hash(message(0))])
    assert _quiet(account.sync()[1])


@pytest.mark.parametrize("caps", list(VARIANTS.values()), ids=list(VARIANTS))
def test_a_move_on_the_server_is_made_here(tmp_path: Path, caps: Capability) -> None:
    account = _filled(tmp_path, caps)
    name = account.name_of("INBOX", 1)
    account.move_on_server(1)
    moves, reports = account.sync()
    assert [m.side for m in moves] == [Side.NEAR]
    assert _quiet(reports), reports
    assert account.name_of("Archive", 1) == name
    account.same_both_sides()


@pytest.mark.parametrize("caps", list(VARIANTS.values()), ids=list(VARIANTS))
def test_a_message_moved_on_both_sides_is_paired_not_copied_twice(
    tmp_path: Path, caps: Capability
) -> None:
    account = _filled(tmp_path, caps)
    account.move_here(2)
    account.move_on_server(2)
    moves, reports = account.sync()
    assert [(m.side, m.also) for m in moves] == [(None, account.name_of("Archive", 2))]
    assert _quiet(reports), reports
    assert account.same_both_sides()["Archive"] == Counter([body_hash(message(2))])
    assert _quiet(account.sync()[1])


def test_without_uidplus_a_move_here_is_copied_as_before(tmp_path: Path) -> None:
    account = _filled(tmp_path, FAR_DEFAULT & ~Capability.EXPUNGE)
    account.move_here(0)
    moves, reports = account.sync()
    assert moves == []
    # copied and deleted as before (the original stays \Deleted: no exact expunge)
    assert reports["Archive"].uploaded == 1 and reports["INBOX"].deleted_far == 1


def test_a_message_without_message_id_is_not_moved(tmp_path: Path) -> None:
    account = Account(tmp_path)
    raw = b"From: a@b\r\nSubject: no id\r\n\r\nbody\r\n"
    account.far.other_append("INBOX", raw, [SEEN])
    account.sync()
    uid = next(iter(account.far.contents("INBOX")))
    account.far.folder("INBOX").move_to([uid], "Archive")
    moves, reports = account.sync()
    assert moves == [] and reports["Archive"].downloaded == 1


def test_a_copy_with_the_original_left_is_no_move(tmp_path: Path) -> None:
    account = _filled(tmp_path)
    account.near["Archive"].other_add(message(2), [SEEN])
    moves, reports = account.sync()
    assert moves == [] and reports["Archive"].uploaded == 1


def test_flags_changed_during_a_move_are_merged(tmp_path: Path) -> None:
    account = _filled(tmp_path)
    account.move_here(0)
    account.near["Archive"].other_set_flags(account.name_of("Archive", 0), [SEEN, FLAGGED])
    account.far.other_set_flags("INBOX", account.uid_of("INBOX", 0), [SEEN, ANSWERED])
    account.move_on_server(1)
    account.near["INBOX"].other_set_flags(account.name_of("INBOX", 1), [FLAGGED])  # -\Seen
    moves, reports = account.sync()
    assert len(moves) == 2 and _quiet(reports)
    want = {0: {SEEN, FLAGGED, ANSWERED}, 1: {FLAGGED}}
    for n, flags in want.items():
        assert account.far.contents("Archive")[account.uid_of("Archive", n)][1] == flags
        assert account.near["Archive"].messages[account.name_of("Archive", n)].flags == flags


def test_a_dry_run_finds_the_moves_and_changes_nothing(tmp_path: Path) -> None:
    account = _filled(tmp_path)
    account.move_here(0)
    account.move_on_server(1)
    before = account.far.contents("Archive"), dict(account.near["INBOX"].messages)
    moves, _ = account.sync(dry=True)
    assert sorted(m.side.value for m in moves) == ["far", "near"]
    assert (account.far.contents("Archive"), dict(account.near["INBOX"].messages)) == before


class _Crash(BaseException):
    """Stands in for kill -9 (a BaseException: nothing in the engine catches it)."""


def _scenario(tmp_path: Path, caps: Capability) -> Account:
    account = _filled(tmp_path, caps, n=6)
    account.move_here(0)
    account.move_here(1)
    account.move_on_server(4)
    account.move_on_server(5)
    return account


@pytest.mark.parametrize("caps", list(VARIANTS.values()), ids=list(VARIANTS))
def test_a_crash_at_every_step_of_a_move(
    tmp_path: Path, caps: Capability, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[str] = []
    crash_at: list[int] = [0]

    def step(name: str) -> None:
        reached.append(name)
        if len(reached) == crash_at[0]:
            raise _Crash(name)

    monkeypatch.setattr(crashpoints, "step", step)
    reference = _scenario(tmp_path / "ref", caps)
    reached.clear()
    reference.sync()
    steps = [s for s in reached if s.startswith("move-")]
    assert len(steps) == 7, reached
    expected = reference.same_both_sides()
    for n in range(1, len(steps) + 1):
        account = _scenario(tmp_path / f"n{n}", caps)
        reached.clear()
        crash_at[0] = n
        with pytest.raises(_Crash):
            account.sync()
        crash_at[0] = 0
        _, reports = account.sync()
        assert _quiet(reports), (n, steps[n - 1], reports)
        assert account.same_both_sides() == expected, (n, steps[n - 1])
