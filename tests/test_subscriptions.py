"""Subscriptions: the three-way merge (one case per row) and Dovecot's
``subscriptions`` file, read and written as Dovecot 2.3 does."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.engine.subscriptions import merge_subscriptions
from syncd.stores.maildir.subscriptions import (
    format_subscriptions,
    read_subscriptions,
    write_subscriptions,
)

A, B, C = ("A",), ("B",), ("Lists", "python")

MERGES = [
    # base, far, near, push/pull, agreed, subscribe (far), unsubscribe (far), near changed
    ("first run, no file: the server's", set(), {A}, None, {}, {A}, set(), set(), True),
    ("nothing anywhere: no file written", set(), set(), None, {}, set(), set(), set(), False),
    ("unchanged", {A}, {A}, {A}, {}, {A}, set(), set(), False),
    ("subscribed here", {A}, {A}, {A, C}, {}, {A, C}, {C}, set(), False),
    ("subscribed there", {A}, {A, B}, {A}, {}, {A, B}, set(), set(), True),
    ("unsubscribed here", {A, B}, {A, B}, {A}, {}, {A}, set(), {B}, False),
    ("unsubscribed there", {A, B}, {A}, {A, B}, {}, {A}, set(), set(), True),
    ("both sides change", {A}, {A, B}, set(), {}, {B}, set(), {A}, True),
    ("file removed: changes nothing", {A}, {A}, None, {}, {A}, set(), set(), True),
    ("pull only: the server's wins", {A}, {A}, {A, C}, {"push": False}, {A}, set(), set(), True),
    ("push only: the Maildir's wins", {A}, {B}, {A}, {"pull": False}, {A}, {A}, {B}, False),
]


@pytest.mark.parametrize(
    ("case", "base", "far", "near", "kw", "agreed", "sub", "unsub", "near_changed"),
    MERGES,
    ids=[m[0] for m in MERGES],
)
def test_merge(
    case: str,
    base: set[tuple[str, ...]],
    far: set[tuple[str, ...]],
    near: set[tuple[str, ...]] | None,
    kw: dict[str, bool],
    agreed: set[tuple[str, ...]],
    sub: set[tuple[str, ...]],
    unsub: set[tuple[str, ...]],
    near_changed: bool,
) -> None:
    plan = merge_subscriptions(base, far, near, **kw)
    assert (plan.agreed, plan.subscribe, plan.unsubscribe) == (agreed, sub, unsub)
    assert plan.near_changed is near_changed


# What Dovecot 2.3.19 wrote after SUBSCRIBE Lists/python, INBOX, Été (its own Maildir).
DOVECOT = b"V\t2\n\nLists\tpython\nINBOX\n&AMk-t&AOk-\n"


def test_dovecot_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "subscriptions").write_bytes(DOVECOT)
    found = read_subscriptions(tmp_path, layout="maildir++", names="imap-utf-7")
    assert found == {("Lists", "python"), ("INBOX",), ("Été",)}
    assert read_subscriptions(tmp_path / "none", layout="nested") is None


def test_written_file_is_dovecot_s_format(tmp_path: Path) -> None:
    subscribed = {("Lists", "python"), ("INBOX",), ("Été",)}
    write_subscriptions(tmp_path, subscribed, names="imap-utf-7")
    text = (tmp_path / "subscriptions").read_bytes()
    assert sorted(text.split(b"\n")) == sorted(DOVECOT.split(b"\n"))
    assert text.startswith(b"V\t2\n\n")
    assert read_subscriptions(tmp_path, layout="nested", names="imap-utf-7") == subscribed
    assert format_subscriptions(subscribed, "utf-8") == "V\t2\n\nINBOX\nLists\tpython\nÉté\n"
    assert (tmp_path / "subscriptions").stat().st_mode & 0o777 == 0o600


def test_version_1_file_uses_the_layout_separator(tmp_path: Path) -> None:
    (tmp_path / "subscriptions").write_text("INBOX\nLists.python\n\n")
    assert read_subscriptions(tmp_path, layout="maildir++") == {("INBOX",), ("Lists", "python")}
    (tmp_path / "subscriptions").write_text("inbox\nLists/python\n")
    assert read_subscriptions(tmp_path, layout="nested") == {("INBOX",), ("Lists", "python")}
