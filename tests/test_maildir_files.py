"""``syncd.api.MaildirFiles``: flags of Maildir message files by path, for plugins
that index files (notmuch), changed with the store's own rename and keyword code."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.maildir import deliver, parse_info

from syncd.api import MaildirFiles, SyncdError
from syncd.stores.maildir.folder import MaildirFolder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "INBOX"
    MaildirFolder(path, fsync=False).create()
    (path / "dovecot-keywords").write_text("0 $Junk\n1 work\n")
    return path


def test_flags_decode_system_letters_and_keywords(folder: Path) -> None:
    files = MaildirFiles(fsync=False)
    assert files.flags(deliver(folder, b"x", "FSab")) == {"\\Flagged", "\\Seen", "$Junk", "work"}
    assert files.flags(deliver(folder, b"x", new=True)) == set()
    assert files.flags(deliver(folder, b"x", "RSz")) == {"\\Answered", "\\Seen"}


def test_set_flags_renames_with_new_keywords_and_keeps_unknown_letters(folder: Path) -> None:
    files = MaildirFiles(fsync=False)
    path = deliver(folder, b"x", "STaz")  # T = \Deleted, z = a letter no keyword owns
    moved = files.set_flags(path, {"\\Seen", "\\Deleted", "todo"})
    files.flush()
    assert not path.exists()
    assert moved.name.endswith(":2,STcz")  # todo got letter c; a ($Junk) dropped
    assert (folder / "dovecot-keywords").read_text() == "0 $Junk\n1 work\n2 todo\n"
    assert files.flags(moved) == {"\\Seen", "\\Deleted", "todo"}
    assert parse_info(moved.name, {"a": "$Junk", "b": "work", "c": "todo"}) == {
        "\\Seen",
        "\\Deleted",
        "todo",
        "maildir:z",
    }


def test_set_flags_moves_new_mail_to_cur_and_is_a_no_op_when_equal(folder: Path) -> None:
    files = MaildirFiles(fsync=False)
    path = deliver(folder, b"x", new=True)
    moved = files.set_flags(path, {"\\Seen"})
    assert moved.parent == folder / "cur" and moved.name.endswith(":2,S")
    assert files.set_flags(moved, {"\\Seen"}) == moved


def test_a_file_a_reader_renamed_meanwhile_is_followed_as_a_delta(folder: Path) -> None:
    files = MaildirFiles(fsync=False)
    path = deliver(folder, b"x", "S")
    renamed = path.with_name(path.name + "F")  # a reader flagged it since we read `path`
    path.rename(renamed)
    moved = files.set_flags(path, {"\\Seen", "work"})
    assert files.flags(moved) == {"\\Seen", "\\Flagged", "work"}


def test_a_file_already_renamed_to_the_wanted_name_is_no_error(folder: Path) -> None:
    files = MaildirFiles(fsync=False)
    path = deliver(folder, b"x", "")
    done = path.with_name(path.name + "S")  # notmuch tagged -unread and renamed it
    path.rename(done)
    assert files.set_flags(path, {"\\Seen"}) == done
    assert done.exists()


@pytest.mark.parametrize("where", ["tmp", "elsewhere"])
def test_a_path_outside_cur_and_new_is_refused(folder: Path, where: str) -> None:
    with pytest.raises(SyncdError, match=r"is not in a Maildir folder's cur/ or new/"):
        MaildirFiles().flags(folder / where / "1.host:2,S")


def test_a_vanished_file_is_a_one_line_error(folder: Path) -> None:
    path = deliver(folder, b"x", "S")
    path.unlink()
    with pytest.raises(SyncdError, match=r"cannot change flags of .*: the file is gone"):
        MaildirFiles().set_flags(path, {"\\Flagged"})


def test_valid_keyword_is_the_store_rule() -> None:
    assert MaildirFiles.valid_keyword("$Junk")
    assert not MaildirFiles.valid_keyword("has space")
    assert not MaildirFiles.valid_keyword("\\Seen")
    assert not MaildirFiles.valid_keyword("été")
