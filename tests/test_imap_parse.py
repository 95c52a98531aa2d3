"""Wire-level helpers of the IMAP session: bytes in, values out (no server)."""

from __future__ import annotations

import imaplib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient.response_parser import parse_fetch_response

from syncd.mailbox_names import (
    MAX_NAME_BYTES,
    check_mailbox_name,
    decode_mailbox_name,
    encode_mailbox_name,
)
from syncd.stores.imap.parse import (
    FlagInfo,
    LiteralTooLarge,
    UidSetError,
    chunk_uid_sets,
    clean_text,
    decode_flags,
    flags_to_text,
    format_uid_set,
    in_ranges,
    is_flag_atom,
    parse_appenduid,
    parse_copyuid,
    parse_flag_fetches,
    parse_uid_set,
    parse_vanished,
    read_literal,
    request_set_ranges,
    response_code,
)

# --- uid sets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uids", "text"),
    [
        ([1], "1"),
        ([5, 1, 2, 3, 9], "1:3,5,9"),
        ([3, 3, 2, 2], "2:3"),
        ([1, 3, 5], "1,3,5"),
        ([10, 11, 12, 13, 20, 21], "10:13,20:21"),
        ([4294967295], "4294967295"),
    ],
)
def test_format_uid_set_sorts_and_compresses_runs(uids: list[int], text: str) -> None:
    assert format_uid_set(uids) == text


@pytest.mark.parametrize("uids", [[], [0], [-1, 2], [2**32]])
def test_format_uid_set_refuses_what_no_server_can_hold(uids: list[int]) -> None:
    with pytest.raises(ValueError, match=r"uid set|out of range"):
        format_uid_set(uids)


def test_chunk_uid_sets_keeps_commands_short_and_covers_everything() -> None:
    uids = list(range(1, 40_000, 2))  # no runs at all: the worst case
    chunks = list(chunk_uid_sets(uids, max_len=1000))
    assert len(chunks) > 1
    assert all(len(c) <= 1000 for c in chunks)
    assert [u for c in chunks for u in parse_uid_set(c)] == uids


def test_chunk_uid_sets_of_nothing_is_nothing() -> None:
    assert list(chunk_uid_sets([])) == []


@pytest.mark.parametrize(
    ("text", "uids"),
    [
        ("1", [1]),
        ("1:3,7", [1, 2, 3, 7]),
        ("7,1:2", [7, 1, 2]),  # order as sent: COPYUID/APPENDUID pair by position
        ("5:3", [3, 4, 5]),
        (b"2:4", [2, 3, 4]),
        (" 9 ", [9]),
    ],
)
def test_parse_uid_set(text: str | bytes, uids: list[int]) -> None:
    assert parse_uid_set(text) == uids


@pytest.mark.parametrize(
    "text", ["", "0", "1:0", "*", "1:*", "a", "1,,2", "1:2:3", "1 2", "4294967296", "-1", "\u0661"]
)
def test_parse_uid_set_refuses_malformed_sets(text: str) -> None:
    with pytest.raises(UidSetError):
        parse_uid_set(text)


def test_parse_uid_set_refuses_to_expand_a_huge_range() -> None:
    with pytest.raises(UidSetError, match="expands past"):
        parse_uid_set("1:4294967295")
    with pytest.raises(UidSetError, match="expands past"):
        parse_uid_set("1:6,10:12", limit=8)
    assert len(parse_uid_set("1:6,10:11", limit=8)) == 8


@given(st.sets(st.integers(min_value=1, max_value=2**32 - 1), min_size=1, max_size=200))
def test_uid_set_round_trip(uids: set[int]) -> None:
    assert parse_uid_set(format_uid_set(uids)) == sorted(uids)


def test_request_set_ranges_allow_star() -> None:
    ranges = request_set_ranges("1:3,10:*")
    assert [u for u in (1, 3, 4, 9, 10, 4000) if in_ranges(u, ranges)] == [1, 3, 10, 4000]
    assert request_set_ranges("*") == [(2**32 - 1, 2**32 - 1)]
    with pytest.raises(ValueError, match="not a uid set"):
        request_set_ranges("1 OR 2")


