"""The engine on the memory stores: every row of the presence x flags matrix run
end to end, a crash at every durable step, and a UIDVALIDITY change -- no server,
no disk but the state database, milliseconds per case."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_support import message
from test_reconcile import MATRIX

from syncd import crashpoints
from syncd.engine.cycle import FolderSync
from syncd.engine.options import RunOptions
from syncd.engine.reconcile import Policy
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.errors import FolderError
from syncd.message import body_hash
from syncd.model import DELETED, FLAGGED, SEEN, Flags, Pair
from syncd.stores.base import Capability
from syncd.stores.memory import FAR_DEFAULT, MemoryFar, MemoryNear

LOG = logging.LoggerAdapter(logging.getLogger("syncd.contract.engine"), {})
BOTH = Policy()
VARIANTS = {
    "all": FAR_DEFAULT,
    "no-modseq": FAR_DEFAULT & ~Capability.MODSEQ,
    "no-uidplus": FAR_DEFAULT & ~Capability.EXPUNGE,
    "no-move": FAR_DEFAULT & ~Capability.MOVE,
}


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """The state database on a memory file system where there is one: these cases
    test the engine, not the disk (SQLite's fsyncs would be most of their time)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(dir=shm, prefix="syncd-contract-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sync(
    far: MemoryFar,
    near: MemoryNear,
    db_path: Path,
    policy: Policy = BOTH,
    *,
    dry: bool = False,
    trash: str | None = None,
) -> FolderReport:
    db = StateDB(db_path)
    try:
        return FolderSync(
            far=far.folder("INBOX"),
            near=near,
            db=db,
            policy=policy,
            options=RunOptions(dry_run=dry),
            log=LOG,
            trash=trash,
        ).run()
    finally:
        db.close()


def planned(far: MemoryFar, near: MemoryNear, db_path: Path, policy: Policy = BOTH) -> list[str]:
    """The dry run's steps, each as its ``str`` (the readable line ends ``[step]``)."""
    lines = sync(far, near, db_path, policy, dry=True).planned
    assert all(line.endswith("]") and " [" in line for line in lines), lines
    return [line[line.rindex(" [") + 2 : -1] for line in lines]


def _seed(db_path: Path, far: MemoryFar, pairs: list[Pair]) -> None:
    db = StateDB(db_path)
    try:
        st = db.ensure_folder("INBOX")
        db.replace_pairs(st.id, pairs, uidvalidity=far.box("INBOX").uidvalidity)
    finally:
        db.close()


@pytest.mark.parametrize("caps", list(VARIANTS.values()), ids=list(VARIANTS))
@pytest.mark.parametrize(
    ("pair", "far_flags", "near_flags", "policy", "expected"),
    [row[1:] for row in MATRIX],
    ids=[row[0] for row in MATRIX],
)
def test_matrix_end_to_end(
    tmp_path: Path,
    caps: Capability,
    pair: Pair | None,
    far_flags: Flags | None,
    near_flags: Flags | None,
    policy: Policy,
    expected: list[object],
) -> None:
    """The plan the engine makes from real stores is the pure matrix's plan; carrying
    it out converges (the next plan is empty)."""
    far, near, db_path = MemoryFar(caps), MemoryNear(), tmp_path / "state.db"
    data = message(1)
    uid = far.other_append("INBOX", data, far_flags or ())
    if far_flags is None:
        far.other_expunge("INBOX", uid)
    if near_flags is not None:
        near.other_add(data, near_flags, name="n1")
    _seed(db_path, far, [pair] if pair is not None else [])
    assert planned(far, near, db_path, policy) == [str(a) for a in expected]
    sync(far, near, db_path, policy)
    assert planned(far, near, db_path, policy) == []


def _bodies(far: MemoryFar, near: MemoryNear) -> tuple[Counter[str], Counter[str]]:
    far_side = Counter(
        body_hash(d) for d, flags in far.contents("INBOX").values() if DELETED not in flags
    )
    near_side = Counter(body_hash(m.data) for m in near.messages.values())
    return far_side, near_side


def _flags(far: MemoryFar, near: MemoryNear) -> tuple[dict[str, Flags], dict[str, Flags]]:
    far_side = {
        body_hash(d): flags for d, flags in far.contents("INBOX").values() if DELETED not in flags
    }
    near_side = {body_hash(m.data): m.flags for m in near.messages.values()}
    return far_side, near_side


