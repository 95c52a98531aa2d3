"""syncd-archive: archive read mail older than N days into ``Archive/<year>``.

A rules plugin (``syncd_rules``): everything happens in server-side SEARCHes,
one per year, ``SEEN BEFORE <cutoff> SINCE 1-Jan-Y BEFORE 1-Jan-Y+1``, on the
message's arrival date (INTERNALDATE).  Installed, it does nothing until
``[plugins] enable`` names it (``enable = ["archive"]``).  Settings
(``[plugins.archive]``):

- ``days``: age in days before read mail is archived (default 365);
- ``folders``: folders to archive from (default ``["INBOX"]``);
- ``prefix``: the parent folder (default ``"Archive"``);
- ``years``: how many years back get a folder of their own (default 20);
  older read mail goes to ``<prefix>/older``.

Unread and flagged mail is never archived (``UNFLAGGED`` is part of the search).
"""

from __future__ import annotations

from datetime import date, timedelta

from syncd.api import AccountInfo, Action, Rule, hookimpl

NAME = "archive"
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def imap_date(day: date) -> str:
    """``1-Feb-2024``: RFC 9051 date text, independent of the locale."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def archive_rules(
    folder: str, *, today: date, days: int = 365, prefix: str = "Archive", years: int = 20
) -> list[Rule]:
    """The rules that move read, unflagged mail of ``folder`` older than ``days``."""
    cutoff = today - timedelta(days=days)
    base = f"SEEN UNFLAGGED BEFORE {imap_date(cutoff)}"
    rules = []
    for year in range(cutoff.year, cutoff.year - years, -1):
        search = f"{base} SINCE {imap_date(date(year, 1, 1))}"
        if year < cutoff.year:
            search += f" BEFORE {imap_date(date(year + 1, 1, 1))}"
        rules.append(Rule(f"{year}", folder, search, Action.move(f"{prefix}/{year}")))
    oldest = cutoff.year - years + 1
    rules.append(
        Rule(
            "older",
            folder,
            f"{base} BEFORE {imap_date(date(oldest, 1, 1))}",
            Action.move(f"{prefix}/older"),
        )
    )
    return rules


@hookimpl
def syncd_rules(account: AccountInfo, folder: str) -> list[Rule] | None:
    settings = account.settings_for(NAME)
    if folder not in settings.get("folders", ["INBOX"]):
        return None
    prefix = str(settings.get("prefix", "Archive"))
    if folder == prefix or folder.startswith(prefix + "/"):
        return None
    return archive_rules(
        folder,
        today=date.today(),
        days=int(settings.get("days", 365)),
        prefix=prefix,
        years=int(settings.get("years", 20)),
    )