# --- response codes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"[APPENDUID 38505 3955] APPEND completed", (38505, [3955])),
        (b"[APPENDUID 1795726862 2:4] Append completed.", (1795726862, [2, 3, 4])),
        ("[appenduid 7 1,3] ok", (7, [1, 3])),
        (b"APPEND completed", None),
        (b"[APPENDUID 0 5] uidvalidity zero", None),
        (b"[APPENDUID 7 0] uid zero", None),
        (b"[APPENDUID 7 1:99999999999] too many", None),
        (b"[APPENDUID 7 x] garbage", None),
    ],
)
def test_parse_appenduid(text: bytes | str, expected: tuple[int, list[int]] | None) -> None:
    assert parse_appenduid(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            b"[COPYUID 38505 304,319:320 3956:3958] Done",
            (38505, [304, 319, 320], [3956, 3957, 3958]),
        ),
        (b"1795726863 1 1", (1795726863, [1], [1])),
        (b"7 1:3 10:11", None),  # two UIDs for three messages: no pairing at all
        (b"7 1,1 10:11", None),  # a source UID twice
        (b"0 1 1", None),
        (b"[COPYUID 7 1 0] Done", None),
        (b"Done", None),
    ],
)
def test_parse_copyuid(text: bytes, expected: tuple[int, list[int], list[int]] | None) -> None:
    assert parse_copyuid(text) == expected


def test_response_code_stops_at_the_first_bracket() -> None:
    assert response_code(b"[UIDNEXT 5] Predicted next UID [really]") == ("UIDNEXT", b"5")
    assert response_code(b"[CLOSED] Previous mailbox closed") == ("CLOSED", b"")
    assert response_code(b"[read-only] EXAMINE done") == ("READ-ONLY", b"")
    assert response_code(b"Completed [UIDNEXT 5]") is None


def test_parse_vanished() -> None:
    assert parse_vanished(b"(EARLIER) 1:3,5") == (True, [1, 2, 3, 5])
    assert parse_vanished(b"405,407") == (False, [405, 407])
    with pytest.raises(UidSetError):
        parse_vanished(b"(EARLIER) 1:4294967295")


# --- flags --------------------------------------------------------------------------------


def test_decode_flags_canonical_names_without_recent() -> None:
    assert decode_flags(b"\\SEEN \\flagged \\Recent $forwarded Work") == frozenset(
        {"\\Seen", "\\Flagged", "$Forwarded", "Work"}
    )
    assert decode_flags(b"") == frozenset()


def test_decode_flags_drops_what_could_not_be_stored_back() -> None:
    assert decode_flags(b'\\Seen caf\xc3\xa9 a"b ok') == frozenset({"\\Seen", "ok"})


@pytest.mark.parametrize(
    ("flag", "ok"),
    [
        ("\\Seen", True),
        ("$Forwarded", True),
        ("$label1", True),
        ("with space", False),
        ("paren(", False),
        ('quote"', False),
        ("star*", False),
        ("brace{", False),
        ("bracket]", False),
        ("new\r\nline", False),
        ("été", False),
        ("", False),
        ("\\", False),
    ],
)
def test_is_flag_atom(flag: str, ok: bool) -> None:
    assert is_flag_atom(flag) is ok


def test_flags_to_text_is_sorted_and_leaves_out_unsendable_flags() -> None:
    assert flags_to_text({"\\Seen", "$Forwarded", "\\Recent", "a b"}) == "($Forwarded \\Seen)"
    assert flags_to_text(set()) == "()"


# --- FETCH flag listings ------------------------------------------------------------------


def _reference(entries: list[bytes | tuple[bytes, bytes]]) -> dict[int, tuple[int | None, object]]:
    """What IMAPClient's own parser makes of the same bytes."""
    out: dict[int, tuple[int | None, object]] = {}
    for seq, items in parse_fetch_response(entries, False, False).items():
        flags = items.get(b"FLAGS")
        modseq = items.get(b"MODSEQ")
        out[seq] = (
            items.get(b"UID"),  # type: ignore[arg-type]
            FlagInfo(
                decode_flags(b" ".join(flags)) if isinstance(flags, tuple) else frozenset(),
                modseq[0] if isinstance(modseq, tuple) else None,
                items.get(b"RFC822.SIZE"),  # type: ignore[arg-type]
            ),
        )
    return out


def _ours(entries: list[bytes | tuple[bytes, bytes]]) -> dict[int, tuple[int | None, object]]:
    return {seq: (uid, info) for seq, uid, info, _ in parse_flag_fetches(entries)}


