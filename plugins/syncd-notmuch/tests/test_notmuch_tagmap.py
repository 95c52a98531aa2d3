"""The flag <-> tag map (pure): defaults, inversion, what takes part, settings."""

from __future__ import annotations

from typing import Any

import pytest
from syncd_notmuch_tagmap import DEFAULT_IGNORE, TagMap

from syncd.api import merge_flags

DEFAULT = TagMap.from_settings({})


@pytest.mark.parametrize(
    ("tags", "flags"),
    [
        # notmuch tags -> the flags they stand for, in IMAP terms
        ({"unread"}, set()),
        (set(), {"\\Seen"}),  # no `unread`: read
        ({"flagged", "unread"}, {"\\Flagged"}),
        ({"spam", "unread"}, {"$Junk"}),
        ({"replied", "draft", "passed"}, {"\\Answered", "\\Draft", "$Forwarded", "\\Seen"}),
        ({"work", "unread"}, {"work"}),  # keywords as tags
        ({"inbox", "attachment", "signed", "encrypted", "new", "unread"}, set()),  # ignored
        ({"has space", "unread"}, set()),  # not an IMAP atom: stays in notmuch
        ({"$Junk", "unread"}, set()),  # a mapped keyword's name: spelled `spam` here
        ({"\\Seen", "unread"}, set()),
    ],
)
def test_tags_to_flags(tags: set[str], flags: set[str]) -> None:
    assert DEFAULT.flags_of_tags(tags) == flags


@pytest.mark.parametrize(
    ("flags", "tags"),
    [
        (set(), {"unread"}),
        ({"\\Seen"}, set()),
        ({"\\Seen", "\\Flagged", "$Junk"}, {"flagged", "spam"}),
        ({"\\Seen", "$Forwarded", "\\Answered"}, {"passed", "replied"}),
        ({"\\Seen", "work", "$label1"}, {"work", "$label1"}),
        ({"\\Seen", "inbox"}, set()),  # an ignored tag's keyword takes no part
        ({"\\Seen", "flagged"}, set()),  # a keyword named like a mapped tag neither
    ],
)
def test_flags_to_tags(flags: set[str], tags: set[str]) -> None:
    assert DEFAULT.tags_of_flags(flags) == tags


def test_managed_keeps_only_what_the_map_syncs() -> None:
    file_flags = {"\\Seen", "\\Deleted", "$Junk", "work", "inbox", "flagged"}
    assert DEFAULT.managed(file_flags) == {"\\Seen", "$Junk", "work"}


def test_tag_changes_leave_tags_that_take_no_part_alone() -> None:
    add, remove = DEFAULT.tag_changes(
        {"inbox", "unread", "work", "has space"}, {"\\Seen", "\\Flagged"}
    )
    assert (add, remove) == ({"flagged"}, {"unread", "work"})


@pytest.mark.parametrize(
    ("base", "near_tags", "far_flags", "tags"),
    [
        # (last agreed flags, notmuch tags now, Maildir flags now) -> merged tags
        (set(), {"unread"}, {"\\Seen"}, set()),  # first sight: a read copy stays read
        ({"\\Seen"}, {"unread"}, {"\\Seen"}, {"unread"}),  # marked unread in notmuch
        (set(), {"unread"}, {"\\Seen", "work"}, {"work"}),
        ({"a", "b"}, {"b", "d", "unread"}, {"a", "b", "c"}, {"unread", "b", "c", "d"}),
        ({"a", "b"}, {"a", "d", "unread"}, {"b", "c"}, {"unread", "c", "d"}),  # conflict
        ({"\\Seen", "a"}, set(), {"\\Seen"}, set()),  # removed on the server
        ({"\\Seen", "a"}, {"a", "unread"}, {"\\Seen", "a", "\\Deleted"}, {"a", "unread"}),
    ],
)
def test_three_way_in_imap_terms(
    base: set[str], near_tags: set[str], far_flags: set[str], tags: set[str]
) -> None:
    near = DEFAULT.flags_of_tags(near_tags)
    far = DEFAULT.managed(far_flags)
    merged = merge_flags(frozenset(base), far, near)
    assert DEFAULT.tags_of_flags(merged) == tags


def test_settings_override_drop_and_add() -> None:
    m = TagMap.from_settings(
        {
            "tag_map": {"\\flagged": "star", "$Junk": "", "NonJunk": "ham"},
            "ignore_tags": ["private"],
        }
    )
    assert m.tags_of_flags({"\\Flagged", "\\Seen", "$Junk", "NonJunk"}) == {"star", "$Junk", "ham"}
    assert m.flags_of_tags({"private", "inbox", "unread"}) == {"inbox"}
    assert m.ignore == {"private"}
    assert DEFAULT.ignore == DEFAULT_IGNORE


def test_inverting_any_pair() -> None:
    m = TagMap.from_settings({"tag_map": {"\\Seen": "new-mail", "$Junk": "!ham"}})
    assert m.tags_of_flags(set()) == {"ham"}
    assert m.tags_of_flags({"\\Seen", "$Junk"}) == {"new-mail"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tag_map": ["x"]}, "plugins.notmuch.tag_map must be a table"),
        ({"tag_map": {"\\Flagged": 1}}, "must be a tag name"),
        ({"tag_map": {"\\Deleted": "trash"}}, "only \\Answered, \\Draft, \\Flagged, \\Seen"),
        ({"tag_map": {"\\Recent": "new"}}, "and keywords can be mapped"),
        ({"tag_map": {"bad keyword": "x"}}, "bad keyword is not an IMAP keyword"),
        ({"tag_map": {"\\Flagged": "a b"}}, 'not a tag name: "a b"'),
        ({"tag_map": {"\\Flagged": "!"}}, 'not a tag name: "!"'),
        ({"tag_map": {"\\Flagged": "spam"}}, "two flags map to the same tag"),
        ({"ignore_tags": "inbox"}, "ignore_tags must be a list of tags"),
    ],
)
def test_malformed_settings_say_which_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"plugins\.notmuch") as err:
        TagMap.from_settings(settings)
    assert message in str(err.value)