def _scenario(tmp_path: Path, caps: Capability) -> tuple[MemoryFar, MemoryNear, Path]:
    """Two paired messages changed on both sides, one deleted on each side, two new
    on each side: every kind of step in one run."""
    far, near, db_path = MemoryFar(caps), MemoryNear(), tmp_path / "state.db"
    keys = [far.other_append("INBOX", message(i), [SEEN]) for i in range(4)]
    sync(far, near, db_path)
    far.other_set_flags("INBOX", keys[0], [SEEN, FLAGGED])
    by_hash = {body_hash(m.data): n for n, m in near.messages.items()}
    near.other_set_flags(by_hash[body_hash(message(1))], [])
    far.other_expunge("INBOX", keys[2])
    near.other_delete(by_hash[body_hash(message(3))])
    for i in (10, 11):
        far.other_append("INBOX", message(i))
    for i in (20, 21):
        near.other_add(message(i), [SEEN])
    return far, near, db_path


class _Crash(BaseException):
    """Stands in for kill -9 (a BaseException: nothing in the engine catches it)."""


def _steps(monkeypatch: pytest.MonkeyPatch, crash_at: int | None) -> list[str]:
    reached: list[str] = []

    def step(name: str) -> None:
        reached.append(name)
        if len(reached) == crash_at:
            raise _Crash(name)

    monkeypatch.setattr(crashpoints, "step", step)
    return reached


@pytest.mark.parametrize("caps", list(VARIANTS.values()), ids=list(VARIANTS))
def test_a_crash_at_any_step_loses_nothing_and_copies_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caps: Capability
) -> None:
    far, near, db_path = _scenario(tmp_path / "count", caps)
    with monkeypatch.context() as m:
        names = _steps(m, None)
        sync(far, near, db_path)
    want_far, want_near = _bodies(far, near)
    assert want_far == want_near and max(want_far.values()) == 1
    assert len(names) >= 8, names
    for n in range(1, len(names) + 1):
        case = tmp_path / f"crash-{n}"
        far, near, db_path = _scenario(case, caps)
        with monkeypatch.context() as m:
            _steps(m, n)
            with pytest.raises(_Crash):
                sync(far, near, db_path)
        sync(far, near, db_path)
        assert planned(far, near, db_path) == [], names[n - 1]
        assert _bodies(far, near) == (want_far, want_near), names[n - 1]
        far_flags, near_flags = _flags(far, near)
        assert far_flags == near_flags, names[n - 1]


def test_uidvalidity_change_repairs_without_copying(tmp_path: Path) -> None:
    far, near, db_path = MemoryFar(), MemoryNear(), tmp_path / "state.db"
    for i in range(5):
        far.other_append("INBOX", message(i), [SEEN])
    assert sync(far, near, db_path).downloaded == 5
    far.change_uidvalidity("INBOX")
    report = sync(far, near, db_path)
    assert (report.downloaded, report.uploaded, report.deleted_far, report.deleted_near) == (
        0,
        0,
        0,
        0,
    )
    assert planned(far, near, db_path) == []
    # The new keys are the ones paired: a flag set on the server now reaches the Maildir.
    uid = max(far.contents("INBOX"))
    far.other_set_flags("INBOX", uid, [SEEN, FLAGGED])
    assert sync(far, near, db_path).flagged == 1
    far_flags, near_flags = _flags(far, near)
    assert far_flags == near_flags
    assert _bodies(far, near)[0] == _bodies(far, near)[1]


def test_uidvalidity_change_with_a_replaced_mailbox_changes_nothing(tmp_path: Path) -> None:
    far, near, db_path = MemoryFar(), MemoryNear(), tmp_path / "state.db"
    for i in range(5):
        far.other_append("INBOX", message(i))
    sync(far, near, db_path)
    far.change_uidvalidity("INBOX")
    for uid in list(far.contents("INBOX"))[:3]:
        far.other_expunge("INBOX", uid)
    with pytest.raises(FolderError, match="UIDVALIDITY changed"):
        sync(far, near, db_path)
    assert len(near.messages) == 5
    assert len(far.contents("INBOX")) == 2


def test_deletions_go_to_the_trash_when_asked(tmp_path: Path) -> None:
    far, near, db_path = MemoryFar(FAR_DEFAULT & ~Capability.MOVE), MemoryNear(), tmp_path / "s.db"
    for i in range(3):
        far.other_append("INBOX", message(i))
    sync(far, near, db_path)
    near.other_delete(next(iter(near.messages)))
    assert sync(far, near, db_path, trash="Trash").deleted_far == 1
    assert len(far.contents("Trash")) == 1
    assert len(far.contents("INBOX")) == 2


def test_a_refused_append_is_held_back(tmp_path: Path) -> None:
    far, near, db_path = MemoryFar(append_limit=2000), MemoryNear(), tmp_path / "s.db"
    near.other_add(message(1, size_pad=5000))
    near.other_add(message(2))
    report = sync(far, near, db_path)
    assert (report.uploaded, report.failed) == (1, 1)
    assert sync(far, near, db_path).held == 1