@pytest.mark.parametrize(
    "entries",
    [
        [b"1 (UID 4 FLAGS (\\Seen) MODSEQ (12) RFC822.SIZE 2048)"],
        [b"1 (UID 4 RFC822.SIZE 2048 FLAGS (\\Seen \\Recent work) MODSEQ (12))"],
        [b"1 (FLAGS () UID 4)", b"2 (UID 5 FLAGS (\\Answered $Forwarded))"],
        [b"3 (FLAGS (\\Deleted))"],  # unsolicited, no UID
        [b"7 (UID 9 MODSEQ (40))"],  # MODSEQ only
        [b'1 (UID 4 FLAGS (\\Seen) BODY[HEADER.FIELDS (SUBJECT)] "x")'],  # not the fast shape
        [(b"1 (UID 4 FLAGS (\\Seen) BODY[] {5}", b"hello"), b")"],  # a literal
        [b"1 (uid 4 flags (\\seen))"],  # lower case
        [b"2 (UID 8 FLAGS (\\Seen) MODSEQ (3))", b"1 (MODSEQ (3) UID 7 FLAGS (\\Flagged))"],
    ],
)
def test_fast_flag_parser_agrees_with_imapclient(
    entries: list[bytes | tuple[bytes, bytes]],
) -> None:
    assert _ours(entries) == _reference(entries)


_flag = st.sampled_from(
    [
        b"\\Seen",
        b"\\Answered",
        b"\\Flagged",
        b"\\Deleted",
        b"\\Draft",
        b"\\Recent",
        b"$Forwarded",
        b"$Junk",
        b"work",
        b"a.b",
    ]
)


@st.composite
def _fetch_line(draw: st.DrawFn) -> bytes:
    items = {
        b"UID": b"UID %d" % draw(st.integers(1, 2**32 - 1)),
        b"FLAGS": b"FLAGS (" + b" ".join(draw(st.lists(_flag, max_size=4))) + b")",
        b"MODSEQ": b"MODSEQ (%d)" % draw(st.integers(1, 2**63 - 1)),
        b"RFC822.SIZE": b"RFC822.SIZE %d" % draw(st.integers(0, 2**31)),
    }
    names = draw(st.permutations(list(items)))
    keep = draw(st.integers(1, 4))
    seq = draw(st.integers(1, 10**6))
    return b"%d (" % seq + b" ".join(items[n] for n in names[:keep]) + b")"


@given(st.lists(_fetch_line(), min_size=1, max_size=20, unique_by=lambda b: b.split(b" ")[0]))
def test_fast_flag_parser_agrees_with_imapclient_on_generated_lines(lines: list[bytes]) -> None:
    entries: list[bytes | tuple[bytes, bytes]] = list(lines)
    assert _ours(entries) == _reference(entries)


def test_fast_flag_parser_reports_whether_flags_came() -> None:
    got = list(parse_flag_fetches([b"1 (UID 4 MODSEQ (9))", b"2 (UID 5 FLAGS ())"]))
    assert [(uid, has) for _seq, uid, _info, has in got] == [(4, False), (5, True)]


def test_fast_flag_parser_skips_garbage_when_asked() -> None:
    errors: list[str] = []
    got = list(parse_flag_fetches([b"1 (UID 4 FLAGS (\\Seen", b"2 (UID 5 FLAGS ())"], errors))
    assert [uid for _seq, uid, _i, _h in got] == [5]
    assert len(errors) == 1


def test_fast_flag_parser_shares_flag_sets() -> None:
    got = list(parse_flag_fetches([b"1 (UID 1 FLAGS (\\Seen))", b"2 (UID 2 FLAGS (\\Seen))"]))
    assert got[0][2].flags is got[1][2].flags


