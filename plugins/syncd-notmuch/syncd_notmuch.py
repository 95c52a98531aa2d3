"""syncd-notmuch: run ``notmuch new`` after each sync that changed the Maildir.

A post-sync plugin (``syncd_after_sync``).  Nothing runs after a dry run or
a sync that downloaded, deleted or re-flagged nothing locally.  When notmuch
is not installed it says so once (per syncd process) and stays quiet.
Installed, it does nothing until ``[plugins] enable`` names it (``enable =
["notmuch"]``).  Settings (``[plugins.notmuch]``):

- ``command``: the command to run, as an argument list (default
  ``["notmuch", "new", "--quiet"]``), run without a shell;
- ``timeout``: seconds before it is stopped (default 600, at most 600: the
  plugin tells syncd it may take that long, see ``syncd_timeout``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from syncd.api import AccountInfo, SyncSummary, hookimpl

NAME = "notmuch"
DEFAULT_COMMAND = ("notmuch", "new", "--quiet")
MAX_TIMEOUT = 600.0
logger = logging.getLogger(__name__)


class NotmuchRunner:
    """The plugin object (one per syncd process, so "missing" is said once)."""

    # A first `notmuch new` over a big Maildir takes minutes: longer than syncd's
    # default limit per plugin call, which would otherwise report it as hung.
    syncd_timeout = MAX_TIMEOUT + 30

    def __init__(self) -> None:
        self.warned_missing = False

    @hookimpl
    def syncd_after_sync(self, account: AccountInfo, summary: SyncSummary) -> None:
        if not summary.changed_locally:
            return
        settings = account.settings_for(NAME)
        command = [str(a) for a in settings.get("command", DEFAULT_COMMAND)]
        if not command or shutil.which(command[0]) is None:
            if not self.warned_missing:
                self.warned_missing = True
                logger.warning(
                    "%s not found: not indexing new mail (install notmuch, or remove "
                    '"notmuch" from [plugins] enable)',
                    command[0] if command else "(empty command)",
                )
            return
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=min(float(settings.get("timeout", MAX_TIMEOUT)), MAX_TIMEOUT),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("%s failed: %s", " ".join(command), exc)
            return
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            logger.warning("%s exited %d: %s", " ".join(command), proc.returncode, " / ".join(tail))
        else:
            logger.info("%s: indexed the mail of %s", " ".join(command), account.name)


plugin = NotmuchRunner()
