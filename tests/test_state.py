"""The state store: pairs, baselines and intents survive a reopen; files are private."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from syncd.engine.refusals import Refusal
from syncd.engine.state import StateDB
from syncd.model import Pair


def test_pairs_intents_and_modes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "acct.db"
    db = StateDB(path)
    f = db.ensure_folder("Projets/Été")
    assert db.ensure_folder("Projets/Été").id == f.id
    db.update_folder(f.id, uidvalidity=7, highestmodseq=42, uidnext=10)
    a, b = Pair(1, "n1", frozenset({"\\Seen"}), 100), Pair(2, "n2", frozenset(), 5)
    db.apply(f.id, add=[a, b])
    ids = db.add_intents(f.id, "upload", [(None, "n3", frozenset({"\\Flagged"}), 9)], uidnext=3)
    db.apply(f.id, rebase=[(a, frozenset({"\\Seen", "\\Flagged"}))], remove=[b])
    db.close()

    db = StateDB(path)
    f = db.folder("Projets/Été")
    assert f is not None and (f.uidvalidity, f.highestmodseq, f.uidnext) == (7, 42, 10)
    assert db.pairs(f.id) == [Pair(1, "n1", frozenset({"\\Seen", "\\Flagged"}), 100)]
    [intent] = db.intents(f.id)
    assert (intent.id, intent.kind, intent.name, intent.uidnext) == (ids[0], "upload", "n3", 3)
    db.apply(f.id, done_intents=ids, add=[Pair(None, "n9", frozenset())])  # a tombstone
    assert db.intents(f.id) == []
    assert Pair(None, "n9", frozenset()) in db.pairs(f.id)
    db.replace_pairs(f.id, [Pair(5, "n1", frozenset())], uidvalidity=8)
    assert db.pairs(f.id) == [Pair(5, "n1", frozenset())]
    db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_failed_batch_records_nothing(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "s.db")
    f = db.ensure_folder("INBOX")
    db.apply(f.id, add=[Pair(1, "a", frozenset())])
    # the same UID twice violates the unique index: the whole batch rolls back
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.apply(f.id, add=[Pair(2, "b", frozenset()), Pair(1, "c", frozenset())])
    assert db.pairs(f.id) == [Pair(1, "a", frozenset())]


def test_refusals_and_local_only_keywords_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = StateDB(path)
    inbox, sent = db.ensure_folder("INBOX"), db.ensure_folder("Sent")
    big = Refusal("n1", 1_500_000, "LIMIT", None, "[LIMIT] too large", 100.0)
    db.apply(inbox.id, refused=[big, Refusal("n2", 9, "TOOBIG", 5, "[TOOBIG]", 1.0)])
    db.apply(sent.id, refused=[Refusal("n1", 3, "LIMIT", None, "x", 2.0)])
    db.set_local_only_flags(inbox.id, {"$Label1", "work"})
    db.close()

    db = StateDB(path)
    assert db.refusals(inbox.id)["n1"] == big
    assert set(db.refusals()) == {"INBOX/n1", "INBOX/n2", "Sent/n1"}
    db.forget_refusals(inbox.id, ["n2"])
    assert set(db.refusals(inbox.id)) == {"n1"}
    db.forget_refusals(inbox.id)
    assert db.refusals(inbox.id) == {} and set(db.refusals(sent.id)) == {"n1"}
    db.forget_refusals(None)
    assert db.refusals() == {}
    assert db.local_only_flags(inbox.id) == {"$Label1", "work"}
    assert db.local_only_flags(sent.id) == frozenset()
    db.set_local_only_flags(inbox.id, ())
    assert db.local_only_flags(inbox.id) == frozenset()
