"""The plugin author's import: everything a syncd plugin needs, from one module.

This is the stable surface for plugins: names here keep their meaning across
syncd releases, while the modules behind them (``syncd.ext.*``) may move.  A
plugin should import from here only::

    from syncd.api import Action, Rule, hookimpl

- :data:`hookimpl` marks a function as the implementation of a hook; the hooks,
  their arguments and return values are documented in :mod:`syncd.ext.hookspecs`.
- What hooks receive: :class:`AccountInfo` (every hook), :class:`SyncSummary`
  with its :class:`FolderSummary` rows (``syncd_after_sync``).
- What hooks return: :class:`Rule` (``syncd_rules``) and :class:`Action`
  (``syncd_classify``, and the action of a Rule); :data:`ActionKind` names the
  kinds of action.
- For plugins that keep something else in step with the Maildir (a notmuch
  database's tags): :class:`MaildirFiles` reads and changes the flags and
  keywords of message files by path, with syncd's own Maildir code (so the
  next sync uploads the change); :func:`merge_flags` is syncd's three-way flag
  merge; :class:`SyncdError` is what ``MaildirFiles`` raises for a file or folder
  problem.
"""

from __future__ import annotations

from syncd.engine.reconcile import merge_flags
from syncd.errors import SyncdError
from syncd.ext.hookspecs import hookimpl
from syncd.ext.types import AccountInfo, Action, ActionKind, FolderSummary, Rule, SyncSummary
from syncd.stores.maildir.files import MaildirFiles

__all__ = [
    "AccountInfo",
    "Action",
    "ActionKind",
    "FolderSummary",
    "MaildirFiles",
    "Rule",
    "SyncSummary",
    "SyncdError",
    "hookimpl",
    "merge_flags",
]
