"""Folder names, layouts, validation and discovery (syncd.folders)."""

from __future__ import annotations

import os
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.errors import UnsafeNameError
from syncd.folders import (
    Layout,
    clashes,
    discover,
    join_name,
    local_path,
    matches,
    split_name,
)

ETE = "\u00c9t\u00e9"  # "Été" in NFC


def make_maildir(path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)


# -- names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "delimiter", "parts"),
    [
        ("INBOX", "/", ("INBOX",)),
        ("inbox", "/", ("INBOX",)),
        ("Inbox", ".", ("INBOX",)),
        ("inbox/x", "/", ("INBOX", "x")),
        ("Lists.python", ".", ("Lists", "python")),
        ("Lists/python", "/", ("Lists", "python")),
        ("Lists/python", ".", ("Lists/python",)),
        ("Archive/inbox", "/", ("Archive", "inbox")),  # only the first component
        ("a//b", "/", ("a", "", "b")),  # kept, so local_path rejects it
        ("flat", None, ("flat",)),
        (f"Projets/{ETE}", "/", ("Projets", ETE)),
    ],
)
def test_split_name(name: str, delimiter: str | None, parts: tuple[str, ...]) -> None:
    assert split_name(name, delimiter) == parts


def test_join_name_round_trips_and_refuses_ambiguous_names() -> None:
    assert join_name(("Lists", "python"), ".") == "Lists.python"
    assert join_name(("INBOX",), None) == "INBOX"
    with pytest.raises(UnsafeNameError, match="delimiter"):
        join_name(("a.b", "c"), ".")
    with pytest.raises(UnsafeNameError, match="no hierarchy delimiter"):
        join_name(("a", "b"), None)


# -- layouts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "parts", "relative"),
    [
        ("maildir++", ("INBOX",), ""),
        ("maildir++", ("Lists", "python"), ".Lists.python"),
        ("maildir++", ("Projets", ETE), f".Projets.{ETE}"),
        ("maildir++", ("INBOX", "sub"), ".INBOX.sub"),
        ("maildir++", ("~user",), ".~user"),
        ("maildir++", ("cur",), ".cur"),  # no clash in maildir++
        ("nested", ("INBOX",), "INBOX"),
        ("nested", ("inbox", "x"), "INBOX/x"),
        ("nested", ("Lists", "python"), "Lists/python"),
        ("nested", ("Projets", ETE), f"Projets/{ETE}"),
        ("nested", ("~user",), "~user"),  # a literal component, stays inside
        ("nested", ("a.b", "c"), "a.b/c"),
    ],
)
def test_local_path(tmp_path: Path, layout: Layout, parts: tuple[str, ...], relative: str) -> None:
    expected = tmp_path / relative if relative else tmp_path
    assert local_path(tmp_path, parts, layout) == expected


def test_non_ascii_names_are_utf8_on_disk(tmp_path: Path) -> None:
    path = local_path(tmp_path, ("Projets", ETE), "nested")
    assert os.fsencode(path).endswith(b"Projets/\xc3\x89t\xc3\xa9")


HOSTILE: list[tuple[str, str | None, str]] = [
    # (server name, delimiter, expected reason fragment)
    ("../../x", "/", "possible attack"),
    ("..", "/", "possible attack"),
    (".", "/", "possible attack"),
    ("/etc", "/", "possible attack"),
    ("/", "/", "possible attack"),
    ("/etc", ".", "possible attack"),  # '/' smuggled inside a component
    ("a/../../b", "/", "possible attack"),
    ("", "/", "empty"),
    ("a//b", "/", "empty component"),
    ("a/", "/", "empty component"),
    ("a/./b", "/", "possible attack"),
    ("a\x00b", "/", "NUL"),
    ("a\rb", "/", "control character"),
    ("a\nb", "/", "control character"),
    ("a\x1b[31mb", "/", "control character"),
    ("a\x9bb", "/", "control character"),  # C1 CSI
    ("x" * 300, "/", "255 bytes"),
    ("\u00e9" * 128, "/", "255 bytes"),  # 128 chars, 256 bytes of UTF-8
    ("/".join(["x" * 200] * 6), "/", "1000 bytes"),
    ("a/cur", "/", "clashes"),
    ("new", "/", "clashes"),
    ("tmp/x", "/", "clashes"),
    ("a/dovecot-keywords", "/", "clashes"),
    (".hidden", "/", "starts with '.'"),
    ("a/.b", "/", "starts with '.'"),
    ("bad\ud800", "/", "lone surrogate"),
]


