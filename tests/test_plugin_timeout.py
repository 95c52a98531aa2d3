"""RELIABILITY PLG-03, a rule plugin that hangs: each plugin call has a deadline
(``[plugins] timeout``, default 30 s).  A call that overruns is abandoned, the plugin
is named in one error line and skipped for the rest of the run, and the sync, the
other plugins and the rules go on; ``syncd sync`` then exits 1, like for a plugin
that raises.  The same holds in the daemon, whose next cycles keep syncing.

In-process plugins hang on a ``threading.Event`` that the test sets at teardown, so
their threads end; the plugin installed for the ``syncd`` subprocesses hangs for good
and ends with the process (its thread must not keep the process from exiting).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from support import summary
from support.imap import append, create_folder, server_snapshot
from support.mail import make_message
from support.maildir import folder_messages, folder_path, local_snapshot
from support.run import account_config, offline_config, run_syncd, write_config

from devserver.dovecot import DevServer, User
from syncd.account.syncer import AccountReport, AccountSyncer
from syncd.config import Config, load_config
from syncd.engine.options import RunOptions
from syncd.errors import ConfigError
from syncd.ext.hooks import RuleHooks
from syncd.ext.hookspecs import hookimpl
from syncd.ext.loader import check_plugins, load_plugins
from syncd.ext.rules import Action, Rule
from syncd.ext.timed import DEFAULT_TIMEOUT
from syncd.ext.types import AccountInfo, SyncSummary

DEADLINE = 60.0


# --------------------------------------------------------------------------- [plugins] timeout




@pytest.mark.parametrize(
    ("plugins_table", "seconds"),
    [("", DEFAULT_TIMEOUT), ("[plugins]\ntimeout = 5\n", 5.0), ("[plugins]\ntimeout = 0.5\n", 0.5)],
)
def test_timeout_is_read_from_the_plugins_table(
    tmp_path: Path, plugins_table: str, seconds: float
) -> None:
    config = offline_config(tmp_path, plugins_table)

    assert load_plugins(config, use_entry_points=False).timeout == seconds
    assert check_plugins(config) == []
    assert DEFAULT_TIMEOUT == 30


@pytest.mark.parametrize("value", ["0", "-5", '"30"', "true", "nan", "inf", "[30]", "{ s = 30 }"])
def test_a_bad_timeout_is_a_config_error_naming_the_key(tmp_path: Path, value: str) -> None:
    config = offline_config(tmp_path, f"[plugins]\ntimeout = {value}\n")

    with pytest.raises(ConfigError, match=r"plugins\.timeout: must be a positive number of sec"):
        load_plugins(config, use_entry_points=False)
    (problem,) = check_plugins(config)
    assert "plugins.timeout" in problem
    assert str(config.path) in problem


def test_syncd_sync_and_check_refuse_a_bad_timeout_with_exit_2(tmp_path: Path) -> None:
    config = offline_config(tmp_path, "[plugins]\ntimeout = -1\n").path

    proc = run_syncd("sync", config=config)
    check = run_syncd("check", config=config)

    assert check.returncode == 2, check.stderr
    assert "plugins.timeout: must be a positive number of seconds" in check.stderr + check.stdout
    assert proc.returncode == 2
    assert "plugins.timeout: must be a positive number of seconds" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- plugins used here


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """What the hanging plugins wait for: set at teardown, so their threads end."""
    event = threading.Event()
    yield event
    event.set()


class Hangs:
    """Implements every hook; the one named ``hook`` waits until ``release`` is set."""

    def __init__(self, hook: str, release: threading.Event) -> None:
        self.hook = hook
        self.release = release
        self.calls: list[str] = []

    def _maybe_hang(self, hook: str) -> None:
        self.calls.append(hook)
        if hook == self.hook:
            self.release.wait()

    @hookimpl
    def syncd_before_sync(self) -> None:
        self._maybe_hang("syncd_before_sync")

    @hookimpl
    def syncd_rules(self) -> None:
        self._maybe_hang("syncd_rules")

    @hookimpl
    def syncd_classify_headers(self) -> list[str]:
        self._maybe_hang("syncd_classify_headers")
        return ["Subject"]

    @hookimpl
    def syncd_classify(self) -> None:
        self._maybe_hang("syncd_classify")

    @hookimpl
    def syncd_after_sync(self) -> None:
        self._maybe_hang("syncd_after_sync")


class Filer:
    """A well-behaved plugin: files mail whose subject starts with "invoice" into
    Bills, after ``delay`` seconds per message; counts its after_sync calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.after = 0

    @hookimpl
    def syncd_classify_headers(self, folder: str) -> list[str] | None:
        return ["Subject"] if folder == "INBOX" else None

    @hookimpl
    def syncd_classify(self, headers: Message) -> Action | None:
        time.sleep(self.delay)
        return Action.move("Bills") if str(headers["Subject"]).startswith("invoice") else None

    @hookimpl
    def syncd_after_sync(self) -> None:
        self.after += 1


