"""The daemon's coordinator without a server: the coalescing queue, the back-off, and an
account's worker driven by a scripted syncer (bursts collapse, errors back off and are
logged once per outage, a stop lands between folders)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
from support.run import write_config

from syncd.account.syncer import AccountReport
from syncd.config import AccountConfig, Config, load_config
from syncd.daemon.queue import Backoff, Batch, RequestQueue, Tuning
from syncd.daemon.runner import AccountRunner
from syncd.engine.options import RunOptions
from syncd.engine.report import FolderReport

DEADLINE = 30.0


def wait_for(check: Callable[[], Any], what: str) -> Any:
    end = time.monotonic() + DEADLINE
    while not (result := check()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return result


# --------------------------------------------------------------------------- the queue


def test_a_pending_full_sync_absorbs_folder_requests() -> None:
    q = RequestQueue()
    q.post_folder("INBOX")
    q.post_full()
    q.post_folder("Lists/python")
    assert q.take() == Batch(full=True)
    assert not q.pending


def test_repeated_folder_requests_collapse_in_first_asked_order() -> None:
    q = RequestQueue()
    for name in ["Lists/python", "INBOX", "Lists/python", "INBOX", "Archive"]:
        q.post_folder(name)
    assert q.take() == Batch(full=False, folders=("Lists/python", "INBOX", "Archive"))
    assert q.take(timeout=0) is None


def test_a_closed_queue_refuses_requests_and_wakes_a_waiting_worker() -> None:
    q = RequestQueue()
    q.post_folder("INBOX")
    taken: list[Batch | None] = []

    def work() -> None:
        taken.append(q.take())
        taken.append(q.take())

    worker = threading.Thread(target=work)
    worker.start()
    wait_for(lambda: taken, "the first batch")
    q.close()
    worker.join(DEADLINE)
    assert taken == [Batch(False, ("INBOX",)), None]
    assert q.post_full() is False
    assert q.post_folder("INBOX") is False
    assert q.take() is None


def test_reposting_a_batch_merges_with_what_came_meanwhile() -> None:
    q = RequestQueue()
    q.post_folder("B")
    q.post(Batch(False, ("A", "B")))
    assert q.take() == Batch(False, ("B", "A"))
    q.post(Batch(True))
    q.post_folder("C")
    assert q.take() == Batch(True)


# --------------------------------------------------------------------------- back-off


def test_backoff_retries_at_once_then_doubles_up_to_the_cap() -> None:
    b = Backoff(initial=5, cap=300, jitter=0.2, rng=lambda: 0.5)  # 0.5: no jitter
    delays = [b.failure() for _ in range(10)]
    assert delays == [0, 5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert b.success() is True
    assert b.failure() == 0
    assert b.success() is True
    assert b.success() is False


@pytest.mark.parametrize("draw", [0.0, 0.999])
def test_backoff_jitter_stays_within_its_bounds_and_under_the_cap(draw: float) -> None:
    b = Backoff(initial=5, cap=300, jitter=0.2, rng=lambda: draw)
    b.failure()
    second = b.failure()
    assert 4.0 <= second <= 6.0
    for _ in range(50):  # far past the cap: never overflows, never exceeds it
        assert b.failure() <= 300


# --------------------------------------------------------------------------- a worker


class FakeSession:
    selected = None

    def delimiter(self) -> str:
        return "."


class ScriptedSyncer:
    """Stands in for AccountSyncer: records each call, walks the folders through the
    hooks like the engine does, and answers from ``script`` (then succeeds)."""

    def __init__(self, hooks: Any, script: list[str] | None = None, *, hold: bool) -> None:
        self.hooks = hooks
        self.script = list(script or [])
        self.calls: list[tuple[str, ...] | None] = []
        self.gate = threading.Event()  # while clear, the sync waits inside its first folder
        if not hold:
            self.gate.set()
        self.in_sync = threading.Event()
        self.closed = False

    def sync(
        self,
        options: RunOptions,
        folders: Collection[str] | None = None,
        *,
        lock_wait: float | None = 0,
    ) -> AccountReport:
        self.calls.append(tuple(folders) if folders is not None else None)
        report = AccountReport("test")
        try:
            for name in folders or ["INBOX", "Archive"]:
                session = FakeSession()
                self.hooks.before_folder(account=None, session=session, folder=name)
                # As the engine does: the folder's own sync is bracketed for the watcher.
                self.hooks.folder_started(folder=name, session=session)
                try:
                    self.in_sync.set()
                    self.gate.wait(DEADLINE)
                    report.folders.append(FolderReport(name))
                finally:
                    self.hooks.folder_finished(folder=name, session=session)
            outcome = self.script.pop(0) if self.script else "ok"
            if outcome == "error":
                report.error = "test (127.0.0.1:1): cannot connect: Connection refused"
            elif outcome == "locked":
                report.locked = True
                report.error = "account test is being synced by another syncd process (pid 1)"
        finally:
            self.hooks.after_account(account=None, report=report)
        return report

    def close(self) -> None:
        self.closed = True


def config_for(tmp_path: Path) -> tuple[Config, AccountConfig]:
    config = load_config(write_config(tmp_path, {"test": _table(tmp_path)}))
    return config, config.accounts["test"]


@pytest.fixture
def runner_with(tmp_path: Path) -> Any:
    started: list[AccountRunner] = []

    def make(
        script: list[str] | None = None, *, hold: bool = False
    ) -> tuple[AccountRunner, ScriptedSyncer]:
        config, account = config_for(tmp_path)
        made: list[ScriptedSyncer] = []

        def factory(_c: Config, _a: AccountConfig, hooks: Any) -> Any:
            made.append(ScriptedSyncer(hooks, script, hold=hold))
            return made[0]

        tuning = Tuning(backoff_initial=0.01, backoff_cap=0.05, lock_retry=0.01)
        runner = AccountRunner(
            config, account, scheduler=None, tuning=tuning, syncer_factory=factory
        )
        runner.start()
        started.append(runner)
        return runner, wait_for(lambda: made, "the syncer")[0]

    yield make
    for runner in started:
        runner.request_stop()
        runner.join(time.monotonic() + DEADLINE)


def test_a_burst_of_requests_during_a_sync_costs_one_more_sync(runner_with: Any) -> None:
    runner, syncer = runner_with(hold=True)
    wait_for(syncer.in_sync.is_set, "the start-up sync")
    for _ in range(50):
        runner.queue.post_folder("Lists/python")
        runner.queue.post_folder("INBOX")
    syncer.gate.set()
    wait_for(lambda: runner.syncs == 2 and not runner.queue.pending, "the follow-up sync")
    assert syncer.calls == [None, ("Lists/python", "INBOX")]


def test_a_failing_account_backs_off_and_logs_once_per_outage(
    runner_with: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd")
    runner, syncer = runner_with(["error"] * 6)
    wait_for(lambda: len(syncer.calls) == 7, "six failures and a success")
    wait_for(lambda: runner.syncs == 7, "the successful sync")
    assert syncer.calls == [None] * 7  # every retry is a full sync
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert "still cannot sync" in lines[0]
    assert "Connection refused" in lines[0]
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert not runner.backoff.failing


def test_a_locked_account_is_retried_with_the_same_request(
    runner_with: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd")
    runner, syncer = runner_with(["ok", "locked", "locked", "ok"])
    wait_for(lambda: runner.syncs == 1, "the start-up sync")
    runner.queue.post_folder("INBOX")
    wait_for(lambda: runner.syncs == 4, "the retries")
    assert syncer.calls == [None, ("INBOX",), ("INBOX",), ("INBOX",)]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("another syncd process" in m for m in messages) == 1
    assert any("the other syncd process is done" in m for m in messages)


def test_a_stop_lands_between_two_folders(runner_with: Any) -> None:
    runner, syncer = runner_with(hold=True)
    wait_for(syncer.in_sync.is_set, "the first folder")
    runner.request_stop()
    syncer.gate.set()
    assert runner.join(time.monotonic() + DEADLINE)
    assert syncer.closed
    assert runner.syncs == 0  # the sync was cut short after INBOX, before Archive
    assert runner.echo.known(("INBOX",))
    assert not runner.echo.known(("Archive",))
    assert runner.queue.post_full() is False


def test_each_synced_folder_leaves_its_signature_for_the_watcher(
    runner_with: Any, tmp_path: Path
) -> None:
    from syncd.stores.maildir.fsio import directory_signature

    for sub in ("cur", "new", "tmp"):
        (tmp_path / "Mail" / ".Archive" / sub).mkdir(parents=True)
    runner, _syncer = runner_with()
    wait_for(lambda: runner.syncs == 1, "the start-up sync")
    signature = directory_signature(tmp_path / "Mail" / ".Archive")
    assert runner.echo.is_echo(("Archive",), signature)
    assert not runner.echo.busy(("Archive",))


class RecordingHooks:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.closed = False

    def before_account(self, *, account: Any) -> None:
        self.events.append("account")

    def before_folder(self, *, account: Any, session: Any, folder: str) -> list[str]:
        self.events.append(folder)
        return []

    def after_account(self, *, account: Any, report: Any) -> None:
        self.events.append("done")

    def close(self) -> None:
        self.closed = True


def test_the_configured_hooks_run_around_each_folder_and_are_closed(tmp_path: Path) -> None:
    config, account = config_for(tmp_path)
    inner = RecordingHooks()
    runner = AccountRunner(
        config,
        account,
        scheduler=None,
        syncer_factory=lambda _c, _a, hooks: ScriptedSyncer(hooks, hold=False),
        hooks=inner,
    )
    runner.start()
    wait_for(lambda: runner.syncs == 1, "the start-up sync")
    runner.request_stop()
    assert runner.join(time.monotonic() + DEADLINE)
    assert inner.events == ["INBOX", "Archive", "done"]
    assert inner.closed


def test_a_reload_whose_rules_do_not_load_changes_nothing(tmp_path: Path) -> None:
    from syncd.daemon.core import Daemon
    from syncd.errors import ConfigError

    config, _account = config_for(tmp_path)
    (tmp_path / "new").mkdir()
    second = load_config(
        write_config(
            tmp_path / "new",
            {
                "test": {**_table(tmp_path), "interval": 60},
                "other": _table(tmp_path / "other"),
            },
        )
    )

    def hooks_for(c: Config) -> None:
        if "other" in c.accounts:
            raise ConfigError("config.toml: accounts.other.rules: bad rule")

    daemon = Daemon(
        config,
        syncer_factory=lambda _c, _a, hooks: ScriptedSyncer(hooks, hold=False),
        hooks_factory=hooks_for,
    )
    daemon.start()
    try:
        before = dict(daemon.runners)
        with pytest.raises(ConfigError):
            daemon.reload(second)
        assert daemon.runners == before
        assert daemon.runners["test"].busy
        assert daemon.config is config
    finally:
        assert daemon.stop() == []


def _table(base: Path) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": 1,
        "tls": "none",
        "user": "u",
        "password_command": ["true"],
        "maildir": str(base / "Mail"),
        "idle": [],
    }


@pytest.mark.parametrize(
    ("max_connections", "idle", "pool"),
    [(4, ["INBOX"], 3), (4, [], 4), (2, ["INBOX", "Sent"], 1), (1, ["INBOX"], 1)],
)
def test_the_syncer_pool_gets_what_the_idle_connections_leave_of_the_cap(
    tmp_path: Path, max_connections: int, idle: list[str], pool: int
) -> None:
    # The server counts every connection of the user: IDLE ones and the syncer's pool
    # together stay within max_connections.
    table = {**_table(tmp_path), "max_connections": max_connections, "idle": idle}
    config = load_config(write_config(tmp_path, {"test": table}))
    seen: list[AccountConfig] = []

    def factory(_c: Config, account: AccountConfig, hooks: Any) -> Any:
        seen.append(account)
        return ScriptedSyncer(hooks, hold=False)

    runner = AccountRunner(config, config.accounts["test"], scheduler=None, syncer_factory=factory)
    runner.start()
    try:
        wait_for(lambda: seen, "the syncer")
    finally:
        runner.request_stop()
        runner.join(time.monotonic() + DEADLINE)
    listeners = len(runner.listeners)
    assert seen[0].max_connections == pool
    assert pool + listeners == max_connections
    assert seen[0].name == "test"


def test_full_syncs_of_the_daemons_accounts_take_turns(tmp_path: Path) -> None:
    # Each full sync may hold its account's body budget: the daemon's peak memory is
    # bounded by how many run at once (Tuning.full_syncs), not by its accounts.
    tables = {
        name: {**_table(tmp_path), "maildir": str(tmp_path / f"Mail-{name}")} for name in ("a", "b")
    }
    config = load_config(write_config(tmp_path, tables))
    gate = threading.BoundedSemaphore(1)
    syncers: dict[str, ScriptedSyncer] = {}
    runners = []
    for name in ("a", "b"):

        def factory(_c: Config, _a: AccountConfig, hooks: Any, name: str = name) -> Any:
            syncers[name] = ScriptedSyncer(hooks, hold=True)
            return syncers[name]

        runner = AccountRunner(
            config, config.accounts[name], scheduler=None, syncer_factory=factory,
            full_syncs=gate,
        )  # fmt: skip
        runners.append(runner)
    try:
        runners[0].start()
        wait_for(lambda: "a" in syncers and syncers["a"].in_sync.is_set(), "a's full sync")
        runners[1].start()
        wait_for(lambda: "b" in syncers, "b's worker")
        assert not syncers["b"].in_sync.is_set()
        syncers["a"].gate.set()
        syncers["b"].gate.set()
        wait_for(lambda: runners[1].syncs >= 1, "b's full sync, after a's")
        assert syncers["b"].calls[0] is None  # its start-up full sync went first
    finally:
        for runner in runners:
            runner.request_stop()
        for runner in runners:
            runner.join(time.monotonic() + DEADLINE)
