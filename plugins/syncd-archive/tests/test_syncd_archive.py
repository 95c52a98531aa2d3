"""syncd-archive: read mail older than N days -> Archive/<year>, as SEARCH rules."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import syncd_archive

from syncd.api import AccountInfo, Action, Rule
from syncd.ext.search import parse_search


def account(**settings: Any) -> AccountInfo:
    return AccountInfo(
        "a", "imap.example.org", "me", Path("/m"), "maildir++", None, {"archive": settings}
    )


def test_one_rule_per_year_then_older() -> None:
    rules = syncd_archive.archive_rules("INBOX", today=date(2024, 3, 1), days=90, years=3)

    assert rules == [
        Rule(
            "2023",
            "INBOX",
            "SEEN UNFLAGGED BEFORE 2-Dec-2023 SINCE 1-Jan-2023",
            Action.move("Archive/2023"),
        ),
        Rule(
            "2022",
            "INBOX",
            "SEEN UNFLAGGED BEFORE 2-Dec-2023 SINCE 1-Jan-2022 BEFORE 1-Jan-2023",
            Action.move("Archive/2022"),
        ),
        Rule(
            "2021",
            "INBOX",
            "SEEN UNFLAGGED BEFORE 2-Dec-2023 SINCE 1-Jan-2021 BEFORE 1-Jan-2022",
            Action.move("Archive/2021"),
        ),
        Rule(
            "older",
            "INBOX",
            "SEEN UNFLAGGED BEFORE 2-Dec-2023 BEFORE 1-Jan-2021",
            Action.move("Archive/older"),
        ),
    ]
    assert all(parse_search(r.search) for r in rules)


def test_hook_uses_settings_and_skips_other_folders() -> None:
    acct = account(days=30, prefix="Old", years=2, folders=["INBOX", "Lists/x"])
    rules = syncd_archive.syncd_rules(acct, "Lists/x")
    assert rules is not None
    year = (date.today() - timedelta(days=30)).year
    assert [r.action.target for r in rules] == [f"Old/{year}", f"Old/{year - 1}", "Old/older"]
    assert syncd_archive.syncd_rules(acct, "Sent") is None
    assert syncd_archive.syncd_rules(account(folders=["Archive"]), "Archive") is None


def test_imap_date_is_locale_free() -> None:
    assert syncd_archive.imap_date(date(2024, 2, 9)) == "9-Feb-2024"