RULE = Rule("old", "INBOX", "ALL", Action.flag("\\Seen"))


class Rules:
    @hookimpl
    def syncd_rules(self, folder: str) -> list[Rule] | None:
        return [RULE] if folder == "INBOX" else None


def test_a_hanging_plugin_is_abandoned_and_retried_only_once_its_call_returned(
    tmp_path: Path, release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    config = offline_config(tmp_path, "[plugins]\ntimeout = 1\n")
    plugins = load_plugins(
        config,
        extra=[("good", Rules()), ("stuck", Hangs("syncd_rules", release))],
        use_entry_points=False,
    )
    info = AccountInfo.of(config.accounts["a"], {})
    stuck = plugins.pm.get_plugin("stuck")
    assert isinstance(stuck, Hangs)
    try:
        with caplog.at_level(logging.ERROR, logger="syncd.plugins"):
            got = plugins.rules(info, "INBOX")

        assert [r.name for r in got] == ["good:old"]
        assert plugins.failures == [
            "plugin stuck did not return from syncd_rules within 1 s in account a, folder "
            "INBOX (limit: [plugins] timeout); the plugin is skipped for the rest of this run"
        ]
        assert [r.getMessage() for r in caplog.records] == plugins.failures
        assert plugins.stuck == {"stuck": "syncd_rules"}
        assert plugins.rules(info, "INBOX") == got  # skipped: no second wait

        # A new run does not call it again while its call still runs...
        plugins.start_run()
        assert plugins.failures == [
            "plugin stuck has still not returned from syncd_rules, called in an earlier run; "
            "the plugin is skipped for the rest of this run"
        ]
        assert [r.name for r in plugins.rules(info, "INBOX")] == ["good:old"]

        # ...and does once it has returned.
        release.set()
        wait_for(lambda: not plugins.stuck, "the abandoned call to return")
        plugins.start_run()
        assert [r.name for r in plugins.rules(info, "INBOX")] == ["good:old"]
        assert plugins.failures == []
        assert stuck.calls == ["syncd_rules", "syncd_rules"]
    finally:
        plugins.close()


def test_a_plugin_may_declare_a_longer_limit_for_itself(
    tmp_path: Path, release: threading.Event
) -> None:
    """An indexer plugin declares ``syncd_timeout``: a 1.5 s call passes under a 1 s
    ``[plugins] timeout``; a call past its own limit is still abandoned, and the
    error says which limit applied.  A nonsense declaration is ignored."""

    class Indexer(Hangs):
        syncd_timeout = 2.0

    class Slow(Rules):
        syncd_timeout = "a while"  # not a number: the configured limit applies

        @hookimpl
        def syncd_rules(self, folder: str) -> list[Rule] | None:
            time.sleep(1.5)
            return super().syncd_rules(folder)

    class Patient(Slow):
        syncd_timeout = 3

    config = offline_config(tmp_path, "[plugins]\ntimeout = 1\n")
    plugins = load_plugins(
        config,
        extra=[
            ("patient", Patient()),
            ("slow", Slow()),
            ("indexer", Indexer("syncd_after_sync", release)),
        ],
        use_entry_points=False,
    )
    info = AccountInfo.of(config.accounts["a"], {})
    try:
        assert [r.name for r in plugins.rules(info, "INBOX")] == ["patient:old"]
        assert plugins.failures == [
            "plugin slow did not return from syncd_rules within 1 s in account a, folder "
            "INBOX (limit: [plugins] timeout); the plugin is skipped for the rest of this run"
        ]
        plugins.after_sync(info, SyncSummary("a", False, None, ()))
        assert plugins.failures[1:] == [
            "plugin indexer did not return from syncd_after_sync within 2 s in account a "
            "(limit: the plugin's syncd_timeout); the plugin is skipped for the rest of "
            "this run"
        ]
    finally:
        release.set()
        plugins.close()


def test_what_a_plugin_raises_still_reaches_the_caller_thread(tmp_path: Path) -> None:
    class Raises:
        @hookimpl
        def syncd_rules(self) -> None:
            raise LookupError("no such list")

    config = offline_config(tmp_path, "[plugins]\ntimeout = 1\n")
    plugins = load_plugins(config, extra=[("bad", Raises())], use_entry_points=False)
    try:
        assert plugins.rules(AccountInfo.of(config.accounts["a"], {}), "INBOX") == []
        assert plugins.failures[0].startswith(
            "plugin bad raised in syncd_rules: LookupError: no such list"
        )
    finally:
        plugins.close()


def test_a_plugin_calling_sys_exit_is_an_ordinary_plugin_failure(tmp_path: Path) -> None:
    """sys.exit() inside a hook (click-based tools do it) must not end the sync thread."""

    class Exits:
        @hookimpl
        def syncd_rules(self) -> None:
            sys.exit(2)

    config = offline_config(tmp_path, "[plugins]\ntimeout = 1\n")
    plugins = load_plugins(
        config, extra=[("good", Rules()), ("exits", Exits())], use_entry_points=False
    )
    try:
        got = plugins.rules(AccountInfo.of(config.accounts["a"], {}), "INBOX")
        assert [r.name for r in got] == ["good:old"]
        assert plugins.failures[0].startswith(
            "plugin exits raised in syncd_rules: RuntimeError: SystemExit: 2"
        )
    finally:
        plugins.close()


# --------------------------------------------------------------------------- a real sync


def wait_for(check: Callable[[], Any], what: str, log: Callable[[], str] = str) -> Any:
    end = time.monotonic() + DEADLINE
    while not (result := check()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}\n{log()}")
        time.sleep(0.1)
    return result


def live_config(tmp_path: Path, server: DevServer, user: User, plugins: str) -> Config:
    path = write_config(tmp_path, {"test": account_config(server, user, tmp_path / "Mail")})
    with path.open("a", encoding="utf-8") as f:
        f.write(plugins)
    return load_config(path)


def sync(config: Config, hooks: RuleHooks) -> AccountReport:
    syncer = AccountSyncer(config, config.accounts["test"], hooks=hooks)
    try:
        return syncer.sync(RunOptions())
    finally:
        syncer.close()


@contextlib.contextmanager
def rule_hooks(config: Config, *extra: tuple[str, object]) -> Iterator[RuleHooks]:
    hooks = RuleHooks(config, load_plugins(config, extra=extra, use_entry_points=False))
    try:
        yield hooks
    finally:
        hooks.close()


def subjects(snapshot: dict[str, list[Any]]) -> dict[str, list[str]]:
    return {folder: sorted(v.subject or "" for v in views) for folder, views in snapshot.items()}


def errors(report: AccountReport) -> list[str]:
    return [f"{f.name}: {f.error}" for f in report.folders if f.error]


def deliver_invoices(server: DevServer, user: User, *names: str) -> None:
    create_folder(server, user, "Bills")
    for subject in names:
        append(server, user, "INBOX", make_message(subject=subject))


def test_hang_in_syncd_classify_the_sync_and_the_other_plugin_go_on(
    tmp_path: Path,
    dovecot: DevServer,
    account: User,
    release: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deliver_invoices(dovecot, account, "invoice 1", "hello", "invoice 2")
    config = live_config(tmp_path, dovecot, account, "[plugins]\ntimeout = 1\n")
    stuck = Hangs("syncd_classify", release)

    with rule_hooks(config, ("filer", Filer()), ("stuck", stuck)) as hooks:
        with caplog.at_level(logging.ERROR):
            report = sync(config, hooks)

        assert not report.ok  # `syncd sync` exits 1
        assert errors(report) == [
            "(plugins): plugin stuck did not return from syncd_classify within 1 s in account "
            "test, folder INBOX, UID 1 (limit: [plugins] timeout); the plugin is skipped for "
            "the rest of this run"
        ]
        assert [r.getMessage() for r in caplog.records if "stuck" in r.getMessage()] == [
            report.folders[-1].error
        ]
        assert stuck.calls.count("syncd_classify") == 1
        remote = server_snapshot(dovecot, account)
        assert subjects(remote) == {"INBOX": ["hello"], "Bills": ["invoice 1", "invoice 2"]}
        assert summary(local_snapshot(tmp_path / "Mail", "maildir++")) == summary(remote)

        # The next run (the daemon's next cycle) still syncs, and says why the
        # plugin is still left out.
        append(dovecot, account, "INBOX", make_message(subject="invoice 3"))
        report = sync(config, hooks)

        assert errors(report) == [
            "(plugins): plugin stuck has still not returned from syncd_classify, called in "
            "an earlier run; the plugin is skipped for the rest of this run"
        ]
        remote = server_snapshot(dovecot, account)
        assert subjects(remote)["Bills"] == ["invoice 1", "invoice 2", "invoice 3"]
        assert summary(local_snapshot(tmp_path / "Mail", "maildir++")) == summary(remote)


@pytest.mark.parametrize(
    "hook", ["syncd_before_sync", "syncd_after_sync", "syncd_rules", "syncd_classify_headers"]
)
def test_hang_in_another_hook_the_sync_completes(
    tmp_path: Path, dovecot: DevServer, account: User, release: threading.Event, hook: str
) -> None:
    deliver_invoices(dovecot, account, "invoice 1", "hello")
    config = live_config(tmp_path, dovecot, account, "[plugins]\ntimeout = 1\n")
    filer = Filer()

    with rule_hooks(config, ("filer", filer), ("stuck", Hangs(hook, release))) as hooks:
        report = sync(config, hooks)

    where = "test, folder INBOX" if hook in {"syncd_rules", "syncd_classify_headers"} else "test"
    assert errors(report) == [
        f"(plugins): plugin stuck did not return from {hook} within 1 s in account {where} "
        "(limit: [plugins] timeout); the plugin is skipped for the rest of this run"
    ]
    assert filer.after == 1
    remote = server_snapshot(dovecot, account)
    assert subjects(remote) == {"INBOX": ["hello"], "Bills": ["invoice 1"]}
    assert summary(local_snapshot(tmp_path / "Mail", "maildir++")) == summary(remote)


def test_a_slow_plugin_under_the_timeout_works_normally(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    deliver_invoices(dovecot, account, "invoice 1", "hello", "invoice 2")
    config = live_config(tmp_path, dovecot, account, "[plugins]\ntimeout = 10\n")

    with rule_hooks(config, ("filer", Filer(delay=0.3))) as hooks:
        report = sync(config, hooks)

    assert report.ok, errors(report)
    remote = server_snapshot(dovecot, account)
    assert subjects(remote) == {"INBOX": ["hello"], "Bills": ["invoice 1", "invoice 2"]}
    assert summary(local_snapshot(tmp_path / "Mail", "maildir++")) == summary(remote)


# --------------------------------------------------------------------------- the syncd command

HANG_PLUGIN = '''
"""Hangs for good in the hook named by [plugins.hang] hook."""

import threading

from syncd.ext.hookspecs import hookimpl


def _hang(account, hook):
    if account.settings_for("hang").get("hook") == hook:
        threading.Event().wait()


@hookimpl
def syncd_before_sync(account):
    _hang(account, "syncd_before_sync")


@hookimpl
def syncd_classify_headers(folder):
    return ["Subject"] if folder == "INBOX" else None


@hookimpl
def syncd_classify(account):
    _hang(account, "syncd_classify")


@hookimpl
def syncd_after_sync(account):
    _hang(account, "syncd_after_sync")
'''

RULE_TABLE = {
    "name": "bills",
    "folder": "INBOX",
    "search": 'SUBJECT "invoice"',
    "action": "move",
    "target": "Bills",
}


@pytest.fixture(scope="module")
def hang_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PYTHONPATH with the plugin ``hang`` installed as an entry point: a module and
    its ``.dist-info`` (what importlib.metadata reads; no pip needed)."""
    site = tmp_path_factory.mktemp("site")
    (site / "syncd_hang.py").write_text(HANG_PLUGIN, encoding="utf-8")
    dist = site / "syncd_hang-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: syncd-hang\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[syncd]\nhang = syncd_hang\n")
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(site) + (os.pathsep + old if old else "")}


def command_config(tmp_path: Path, server: DevServer, user: User, hook: str, **kw: Any) -> Path:
    table = account_config(server, user, tmp_path / "Mail", rules=[RULE_TABLE], **kw)
    path = write_config(tmp_path, {"test": table})
    with path.open("a", encoding="utf-8") as f:
        f.write(f'[plugins]\nenable = ["hang"]\ntimeout = 1\n[plugins.hang]\nhook = "{hook}"\n')
    return path


@pytest.mark.parametrize("hook", ["syncd_classify", "syncd_before_sync", "syncd_after_sync"])
def test_syncd_sync_with_a_hanging_plugin_finishes_and_exits_1(
    tmp_path: Path, dovecot: DevServer, account: User, hang_env: dict[str, str], hook: str
) -> None:
    for subject in ("invoice 1", "hello", "news"):
        append(dovecot, account, "INBOX", make_message(subject=subject))
    config = command_config(tmp_path, dovecot, account, hook)

    # Returns at all: the stuck thread does not keep the process alive.
    proc = run_syncd("sync", config=config, env=hang_env)

    assert proc.returncode == 1, proc.stderr
    named = [line for line in proc.stderr.splitlines() if "plugin hang" in line]
    assert len(named) == 1, proc.stderr
    assert f"plugin hang did not return from {hook} within 1 s in account test" in named[0]
    assert "rule bills: moved to Bills 1 message" in proc.stderr  # the TOML rules still act
    remote = server_snapshot(dovecot, account)
    assert subjects(remote) == {"INBOX": ["hello", "news"], "Bills": ["invoice 1"]}
    assert summary(local_snapshot(tmp_path / "Mail", "maildir++")) == summary(remote)


def local_subjects(maildir: Path, folder: str = "INBOX") -> list[str]:
    path = folder_path(maildir, "maildir++", folder)
    return sorted(v.subject or "" for v in folder_messages(path)) if path.is_dir() else []


def test_the_daemon_keeps_syncing_past_a_hanging_plugin(
    tmp_path: Path, dovecot: DevServer, account: User, hang_env: dict[str, str]
) -> None:
    append(dovecot, account, "INBOX", make_message(subject="first"))
    config = command_config(tmp_path, dovecot, account, "syncd_classify", interval="1h")
    log_path = tmp_path / "daemon.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--config", str(config), "-v", "daemon"],
            stdout=log_file,
            stderr=log_file,
            env={**os.environ, **hang_env},
        )
    try:

        def log() -> str:
            return log_path.read_text(encoding="utf-8", errors="replace")

        maildir = tmp_path / "Mail"
        wait_for(lambda: local_subjects(maildir) == ["first"], "the start-up sync", log)
        assert "plugin hang did not return from syncd_classify within 1 s" in log()

        # The next cycle (through IDLE: the interval is an hour) still syncs.
        append(dovecot, account, "INBOX", make_message(subject="second"))
        append(dovecot, account, "INBOX", make_message(subject="invoice 2"))
        wait_for(lambda: local_subjects(maildir) == ["first", "second"], "mail via IDLE", log)
        wait_for(lambda: local_subjects(maildir, "Bills") == ["invoice 2"], "the rule", log)
        assert "plugin hang has still not returned from syncd_classify" in log()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0, log()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    remote = server_snapshot(dovecot, account)
    assert summary(local_snapshot(maildir, "maildir++")) == summary(remote)
