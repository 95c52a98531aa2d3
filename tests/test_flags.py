"""Maildir info letters <-> IMAP flags (syncd.flags)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.flags import (
    flags_to_letters,
    kept_local_only,
    keyword_index,
    letters_to_flags,
    parse_info,
    split_letters,
    unmapped_flags,
)
from syncd.model import ANSWERED, DELETED, DRAFT, FLAGGED, FORWARDED, SEEN

KEYWORDS = ["$Junk", "work", "", "$MDNSent"]  # a, b, (c unused), d
INDEX = keyword_index(KEYWORDS)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("1700000000.M1P2.host", ("1700000000.M1P2.host", "", False)),
        ("1700000000.M1P2.host:2,", ("1700000000.M1P2.host", "", True)),
        ("1700000000.M1P2.host:2,FS", ("1700000000.M1P2.host", "FS", True)),
        ("1700000000.M1P2.host:2,SF", ("1700000000.M1P2.host", "SF", True)),
        ("1700000000.M1P2.host:2,ZYX", ("1700000000.M1P2.host", "ZYX", True)),
        # Dovecot's size fields belong to the identity.
        ("1.M1P2.host,S=1234,W=1260:2,Sab", ("1.M1P2.host,S=1234,W=1260", "Sab", True)),
        ("name with spaces:2,S", ("name with spaces", "S", True)),
        # The Windows separator is not recognised: the whole name is the identity.
        ("1.M1P2.host!2,S", ("1.M1P2.host!2,S", "", False)),
        # Experimental "1," info is not flags either.
        ("1.M1P2.host:1,xyz", ("1.M1P2.host:1,xyz", "", False)),
    ],
)
def test_parse_info(filename: str, expected: tuple[str, str, bool]) -> None:
    assert parse_info(filename) == expected


def test_system_letters_map_to_imap_flags() -> None:
    assert letters_to_flags("DFPRST", []) == {DRAFT, FLAGGED, FORWARDED, ANSWERED, SEEN, DELETED}


def test_keyword_letters_go_through_dovecot_keywords() -> None:
    assert letters_to_flags("Sabd", KEYWORDS) == {SEEN, "$Junk", "work", "$MDNSent"}


def test_unknown_letters_are_extra_and_sorted_once() -> None:
    # c is an unused slot, z is beyond the list, Z and 9 are unknown letters.
    flags, extra = split_letters("ZSczS9Z", KEYWORDS)
    assert flags == {SEEN}
    assert extra == "9Zcz"


def test_repeated_and_out_of_order_letters_are_written_sorted() -> None:
    flags, extra = split_letters("SSFSF", [])
    assert flags_to_letters(flags, {}, extra) == "FS"


def test_flags_to_letters_sorts_system_keyword_and_kept_letters() -> None:
    letters = flags_to_letters({SEEN, "work", DRAFT, "$Junk"}, INDEX, keep="Z9x")
    assert letters == "9DSZabx"


def test_keep_cannot_reintroduce_a_flag_that_was_removed() -> None:
    # 'S' and 'a' in keep are governed by the flags, not preserved blindly.
    assert flags_to_letters({FLAGGED}, INDEX, keep="SaZ") == "FZ"


def test_flags_without_a_letter_are_reported_not_written() -> None:
    flags = {SEEN, "work", "unknown-keyword", "\\Recent"}
    assert flags_to_letters(flags, INDEX) == "Sb"
    assert unmapped_flags(flags, INDEX) == {"unknown-keyword", "\\Recent"}


def test_keyword_beyond_26_has_no_letter() -> None:
    index = {f"k{i}": i for i in range(30)}
    assert flags_to_letters({"k25", "k26"}, index) == "z"
    assert unmapped_flags({"k25", "k26"}, index) == {"k26"}


# -- properties ---------------------------------------------------------------

LETTERS = st.text(alphabet="DFPRSTabcdxyzZQ019,!", max_size=12)
FLAG_NAMES = st.frozensets(
    st.sampled_from([SEEN, ANSWERED, FLAGGED, DELETED, DRAFT, FORWARDED, "$Junk", "work"])
)


@given(LETTERS)
def test_decode_encode_round_trip_is_sorted_deduplicated_letters(letters: str) -> None:
    flags, extra = split_letters(letters, KEYWORDS)
    assert flags_to_letters(flags, INDEX, extra) == "".join(sorted(set(letters)))


@given(FLAG_NAMES, LETTERS)
def test_encode_decode_round_trip_keeps_flags_and_extras(flags: frozenset[str], keep: str) -> None:
    _, extra_in = split_letters(keep, KEYWORDS)
    letters = flags_to_letters(flags, INDEX, extra_in)
    assert list(letters) == sorted(set(letters))
    decoded, extra_out = split_letters(letters, KEYWORDS)
    assert decoded == flags
    assert extra_out == extra_in


@given(FLAG_NAMES, LETTERS)
def test_encoding_is_idempotent(flags: frozenset[str], keep: str) -> None:
    _, extra = split_letters(keep, KEYWORDS)
    once = flags_to_letters(flags, INDEX, extra)
    again_flags, again_extra = split_letters(once, KEYWORDS)
    assert flags_to_letters(again_flags, INDEX, again_extra) == once


@pytest.mark.parametrize(
    ("permanent", "expected"),
    [
        (None, frozenset()),  # no PERMANENTFLAGS: everything is kept (RFC 3501 §7.1)
        (frozenset({"\\Seen", "\\*"}), frozenset()),  # \* : any new keyword is kept
        (frozenset({"\\Seen", "\\Flagged"}), frozenset({"$Label1", "work"})),
        (frozenset({"\\Seen", "$label1"}), frozenset({"work"})),  # keywords ignore case
        (frozenset(), frozenset({"$Label1", "work"})),  # system flags are never masked
    ],
)
def test_kept_local_only(permanent: frozenset[str] | None, expected: frozenset[str]) -> None:
    flags = {SEEN, FLAGGED, DELETED, "$Label1", "work"}
    assert kept_local_only(flags, permanent) == expected
