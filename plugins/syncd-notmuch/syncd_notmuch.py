"""syncd-notmuch: run ``notmuch new`` after each sync that changed the Maildir,
and, with ``sync_tags = true``, keep notmuch tags and IMAP keywords in step.

A post-sync plugin (``syncd_after_sync``).  Nothing runs after a dry run or
a sync that downloaded, deleted or re-flagged nothing locally.  When notmuch
is not installed it says so once (per syncd process) and stays quiet.
Installed, it does nothing until ``[plugins] enable`` names it (``enable =
["notmuch"]``).  Settings (``[plugins.notmuch]``):

- ``command``: the command to run, as an argument list (default
  ``["notmuch", "new", "--quiet"]``), run without a shell;
- ``timeout``: seconds before it is stopped (default 600, at most 600: the
  plugin tells syncd it may take that long, see ``syncd_timeout``);
- ``sync_tags``: true to sync IMAP flags and keywords with notmuch tags both
  ways (default false); ``tag_map`` and ``ignore_tags`` adjust how (see
  :mod:`syncd_notmuch_tagmap` and the README).

With ``sync_tags``, each sync of an account runs the tag sync twice
(:mod:`syncd_notmuch_tags`): before it (``syncd_before_sync``), so tags changed
in notmuch reach the server in that same sync, and after it, so keywords that
came from the server become tags; ``notmuch new`` runs before each, whether or
not the sync changed anything (a mail reader may have).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from syncd_notmuch_cli import Notmuch, NotmuchError
from syncd_notmuch_state import TagState
from syncd_notmuch_tagmap import TagMap
from syncd_notmuch_tags import sync_tags

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
    def syncd_before_sync(self, account: AccountInfo, dry_run: bool) -> None:
        if not dry_run and account.settings_for(NAME).get("sync_tags", False) is True:
            self._sync_tags(account)

    @hookimpl
    def syncd_after_sync(self, account: AccountInfo, summary: SyncSummary) -> None:
        if summary.dry_run:
            return
        if account.settings_for(NAME).get("sync_tags", False) is True:
            self._sync_tags(account)
        elif summary.changed_locally:
            self._index(account)

    def _index(self, account: AccountInfo, timeout: float | None = None) -> bool:
        """Run the configured ``notmuch new`` (stopped after ``timeout`` seconds,
        default the ``timeout`` setting); whether it worked.  Logged at INFO
        after a sync that changed mail; before each tag sync run (twice per
        sync, mostly with nothing new) only at DEBUG."""
        command = self._command(account)
        if command is None:
            return False
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_timeout(account) if timeout is None else timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("%s failed: %s", " ".join(command), exc)
            return False
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            logger.warning("%s exited %d: %s", " ".join(command), proc.returncode, " / ".join(tail))
            return False
        logger.log(
            logging.DEBUG if timeout is not None else logging.INFO,
            "%s: indexed the mail of %s",
            " ".join(command),
            account.name,
        )
        return True

    def _command(self, account: AccountInfo) -> list[str] | None:
        """The ``notmuch new`` command; None (said once) when it is not installed."""
        settings = account.settings_for(NAME)
        command = [str(a) for a in settings.get("command", DEFAULT_COMMAND)]
        if command and shutil.which(command[0]) is not None:
            return command
        if not self.warned_missing:
            self.warned_missing = True
            logger.warning(
                "%s not found: not indexing new mail (install notmuch, or remove "
                '"notmuch" from [plugins] enable)',
                command[0] if command else "(empty command)",
            )
        return None

    def _sync_tags(self, account: AccountInfo) -> None:
        """``notmuch new``, then one tag sync run (:func:`syncd_notmuch_tags.sync_tags`).

        A notmuch failure is a warning (the next sync tries again); a malformed
        ``tag_map`` raises ValueError, which syncd reports as this plugin's failure.
        """
        tagmap = TagMap.from_settings(account.settings_for(NAME))
        if account.state_dir is None:
            logger.warning(
                "notmuch tags of %s: syncd gave no state directory; not synced", account.name
            )
            return
        if not account.maildir.expanduser().is_dir():
            return  # before the first sync: nothing to index or tag yet
        # One budget for the whole call: syncd_timeout covers it.
        notmuch = Notmuch("notmuch", timeout=_timeout(account))
        command = self._command(account)
        if command is None or not self._index(account, notmuch.time_left()):
            return
        if Path(command[0]).name == "notmuch":
            notmuch.program = command[0]
        state = TagState(account.state_dir / f"{account.name}.{NAME}.db")
        try:
            run = sync_tags(account, tagmap, notmuch, state)
        except NotmuchError as exc:
            logger.warning("notmuch tags of %s not synced: %s", account.name, exc)
            return
        finally:
            state.close()
        if run.tagged or run.renamed or run.errors:
            logger.info("%s", run)
        else:
            logger.debug("%s", run)


def _timeout(account: AccountInfo) -> float:
    return min(float(account.settings_for(NAME).get("timeout", MAX_TIMEOUT)), MAX_TIMEOUT)


plugin = NotmuchRunner()
