"""The progress model (messages, bytes, rate over a sliding window, time left) and
its text forms, with an injected clock: no waiting, no timing in an assertion."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import pytest
from support.run import offline_config

from syncd.cli.live import LiveLine, wanted
from syncd.daemon.progress import ProgressPublisher
from syncd.engine.options import PROGRESS_EVERY, progress_every
from syncd.engine.progress import (
    FolderProgress,
    Meter,
    Snapshot,
    duration_text,
    rate_text,
    size_text,
)
from syncd.logsetup import account_logger
from syncd.status.collect import as_json, collect
from syncd.status.render import short_line, text_lines
from syncd.status.runtime import IDLE, SYNCING, AccountRuntime, StatusFile, read_daemons


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("done", "total", "text"),
    [
        (120_400_000, 150_200_000, "120.4/150.2 MB"),
        (0, 3_000_000_000, "0.0/3.0 GB"),
        (512, 2048, "0.5/2.0 kB"),
        (10, 900, "10/900 B"),
    ],
)
def test_size_text(done: int, total: int, text: str) -> None:
    assert size_text(done, total) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(3_100_000.0, "3.1 MB/s"), (2_500.0, "2.5 kB/s"), (12.4, "12 B/s"), (0.0, "0 B/s")],
)
def test_rate_text(rate: float, text: str) -> None:
    assert rate_text(rate) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(9, "0:09"), (9.6, "0:10"), (750, "12:30"), (3723, "1:02:03"), (-3, "0:00")],
)
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_snapshot_lines() -> None:
    snap = Snapshot(2480, 3000, 120_400_000, 150_200_000, 3_100_000.0, 9.0, 40.0, "INBOX")
    assert snap.text() == "2480/3000 messages, 120.4/150.2 MB, 3.1 MB/s, 0:09 left"
    assert snap.brief() == "2480/3000 messages, 120/150 MB, 0:09 left"
    assert snap.columns() == ["INBOX", "2480/3000 msgs", "120.4/150.2 MB", "3.1 MB/s", "0:09 left"]
    unknown = Snapshot(0, 3000, 0, 0, None, None, 0.0)
    assert unknown.text() == "0/3000 messages"
    assert unknown.columns() == ["", "0/3000 msgs", "", "", ""]


def test_rate_and_time_left_from_bytes() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    meter.plan(3000, 150_000_000, "INBOX")
    clock.now += 4
    meter.advance(1000, 50_000_000, "INBOX")
    snap = meter.snapshot()
    assert (snap.messages_done, snap.messages_total) == (1000, 3000)
    assert (snap.bytes_done, snap.bytes_total) == (50_000_000, 150_000_000)
    assert snap.rate == pytest.approx(12_500_000)
    assert snap.eta == pytest.approx(8.0)
    assert snap.elapsed == pytest.approx(4.0)
    assert snap.folder == "INBOX"


def test_rate_follows_the_recent_window() -> None:
    """A link that slows down: after the window has passed, only the slow part counts."""
    clock = Clock()
    meter = Meter(clock=clock, window=10.0)
    meter.plan(100, 100_000_000)
    for _ in range(10):  # 10 s at 5 MB/s
        clock.now += 1
        meter.advance(5, 5_000_000)
    for _ in range(20):  # then 20 s at 1 MB/s
        clock.now += 1
        meter.advance(1, 1_000_000)
    snap = meter.snapshot()
    assert snap.rate == pytest.approx(1_000_000)
    assert snap.eta == pytest.approx(30.0)


def test_samples_stay_bounded_however_fast_copies_go() -> None:
    clock = Clock()
    meter = Meter(clock=clock, window=10.0)
    meter.plan(100_000, 100_000_000)
    for _ in range(100_000):  # 100 000 messages in 20 s
        clock.now += 0.0002
        meter.advance(1, 1000)
    assert len(meter._samples) <= 2 * 100 + 2
    assert meter.snapshot().rate == pytest.approx(5_000_000, rel=0.01)


def test_a_stall_longer_than_the_window_reads_as_no_rate() -> None:
    clock = Clock()
    meter = Meter(clock=clock, window=10.0)
    meter.plan(10, 10_000)
    clock.now += 1
    meter.advance(1, 1_000)
    clock.now += 60
    snap = meter.snapshot()
    assert snap.rate == 0.0
    assert snap.eta is None
    assert snap.text() == "1/10 messages, 1.0/10.0 kB, 0 B/s"


def test_nothing_measured_yet() -> None:
    meter = Meter(clock=Clock())
    meter.plan(5, 5_000)
    snap = meter.snapshot()
    assert snap.rate is None and snap.eta is None
    assert not snap.finished
    assert Meter(clock=Clock()).snapshot().finished  # nothing planned: nothing left


def test_time_left_from_messages_when_sizes_are_unknown() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    meter.plan(30, 0)
    clock.now += 2
    meter.advance(10, 0)
    assert meter.snapshot().eta == pytest.approx(4.0)


def test_dropped_copies_leave_the_totals() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    meter.plan(10, 1000, "A")
    meter.plan(5, 500, "B")
    clock.now += 1
    meter.advance(4, 400, "A")
    meter.drop(6, 600, "A")
    snap = meter.snapshot()
    assert (snap.messages_done, snap.messages_total, snap.bytes_total) == (4, 9, 900)
    assert snap.folder == "B"


def test_folders_copying_side_by_side_are_named() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    for folder in ("INBOX", "Lists", "Sent"):
        meter.plan(10, 100, folder)
    clock.now += 1
    meter.advance(1, 10, "Lists")
    assert meter.snapshot().folder == "Lists +2"
    meter.advance(10, 100, "INBOX")  # INBOX is done: no longer counted
    meter.advance(1, 10, "Lists")
    assert meter.snapshot().folder == "Lists +1"


def test_threads_feeding_one_meter_lose_nothing() -> None:
    meter = Meter()
    meter.plan(8 * 1000, 8 * 1000 * 10)

    def feed(folder: str) -> None:
        for _ in range(1000):
            meter.advance(1, 10, folder)
            meter.snapshot()

    threads = [threading.Thread(target=feed, args=(f"F{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = meter.snapshot()
    assert (snap.messages_done, snap.bytes_done) == (8000, 80_000)
    assert snap.finished


def test_busy_since_marks_each_stretch_of_copies() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    assert meter.busy_since is None
    meter.plan(2, 20, "A")
    assert meter.busy_since == 1000.0
    clock.now += 5
    meter.plan(1, 10, "B")  # more on top of unfinished copies: the same stretch
    assert meter.busy_since == 1000.0
    meter.advance(3, 30)
    assert meter.busy_since is None
    clock.now += 5
    meter.plan(4, 40, "C")  # a later folder starts a new stretch
    assert meter.busy_since == 1010.0
    meter.drop(4, 40, "C")
    assert meter.busy_since is None
    assert meter.started == 1000.0


def test_folder_progress_logs_bytes_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = account_logger("work", "INBOX")
    account = Meter(clock=clock)
    progress = FolderProgress(
        log, "downloaded", "INBOX", 3000, 150_000_000, meter=account, every=5.0, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="syncd"):
        clock.now += 4
        progress.advance(1000, 50_000_000)  # before the interval: no line
        clock.now += 1
        progress.advance(1000, 50_000_000)
        progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "work/INBOX: downloaded 2000/3000 messages, 100.0/150.0 MB, 20.0 MB/s, 0:02 left"
    ]
    assert account.snapshot().messages_total == 2000  # what was not copied left the totals


def test_folder_progress_is_silent_on_small_copies_and_under_a_live_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log = account_logger("work", "INBOX")
    with caplog.at_level(logging.INFO, logger="syncd"):
        small = FolderProgress(log, "uploaded", "INBOX", 10, 1000, every=0.0, clock=clock)
        clock.now += 1
        small.advance(10, 1000)
        live = FolderProgress(
            log, "uploaded", "INBOX", 500, 1000, meter=Meter(quiet=True), every=0.0, clock=clock
        )
        clock.now += 1
        live.advance(10, 20)
    assert caplog.records == []


@pytest.mark.parametrize(
    ("value", "every"),
    [(None, PROGRESS_EVERY), ("0.1", 0.1), ("0", 0.0), ("soon", PROGRESS_EVERY), ("-1", 5.0)],
)
def test_progress_every_from_the_environment(value: str | None, every: float) -> None:
    env = {} if value is None else {"SYNCD_PROGRESS_EVERY": value}
    assert progress_every(env) == every


# --------------------------------------------------------------------------- in syncd status


def test_the_daemons_progress_reaches_every_form_of_status(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    status = StatusFile(config.state_dir)
    status.start()
    status.set("a", AccountRuntime(state=SYNCING, since=1.0))
    snap = Snapshot(2480, 3000, 120_400_000, 150_200_000, 3_100_000.0, 9.0, 40.0, "INBOX")
    status.set_progress("a", snap)
    assert read_daemons(config.state_dir)[0].accounts["a"].progress == snap  # round trip

    found = collect(config, ["a"])
    assert found.accounts[0].progress == snap
    assert "  syncing: 2480/3000 messages, 120/150 MB, 0:09 left" in text_lines(found)
    assert short_line(found) == "a ↻ syncing 80%"
    assert as_json(found)["accounts"]["a"]["progress"] == {
        "folder": "INBOX",
        "messages_done": 2480,
        "messages_total": 3000,
        "bytes_done": 120_400_000,
        "bytes_total": 150_200_000,
        "rate": 3_100_000.0,
        "eta": 9.0,
        "elapsed": 40.0,
    }

    status.set("a", AccountRuntime(state=IDLE, since=2.0))  # the sync is over: no progress
    found = collect(config, ["a"])
    assert found.accounts[0].progress is None
    assert as_json(found)["accounts"]["a"]["progress"] is None
    assert not any("syncing:" in line for line in text_lines(found))
    status.remove()


def test_a_status_file_without_progress_still_reads(tmp_path: Path) -> None:
    """Files written before progress existed (or by an older daemon) have no key."""
    status = StatusFile(tmp_path)
    status.start()
    status.set("a", AccountRuntime(state=SYNCING, since=1.0))
    data = json.loads(status.path.read_text())
    del data["accounts"]["a"]["progress"]
    status.path.write_text(json.dumps(data))
    assert read_daemons(tmp_path)[0].accounts["a"].progress is None
    status.remove()


def test_the_daemons_publisher_writes_progress_while_a_sync_copies(tmp_path: Path) -> None:
    status = StatusFile(tmp_path)
    status.start()
    status.set("a", AccountRuntime(state=SYNCING, since=1.0))
    with ProgressPublisher(status, "a", every=0.01) as meter:
        meter.plan(10, 1000, "INBOX")
        meter.advance(4, 400, "INBOX")
        deadline = time.monotonic() + 30
        while _progress_of(status, "a") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        progress = read_daemons(tmp_path)[0].accounts["a"].progress
        assert progress is not None and (progress.messages_done, progress.bytes_total) == (4, 1000)
    assert read_daemons(tmp_path)[0].accounts["a"].progress is None  # gone when it ends
    status.remove()


def _progress_of(status: StatusFile, account: str) -> Snapshot | None:
    runtime = status.get(account)
    return runtime.progress if runtime is not None else None


# --------------------------------------------------------------------------- the live line


def test_the_live_line_is_only_for_a_terminal_and_not_with_q(tmp_path: Path) -> None:
    with (tmp_path / "out").open("w") as out:
        assert not wanted(out, verbosity=0)
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert wanted(tty, verbosity=0)
            assert not wanted(tty, verbosity=-1)  # -q
            assert not wanted(tty, verbosity=0, enabled=False)  # --no-progress
    finally:
        os.close(master)
        os.close(slave)


def test_the_live_line_renders_one_row_per_account() -> None:
    from rich.console import Console

    live = LiveLine("work", io.StringIO())
    clock = Clock()
    live.meter = Meter(clock=clock, quiet=True)
    live.meter.plan(3000, 150_200_000, "INBOX")
    clock.now += 40
    live.meter.advance(2480, 120_400_000, "INBOX")
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(live.render())
    line = console.file.getvalue()  # type: ignore[attr-defined]
    assert re.match(r"work  INBOX  2480/3000 msgs  120\.4/150\.2 MB  3\.0 MB/s  0:10 left  ", line)
    assert line.count("\n") == 1