@pytest.mark.parametrize(("name", "delimiter", "reason"), HOSTILE)
def test_hostile_names_are_rejected_in_nested_layout(
    tmp_path: Path, name: str, delimiter: str | None, reason: str
) -> None:
    root = tmp_path / "root"
    with pytest.raises(UnsafeNameError, match=reason) as info:
        local_path(root, split_name(name, delimiter), "nested")
    assert "\n" not in str(info.value)
    assert not tmp_path.joinpath("x").exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../x", "possible attack"),
        ("a/../b", "possible attack"),
        ("", "empty"),
        ("a//b", "empty component"),
        ("a\x00b", "NUL"),
        ("a/b.c", 'layout = "nested"'),  # '.' is the maildir++ separator
        (".hidden", 'layout = "nested"'),
        ("/".join(["x" * 100] * 3), "as one maildir\\+\\+ directory name"),
    ],
)
def test_hostile_names_are_rejected_in_maildirpp_layout(
    tmp_path: Path, name: str, reason: str
) -> None:
    with pytest.raises(UnsafeNameError, match=reason):
        local_path(tmp_path, split_name(name, "/"), "maildir++")


def test_error_message_names_the_folder_escaped(tmp_path: Path) -> None:
    with pytest.raises(UnsafeNameError) as info:
        local_path(tmp_path, ("evil\n", "x"), "nested")
    assert str(info.value).startswith("unsafe folder name 'evil\\n/x'")


def test_symlinked_folder_leading_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "Lists").symlink_to(outside)
    with pytest.raises(UnsafeNameError, match="outside the Maildir root"):
        local_path(root, ("Lists", "python"), "nested")
    with pytest.raises(UnsafeNameError, match="outside the Maildir root"):
        local_path(root, ("Lists",), "nested")


def test_root_reached_through_a_symlink_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert local_path(tmp_path / "link", ("A",), "nested") == tmp_path / "link" / "A"


def test_nfc_and_nfd_names_are_distinct_folders_on_linux(tmp_path: Path) -> None:
    # Known gap: on a normalising filesystem (macOS APFS/HFS+) these two would
    # be one directory.  On Linux they are two byte strings, two folders;
    # clashes() lets the caller warn about the pair.
    nfd = unicodedata.normalize("NFD", ETE)
    a = local_path(tmp_path, ("Projets", ETE), "nested")
    b = local_path(tmp_path, ("Projets", nfd), "nested")
    assert a != b
    make_maildir(a)
    make_maildir(b)
    folders, problems = discover(tmp_path, "nested")
    assert folders == sorted([("Projets", ETE), ("Projets", nfd)])
    assert problems == []
    assert clashes(folders) != []


def test_clashes_reports_case_variants_only() -> None:
    assert clashes([("Lists",), ("lists",), ("Other",)]) == [(("Lists",), ("lists",))]


# -- discovery ----------------------------------------------------------------


def test_discover_maildirpp(tmp_path: Path) -> None:
    make_maildir(tmp_path)
    make_maildir(tmp_path / ".Lists.python")
    make_maildir(tmp_path / f".Projets.{ETE}")
    make_maildir(tmp_path / ".Sent")
    (tmp_path / ".notmuch" / "xapian").mkdir(parents=True)  # not a Maildir
    (tmp_path / "plain").mkdir()
    folders, problems = discover(tmp_path, "maildir++")
    assert folders == [("INBOX",), ("Lists", "python"), ("Projets", ETE), ("Sent",)]
    assert problems == []


def test_discover_nested(tmp_path: Path) -> None:
    make_maildir(tmp_path / "INBOX")
    make_maildir(tmp_path / "Lists")
    make_maildir(tmp_path / "Lists" / "python")
    make_maildir(tmp_path / "Projets" / ETE)  # Projets itself is not a Maildir
    (tmp_path / ".notmuch").mkdir()
    folders, problems = discover(tmp_path, "nested")
    assert folders == [("INBOX",), ("Lists",), ("Lists", "python"), ("Projets", ETE)]
    assert problems == []


