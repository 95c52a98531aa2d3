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


_V1_SCHEMA = """
CREATE TABLE folders (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uidvalidity INTEGER,
    highestmodseq INTEGER, uidnext INTEGER, near_signature TEXT, last_sync REAL,
    last_error TEXT, far_count INTEGER, near_count INTEGER);
CREATE TABLE pairs (folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid INTEGER, name TEXT, flags TEXT NOT NULL, size INTEGER);
CREATE UNIQUE INDEX pairs_uid ON pairs(folder_id, uid) WHERE uid IS NOT NULL;
CREATE UNIQUE INDEX pairs_name ON pairs(folder_id, name) WHERE name IS NOT NULL;
CREATE TABLE intents (id INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('download', 'upload')), uid INTEGER, name TEXT,
    flags TEXT NOT NULL, size INTEGER, uidnext INTEGER, created REAL NOT NULL);
INSERT INTO folders(id, name, uidvalidity) VALUES (1, 'INBOX', 7);
INSERT INTO pairs VALUES (1, 5, 'a', '\\Seen', 10);
INSERT INTO intents VALUES (1, 1, 'download', 6, 'b', '', 11, NULL, 0);
PRAGMA user_version=1;
"""


def test_version_1_database_is_migrated_and_keeps_string_keys(tmp_path: Path) -> None:
    """Version 1 declared far keys INTEGER: a numeric-looking POP3 UIDL came back as
    an int.  The migration keeps the IMAP pairs and intents and stores keys as given."""
    path = tmp_path / "acct.db"
    old = sqlite3.connect(path)
    old.executescript(_V1_SCHEMA)
    old.commit()
    old.close()
    db = StateDB(path)
    st = db.folder("INBOX")
    assert st is not None and st.uidvalidity == 7
    assert db.pairs(st.id) == [Pair(5, "a", frozenset({"\\Seen"}), 10)]
    assert [(i.kind, i.uid, i.name) for i in db.intents(st.id)] == [("download", 6, "b")]
    db.apply(st.id, add=[Pair("000123", "c", frozenset(), 3), Pair("42", "d", frozenset(), 4)])
    db.add_intents(st.id, "delete", [("77", None, frozenset(), None)])
    db.close()
    db = StateDB(path)
    keys = {p.far for p in db.pairs(st.id)}
    assert keys == {5, "000123", "42"}
    assert [i.uid for i in db.intents(st.id)] == [6, "77"]
    db.note_stored(st.id, ["42"], 100.0)
    db.note_stored(st.id, ["42", "000123"], 200.0)
    assert db.stored_times(st.id) == {"42": 100.0, "000123": 200.0}
    assert db._db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


def test_a_renamed_folder_keeps_its_pairs_and_a_forgotten_one_loses_them(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "a.db")
    old = db.ensure_folder("Lists")
    db.update_folder(old.id, uidvalidity=7, highestmodseq=3)
    db.apply(old.id, add=[Pair(1, "n1", frozenset({"\\Seen"}), 10)])
    db.add_intents(old.id, "download", [(2, "n2", frozenset(), 5)])
    db.ensure_folder("Old")  # a row never synced under the new name is replaced
    db.rename_folder("Lists", "Old")
    assert db.folder("Lists") is None
    new = db.folder("Old")
    assert new is not None and (new.id, new.uidvalidity, new.highestmodseq) == (old.id, 7, 3)
    assert db.pairs(new.id) == [Pair(1, "n1", frozenset({"\\Seen"}), 10)]
    assert len(db.intents(new.id)) == 1
    synced = db.ensure_folder("Synced")
    db.update_folder(synced.id, uidvalidity=9)
    with pytest.raises(ValueError, match="already in the state"):
        db.rename_folder("Old", "Synced")
    assert db.folder("Old") is not None  # the transaction changed nothing
    db.forget_folder("Old")
    assert db.folder("Old") is None and db.pairs(new.id) == [] and db.intents(new.id) == []
    db.close()
