"""The tag sync's SQLite file: baselines, ids to retry, the bookmark."""

from __future__ import annotations

import stat
from pathlib import Path

from syncd_notmuch_state import Agreed, Bookmark, TagState


def test_a_run_is_recorded_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "work.notmuch.db"
    state = TagState(path)
    assert (state.bookmark(), state.pending(), state.agreed(["a"])) == (None, [], {})
    state.save(
        {
            "a": Agreed(frozenset({"\\Seen", "work"}), frozenset({"1.h", "2.h"})),
            "b": Agreed(frozenset()),
        },
        ["c"],
        Bookmark("uuid-1", 7, 9),
    )
    state.close()

    state = TagState(path)
    assert state.bookmark() == Bookmark("uuid-1", 7, 9)
    assert state.pending() == ["c"]
    assert state.agreed(["a", "b", "c"]) == {
        "a": Agreed(frozenset({"\\Seen", "work"}), frozenset({"1.h", "2.h"})),
        "b": Agreed(frozenset()),
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state.close()


def test_pending_is_replaced_and_forgotten_ids_dropped(tmp_path: Path) -> None:
    state = TagState(tmp_path / "s.db")
    state.save(
        {"a": Agreed(frozenset({"x"})), "b": Agreed(frozenset({"y"}))}, ["c"], Bookmark("u", 1, 1)
    )
    state.save({}, ["d"], Bookmark("u", 2, 2), forget=["a"])
    assert state.pending() == ["d"]
    assert state.agreed(["a", "b"]) == {"b": Agreed(frozenset({"y"}))}
    state.close()


def test_a_complete_run_drops_baselines_of_messages_that_are_gone(tmp_path: Path) -> None:
    state = TagState(tmp_path / "s.db")
    state.save({k: Agreed(frozenset({k})) for k in "abc"}, [], Bookmark("u", 1, 1))
    state.save({"a": Agreed(frozenset({"z"}))}, ["b"], Bookmark("u2", 5, 5), complete=True)
    # b could not be finished: its old baseline is kept for the retry; c is gone.
    assert state.agreed("abc") == {"a": Agreed(frozenset({"z"})), "b": Agreed(frozenset({"b"}))}
    assert state.bookmark() == Bookmark("u2", 5, 5)
    state.close()


def test_many_ids_are_read_in_chunks(tmp_path: Path) -> None:
    state = TagState(tmp_path / "s.db")
    ids = [f"m{i}@x" for i in range(1234)]
    state.save({k: Agreed(frozenset({"k"})) for k in ids}, [], Bookmark("u", 1, 1))
    assert len(state.agreed(ids)) == 1234
    state.close()
