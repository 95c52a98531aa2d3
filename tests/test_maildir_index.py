"""A Maildir folder told by its names alone (:mod:`syncd.stores.maildir.index`): the
same messages, flags, junk and duplicates as a scan, without a stat per file; the
one thing only a stat shows (an empty file) is caught by the closer look."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncd.model import FLAGGED, SEEN
from syncd.stores.maildir.folder import MaildirFolder, Problem
from syncd.stores.maildir.index import list_names, look_up
from syncd.stores.maildir.store import MaildirStore

MAIL = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def folder(tmp_path: Path) -> MaildirFolder:
    f = MaildirFolder(tmp_path / "INBOX", fsync=False)
    f.create()
    return f


def put(folder: MaildirFolder, sub: str, filename: str, data: bytes = MAIL) -> None:
    (folder.path / sub / filename).write_bytes(data)


def reasons(problems: list[Problem]) -> dict[str, str]:
    return {p.path.name: p.reason for p in problems}


def test_junk_is_reported_as_a_scan_reports_it(folder: MaildirFolder) -> None:
    put(folder, "cur", "good:2,S")
    put(folder, "cur", ".DS_Store")
    put(folder, "cur", "empty:2,S", b"")
    (folder.path / "cur" / "subdir").mkdir()
    (folder.path / "cur" / "evil:2,S").symlink_to("/etc/passwd")
    (folder.path / "new" / "dangling").symlink_to(folder.path / "nowhere")
    os.mkfifo(folder.path / "new" / "fifo")
    put(folder, "cur", "dovecot-uidlist")
    with open(os.fsencode(folder.path / "cur") + b"/bad\xffname:2,S", "wb") as fh:
        fh.write(MAIL)
    _, by_scan = folder.scan()
    index = list_names(folder.path, folder.keywords())
    assert index.problems == []  # the names alone do not tell junk: a closer look does
    assert ".DS_Store" not in index.flags
    found, closer = look_up(index, index.flags)
    assert set(found) == {"good"}
    assert reasons(closer) == reasons(by_scan)


def test_duplicates_keep_the_copy_a_scan_keeps(folder: MaildirFolder) -> None:
    put(folder, "new", "dup1")
    put(folder, "cur", "dup1:2,S")
    put(folder, "cur", "dup2:2,S")
    put(folder, "cur", "dup2:2,F")
    put(folder, "cur", "dup3:2,F")
    (folder.path / "cur" / "dup3:2,A").symlink_to("/etc/passwd")  # junk loses, however named
    scanned, by_scan = folder.scan()
    index = list_names(folder.path, folder.keywords())
    assert {u: index.where(u) for u in index.flags} == {
        u: (m.subdir, m.filename) for u, m in scanned.items()
    }
    duplicates = {k: v for k, v in reasons(by_scan).items() if v.startswith("duplicate")}
    assert reasons(index.problems) == duplicates


def test_flags_and_a_closer_look_equal_the_scan(folder: MaildirFolder) -> None:
    a = folder.deliver(MAIL, name="a", flags=frozenset({SEEN}), mtime=1_700_000_000.0)
    b = folder.deliver(MAIL, name="b", flags=frozenset({FLAGGED, "$label"}), mtime=None)
    put(folder, "new", "c")
    scanned, _ = folder.scan()
    index = list_names(folder.path, folder.keywords())
    assert index.flags == {u: m.flags for u, m in scanned.items()}
    found, _ = look_up(index, ["a", "b", "c", "missing"])
    assert found == scanned
    assert found["a"] == a and found["b"] == b


def test_the_store_expects_every_entry_at_the_end(folder: MaildirFolder) -> None:
    put(folder, "cur", "one:2,S")
    (folder.path / "cur" / "evil:2,S").symlink_to("/etc/passwd")
    store = MaildirStore(folder)
    before = store.signature()
    flags, skipped = store.index()
    assert flags == {"one": frozenset({SEEN}), "evil": frozenset({SEEN})}
    assert skipped == []
    found, closer = store.lookup(flags)
    assert [s.reason for s in closer] == ["symlink"]
    [msg] = found.values()
    store.set_flags(msg, frozenset())
    store.flush()
    assert store.trusted_signature(before, changed=True, settled_before=True) is not None


def test_locate_finds_files_by_name_while_the_folder_is_unchanged(folder: MaildirFolder) -> None:
    a = folder.deliver(MAIL, name="a", flags=frozenset({SEEN}), mtime=None)
    b = folder.deliver(MAIL, name="b", flags=frozenset({FLAGGED, "$label"}), mtime=None)
    put(folder, "new", "c")
    store = MaildirStore(folder)
    signature = store.signature()
    assert signature is not None
    # "b" was left with other flags than the state thinks: found by one listing
    found, skipped = store.unchanged(
        {"a": frozenset({SEEN}), "b": frozenset(), "c": frozenset(), "gone": frozenset()},
        signature,
    ) or ({}, [])
    assert skipped == []
    assert found == folder.scan()[0]
    assert found["a"] == a and found["b"] == b
    put(folder, "new", "d")  # a mail reader, since the signature was taken
    os.utime(folder.path / "new", ns=(0, 0))  # whatever the clock's granularity
    assert store.unchanged({"a": frozenset({SEEN})}, signature) is None