def test_discover_reports_and_skips_symlinked_folders(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    make_maildir(root / "INBOX")
    make_maildir(outside)
    (root / "Evil").symlink_to(outside)
    (root / ".Evil").symlink_to(outside)
    folders, problems = discover(root, "nested")
    assert folders == [("INBOX",)]
    assert any("Evil" in p and "symlink" in p for p in problems)
    make_maildir(root)
    folders, problems = discover(root, "maildir++")
    assert folders == [("INBOX",)]
    assert any(".Evil" in p and "symlink" in p for p in problems)


def test_discover_does_not_treat_a_symlinked_cur_as_a_folder(tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "cur").symlink_to("/etc")
    folders, _ = discover(tmp_path, "nested")
    assert folders == []


def test_discover_reports_undecodable_and_unmappable_names(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    for sub in (b"cur", b"new", b"tmp"):
        os.makedirs(root + b"/.bad\xff/" + sub)
        os.makedirs(root + b"/nested\xff/" + sub)
    make_maildir(tmp_path / ".a..b")  # empty component
    make_maildir(tmp_path / ".inbox.x")  # maps back to .INBOX.x, not here
    folders, problems = discover(tmp_path, "maildir++")
    assert folders == []
    assert len(problems) == 3
    assert any("not valid UTF-8" in p and "\\udcff" in p for p in problems)
    assert any(".a..b" in p and "empty component" in p for p in problems)
    assert any(".inbox.x" in p and "does not map back" in p for p in problems)
    folders, problems = discover(tmp_path, "nested")
    assert any("nested\\udcff" in p and "not valid UTF-8" in p for p in problems)


def test_discover_problem_lines_stay_one_line(tmp_path: Path) -> None:
    make_maildir(tmp_path / "evil\nname")
    folders, problems = discover(tmp_path, "nested")
    assert folders == []
    assert len(problems) == 1
    assert "\n" not in problems[0]
    assert "control character" in problems[0]


def test_discover_nested_flags_a_root_maildir_and_hidden_maildirs(tmp_path: Path) -> None:
    make_maildir(tmp_path)
    make_maildir(tmp_path / ".Sent")
    folders, problems = discover(tmp_path, "nested")
    assert folders == []
    assert len(problems) == 2
    assert all("maildir++" in p for p in problems)


# -- include / exclude ----------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "include", "exclude", "expected"),
    [
        (("INBOX",), ["*"], [], True),
        (("INBOX",), ["inbox"], [], True),
        (("INBOX", "x"), ["Inbox/*"], [], True),
        (("Lists", "python"), ["Lists/*"], [], True),
        (("Lists", "a", "b"), ["Lists/*"], [], True),  # '*' crosses '/'
        (("Lists",), ["Lists/*"], [], False),
        (("lists", "python"), ["Lists/*"], [], False),  # case-sensitive except INBOX
        (("Trash",), ["*"], ["Trash", "Spam"], False),
        (("INBOX",), ["*"], ["INBOX"], False),
        (("Projets", ETE), [f"Projets/{ETE}"], [], True),
    ],
)
def test_matches(
    parts: tuple[str, ...], include: list[str], exclude: list[str], expected: bool
) -> None:
    assert matches(parts, include, exclude) is expected


def test_matches_defaults_to_everything() -> None:
    assert matches(("Any", "thing"))


# -- property -------------------------------------------------------------------

# Mostly plausible names (so many are accepted), plus anything at all.
COMPONENT = st.one_of(
    st.text(alphabet="abcXYZ019 ~-_.&\u00e9\u00c9\u0301\u6f22", min_size=1, max_size=12),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/"), max_size=12),
)
NAMES = st.lists(COMPONENT, min_size=1, max_size=4).map(tuple)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(parts=NAMES, layout=st.sampled_from(["maildir++", "nested"]))
def test_accepted_names_stay_inside_and_map_back(parts: tuple[str, ...], layout: Layout) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            path = local_path(root, parts, layout)
        except UnsafeNameError:
            return
        assert os.path.commonpath([root, path]) == str(root)
        make_maildir(path)
        folders, problems = discover(root, layout)
        assert problems == []
        assert split_name("/".join(parts), "/") in folders
