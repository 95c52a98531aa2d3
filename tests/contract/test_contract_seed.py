"""The first sync seeded from another tool's record (:mod:`syncd.engine.seed`), on the
memory stores: the tool's pairs and flags as the baseline, its local deletions
reaching the far side, content pairing that ignores X-TUID when the UIDVALIDITY
differs -- and no far body fetched for any of it."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from contract_support import message

from syncd.engine.cycle import FolderSync
from syncd.engine.options import RunOptions
from syncd.engine.reconcile import Policy
from syncd.engine.report import FolderReport
from syncd.engine.seed import Seed, gone_name
from syncd.engine.state import StateDB
from syncd.model import FLAGGED, SEEN, MsgKey, Pair, intern_flags
from syncd.stores.base import FarBody
from syncd.stores.memory import MemoryFar, MemoryFarFolder, MemoryNear

LOG = logging.LoggerAdapter(logging.getLogger("syncd.contract.seed"), {})
S = intern_flags(frozenset({SEEN}))
SF = intern_flags(frozenset({SEEN, FLAGGED}))


class Counting:
    """A far folder that counts the bodies fetched through it."""

    def __init__(self, inner: MemoryFarFolder) -> None:
        self.inner = inner
        self.fetched: list[MsgKey] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def fetch(
        self, keys: Sequence[MsgKey], sizes: Mapping[MsgKey, int] | None = None
    ) -> Iterator[FarBody]:
        self.fetched += list(keys)
        return self.inner.fetch(keys, sizes)


def run(
    far: Counting, near: MemoryNear, db_path: Path, seed: Seed | None, *, dry: bool = False
) -> FolderReport:
    db = StateDB(db_path)
    try:
        return FolderSync(
            far=far,  # type: ignore[arg-type]  # a counting proxy of a FarFolder
            near=near,
            db=db,
            policy=Policy(),
            options=RunOptions(dry_run=dry),
            log=LOG,
            seed=seed,
        ).run()
    finally:
        db.close()


def tuid(data: bytes, n: int) -> bytes:
    """``data`` as mbsync stores it: an X-TUID line added to the header."""
    return data.replace(b"\r\n\r\n", f"\r\nX-TUID: tuid{n:08d}\r\n\r\n".encode(), 1)


def adopted_world(far_store: MemoryFar) -> tuple[Counting, MemoryNear, list[Pair]]:
    """Four messages the tool synced (files with X-TUID, its flags \\Seen), then: a
    local \\Flagged on 1, a far \\Flagged on 2, message 3's file deleted, message 4
    expunged on the server."""
    far = Counting(far_store.folder("INBOX"))
    near = MemoryNear()
    pairs = []
    for n in (1, 2, 3, 4):
        uid = far_store.other_append("INBOX", message(n), [SEEN])
        name = near.other_add(tuid(message(n), n), [SEEN], name=f"file{n},U={n}")
        pairs.append(Pair(uid, name, S))
    near.other_set_flags("file1,U=1", [SEEN, FLAGGED])
    far_store.other_set_flags("INBOX", pairs[1].far, [SEEN, FLAGGED])  # type: ignore[arg-type]
    near.other_delete("file3,U=3")
    far_store.other_expunge("INBOX", pairs[3].far)  # type: ignore[arg-type]
    return far, near, pairs


def test_an_exact_seed_propagates_the_changes_since_the_tools_last_run(tmp_path: Path) -> None:
    far_store = MemoryFar()
    far, near, pairs = adopted_world(far_store)
    uidvalidity = far_store.box("INBOX").uidvalidity
    seed = Seed(
        "mbsync",
        uidvalidity,
        pairs=(pairs[0], pairs[1], pairs[3]),
        gone=((pairs[2].far, S),),  # type: ignore[arg-type]
    )
    report = run(far, near, tmp_path / "state.db", seed)
    assert (report.downloaded, report.uploaded) == (0, 0)
    assert (report.deleted_far, report.deleted_near) == (1, 1)
    assert far.fetched == []
    contents = far_store.contents("INBOX")
    assert {u: f for u, (_, f) in contents.items()} == {pairs[0].far: SF, pairs[1].far: SF}
    assert {n: m.flags for n, m in near.messages.items()} == {"file1,U=1": SF, "file2,U=2": SF}
    assert report.adoption[0].startswith(f"3 paired from mbsync's state (UIDVALIDITY {uidvalidity}")
    # the next run has nothing left to do
    again = run(far, near, tmp_path / "state.db", seed)
    assert not again.changed() and again.adoption == []


def test_a_dry_run_seeds_nothing(tmp_path: Path) -> None:
    far_store = MemoryFar()
    far, near, pairs = adopted_world(far_store)
    seed = Seed("mbsync", far_store.box("INBOX").uidvalidity, pairs=tuple(pairs[:2]))
    report = run(far, near, tmp_path / "state.db", seed, dry=True)
    assert report.adoption and report.planned
    db = StateDB(tmp_path / "state.db")
    try:
        st = db.folder("INBOX")
        assert st is not None and st.uidvalidity is None and db.count_pairs(st.id) == 0
    finally:
        db.close()


def test_a_seed_for_another_uidvalidity_pairs_by_content_ignoring_x_tuid(tmp_path: Path) -> None:
    far_store = MemoryFar()
    far = Counting(far_store.folder("INBOX"))
    near = MemoryNear()
    # 1: the tool downloaded it (X-TUID in the file only); 2: the tool uploaded it
    # (X-TUID on the server copy too, another TUID than the file's); 3: new locally.
    far_store.other_append("INBOX", message(1), [SEEN])
    far_store.other_append("INBOX", tuid(message(2), 99), [SEEN])
    near.other_add(tuid(message(1), 1), [SEEN], name="a,U=1")
    near.other_add(tuid(message(2), 2), [SEEN], name="b,U=2")
    near.other_add(message(3), [SEEN], name="c")
    seed = Seed("mbsync", 12345, pairs=(Pair(1, "a,U=1", S), Pair(2, "b,U=2", S)))
    report = run(far, near, tmp_path / "state.db", seed)
    assert (report.downloaded, report.uploaded) == (0, 1), report.adoption
    assert far.fetched == []  # the sizes less the added headers told them apart
    assert any("is for UIDVALIDITY 12345" in line for line in report.adoption)
    assert "  not paired: local c: no server message has its Message-ID" in "\n".join(
        report.adoption
    )
    assert len(far_store.contents("INBOX")) == 3  # 2 paired + 1 uploaded


def test_the_gone_name_is_no_maildir_name() -> None:
    assert gone_name("mbsync", 7).startswith(".")  # hidden: never a message file


def test_a_new_folder_without_local_mail_nor_record_is_an_ordinary_first_sync(
    tmp_path: Path,
) -> None:
    far_store = MemoryFar()
    far = Counting(far_store.folder("INBOX"))
    far_store.other_append("INBOX", message(1), [SEEN])
    report = run(far, MemoryNear(), tmp_path / "state.db", Seed("mbsync", None, notes=("x",)))
    assert report.adoption == [] and report.downloaded == 1
