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
    LAYOUTS,
    LOCAL_NAMES,
    Layout,
    LocalNames,
    clashes,
    decode_component,
    encode_component,
    join_name,
    local_path,
    matches,
    split_name,
)
from syncd.stores.maildir.discover import discover

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


# What mbsync 1.4 and offlineimap write (checked against the real tools in
# tests/test_switch_e2e.py): modified UTF-7 names, and offlineimap's sep = . /
# mbsync's Flatten . as the flat layout.
@pytest.mark.parametrize(
    ("layout", "names", "parts", "relative"),
    [
        ("flat", "utf-8", ("INBOX",), "INBOX"),
        ("flat", "utf-8", ("inbox",), "INBOX"),
        ("flat", "utf-8", ("Lists", "python"), "Lists.python"),
        ("flat", "utf-8", ("INBOX", "sub"), "INBOX.sub"),
        ("flat", "utf-8", ("Projets", ETE), f"Projets.{ETE}"),
        ("flat", "utf-8", ("~user",), "~user"),
        ("flat", "imap-utf-7", ("Projets", ETE), "Projets.&AMk-t&AOk-"),
        ("flat", "imap-utf-7", ("INBOX",), "INBOX"),
        ("nested", "imap-utf-7", ("Projets", ETE), "Projets/&AMk-t&AOk-"),
        ("nested", "imap-utf-7", ("INBOX",), "INBOX"),
        ("nested", "imap-utf-7", ("R&D",), "R&-D"),
        ("nested", "imap-utf-7", ("\u65e5\u672c",), "&ZeVnLA-"),
        ("nested", "imap-utf-7", ("a.b", "c"), "a.b/c"),
        ("maildir++", "imap-utf-7", ("Projets", ETE), ".Projets.&AMk-t&AOk-"),
        ("maildir++", "imap-utf-7", ("INBOX",), ""),
        ("maildir++", "imap-utf-7", ("Tom & Jerry",), ".Tom &- Jerry"),
    ],
)
def test_local_path_flat_and_imap_utf7(
    tmp_path: Path, layout: Layout, names: LocalNames, parts: tuple[str, ...], relative: str
) -> None:
    expected = tmp_path / relative if relative else tmp_path
    assert local_path(tmp_path, parts, layout, names=names) == expected


def test_unknown_layout_or_names_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        local_path(tmp_path, ("A",), "Flat")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="local_names"):
        local_path(tmp_path, ("A",), "nested", names="utf-7")  # type: ignore[arg-type]


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


@pytest.mark.parametrize("names", LOCAL_NAMES)
@pytest.mark.parametrize(("name", "delimiter", "reason"), HOSTILE)
def test_hostile_names_are_rejected_in_nested_layout_in_both_spellings(
    tmp_path: Path, name: str, delimiter: str | None, reason: str, names: LocalNames
) -> None:
    with pytest.raises(UnsafeNameError, match=reason) as info:
        local_path(tmp_path / "root", split_name(name, delimiter), "nested", names=names)
    assert "\n" not in str(info.value)


FLAT_HOSTILE: list[tuple[str, str]] = [
    ("../../x", "possible attack"),
    ("a/../b", "possible attack"),
    ("..", "possible attack"),
    ("/etc", "possible attack"),
    ("", "empty"),
    ("a//b", "empty component"),
    ("a/", "empty component"),
    ("a\x00b", "NUL"),
    ("a\nb", "control character"),
    ("a\x9bb", "control character"),
    ("bad\ud800", "lone surrogate"),
    ("a/b.c", "flat layout's separator"),  # would read back as a/b/c
    (".hidden", "separator"),
    ("Lists/.x", "separator"),  # Lists..x: an empty component on the way back
    ("cur", "clashes"),
    ("tmp", "clashes"),
    ("dovecot-keywords", "clashes"),
    ("x" * 300, "255 bytes"),
    ("/".join(["x" * 100] * 3), "as one flat directory name"),
]