# --- mailbox names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"INBOX", "INBOX"),
        (b"Projets/&AMk-t&AOk-", "Projets/Été"),
        (b"A &- B", "A & B"),
        (b"Entw&APw-rfe", "Entwürfe"),
        (b"&BD8EQAQ+BDUEOgRC-", "проект"),
    ],
)
def test_decode_mailbox_name(raw: bytes, name: str) -> None:
    assert decode_mailbox_name(raw) == name
    assert encode_mailbox_name(name) == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"Entw&APw", "'&'"),  # unterminated
        (b"A & B", "'&'"),  # bare ampersand
        (b"&!!-", "'&'"),  # not base64
        (b"&AGE-", "canonical"),  # 'a' needlessly encoded
        (b"R\xc3\xa9ponses", "8-bit"),  # UTF-8 where modified UTF-7 belongs
        (b"a\r\nb", "control"),
        (b"a\x00b", "control"),
        (b"&AAA-", "control"),  # an encoded NUL
        (b"&ABs-[31m", "control"),  # an encoded ESC
        (b"x" * (MAX_NAME_BYTES + 1), "longer"),
    ],
)
def test_decode_mailbox_name_refuses_bad_names(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_mailbox_name(raw)


@pytest.mark.parametrize("name", ["", "a\nb", "a\rb", "a\x00", "a\x1b[2J", "x\u0085y", "\ud800"])
def test_check_mailbox_name_refuses_names_that_would_break_a_command(name: str) -> None:
    with pytest.raises(ValueError, match=r"empty|control"):
        check_mailbox_name(name)


# --- literal cap --------------------------------------------------------------------------


class _Recording(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def test_read_literal_refuses_an_oversized_literal_before_reading() -> None:
    f = _Recording(b"x" * 100)
    with pytest.raises(LiteralTooLarge, match="4294967296 bytes"):
        read_literal(f, 4_294_967_296, cap=64 * 1024 * 1024)
    assert f.asked == []  # nothing read, nothing allocated
    assert issubclass(LiteralTooLarge, imaplib.IMAP4.abort)  # imaplib treats it as fatal


def test_read_literal_reads_big_literals_in_chunks() -> None:
    data = bytes(range(256)) * 12_000  # ~3 MB
    f = _Recording(data + b")\r\n")
    assert read_literal(f, len(data), cap=len(data)) == data
    assert max(f.asked) <= 1 << 20


def test_read_literal_at_eof_aborts() -> None:
    with pytest.raises(imaplib.IMAP4.abort, match="EOF"):
        read_literal(io.BytesIO(b"abc"), 10, cap=100)
    with pytest.raises(imaplib.IMAP4.abort, match="EOF"):
        read_literal(io.BytesIO(b"a" * 100), 3 << 20, cap=4 << 20)


# --- server text --------------------------------------------------------------------------


def test_clean_text_keeps_one_line_and_escapes_terminal_codes() -> None:
    text = clean_text(b"[ALERT] \x1b[31mpay now\r\nB OK fake")
    assert "\x1b" not in text
    assert "\n" not in text
    assert "\r" not in text
    assert "\\x1b[31mpay now\\x0d\\x0aB OK fake" in text
    assert len(clean_text("x" * 500)) == 200


def test_clean_text_decodes_server_bytes_in_exceptions() -> None:
    """Issue 15: login refusals and SEARCH errors read as the server's words."""
    from imapclient.exceptions import InvalidCriteriaError, LoginError

    refused = LoginError(str(imaplib.IMAP4.error(b"[AUTHENTICATIONFAILED] Authentication failed.")))
    assert clean_text(refused) == "[AUTHENTICATIONFAILED] Authentication failed."
    assert clean_text(imaplib.IMAP4.error(b"caf\xc3\xa9")) == "café"
    # What IMAPClient raises for a BAD answer to SEARCH: the server's line as a bytes
    # repr, then two paragraphs of advice.
    bad = InvalidCriteriaError(
        "b'Error in IMAP command UID SEARCH: Unknown argument FROMM'\n\n"
        "This error may have been caused by a syntax error in the criteria: ..."
    )
    assert clean_text(bad) == "Error in IMAP command UID SEARCH: Unknown argument FROMM"
    # a control character hidden in a repr is still escaped
    assert clean_text("b'a\\x1bb'") == "a\\x1bb"


def test_fast_body_parser_agrees_with_imapclient() -> None:
    from datetime import datetime, timedelta, timezone

    from imapclient.response_parser import parse_fetch_response

    from syncd.stores.imap.parse import parse_body_fetch, parse_internaldate

    body = b"Subject: x\r\n\r\nhello\r\n"
    for date in (b"01-Jan-2024 12:00:00 +0000", b" 7-Feb-2023 03:04:05 -0130"):
        head = b'3 (UID 40 INTERNALDATE "' + date + b'" BODY[] {%d}' % len(body)
        group = [(head, body), b")"]
        uid, when, data = parse_body_fetch(group)  # type: ignore[misc]
        ref = parse_fetch_response(group, normalise_times=False, uid_is_key=False)[3]
        assert (uid, data) == (ref[b"UID"], ref[b"BODY[]"])
        assert when == ref[b"INTERNALDATE"]
    assert parse_internaldate(b" 7-Feb-2023 03:04:05 -0130") == datetime(
        2023, 2, 7, 3, 4, 5, tzinfo=timezone(-timedelta(hours=1, minutes=30)))
    # other shapes and a literal whose length lies go to the general parser
    assert parse_body_fetch([(b"3 (BODY[] {5} UID 4)", b"hello"), b")"]) is None
    assert parse_body_fetch([(b'3 (UID 4 INTERNALDATE "01-Jan-2024 12:00:00 +0000" '
                              b"BODY[] {9}", b"short"), b")"]) is None
    assert parse_internaldate(b"garbage") is None


# --- command responses read into values (syncd.stores.imap.responses) ---------------------


def test_status_response_and_status_info() -> None:
    from syncd.stores.imap.responses import status_info, status_response
    from syncd.stores.imap.results import StatusInfo

    got = status_response("STATUS", b'"Entw&APw-rfe" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 7)')
    assert got == (b"Entw&APw-rfe", {b"MESSAGES": 3, b"UIDNEXT": 9, b"UIDVALIDITY": 7})
    assert status_info(got[1]) == StatusInfo(3, 9, 7, None)
    # a numeric name is a name; HIGHESTMODSEQ 0 means "none"
    got = status_response("STATUS", b"2024 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1 HIGHESTMODSEQ 0)")
    assert got is not None and got[0] == b"2024"
    assert status_info(got[1]) == StatusInfo(0, 1, 1, None)
    assert status_info({b"MESSAGES": 1, b"UIDNEXT": 2}) is None  # no UIDVALIDITY
    assert status_response("LIST", b'() "/" INBOX') is None
    assert status_response("STATUS", b'"INBOX" (MESSAGES') is None  # garbled: skipped
    assert status_response("STATUS", b'"INBOX" MESSAGES 1') is None


def test_permanent_flags_keep_the_star() -> None:
    from syncd.stores.imap.responses import permanent_flags

    assert permanent_flags(b"(\\Seen \\Deleted $Label \\*)") == {
        "\\Seen",
        "\\Deleted",
        "$Label",
        "\\*",
    }
    assert permanent_flags(b"()") == frozenset()


def test_delimiter_inbox_and_numbers() -> None:
    from syncd.stores.imap.responses import both_inbox, delimiter_text, to_int

    assert delimiter_text(b"/") == "/"
    assert delimiter_text(None) is None  # NIL: a flat namespace
    assert delimiter_text(b" ") is None
    assert delimiter_text(b"//") is None
    assert both_inbox(b"inbox", b"INBOX")
    assert not both_inbox(b"INBOX", b"Other")
    assert to_int(b"42", None) == 42
    assert to_int(b"x", -1) == -1
    assert to_int(None, 0) == 0


def test_before_closed_splits_off_the_previous_mailbox() -> None:
    from syncd.stores.imap.responses import before_closed

    old = [("FETCH", b"1 (FLAGS (\\Seen))"), ("EXISTS", b"4")]
    closed = [("OK", b"[CLOSED] previous mailbox closed")]
    new = [("EXISTS", b"2"), ("OK", b"[UIDVALIDITY 5] v")]
    assert before_closed(old + closed + new) == (old, new)
    assert before_closed(new) == ([], new)


def test_read_select_answers() -> None:
    from syncd.stores.imap.responses import read_select

    got = read_select(
        [
            ("FLAGS", b"(\\Seen \\Deleted)"),
            ("EXISTS", b"3"),
            ("OK", b"[UIDVALIDITY 7] v"),
            ("OK", b"[UIDNEXT 11] n"),
            ("OK", b"[HIGHESTMODSEQ 90] m"),
            ("OK", b"[PERMANENTFLAGS (\\Seen \\*)] p"),
            ("OK", b"[ALERT] disk nearly full"),
            ("NO", b"[UIDNOTSTICKY] non-persistent UIDs"),
            ("VANISHED", b"(EARLIER) 1:2"),
            ("FETCH", b"3 (UID 10 FLAGS (\\Seen) MODSEQ (88))"),
            ("OK", b"just words"),
            ("EXPUNGE", b"1"),
            ("NO", b"something else"),
        ]
    )
    assert (got.exists, got.uidvalidity, got.uidnext, got.highestmodseq) == (3, 7, 11, 90)
    assert not got.nomodseq and not got.sticky
    assert got.permanent_flags == {"\\Seen", "\\*"}
    assert got.notices == [("ALERT", b"[ALERT] disk nearly full"), ("VANISHED", b"(EARLIER) 1:2")]
    assert got.fetches == [b"3 (UID 10 FLAGS (\\Seen) MODSEQ (88))"]
    assert got.rest == [("EXPUNGE", b"1"), ("NO", b"something else")]  # filed as events
    bare = read_select([("OK", b"[NOMODSEQ] none"), ("EXISTS", b"x"), ("OK", b"[UIDNEXT y] n")])
    assert bare.nomodseq and bare.sticky and bare.exists == 0
    assert bare.uidvalidity is None and bare.uidnext is None and bare.permanent_flags is None
