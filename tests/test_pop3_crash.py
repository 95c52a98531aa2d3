"""POP3 crash consistency (issue 13): ``kill -9`` of a real syncd during a 1 500
message download, with mail kept and with mail deleted on the server; and a kill
after every durable step of a download-and-delete run.  Nothing lost, nothing
stored twice, and with ``keep_on_server = false`` the server ends empty."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.imap import fill_inbox, folder_messages, session
from support.mail import make_message
from support.maildir import folder_messages as local_messages
from support.run import run_syncd, write_config

import devserver.dovecot as devserver
from devserver.dovecot import DevServer, User

N = 1500


@pytest.fixture(scope="module")
def pop3d() -> Iterator[DevServer]:
    """This module's Dovecot with POP3 on 127.0.0.1 (stopped here)."""
    root = Path(tempfile.mkdtemp(prefix="syncd-pop3crash-"))
    root.chmod(0o755)
    try:
        server = devserver.start(root, pop3=True)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _raw(i: int) -> bytes:
    msg = make_message(
        subject=f"pop {i}", message_id=f"<pop-{i}@crash.test>", size_pad=(i % 5) * 700
    )
    return msg.replace(b"\r\n", b"\n")


def _server(server: DevServer, user: User) -> Counter[str]:
    with session(server, user) as client:
        return Counter(m.sha256 for m in folder_messages(client, "INBOX"))


def _local(maildir: Path) -> Counter[str]:
    return Counter(m.sha256 for m in local_messages(maildir))


def _count(maildir: Path) -> int:
    return sum(len(list(p.iterdir())) for p in (maildir / "new", maildir / "cur") if p.is_dir())


def _config(tmp_path: Path, server: DevServer, user: User, **extra: object) -> Path:
    table = {
        "protocol": "pop3",
        "host": server.host,
        "port": server.pop3_port,
        "tls": "none",
        "user": user.name,
        "password_command": ["printf", "%s", user.password],
        "maildir": str(tmp_path / "Mail"),
        **extra,
    }
    return write_config(tmp_path, {"p": table})


def _kill_loop(config: Path, maildir: Path, kills: int, seed: int) -> list[int]:
    """Start syncd and kill -9 it after a random number of new files, ``kills``
    times; returns the local message count at each kill."""
    rng = random.Random(seed)
    seen = []
    for attempt in range(kills):
        before = _count(maildir)
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--config", str(config), "sync"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        goal = before + rng.randint(60, 220)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _count(maildir) < goal:
            assert time.monotonic() < deadline, "no download progress"
            time.sleep(0.003)
        assert proc.poll() is None, f"kill {attempt + 1}: the sync had already finished"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.append(_count(maildir))
    return seen


@pytest.mark.parametrize("keep", [True, False], ids=["keep", "delete"])
def test_kill_loop_during_a_1500_message_download(
    tmp_path: Path, pop3d: DevServer, keep: bool
) -> None:
    user = pop3d.add_user()
    fill_inbox(pop3d, user, _raw, N)
    original = _server(pop3d, user)
    assert sum(original.values()) == N
    maildir = tmp_path / "Mail"
    config = _config(tmp_path, pop3d, user, keep_on_server=keep)
    counts = _kill_loop(config, maildir, kills=5, seed=13 if keep else 31)
    assert counts == sorted(counts) and counts[-1] < N, counts
    final = run_syncd("sync", config=config, check=True)
    local = _local(maildir)
    assert local == original, f"kills at {counts}"  # the same messages, each once
    assert max(local.values()) == 1
    assert _server(pop3d, user) == (original if keep else Counter())
    again = run_syncd("sync", config=config, check=True)
    assert "0 downloaded" in again.stderr, again.stderr
    print(f"\npop3 kill loop ({'keep' if keep else 'delete'}): kills at {counts}; {final.stderr}")


def test_a_kill_after_every_step_of_download_and_delete(tmp_path: Path, pop3d: DevServer) -> None:
    """isync's sweep: the reference run's durable steps, then one run killed at each."""

    def scenario(where: Path) -> tuple[User, Path]:
        user = pop3d.add_user()
        fill_inbox(pop3d, user, _raw, 5)
        where.mkdir()
        return user, _config(where, pop3d, user, keep_on_server=False)

    user, config = scenario(tmp_path / "ref")
    original = _server(pop3d, user)
    log = tmp_path / "steps.log"
    run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_LOG": str(log)}, check=True)
    steps = log.read_text().splitlines()
    names = [s.split()[1] for s in steps]
    print(f"\npop3 crash sweep: {len(steps)} durable steps: {' '.join(names)}")
    assert {"download-commit", "pop3-delete-intent", "pop3-dele", "pop3-quit"} <= set(names)
    for n in range(1, len(steps) + 1):
        user, config = scenario(tmp_path / f"n{n}")
        crashed = run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_AT": str(n)})
        assert crashed.returncode == -signal.SIGKILL, (n, crashed.stderr)
        on_server = _server(pop3d, user)
        if names[n - 1] != "pop3-quit":
            assert on_server == original, (n, names[n - 1])  # nothing deleted before QUIT
        run_syncd("sync", config=config, check=True)
        assert _local(tmp_path / f"n{n}" / "Mail") == original, (n, names[n - 1])
        assert _server(pop3d, user) == Counter(), (n, names[n - 1])


def test_collect_into_survives_a_kill_after_every_step(tmp_path: Path, pop3d: DevServer) -> None:
    """collect_into across kill -9: each message ends in the IMAP folder exactly once
    (an APPEND whose answer was lost is found again by content, not repeated), and
    leaves the POP3 server only once it is there."""
    from support.run import account_config

    def scenario(where: Path) -> tuple[User, User, Path]:
        user, target = pop3d.add_user(), pop3d.add_user()
        fill_inbox(pop3d, user, _raw, 5)
        where.mkdir()
        pop3 = {
            "protocol": "pop3",
            "host": pop3d.host,
            "port": pop3d.pop3_port,
            "tls": "none",
            "user": user.name,
            "password_command": ["printf", "%s", user.password],
            "maildir": str(where / "Mail"),
            "keep_on_server": False,
            "collect_into": "w/Collected",
        }
        imap = account_config(pop3d, target, where / "Work")
        return user, target, write_config(where, {"p": pop3, "w": imap})

    def collected(target: User) -> Counter[str]:
        with session(pop3d, target) as client:
            if not client.folder_exists("Collected"):
                return Counter()
            return Counter(m.sha256 for m in folder_messages(client, "Collected"))

    user, target, config = scenario(tmp_path / "ref")
    original = _server(pop3d, user)
    log = tmp_path / "steps.log"
    run_syncd("sync", "p", config=config, env={"SYNCD_TEST_CRASH_LOG": str(log)}, check=True)
    names = [s.split()[1] for s in log.read_text().splitlines()]
    assert {"collect-intent", "collect-append", "collect-commit", "pop3-quit"} <= set(names)
    assert collected(target) == original
    print(f"\npop3 collect_into sweep: {len(names)} durable steps: {' '.join(names)}")
    for n in range(1, len(names) + 1):
        user, target, config = scenario(tmp_path / f"n{n}")
        crashed = run_syncd("sync", "p", config=config, env={"SYNCD_TEST_CRASH_AT": str(n)})
        assert crashed.returncode == -signal.SIGKILL, (n, crashed.stderr)
        run_syncd("sync", "p", config=config, check=True)
        assert collected(target) == original, (n, names[n - 1])
        assert _server(pop3d, user) == Counter(), (n, names[n - 1])
        assert _local(tmp_path / f"n{n}" / "Mail") == original, (n, names[n - 1])