@pytest.mark.parametrize("names", LOCAL_NAMES)
@pytest.mark.parametrize(("name", "reason"), FLAT_HOSTILE)
def test_hostile_names_are_rejected_in_flat_layout(
    tmp_path: Path, name: str, reason: str, names: LocalNames
) -> None:
    with pytest.raises(UnsafeNameError, match=reason) as info:
        local_path(tmp_path, split_name(name, "/"), "flat", names=names)
    assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_name_too_long_once_encoded_is_rejected(tmp_path: Path, layout: Layout) -> None:
    # 200 bytes of UTF-8, but 2 + 100 * 8 / 3 > 255 bytes of modified UTF-7.
    name = ("\u00e9" * 100,)
    assert local_path(tmp_path, name, layout, names="utf-8")
    with pytest.raises(UnsafeNameError, match="once encoded"):
        local_path(tmp_path, name, layout, names="imap-utf-7")


@pytest.mark.parametrize("names", LOCAL_NAMES)
def test_flat_folder_symlinked_outside_is_refused(tmp_path: Path, names: LocalNames) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "Lists.python").symlink_to(outside)
    (root / "Projets.&AMk-t&AOk-").symlink_to(outside)
    with pytest.raises(UnsafeNameError, match="outside the Maildir root"):
        local_path(root, ("Lists", "python"), "flat", names=names)
    if names == "imap-utf-7":
        with pytest.raises(UnsafeNameError, match="outside the Maildir root"):
            local_path(root, ("Projets", ETE), "flat", names=names)
    folders, problems = discover(root, "flat", names=names)
    assert folders == []
    assert any("Lists.python" in p and "symlinked" in p for p in problems)


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


def test_discover_flat_as_offlineimap_and_mbsync_write_it(tmp_path: Path) -> None:
    for name in ("INBOX", "INBOX.sub", "Archive", "Lists.python", "Projets.&AMk-t&AOk-"):
        make_maildir(tmp_path / name)
    (tmp_path / "Lists.python" / "sub" / "cur").mkdir(parents=True)  # not a flat folder
    (tmp_path / ".notmuch" / "xapian").mkdir(parents=True)
    (tmp_path / "plain").mkdir()
    folders, problems = discover(tmp_path, "flat", names="imap-utf-7")
    assert folders == [
        ("INBOX",), ("Archive",), ("INBOX", "sub"), ("Lists", "python"), ("Projets", ETE),
    ]  # fmt: skip
    assert problems == []
    # The same tree read with UTF-8 names: the mUTF-7 spelling is a name of its own.
    folders, problems = discover(tmp_path, "flat")
    assert ("Projets", "&AMk-t&AOk-") in folders
    assert problems == []


def test_discover_flat_reports_what_it_skips(tmp_path: Path) -> None:
    make_maildir(tmp_path)  # a maildir++ root
    make_maildir(tmp_path / ".Sent")
    make_maildir(tmp_path / "a..b")  # an empty component
    make_maildir(tmp_path / "inbox")  # would be written INBOX
    folders, problems = discover(tmp_path, "flat")
    assert folders == []
    assert len(problems) == 4, problems
    assert any("root itself is a Maildir" in p for p in problems)
    assert any(".Sent" in p and "hidden" in p for p in problems)
    assert any("a..b" in p and "empty component" in p for p in problems)
    assert any("inbox" in p and "does not map back" in p for p in problems)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_discover_decodes_imap_utf7_in_every_layout(tmp_path: Path, layout: Layout) -> None:
    path = local_path(tmp_path, ("Projets", ETE), layout, names="imap-utf-7")
    assert "&AMk-t&AOk-" in str(path)
    make_maildir(path)
    make_maildir(local_path(tmp_path, ("INBOX",), layout, names="imap-utf-7"))
    folders, problems = discover(tmp_path, layout, names="imap-utf-7")
    assert folders == [("INBOX",), ("Projets", ETE)]
    assert problems == []


