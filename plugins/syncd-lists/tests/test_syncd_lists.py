"""syncd-lists: List-Id -> Lists/<name>, through its hooks."""

from __future__ import annotations

from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import syncd_lists

from syncd.api import AccountInfo, Action


def account(**settings: Any) -> AccountInfo:
    return AccountInfo(
        "a", "imap.example.org", "me", Path("/m"), "maildir++", None, {"lists": settings}
    )


def headers(**fields: str) -> Message:
    msg = Message()
    for name, value in fields.items():
        msg[name.replace("_", "-")] = value
    return msg


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Python list <python-list.python.org>", "python-list"),
        ("<dev.lists.example.org>", "dev"),
        ("announce.example.com", "announce"),
        ('"Ünïcode" <Ün%ïcode.example>', "n-code"),
        ("<../../etc.example>", None),
        ("<a/b.example>", "a-b"),
        ("", None),
        (None, None),
    ],
)
def test_list_name_is_folder_safe(value: str | None, name: str | None) -> None:
    assert syncd_lists.list_name(value) == name


def test_hook_files_list_mail_into_lists() -> None:
    msg = headers(List_Id="Python <python-list.python.org>")
    assert syncd_lists.syncd_classify(account(), "INBOX", msg) == Action.move("Lists/python-list")
    assert syncd_lists.syncd_classify(account(), "INBOX", headers(Subject="hi")) is None


def test_settings_rename_and_prefix() -> None:
    msg = headers(List_Id="<python-list.python.org>")
    acct = account(prefix="ML", names={"python-list": "python"})
    assert syncd_lists.syncd_classify(acct, "INBOX", msg) == Action.move("ML/python")


def test_asks_for_list_id_only_in_configured_folders() -> None:
    assert syncd_lists.syncd_classify_headers(account(), "INBOX") == ["List-Id"]
    assert syncd_lists.syncd_classify_headers(account(), "Sent") is None
    assert syncd_lists.syncd_classify_headers(account(folders=["Feeds"]), "Feeds") == ["List-Id"]
