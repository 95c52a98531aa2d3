"""The Maildir layer (syncd.stores.maildir.folder), on real files under tmp_path; no server."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.errors import FolderError, MessageError
from syncd.model import ANSWERED, DRAFT, FLAGGED, NO_FLAGS, SEEN
from syncd.stores.maildir.folder import LocalMessage, MaildirFolder, Problem
from syncd.stores.maildir.fsio import directory_signature
from syncd.stores.maildir.names import KEYWORDS_FILE

MAIL = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def folder(tmp_path: Path) -> MaildirFolder:
    f = MaildirFolder(tmp_path / "INBOX")
    f.create()
    return f


def put(folder: MaildirFolder, sub: str, filename: str, data: bytes = MAIL) -> Path:
    path = folder.path / sub / filename
    path.write_bytes(data)
    return path


def files(folder: MaildirFolder, sub: str) -> list[str]:
    return sorted(os.listdir(folder.path / sub))


def reasons(problems: list[Problem]) -> dict[str, str]:
    return {p.path.name: p.reason for p in problems}


# -- create / exists ------------------------------------------------------------


def test_create_makes_private_maildir_with_parents(tmp_path: Path) -> None:
    f = MaildirFolder(tmp_path / "Lists" / "python")
    assert not f.exists()
    f.create()
    f.create()  # idempotent
    assert f.exists()
    for p in (tmp_path / "Lists", f.path, f.path / "cur", f.path / "new", f.path / "tmp"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700


def test_folder_missing_tmp_still_exists_and_delivery_recreates_it(folder: MaildirFolder) -> None:
    (folder.path / "tmp").rmdir()
    assert folder.exists()
    folder.deliver(MAIL, name=folder.new_name(), flags=NO_FLAGS, mtime=None)
    assert (folder.path / "tmp").is_dir()


# -- delivery -------------------------------------------------------------------


def test_deliver_writes_exact_bytes_private_mode_mtime_and_flags(folder: MaildirFolder) -> None:
    name = folder.new_name()
    msg = folder.deliver(MAIL, name=name, flags=frozenset({SEEN, FLAGGED}), mtime=1_600_000_000.0)
    path = folder.path / "cur" / f"{name}:2,FS"
    assert path.read_bytes() == MAIL
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_mtime == 1_600_000_000.0
    assert msg == LocalMessage(name, "cur", f"{name}:2,FS", {SEEN, FLAGGED}, len(MAIL), st.st_mtime)
    assert files(folder, "tmp") == []
    assert folder.scan() == ({name: msg}, [])


def test_deliver_to_new_without_flags(folder: MaildirFolder) -> None:
    name = folder.new_name()
    msg = folder.deliver(MAIL, name=name, flags=NO_FLAGS, mtime=None, to_new=True)
    assert (msg.subdir, msg.filename) == ("new", name)
    assert files(folder, "new") == [name]
    # With flags, to_new still goes to cur/ (new/ files carry no info).
    seen = folder.deliver(MAIL, name=folder.new_name(), flags={SEEN}, mtime=None, to_new=True)
    assert seen.subdir == "cur"


def test_deliver_stream_writes_chunks(folder: MaildirFolder) -> None:
    chunks = [b"a" * 100_000, b"b" * 3, b"", b"c"]
    msg = folder.deliver_stream(chunks, name="big", flags=NO_FLAGS, mtime=None)
    assert folder.read(msg) == b"".join(chunks)
    assert msg.size == 100_004


def test_deliver_with_keywords_writes_dovecot_keywords(folder: MaildirFolder) -> None:
    msg = folder.deliver(MAIL, name="m1", flags={SEEN, "$Junk", "work"}, mtime=None)
    assert msg.filename == "m1:2,Sab"
    assert (folder.path / KEYWORDS_FILE).read_text() == "0 $Junk\n1 work\n"
    assert folder.scan()[0]["m1"].flags == {SEEN, "$Junk", "work"}
    assert stat.S_IMODE((folder.path / KEYWORDS_FILE).stat().st_mode) == 0o600


def test_keywords_beyond_26_are_dropped_with_a_warning(
    folder: MaildirFolder, caplog: pytest.LogCaptureFixture
) -> None:
    many = frozenset(f"kw{i:02}" for i in range(30))
    with caplog.at_level(logging.WARNING, logger="syncd.maildir"):
        msg = folder.deliver(MAIL, name="m1", flags=many | {SEEN}, mtime=None)
    assert len(msg.flags) == 27  # \Seen + 26 keywords
    assert msg.flags < many | {SEEN}
    assert "no Maildir letter" in caplog.text
    assert folder.scan()[0]["m1"].flags == msg.flags


def test_invalid_keywords_are_not_written_to_dovecot_keywords(folder: MaildirFolder) -> None:
    msg = folder.deliver(MAIL, name="m1", flags={"evil\n0 x", "a b", "ok"}, mtime=None)
    assert msg.flags == {"ok"}
    assert (folder.path / KEYWORDS_FILE).read_text() == "0 ok\n"


def test_deliver_never_replaces_an_existing_message(folder: MaildirFolder) -> None:
    folder.deliver(MAIL, name="m1", flags={SEEN}, mtime=None)
    with pytest.raises(MessageError, match="already exists"):
        folder.deliver(b"other", name="m1", flags={SEEN}, mtime=None)
    assert (folder.path / "cur" / "m1:2,S").read_bytes() == MAIL
    assert files(folder, "tmp") == []


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a:2,S", "a\x00b", "a\nb", "x" * 300])
def test_deliver_refuses_bad_unique_names(folder: MaildirFolder, name: str) -> None:
    with pytest.raises(MessageError, match="invalid Maildir unique name"):
        folder.deliver(MAIL, name=name, flags=NO_FLAGS, mtime=None)


@pytest.mark.parametrize("call", ["write", "fsync", "close"])
def test_disk_full_leaves_no_file_behind(
    folder: MaildirFolder, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    real = getattr(os, call)
    code = errno.EDQUOT if call == "close" else errno.ENOSPC

    def failing(fd: int, *args: object) -> object:
        if call == "close":
            real(fd)  # do close it, then report the error as NFS/quota would
        raise OSError(code, os.strerror(code))

    with monkeypatch.context() as m:
        m.setattr(os, call, failing)
        with pytest.raises(MessageError) as info:
            folder.deliver(MAIL, name="m1", flags={SEEN}, mtime=None)
    assert "m1" in str(info.value)
    assert "disk full or over quota" in str(info.value)
    assert files(folder, "tmp") == []
    assert files(folder, "cur") == []
    assert files(folder, "new") == []


def test_failing_download_stream_leaves_no_file_behind(folder: MaildirFolder) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("server went away")

    with pytest.raises(ConnectionResetError):
        folder.deliver_stream(chunks(), name="m1", flags=NO_FLAGS, mtime=None)
    assert files(folder, "tmp") == []
    assert files(folder, "cur") == []


def test_unique_names_never_collide(folder: MaildirFolder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "host/with:odd")
    a, b = MaildirFolder(folder.path), MaildirFolder(folder.path)  # two writers, same second
    names = [a.new_name() for _ in range(10_000)] + [b.new_name() for _ in range(10_000)]
    assert len(set(names)) == len(names)
    assert all("/" not in n and ":" not in n and not n.startswith(".") for n in names)
    assert names[0].endswith(".host\\057with\\072odd")


def test_odd_host_names_are_escaped_into_plain_ascii(
    folder: MaildirFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "my box\n\u00e9")
    name = MaildirFolder(folder.path).new_name()
    assert name.endswith(".my\\040box\\012\\303\\251")
    folder.deliver(MAIL, name=name, flags=NO_FLAGS, mtime=None)  # accepted as a unique name


# -- scanning -------------------------------------------------------------------


def test_scan_lists_odd_names_from_other_programs(folder: MaildirFolder) -> None:
    (folder.path / KEYWORDS_FILE).write_text("0 $Junk\n1 work\n")
    put(folder, "new", "100.M1P1.host")
    put(folder, "cur", "101.M1P1.host")  # no info
    put(folder, "cur", "102.M1P1.host:2,ZYX")
    put(folder, "cur", "103.M1P1.host:2,SF")
    put(folder, "cur", "104.M1P1.host:2,SSFF")
    put(folder, "cur", "105.M1P1.host:2,Sab")
    put(folder, "cur", "106.M1P1.host,S=1234,W=1260:2,R")
    put(folder, "cur", "a name with spaces:2,D")
    msgs, problems = folder.scan()
    assert problems == []
    got = {name: (m.subdir, m.flags, m.extra) for name, m in msgs.items()}
    assert got == {
        "100.M1P1.host": ("new", NO_FLAGS, ""),
        "101.M1P1.host": ("cur", NO_FLAGS, ""),
        "102.M1P1.host": ("cur", NO_FLAGS, "XYZ"),
        "103.M1P1.host": ("cur", {SEEN, FLAGGED}, ""),
        "104.M1P1.host": ("cur", {SEEN, FLAGGED}, ""),
        "105.M1P1.host": ("cur", {SEEN, "$Junk", "work"}, ""),
        "106.M1P1.host,S=1234,W=1260": ("cur", {ANSWERED}, ""),
        "a name with spaces": ("cur", {DRAFT}, ""),
    }
    assert msgs["100.M1P1.host"].size == len(MAIL)


def test_scan_skips_and_reports_junk(folder: MaildirFolder) -> None:
    put(folder, "cur", "good:2,S")
    put(folder, "cur", ".DS_Store")  # dot-files: ignored silently
    put(folder, "new", ".#editor-lock")
    put(folder, "cur", "empty:2,S", b"")
    (folder.path / "cur" / "subdir").mkdir()
    (folder.path / "cur" / "evil:2,S").symlink_to("/etc/passwd")
    (folder.path / "new" / "dangling").symlink_to(folder.path / "nowhere")
    os.mkfifo(folder.path / "new" / "fifo")
    (folder.path / "cur" / "dovecot-uidlist").write_bytes(b"3 V1 N1\n")  # copied junk
    with open(os.fsencode(folder.path / "cur") + b"/bad\xffname:2,S", "wb") as fh:
        fh.write(MAIL)
    msgs, problems = folder.scan()
    assert set(msgs) == {"good"}
    assert reasons(problems) == {
        "dovecot-uidlist": "a mail server's control file, not a message",
        "empty:2,S": "zero-byte file",
        "subdir": "directory",
        "evil:2,S": "symlink",
        "dangling": "symlink",
        "fifo": "not a regular file",
        "bad\udcffname:2,S": "file name is not valid UTF-8",
    }
    line = str(next(p for p in problems if "UTF-8" in p.reason))
    assert line.startswith("skipped ") and "\\udcff" in line
    line.encode("utf-8")  # printable in a log line


def test_scan_reports_duplicate_unique_names_and_keeps_one(folder: MaildirFolder) -> None:
    put(folder, "new", "dup1")
    put(folder, "cur", "dup1:2,S")
    put(folder, "cur", "dup2:2,S")
    put(folder, "cur", "dup2:2,F")
    msgs, problems = folder.scan()
    assert msgs["dup1"].filename == "dup1:2,S"
    assert msgs["dup2"].filename == "dup2:2,F"
    assert reasons(problems) == {
        "dup1": "duplicate of cur/dup1:2,S",
        "dup2:2,S": ("duplicate of cur/dup2:2,F"),
    }
    assert len(files(folder, "cur")) == 3  # nothing deleted


def test_unreadable_message_is_listed_not_dropped(
    folder: MaildirFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = put(folder, "cur", "locked:2,S")
    path.chmod(0)
    msgs, problems = folder.scan()
    assert "locked" in msgs  # unreadable is not deleted
    assert problems == []
    # Root ignores mode bits, so the refused open() is simulated for the read.
    real_open = os.open

    def refusing(p: str, flags: int, *args: int) -> int:
        if str(p).endswith("locked:2,S"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(p, flags, *args)

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(MessageError, match=r"locked:2,S: Permission denied"):
        folder.read(msgs["locked"])


@pytest.mark.parametrize("damage", ["no cur", "no new", "cur is a symlink"])
def test_scan_of_a_broken_folder_is_an_error_not_empty(
    folder: MaildirFolder, tmp_path: Path, damage: str
) -> None:
    put(folder, "cur", "m1:2,S")
    if damage == "no new":
        (folder.path / "new").rmdir()
    else:
        (folder.path / "cur").rename(tmp_path / "elsewhere")
        if damage == "cur is a symlink":
            (folder.path / "cur").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FolderError):
        folder.scan()


def test_scan_repeats_when_the_folder_changes_meanwhile(
    folder: MaildirFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(folder, "new", "m1")
    real = MaildirFolder._scan_once
    calls = []

    def racing(self: MaildirFolder) -> tuple[dict[str, LocalMessage], list[Problem]]:
        result = real(self)
        if not calls:  # a mail reader moves the file right after our listing
            time.sleep(0.01)  # let the directory mtime tick
            os.rename(self.path / "new" / "m1", self.path / "cur" / "m1:2,S")
        calls.append(1)
        return result

    monkeypatch.setattr(MaildirFolder, "_scan_once", racing)
    msgs, _ = folder.scan()
    assert len(calls) == 2
    assert msgs["m1"].filename == "m1:2,S"


def test_directory_signature_changes_on_delivery_and_rename(folder: MaildirFolder) -> None:
    sig = directory_signature(folder.path)
    assert directory_signature(folder.path) == sig
    time.sleep(0.01)
    msg = folder.deliver(MAIL, name="m1", flags=NO_FLAGS, mtime=None)
    sig2 = directory_signature(folder.path)
    assert sig2 != sig
    time.sleep(0.01)
    folder.set_flags(msg, frozenset({SEEN}))
    assert directory_signature(folder.path) != sig2


# -- flags ------------------------------------------------------------------------


def test_set_flags_keeps_unknown_letters_and_keywords_and_sorts(folder: MaildirFolder) -> None:
    (folder.path / KEYWORDS_FILE).write_text("0 $Junk\n")
    put(folder, "cur", "m1:2,ZSaX")
    msg = folder.scan()[0]["m1"]
    assert (msg.flags, msg.extra) == ({SEEN, "$Junk"}, "XZ")
    new = folder.set_flags(msg, frozenset({SEEN, "$Junk", FLAGGED}))
    assert files(folder, "cur") == ["m1:2,FSXZa"]
    assert new == LocalMessage(
        "m1", "cur", "m1:2,FSXZa", {SEEN, "$Junk", FLAGGED}, msg.size, msg.mtime, "XZ"
    )
    assert folder.scan()[0]["m1"] == new
    folder.set_flags(new, NO_FLAGS)
    assert files(folder, "cur") == ["m1:2,XZ"]


def test_set_flags_writes_out_of_order_letters_sorted(folder: MaildirFolder) -> None:
    put(folder, "cur", "m1:2,SF")
    msg = folder.scan()[0]["m1"]
    folder.set_flags(msg, msg.flags | {ANSWERED})
    assert files(folder, "cur") == ["m1:2,FRS"]


def test_set_flags_moves_from_new_to_cur(folder: MaildirFolder) -> None:
    put(folder, "new", "m1")
    msg = folder.scan()[0]["m1"]
    assert folder.set_flags(msg, NO_FLAGS) == msg  # no change: stays in new/
    moved = folder.set_flags(msg, frozenset({SEEN}))
    assert (moved.subdir, moved.filename) == ("cur", "m1:2,S")
    assert files(folder, "new") == []
    assert folder.read(moved) == MAIL


def test_set_flags_after_a_mail_reader_renamed_the_file(folder: MaildirFolder) -> None:
    put(folder, "cur", "m1:2,S")
    msg = folder.scan()[0]["m1"]
    # The user flags it in mutt after our scan...
    os.rename(folder.path / "cur" / "m1:2,S", folder.path / "cur" / "m1:2,FS")
    # ...while the sync applies "+Answered" from the server.
    new = folder.set_flags(msg, frozenset({SEEN, ANSWERED}))
    assert files(folder, "cur") == ["m1:2,FRS"]  # both changes kept
    assert new.flags == {SEEN, ANSWERED, FLAGGED}


def test_set_flags_on_a_vanished_file_is_a_message_error(folder: MaildirFolder) -> None:
    path = put(folder, "cur", "m1:2,S")
    msg = folder.scan()[0]["m1"]
    path.unlink()
    with pytest.raises(MessageError, match="gone"):
        folder.set_flags(msg, frozenset({FLAGGED}))


def test_set_flags_never_overwrites_a_duplicate(folder: MaildirFolder) -> None:
    put(folder, "cur", "m1:2,S", b"one")
    put(folder, "cur", "m1:2,F", b"two")
    msg = folder.scan()[0]["m1"]  # keeps m1:2,F
    with pytest.raises(MessageError, match="already exists"):
        folder.set_flags(msg, frozenset({SEEN}))
    assert (folder.path / "cur" / "m1:2,S").read_bytes() == b"one"


# -- read / locate / delete ---------------------------------------------------------


def test_read_follows_a_renamed_file(folder: MaildirFolder) -> None:
    put(folder, "new", "m1")
    msg = folder.scan()[0]["m1"]
    os.rename(folder.path / "new" / "m1", folder.path / "cur" / "m1:2,S")
    assert folder.read(msg) == MAIL
    located = folder.locate("m1")
    assert located is not None
    assert (located.subdir, located.filename, located.flags) == ("cur", "m1:2,S", {SEEN})
    assert folder.locate("m") is None  # a prefix is not a match


def test_read_refuses_symlinks_and_fifos(folder: MaildirFolder) -> None:
    (folder.path / "cur" / "evil:2,S").symlink_to("/etc/passwd")
    os.mkfifo(folder.path / "cur" / "fifo:2,S")
    for filename in ("evil:2,S", "fifo:2,S"):
        msg = LocalMessage(filename.split(":")[0], "cur", filename, NO_FLAGS, 1, 0.0)
        with pytest.raises(MessageError, match=filename):
            folder.read(msg)


def test_read_of_a_vanished_file_is_a_message_error(folder: MaildirFolder) -> None:
    msg = LocalMessage("gone", "cur", "gone:2,S", NO_FLAGS, 1, 0.0)
    with pytest.raises(MessageError, match="gone"):
        folder.read(msg)


def test_delete_is_idempotent_and_never_follows_symlinks(
    folder: MaildirFolder, tmp_path: Path
) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    (folder.path / "cur" / "link:2,S").symlink_to(target)
    put(folder, "cur", "m1:2,S")
    msg = folder.scan()[0]["m1"]
    folder.delete(msg)
    folder.delete(msg)
    assert files(folder, "cur") == ["link:2,S"]
    folder.delete(LocalMessage("link", "cur", "link:2,S", {SEEN}, 1, 0.0))
    assert target.read_bytes() == b"keep me"


def test_delete_follows_a_plain_move_but_keeps_a_changed_message(folder: MaildirFolder) -> None:
    put(folder, "new", "m1")
    put(folder, "new", "m2")
    msgs = folder.scan()[0]
    os.rename(folder.path / "new" / "m1", folder.path / "cur" / "m1:2,")  # read, no flag
    os.rename(folder.path / "new" / "m2", folder.path / "cur" / "m2:2,F")  # flagged by user
    folder.delete(msgs["m1"])
    with pytest.raises(MessageError, match="changed locally"):
        folder.delete(msgs["m2"])
    assert files(folder, "cur") == ["m2:2,F"]


# -- tmp/ and keywords -------------------------------------------------------------------


def test_clean_tmp_removes_only_stale_files(folder: MaildirFolder) -> None:
    old = put(folder, "tmp", "old")
    day_and_half_ago = time.time() - 37 * 3600
    os.utime(old, (day_and_half_ago, day_and_half_ago))
    put(folder, "tmp", "fresh")
    (folder.path / "tmp" / "dir").mkdir()
    os.utime(folder.path / "tmp" / "dir", (day_and_half_ago, day_and_half_ago))
    assert folder.clean_tmp() == [old]
    assert files(folder, "tmp") == ["dir", "fresh"]


def test_keywords_file_parsing_ignores_junk(folder: MaildirFolder) -> None:
    (folder.path / KEYWORDS_FILE).write_text(
        "0 $Junk\n2 work\nnonsense\n30 toolate\n3 bad(kw\n-1 x\n\n1 $Label1\n"
    )
    assert folder.keywords() == ["$Junk", "$Label1", "work"]
    assert folder.ensure_keywords(["work", "new"]) == ["$Junk", "$Label1", "work", "new"]
    assert (folder.path / KEYWORDS_FILE).read_text() == "0 $Junk\n1 $Label1\n2 work\n3 new\n"


def test_keyword_letter_without_entry_is_preserved(folder: MaildirFolder) -> None:
    put(folder, "cur", "m1:2,Sc")
    msg = folder.scan()[0]["m1"]
    assert (msg.flags, msg.extra) == ({SEEN}, "c")
    folder.set_flags(msg, NO_FLAGS)
    assert files(folder, "cur") == ["m1:2,c"]


def test_rescan_notices_a_file_replaced_under_the_same_name(folder: MaildirFolder) -> None:
    path = put(folder, "cur", "m1:2,S")
    assert folder.scan()[0]["m1"].size == len(MAIL)
    tmp = folder.path / "tmp" / "x"
    tmp.write_bytes(MAIL * 2)
    os.rename(tmp, path)  # new inode, same name
    assert folder.scan()[0]["m1"].size == 2 * len(MAIL)
    path.unlink()
    path.symlink_to("/etc/passwd")
    msgs, problems = folder.scan()
    assert msgs == {}
    assert reasons(problems) == {"m1:2,S": "symlink"}
