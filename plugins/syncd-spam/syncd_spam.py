"""syncd-spam: file mail that a spam filter marked into ``Junk``.

A per-message plugin (``syncd_classify``) reading the headers SpamAssassin,
rspamd and most providers add: ``X-Spam-Flag: YES``, or ``X-Spam-Status:
Yes, score=...``.  It runs before the other classify plugins (``tryfirst``),
so list mail that is spam goes to Junk.  Installed, it does nothing until
``[plugins] enable`` names it (``enable = ["spam"]``).  Settings
(``[plugins.spam]``):

- ``folders``: where to look (default ``["INBOX"]``);
- ``target``: the junk folder (default ``"Junk"``);
- ``score``: if set, a message whose ``X-Spam-Status`` score is at least this
  is spam too, whatever the filter's own verdict.
"""

from __future__ import annotations

import re
from email.message import Message

from syncd.api import AccountInfo, Action, hookimpl

NAME = "spam"
FIELDS = ["X-Spam-Flag", "X-Spam-Status"]
_SCORE_RE = re.compile(r"\bscore=(-?\d+(?:\.\d+)?)")


def is_spam(headers: Message, threshold: float | None = None) -> bool:
    """Whether the headers say spam (flag, verdict, or score at least ``threshold``)."""
    flag = str(headers.get("X-Spam-Flag") or "").strip().upper()
    status = str(headers.get("X-Spam-Status") or "").strip()
    if flag == "YES" or status.upper().startswith("YES"):
        return True
    if threshold is not None:
        match = _SCORE_RE.search(status)
        return match is not None and float(match.group(1)) >= threshold
    return False


@hookimpl
def syncd_classify_headers(account: AccountInfo, folder: str) -> list[str] | None:
    folders = account.settings_for(NAME).get("folders", ["INBOX"])
    return FIELDS if folder in folders else None


@hookimpl(tryfirst=True)
def syncd_classify(account: AccountInfo, folder: str, headers: Message) -> Action | None:
    settings = account.settings_for(NAME)
    threshold = settings.get("score")
    target = str(settings.get("target", "Junk"))
    if folder == target or not is_spam(headers, None if threshold is None else float(threshold)):
        return None
    return Action.move(target)
