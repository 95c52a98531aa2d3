"""The rules and plugins as the engine's ``SyncHooks``: :class:`RuleHooks`.

Rules run in ``before_folder``, so mail they file arrives locally in its final
folder; the account hooks call the plugins' before/after hooks and report
plugin and rule failures in the account report (so the run exits non-zero).
"""

from __future__ import annotations

from email.message import Message
from typing import TYPE_CHECKING

from syncd.engine.options import RunOptions
from syncd.engine.report import FolderReport
from syncd.ext.loader import load_plugins, plugin_settings
from syncd.ext.runner import ClassifyMarks, FolderRun, RuleRunner
from syncd.ext.timed import Plugins
from syncd.ext.types import AccountInfo, Action, FolderSummary, SyncSummary
from syncd.folders import matches, selectable_folders, split_name
from syncd.logsetup import account_logger

if TYPE_CHECKING:
    from syncd.account.syncer import AccountReport
    from syncd.config import AccountConfig, Config
    from syncd.stores.imap.session import ImapSession


class RuleHooks:
    """``syncd.account.syncer.SyncHooks`` for the rules: ``before_folder`` runs the
    folder's rules and classify plugins; the account hooks call the plugins'
    before/after hooks and report plugin and rule failures in the account report
    (so the run exits non-zero).

    ``options`` are the run's options, known from the start: ``dry_run`` (the
    rules only say what they would do) and ``allow_mass_delete`` (the brake is
    off).  Give the engine the same options object: the hooks are not told again.
    """

    def __init__(self, config: Config, plugins: Plugins, options: RunOptions | None = None) -> None:
        self.config = config
        self.plugins = plugins
        self.options = options if options is not None else RunOptions()
        self._settings = plugin_settings(config).tables
        self._marks: dict[str, ClassifyMarks] = {}
        self._runner: RuleRunner | None = None
        self._session: ImapSession | None = None
        self._runs: dict[str, FolderRun] = {}  # folder ("/" name) -> what the rules did
        #: Folders (``/`` names) the rules created on the server in the current run;
        #: the engine may sync them in the same run (it listed folders before).
        self.created_folders: list[str] = []

    def info(self, account: AccountConfig) -> AccountInfo:
        return AccountInfo.of(account, self._settings, self.config.state_dir)

    # -- SyncHooks ------------------------------------------------------------------

    def before_account(self, *, account: AccountConfig) -> None:
        self._start()
        self.plugins.before_sync(self.info(account), self.options.dry_run)

    def before_folder(
        self, *, account: AccountConfig, session: ImapSession, folder: str
    ) -> list[str]:
        """Run the rules of server folder ``folder``; returns the dry-run lines."""
        shown = "/".join(split_name(folder, session.delimiter()))
        run = self.run_folder(account, session, shown)
        self._runs[shown] = run
        return run.lines

    def after_account(self, *, account: AccountConfig, report: AccountReport) -> None:
        delimiter = self._session.delimiter() if self._session is not None else None
        folders = []
        for f in report.folders:
            shown = "/".join(split_name(f.name, delimiter))
            run = self._runs.get(shown)
            folders.append(FolderSummary.of(f, shown, run.acted if run is not None else 0))
        summary = SyncSummary(account.name, self.options.dry_run, report.error, tuple(folders))
        self.plugins.after_sync(self.info(account), summary)
        for name, run in self._runs.items():
            if run.errors:
                report.folders.append(FolderReport(f"{name} (rules)", error="; ".join(run.errors)))
        if self.plugins.failures:
            report.folders.append(
                FolderReport("(plugins)", error="; ".join(dict.fromkeys(self.plugins.failures)))
            )
        self._runner = None
        self._session = None

    # -- running rules ------------------------------------------------------------------

    def run_folder(self, account: AccountConfig, session: ImapSession, folder: str) -> FolderRun:
        """Rules and classify plugins on ``folder`` (``/``-separated name)."""
        info = self.info(account)
        runner = self._runner_for(account, session)
        runner.log = account_logger(account.name, folder)
        rules = self.plugins.rules(info, folder)
        fields = self.plugins.classify_headers(info, folder)

        def classify(uid: int, headers: Message) -> list[tuple[int, str, Action]]:
            return self.plugins.classify(info, folder, uid, headers)

        created = len(runner.created)
        run = runner.run(folder, rules, fields=fields, classify=classify)
        self.created_folders += runner.created[created:]
        return run

    def run_account(self, account: AccountConfig, session: ImapSession) -> list[FolderRun]:
        """``syncd rules``: every selected server folder, without a sync.
        Problems are in the runs' ``errors`` and in ``plugins.failures``."""
        self._start()
        names = list(selectable_folders(session.list_folders(), session.delimiter()))
        runs = []
        for parts in names:
            if matches(parts, account.folders, account.exclude):
                runs.append(self.run_folder(account, session, "/".join(parts)))
        self._runner = None
        return runs

    def close(self) -> None:
        for marks in self._marks.values():
            marks.close()
        self._marks.clear()
        self.plugins.close()

    def _start(self) -> None:
        self.plugins.start_run()
        self.created_folders = []
        self._runs = {}
        self._runner = None
        self._session = None

    def _runner_for(self, account: AccountConfig, session: ImapSession) -> RuleRunner:
        if self._runner is None or self._session is not session:
            marks = self._marks.get(account.name)
            if marks is None:
                marks = ClassifyMarks(self.config.state_dir / f"{account.name}.rules.db")
                self._marks[account.name] = marks
            self._runner = RuleRunner(
                session,
                account=account,
                dry_run=self.options.dry_run,
                allow_mass_delete=self.options.allow_mass_delete,
                marks=marks,
            )
            self._session = session
        return self._runner


def load_hooks(config: Config, options: RunOptions | None = None) -> RuleHooks:
    """The engine hooks for ``config`` (``syncd sync``, ``syncd rules``, the daemon)
    for runs with ``options`` (default: a real run, brake on).  ConfigError for
    invalid rules or ``[plugins]``."""
    return RuleHooks(config, load_plugins(config), options)
