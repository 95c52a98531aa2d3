"""The hooks a syncd plugin can implement (pluggy, project name ``syncd``).

A plugin is a module or an object with functions marked ``@hookimpl`` and named
after the specs below.  It may accept only the arguments it needs, in any
order: syncd always calls hooks with keyword arguments.  Third-party plugins
register under the entry-point group ``syncd``; installing one is not enough:
syncd imports it only when the user names its entry point in ``[plugins]
enable = [...]``.  See ``plugins/README.md`` ("Writing a plugin").

The contract every hook shares:

- Plugins say *what to do*; syncd does it.  A plugin never gets the IMAP
  connection, a password, the keyring or a credential command: only an
  :class:`~syncd.api.AccountInfo` (name, host, user, Maildir, settings).
- Hooks run one at a time, on a worker thread of the account's sync, with the
  account lock held, in pluggy's order (last registered first,
  ``tryfirst``/``trylast`` respected).  A call that does not return within
  ``[plugins] timeout`` seconds (default 30; a plugin that needs longer, such as
  an indexer, sets a ``syncd_timeout`` attribute on its plugin object) is
  abandoned.  Each plugin is called on its own: one that raises, hangs past its
  limit, or returns something that is not what its spec says is named in the
  log, skipped for the rest of that account's run, and the sync goes on (the run
  then exits non-zero).
- Wrapper implementations (``wrapper=True``/``hookwrapper=True``) are refused
  at load time: syncd calls each implementation directly to isolate it.
- Folder names are the user's spelling: Unicode, ``/`` between levels,
  ``INBOX`` in capitals, whatever the server's delimiter.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import Message

import pluggy

from syncd.ext.types import AccountInfo, Action, Rule, SyncSummary

PROJECT = "syncd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def syncd_rules(account: AccountInfo, folder: str) -> Sequence[Rule] | None:
    """Return the server-side rules to run in ``folder`` of ``account``.

    When: once per sync cycle of each folder, just before the folder is
    synced (and by ``syncd rules``), with a dry run too (syncd then only
    prints what the rules would do).

    Arguments:

    - ``account``: the account, without any credential.
    - ``folder``: the folder about to be synced (``"INBOX"``, ``"Lists/python"``).

    Returns a list of :class:`~syncd.api.Rule` whose ``folder`` is
    ``folder`` (others are reported and ignored), or None for "no rules
    here".  Every plugin's list is used: built-in TOML rules first, then the
    plugins' in call order.  syncd runs each rule's SEARCH, intersects the
    result with the folder's UIDs and applies the actions in rule order; a
    message moved or deleted by one rule is not touched by a later one.
    Rule names are shown prefixed with the plugin's name.
    """


@hookspec
def syncd_classify_headers(account: AccountInfo, folder: str) -> Sequence[str] | None:
    """Return the header field names :func:`syncd_classify` needs in ``folder``.

    When: once per sync cycle of each folder, before any message of it is
    classified.

    Arguments: ``account`` and ``folder`` as in :func:`syncd_rules`.

    Returns field names (``["List-Id"]``; RFC 5322 names, case-insensitive),
    or None / an empty list when this plugin has nothing to classify in
    ``folder``.  A folder where no plugin asks for headers is never
    classified (and costs no FETCH).  syncd fetches the union of all fields.
    """


@hookspec
def syncd_classify(account: AccountInfo, folder: str, uid: int, headers: Message) -> Action | None:
    """Decide what to do with one new message from its headers.

    For conditions SEARCH cannot express.  When: in each folder where some
    plugin asked for headers (:func:`syncd_classify_headers`), once for every
    message syncd has not classified before, i.e. whose UID is above the
    highest UID classified in that folder (kept per account and folder in
    ``<state_dir>/<account>.rules.db``, reset when UIDVALIDITY changes).  The
    first run classifies the whole folder.  Called after the folder's rules
    were planned; messages those rules move or delete are not offered.  Not
    called again for a message once classified, whatever was returned.

    Arguments:

    - ``account``, ``folder``: as in :func:`syncd_rules`.
    - ``uid``: the message's UID in ``folder``.
    - ``headers``: the fetched header fields only (``headers["List-Id"]``,
      decoded, None when absent); fields other plugins asked for may be there
      too.  Never the body.

    Returns an :class:`~syncd.api.Action` (move, copy, flag, unflag, delete)
    or None to leave the message alone.  Every plugin is asked; the actions
    apply in call order, and once one moves or deletes the message, later
    ones are dropped.  The mass-delete brake and dry-run apply as for rules.
    """


@hookspec
def syncd_before_sync(account: AccountInfo, dry_run: bool) -> None:
    """Called when a sync of ``account`` starts, before any folder or rule.

    When: once per sync call (``syncd sync``, each daemon cycle), with the
    account lock held and before the connection is used.  Not called by
    ``syncd rules``.  The Maildir is read after it: flags a plugin changes
    here (:class:`~syncd.api.MaildirFiles`) go to the server in this sync.

    Arguments: ``account``; ``dry_run`` is True for ``--dry-run`` (change
    nothing anywhere, including outside syncd).

    Return value: ignored.
    """


@hookspec
def syncd_after_sync(account: AccountInfo, summary: SyncSummary) -> None:
    """Called when a sync of ``account`` has finished, also when it failed.

    When: once per sync call, after the last folder, with the account lock
    still held (do not start syncd on the same account from here).  Good for
    ``notmuch new`` or a notification.

    Arguments: ``account``; ``summary``, a :class:`~syncd.api.SyncSummary`
    with per-folder counts (downloaded, uploaded, flag changes, deletions on
    each side, rule actions), errors, and ``dry_run``.

    Return value: ignored.
    """
