"""One tag sync run (``sync_tags``) on a real notmuch database over a Maildir
built by hand: the cases a sync against Dovecot does not reach easily."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from syncd_notmuch_cli import Notmuch, id_query
from syncd_notmuch_state import TagState
from syncd_notmuch_tagmap import TagMap
from syncd_notmuch_tags import TagRun, sync_tags

from syncd.api import AccountInfo, MaildirFiles


class World:
    """A notmuch database at ``root`` whose account Maildir is ``root/acct``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.maildir = root / "acct"
        self.state = TagState(root / "state" / "acct.notmuch.db")
        self.account = AccountInfo(
            "acct", "imap.example.org", "me", self.maildir, "maildir++", None, {}
        )

    def deliver(self, folder: str, name: str, mid: str, letters: str = "S") -> Path:
        base = self.maildir / folder if folder != "INBOX" else self.maildir
        if folder.startswith("/"):
            base = self.root / folder[1:]
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        path = base / "cur" / f"{name}:2,{letters}"
        path.write_text(f"From: a@example.org\nMessage-ID: <{mid}>\n\nbody\n")
        return path

    def run(self, tagmap: TagMap | None = None) -> TagRun:
        nm = Notmuch()
        nm.new()
        return sync_tags(
            self.account, tagmap or TagMap.from_settings({}), nm, self.state, fsync=False
        )

    def tags(self, mid: str) -> set[str]:
        (msg,) = Notmuch().messages(id_query(mid))
        return set(msg.tags) - {"inbox"}

    def files(self, mid: str) -> list[Path]:
        (msg,) = Notmuch().messages(id_query(mid))
        return sorted(msg.files)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    assert shutil.which("notmuch"), "notmuch is not installed: run contrib/setup.sh"
    config = tmp_path / "notmuch-config"
    config.write_text(
        f"[database]\npath={tmp_path}\n[new]\ntags=unread;inbox\nignore=state\n"
        "[maildir]\nsynchronize_flags=false\n"
    )
    monkeypatch.setenv("NOTMUCH_CONFIG", str(config))
    w = World(tmp_path)
    yield w
    w.state.close()


def test_copies_in_two_folders_share_one_tag_set(world: World) -> None:
    world.deliver("INBOX", "1.h", "m@x", "S")
    world.deliver(".Archive", "2.h", "m@x", "FS")
    run = world.run()
    assert world.tags("m@x") == {"flagged"}
    # Both copies now say \Flagged: the union of the files is the server side.
    assert [MaildirFiles().flags(p) for p in world.files("m@x")] == [
        {"\\Seen", "\\Flagged"},
        {"\\Seen", "\\Flagged"},
    ]
    assert (run.looked_at, run.tagged, run.renamed) == (1, 1, 1)
    Notmuch().tag(["+todo -- " + id_query("m@x")])
    world.run()
    assert all("todo" in MaildirFiles().flags(p) for p in world.files("m@x"))


def test_files_outside_the_account_are_not_touched(world: World) -> None:
    outside = world.deliver("/other", "3.h", "o@x", "")
    world.run()
    Notmuch().tag(["+todo -- " + id_query("o@x")])
    run = world.run()
    assert run.looked_at == 0
    assert outside.exists()


def test_only_changed_messages_are_looked_at(world: World) -> None:
    for n in range(5):
        world.deliver("INBOX", f"{n}.h", f"m{n}@x", "S")
    assert world.run().looked_at == 5
    assert world.run().looked_at == 0
    Notmuch().tag(["+x -- " + id_query("m3@x")])
    assert world.run().looked_at == 1


def test_a_file_that_cannot_be_renamed_is_retried_next_run(world: World) -> None:
    path = world.deliver("INBOX", "1.h", "m@x", "S")
    world.run()
    Notmuch().tag(["+todo -- " + id_query("m@x")])
    blocker = path.parent / f"{path.name.split(':2,')[0]}:2,Sa"
    blocker.write_text("someone else's file with the name we need\n")
    run = world.run()
    assert len(run.errors) == 1 and "already exists" in run.errors[0]
    assert world.state.pending() == ["m@x"]
    blocker.unlink()
    world.run()  # nothing changed in notmuch since: found again as pending
    assert world.state.pending() == []
    assert "todo" in MaildirFiles().flags(world.files("m@x")[0])


def test_a_keyword_that_does_not_fit_keeps_its_tag(world: World) -> None:
    """A folder has 26 keyword letters: the 27th tag is not stored in the file, so it
    is not agreed either -- the next run must not take it for a removal."""
    world.deliver("INBOX", "1.h", "m@x", "S")
    world.run()
    many = [f"k{n:02}" for n in range(27)]
    Notmuch().tag([" ".join(f"+{k}" for k in many) + " -- " + id_query("m@x")])
    world.run()
    stored = MaildirFiles().flags(world.files("m@x")[0])
    assert len(stored - {"\\Seen"}) == 26
    Notmuch().tag(["+again -- " + id_query("m@x")])
    world.run()
    assert world.tags("m@x") >= {*many, "again"}


def test_a_rebuilt_database_loses_no_keyword(world: World) -> None:
    """After ``rm -r .notmuch; notmuch new`` every message has new.tags only: that
    must not read as the user removing every tag (and keyword, and \\Seen)."""
    world.deliver("INBOX", "1.h", "m@x", "S")
    world.run()
    Notmuch().tag(["+work -- " + id_query("m@x")])
    world.run()
    assert MaildirFiles().flags(world.files("m@x")[0]) == {"\\Seen", "work"}
    shutil.rmtree(world.root / ".notmuch")
    world.run()
    assert world.tags("m@x") == {"work"}
    assert MaildirFiles().flags(world.files("m@x")[0]) == {"\\Seen", "work"}


def test_a_message_indexed_again_loses_no_keyword(world: World) -> None:
    """syncd synced one folder, deleting a message's only copy there; `notmuch new`
    dropped it; a later sync downloaded it into another folder, and notmuch indexed
    it afresh with new.tags only.  That is no removal of the user's tags."""
    world.deliver("INBOX", "0.h", "other@x", "S")  # the database never empties
    path = world.deliver("INBOX", "1.h", "m@x", "S")
    world.run()
    Notmuch().tag(["+work -- " + id_query("m@x")])
    world.run()
    kept = MaildirFiles().flags(world.files("m@x")[0])
    assert kept == {"\\Seen", "work"}
    world.files("m@x")[0].unlink()
    Notmuch().new()
    assert Notmuch().messages(id_query("m@x")) == []
    archive = world.deliver(".Archive", "2.h", "m@x", "Sa")
    (archive.parent.parent / "dovecot-keywords").write_text("0 work\n")
    world.run()
    assert world.tags("m@x") == {"work"}
    assert MaildirFiles().flags(world.files("m@x")[0]) == {"\\Seen", "work"}
    assert not path.exists()


def test_an_emptied_database_is_looked_at_whole(world: World) -> None:
    """notmuch's revision falls back to 0 when its last message goes: messages
    indexed after that are numbered below the bookmark and must not be missed."""
    world.deliver("INBOX", "1.h", "m@x", "S")
    world.run()
    Notmuch().tag(["+a +b +c -- " + id_query("m@x")])
    world.run()
    world.files("m@x")[0].unlink()
    Notmuch().new()
    world.deliver("INBOX", "2.h", "n@x", "")
    Notmuch().new()
    Notmuch().tag(["+todo -- " + id_query("n@x")])
    world.run()
    assert MaildirFiles().flags(world.files("n@x")[0]) == {"todo"}
