"""Progress of long copies (issue 15), end to end against the real Dovecot.

- Without a terminal (systemd, pipes), the periodic log lines carry messages,
  bytes, rate and time left, for downloads and uploads.
- On a terminal, ``syncd sync`` draws a live line per account (rich) on a copy that
  takes more than a second -- here made slow by a rate-limited proxy, not by a
  clock -- and still prints the account's summary line.
- A daemon in the middle of a sync reports its progress in ``syncd status``
  (text, ``--json``, ``--short``): the sync is held still by the proxy at the second
  batch of bodies while status is read.  No timing is asserted.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from faults.proxy import front
from support.imap import append, fill_inbox
from support.mail import make_message
from support.maildir import deliver, folder_messages, folder_path
from support.run import account_config, run_syncd, write_config
from test_daemon_e2e import daemon, wait_for

from devserver.dovecot import DevServer, User

LOG_LINE = re.compile(
    r"INFO t/(?P<folder>\w+): (?P<verb>downloaded|uploaded) (?P<done>\d+)/(?P<total>\d+) "
    r"messages, [\d.]+/[\d.]+ (?:B|kB|MB), [\d.]+ (?:B|kB|MB|GB)/s, \d+:\d\d left$"
)


def _bulk(i: int) -> bytes:
    return make_message(f"bulk {i}", message_id=f"<bulk{i}@progress.test>", size_pad=1500).replace(
        b"\r\n", b"\n"
    )


def test_log_lines_carry_bytes_rate_and_time_left_without_a_terminal(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    fill_inbox(dovecot, account, _bulk, 300)
    maildir = tmp_path / "Mail"
    outbox = folder_path(maildir, "maildir++", "Outbox")
    for i in range(220):
        deliver(outbox, make_message(f"local {i}", message_id=f"<local{i}@progress.test>"))
    config = write_config(tmp_path, {"t": account_config(dovecot, account, maildir)})

    proc = run_syncd("sync", config=config, env={"SYNCD_PROGRESS_EVERY": "0"})

    assert proc.returncode == 0, proc.stderr
    lines = [m for m in map(LOG_LINE.search, proc.stderr.splitlines()) if m]
    down = [m for m in lines if m["verb"] == "downloaded"]
    up = [m for m in lines if m["verb"] == "uploaded"]
    assert down and {(m["folder"], m["total"]) for m in down} == {("INBOX", "300")}, proc.stderr
    assert up and {(m["folder"], m["total"]) for m in up} == {("Outbox", "220")}, proc.stderr
    assert down[-1]["done"] == "300" and up[-1]["done"] == "220"
    assert "\x1b[" not in proc.stderr  # no terminal: no live line, no control codes
    assert "t: 2 folders ok; 300 downloaded, 220 uploaded" in proc.stderr
    assert len(folder_messages(folder_path(maildir, "maildir++", "INBOX"))) == 300


def _run_on_a_terminal(
    args: list[str],
    env: dict[str, str],
    timeout: float = 120,
    on_output: Callable[[str], None] | None = None,
) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a pseudo-terminal; its exit status
    and everything it wrote there (``on_output`` sees it so far after each read)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env={**os.environ, **env}, close_fds=True
    )
    os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"no output for {timeout}s:\n{out.decode(errors='replace')}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
            if on_output is not None:
                on_output(out.decode("utf-8", errors="replace"))
    finally:
        os.close(master)
    return proc.wait(timeout), out.decode("utf-8", errors="replace")


def test_a_live_line_on_a_terminal_then_the_summary(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    for i in range(12):
        append(dovecot, account, "INBOX", make_message(f"big {i}", size_pad=400_000))
    maildir = tmp_path / "Mail"
    # 12 x 400 kB (two body batches) through 1 MB/s: seconds, so the line must show.
    with front(dovecot, rate=1_000_000) as proxy:
        config = write_config(
            tmp_path, {"work": account_config(dovecot, account, maildir, port=proxy.port)}
        )
        env = {"TERM": "xterm-256color", "COLUMNS": "150", "LINES": "40"}
        code, out = _run_on_a_terminal(
            [sys.executable, "-m", "syncd", "--config", str(config), "sync"], env
        )
    assert code == 0, out
    live = re.search(
        r"work +INBOX +\d+/12 msgs +[\d.]+/[\d.]+ MB +[\d.]+ (?:B|kB|MB)/s +\d+:\d\d left", out
    )
    assert live, out
    assert "\x1b[" in out  # drawn and redrawn in place
    assert "INFO work/INBOX: 12 downloaded, 0 uploaded" in out  # logged above the line
    assert re.search(r"work: 1 folders ok; 12 downloaded, 0 uploaded", out), out
    # The summary comes after the last drawing of the line (which was erased).
    assert out.rindex("msgs") < out.index("work: 1 folders ok")
    assert len(folder_messages(folder_path(maildir, "maildir++", "INBOX"))) == 12

    # --no-progress (and any run short of a second) prints no line at all.
    append(dovecot, account, "INBOX", make_message("one more", size_pad=20_000))
    with front(dovecot, rate=20_000) as proxy:
        config = write_config(
            tmp_path, {"work": account_config(dovecot, account, maildir, port=proxy.port)}
        )
        code, out = _run_on_a_terminal(
            [sys.executable, "-m", "syncd", "--config", str(config), "sync", "--no-progress"],
            {"TERM": "xterm-256color"},
        )
    assert code == 0, out
    assert "msgs" not in out and "\x1b[" not in out, out
    assert "1 downloaded" in out


def test_a_daemon_mid_sync_reports_its_progress_in_status(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    fill_inbox(dovecot, account, _bulk, 2500)
    fetches: list[str] = []
    release = threading.Event()

    def on_command(text: str) -> None:
        if "BODY.PEEK[]" in text.upper():
            fetches.append(text)
            if len(fetches) == 2:  # hold the sync here (the first batch is fetched)
                release.wait(120)

    maildir = tmp_path / "Mail"
    with front(dovecot, on_command=on_command) as proxy:
        config = write_config(
            tmp_path,
            {
                "work": account_config(
                    dovecot, account, maildir, port=proxy.port, interval="1h", idle=[],
                    timeout=300,
                )
            },
        )  # fmt: skip
        with daemon(config, tmp_path) as d:
            try:

                def progress() -> dict[str, object] | None:
                    proc = run_syncd("status", "--json", config=config)
                    found = json.loads(proc.stdout)["accounts"]["work"]
                    p = found["progress"]
                    return found if p is not None and p["messages_done"] > 0 else None

                found = wait_for(progress, "progress in syncd status --json", d)
                assert found["state"] == "syncing"
                p = found["progress"]
                assert p["folder"] == "INBOX" and p["messages_total"] == 2500, p
                assert 0 < p["messages_done"] < 2500, p
                assert 0 < p["bytes_done"] < p["bytes_total"], p
                assert set(p) == {
                    "folder", "messages_done", "messages_total", "bytes_done", "bytes_total",
                    "rate", "eta", "elapsed",
                }  # fmt: skip

                text = run_syncd("status", config=config).stdout
                assert re.search(
                    r"work: syncing.*\n  syncing: \d+/2500 messages, \d+/\d+ (kB|MB)", text
                ), text
                short = run_syncd("status", "--short", config=config).stdout
                assert re.fullmatch(r"work ↻ syncing \d+%\n", short), short
            finally:
                release.set()

            def done() -> dict[str, object] | None:
                found = json.loads(run_syncd("status", "--json", config=config).stdout)
                work = found["accounts"]["work"]
                return work if work["state"] == "idle" else None

            after = wait_for(done, "the sync to finish", d)
            assert after["progress"] is None
            assert d.stop() == 0
    assert len(folder_messages(folder_path(maildir, "maildir++", "INBOX"))) == 2500


def test_syncd_sync_riding_the_daemon_shows_the_daemons_progress_live(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """The daemon's sync is held at its second batch of bodies until the terminal shows
    the live line of ``syncd sync`` (which the daemon does the sync for)."""
    for i in range(12):
        append(dovecot, account, "INBOX", make_message(f"big {i}", size_pad=400_000))
    held, release = threading.Event(), threading.Event()
    fetches: list[str] = []

    def on_command(text: str) -> None:
        if "BODY.PEEK[]" in text.upper():
            fetches.append(text)
            if len(fetches) == 2:
                held.set()
                release.wait(120)

    def on_output(out: str) -> None:
        if "msgs" in out:
            release.set()

    maildir = tmp_path / "Mail"
    with front(dovecot, on_command=on_command) as proxy:
        config = write_config(
            tmp_path,
            {
                "work": account_config(
                    dovecot, account, maildir, port=proxy.port, interval="1h", idle=[],
                    timeout=300,
                )
            },
        )  # fmt: skip
        with daemon(config, tmp_path) as d:
            try:
                wait_for(held.is_set, "the daemon's second batch of bodies", d)
                code, out = _run_on_a_terminal(
                    [sys.executable, "-m", "syncd", "--config", str(config), "sync"],
                    {"TERM": "xterm-256color", "COLUMNS": "150"},
                    on_output=on_output,
                )
            finally:
                release.set()
            assert d.stop() == 0
    assert code == 0, out
    assert re.search(r"work +INBOX +\d+/12 msgs +[\d.]+/[\d.]+ MB", out), out
    assert "work: 1 folders ok" in out, out
    assert len(folder_messages(folder_path(maildir, "maildir++", "INBOX"))) == 12
