"""syncd-spam: X-Spam-Flag / X-Spam-Status -> Junk, through its hooks."""

from __future__ import annotations

from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import syncd_spam

from syncd.api import AccountInfo, Action


def account(**settings: Any) -> AccountInfo:
    return AccountInfo(
        "a", "imap.example.org", "me", Path("/m"), "maildir++", None, {"spam": settings}
    )


def headers(flag: str | None = None, status: str | None = None) -> Message:
    msg = Message()
    if flag is not None:
        msg["X-Spam-Flag"] = flag
    if status is not None:
        msg["X-Spam-Status"] = status
    return msg


@pytest.mark.parametrize(
    ("msg", "spam"),
    [
        (headers(flag="YES"), True),
        (headers(flag=" yes "), True),
        (headers(status="Yes, score=7.1 required=5.0"), True),
        (headers(flag="NO", status="No, score=1.2 required=5.0"), False),
        (headers(), False),
    ],
)
def test_verdict_headers(msg: Message, spam: bool) -> None:
    expected = Action.move("Junk") if spam else None
    assert syncd_spam.syncd_classify(account(), "INBOX", msg) == expected


def test_score_threshold_and_target() -> None:
    msg = headers(status="No, score=4.5 required=5.0")
    acct = account(score=4, target="Spam")
    assert syncd_spam.syncd_classify(acct, "INBOX", msg) == Action.move("Spam")
    assert syncd_spam.syncd_classify(account(score=5), "INBOX", msg) is None


def test_never_moves_out_of_the_junk_folder_itself() -> None:
    acct = account(folders=["INBOX", "Junk"])
    assert syncd_spam.syncd_classify(acct, "Junk", headers(flag="YES")) is None


def test_headers_requested_only_where_configured() -> None:
    assert syncd_spam.syncd_classify_headers(account(), "INBOX") == syncd_spam.FIELDS
    assert syncd_spam.syncd_classify_headers(account(), "Lists/x") is None