@pytest.mark.parametrize(
    ("spelled", "reason"),
    [
        (ETE, "non-ASCII"),  # a UTF-8 name under imap-utf-7
        ("a&b", "base64 run"),
        ("&AGE-", "not canonical"),  # "a", which is written as itself
        ("&AC8-", "not canonical"),  # "/", smuggled as base64
        ("&AC4-", "not canonical"),  # "."
        ("&ZeVnLA", "base64 run"),  # unterminated
    ],
)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_discover_reports_names_that_are_not_modified_utf7(
    tmp_path: Path, layout: Layout, spelled: str, reason: str
) -> None:
    directory = {
        "nested": tmp_path / "Projets" / spelled,
        "flat": tmp_path / f"Projets.{spelled}",
        "maildir++": tmp_path / f".Projets.{spelled}",
    }[layout]
    make_maildir(directory)
    folders, problems = discover(tmp_path, layout, names="imap-utf-7")
    assert folders == []
    [problem] = problems
    assert problem.startswith(f"skipped {directory}")
    assert "not valid modified UTF-7" in problem and reason in problem
    assert 'local_names = "imap-utf-7"' in problem
    assert "\n" not in problem
    with pytest.raises(ValueError, match=reason):
        decode_component(spelled, "imap-utf-7")


def test_decode_component_is_the_identity_under_utf8() -> None:
    assert decode_component("&AMk-t&AOk-", "utf-8") == "&AMk-t&AOk-"
    assert decode_component(ETE, "utf-8") == ETE
    assert decode_component("&AMk-t&AOk-", "imap-utf-7") == ETE
    assert decode_component("R&-D", "imap-utf-7") == "R&D"


def test_every_production_call_passes_the_accounts_local_names() -> None:
    """A call that forgets ``names=`` silently uses UTF-8: for an mbsync Maildir that
    means a second directory and a second server folder.  Guard the call sites."""
    import ast

    root = Path(__file__).resolve().parent.parent / "syncd"
    missing = []
    for source in root.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("local_path", "discover", "folder_of") and source.name != "folders.py":
                if name == "discover" and isinstance(func, ast.Attribute):
                    continue  # syncd.discover's address discovery, not folders.discover
                if not any(k.arg == "names" for k in node.keywords):
                    missing.append(f"{source.relative_to(root)}:{node.lineno} {name}()")
    assert missing == []


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


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(parts=NAMES, layout=st.sampled_from(LAYOUTS), names=st.sampled_from(LOCAL_NAMES))
def test_accepted_names_stay_inside_and_map_back(
    parts: tuple[str, ...], layout: Layout, names: LocalNames
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            path = local_path(root, parts, layout, names=names)
        except UnsafeNameError:
            return
        assert os.path.commonpath([root, path]) == str(root)
        if names == "imap-utf-7":
            assert str(path.relative_to(root)).isascii()
        # One directory per folder, at the depth the layout says.
        depth = len(path.relative_to(root).parts)
        assert depth == (len(parts) if layout == "nested" else int(path != root))
        make_maildir(path)
        folders, problems = discover(root, layout, names=names)
        assert problems == []
        assert split_name("/".join(parts), "/") in folders


@settings(max_examples=300)
@given(part=COMPONENT)
def test_imap_utf7_components_round_trip(part: str) -> None:
    if part in {"", ".", ".."}:
        return  # refused by local_path before any encoding
    try:
        spelled = encode_component(part, "imap-utf-7")
    except UnicodeEncodeError:  # lone surrogates: local_path refuses them before encoding
        return
    assert spelled.isascii()
    assert "/" not in spelled and spelled not in {"", ".", ".."}
    # Only the '.' the name itself had: the encoding never adds a layout separator.
    assert spelled.count(".") == part.count(".")
    if all(ch.isprintable() for ch in part):
        assert decode_component(spelled, "imap-utf-7") == part
