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
"""

from __future__ import annotations

from syncd.ext.hookspecs import hookimpl
from syncd.ext.types import AccountInfo, Action, ActionKind, FolderSummary, Rule, SyncSummary

__all__ = [
    "AccountInfo",
    "Action",
    "ActionKind",
    "FolderSummary",
    "Rule",
    "SyncSummary",
    "hookimpl",
]
