"""Crash consistency: `kill -9` of a real syncd at any moment, then another run,
loses nothing and copies nothing twice (RELIABILITY.md CC-*, oracle O5)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from support import summary
from support.imap import append, expunge, server_snapshot, session, set_flags
from support.mail import make_message
from support.maildir import deliver, folder_path, local_snapshot, set_local_flags
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User


def _server_mail(server: DevServer, user: User, folder: str, n: int, tag: str) -> None:
    with session(server, user) as c:
        if folder != "INBOX":
            c.create_folder(folder)
        msgs = [
            make_message(subject=f"{tag} {i}", message_id=f"<{tag}-{i}@t>", size_pad=(i % 7) * 900)
            for i in range(n)
        ]
        for start in range(0, n, 50):
            c.multiappend(folder, msgs[start : start + 50])


def _no_duplicates(snapshot: dict[str, list]) -> None:  # type: ignore[type-arg]
    for folder, views in snapshot.items():
        dup = [h for h, k in Counter(v.sha256 for v in views).items() if k > 1]
        assert not dup, f"{folder}: {len(dup)} messages twice"


def _local_count(maildir: Path) -> int:
    return sum(len(list(p.iterdir())) for p in maildir.rglob("cur") if p.is_dir())


def test_six_kills_during_initial_sync_with_uploads(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    _server_mail(dovecot, account, "INBOX", 2400, "srv")
    _server_mail(dovecot, account, "Archive", 600, "arc")
    maildir = tmp_path / "Mail"
    for i in range(80):
        deliver(maildir, make_message(message_id=f"<loc-{i}@t>", size_pad=i * 50), "S")
    for i in range(40):
        deliver(
            folder_path(maildir, "maildir++", "Drafts2"), make_message(message_id=f"<draft-{i}@t>")
        )
    config = write_config(tmp_path, {"t": account_config(dovecot, account, maildir)})
    rng = random.Random(7)
    for attempt in range(6):
        before = _local_count(maildir)
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--config", str(config), "sync"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if attempt == 0:
            # early: while connecting and uploading the pending local messages
            time.sleep(rng.uniform(0.3, 0.5))
        else:
            # later: in the middle of the downloads, after a random number of new files
            goal = before + rng.randint(50, 400)
            deadline = time.monotonic() + 60
            while proc.poll() is None and _local_count(maildir) < goal:
                assert time.monotonic() < deadline, "no download progress"
                time.sleep(0.005)
        assert proc.poll() is None, f"kill {attempt + 1}: the sync had already finished"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = run_syncd("sync", config=config)
    assert final.returncode == 0, final.stderr
    remote, local = server_snapshot(dovecot, account), local_snapshot(maildir, "maildir++")
    _no_duplicates(remote)
    _no_duplicates(local)
    assert {k: len(v) for k, v in remote.items()} == {"INBOX": 2480, "Archive": 600, "Drafts2": 40}
    assert summary(local) == summary(remote)
    again = run_syncd("sync", config=config)
    assert "0 downloaded, 0 uploaded, 0 flag changes" in again.stderr


def _scenario(tmp_path: Path, server: DevServer, user: User) -> tuple[Path, Path]:
    """A small account with every kind of change pending for the second run."""
    for i in range(4):
        append(server, user, "INBOX", make_message(message_id=f"<s{i}@t>"))
    tmp_path.mkdir(parents=True)
    maildir = tmp_path / "Mail"
    config = write_config(tmp_path, {"t": account_config(server, user, maildir)})
    run_syncd("sync", config=config, check=True)
    # Picked by Message-ID: unique names do not sort in delivery order (`...M99998...`
    # sorts after `...M100003...`), and a pick by name order could make the message
    # deleted here the one flagged on the server below -- another scenario, with
    # other steps, than the reference run's.
    files = {v.message_id: v.path for v in local_snapshot(maildir, "maildir++")["INBOX"]}
    set_local_flags(files["<s0@t>"], "F")
    files["<s1@t>"].unlink()
    for i in range(3):
        deliver(maildir, make_message(message_id=f"<l{i}@t>"), "S")
    for i in range(3):
        append(server, user, "INBOX", make_message(message_id=f"<n{i}@t>"))
    with session(server, user) as c:
        c.select_folder("INBOX")
        uids = sorted(c.search("ALL"))
    set_flags(server, user, "INBOX", [uids[2]], ["\\Answered"])
    return config, maildir


def _end_state(server: DevServer, user: User, maildir: Path) -> object:
    remote, local = server_snapshot(server, user), local_snapshot(maildir, "maildir++")
    assert summary(remote) == summary(local)
    return summary(remote)


def test_crash_at_every_durable_step(tmp_path: Path, dovecot: DevServer) -> None:
    """isync's interrupt/resume sweep: kill at step n for every n, resume, and the
    result equals the uninterrupted run's."""
    user = dovecot.add_user()
    config, maildir = _scenario(tmp_path / "ref", dovecot, user)
    log = tmp_path / "steps.log"
    run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_LOG": str(log)}, check=True)
    steps = log.read_text().splitlines()
    assert len(steps) >= 8, steps
    expected = _end_state(dovecot, user, maildir)
    expected_counts = {k: len(v) for k, v in expected.items()}  # type: ignore[attr-defined]
    for n in range(1, len(steps) + 1):
        user = dovecot.add_user()
        config, maildir = _scenario(tmp_path / f"n{n}", dovecot, user)
        crashed = run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_AT": str(n)})
        assert crashed.returncode == -signal.SIGKILL, (n, crashed.stderr)
        run_syncd("sync", config=config, check=True)
        got = _end_state(dovecot, user, maildir)
        _no_duplicates(server_snapshot(dovecot, user))
        assert {k: len(v) for k, v in got.items()} == expected_counts, (n, steps[n - 1])  # type: ignore[attr-defined]
        # flags and contents equal the uninterrupted run's, message by message
        assert [(m, f) for m, _h, f in got["INBOX"]] == [  # type: ignore[index]
            (m, f) for m, _h, f in expected["INBOX"]
        ], (n, steps[n - 1])  # type: ignore[index]


def _change_wins_scenario(tmp_path: Path, server: DevServer, user: User) -> Path:
    """Both kinds of "a change wins over a deletion" pending for the second run:
    <w0> deleted here but flagged on the server (downloaded again, replacing its
    pair) and <w1> expunged on the server but flagged here (uploaded again)."""
    for i in range(4):
        append(server, user, "INBOX", make_message(message_id=f"<w{i}@t>"))
    tmp_path.mkdir(parents=True)
    maildir = tmp_path / "Mail"
    config = write_config(tmp_path, {"t": account_config(server, user, maildir)})
    run_syncd("sync", config=config, check=True)
    local = {v.message_id: v.path for v in local_snapshot(maildir, "maildir++")["INBOX"]}
    remote = {v.message_id: v.uid for v in server_snapshot(server, user)["INBOX"]}
    local["<w0@t>"].unlink()
    set_local_flags(local["<w1@t>"], "F")
    set_flags(server, user, "INBOX", [remote["<w0@t>"]], ["\\Flagged"])
    expunge(server, user, "INBOX", [remote["<w1@t>"]])
    return config


def test_crash_while_a_change_wins_over_a_deletion(tmp_path: Path, dovecot: DevServer) -> None:
    """A copy that replaces a pair (the change won over a deletion) interrupted at any
    step is adopted by the next run, not copied a second time."""
    user = dovecot.add_user()
    config = _change_wins_scenario(tmp_path / "ref", dovecot, user)
    log = tmp_path / "steps.log"
    run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_LOG": str(log)}, check=True)
    steps = log.read_text().splitlines()
    expected = _end_state(dovecot, user, tmp_path / "ref" / "Mail")
    assert [(m, f) for m, _h, f in expected["INBOX"]] == [  # type: ignore[index]
        ("<w0@t>", frozenset({"\\Flagged"})),
        ("<w1@t>", frozenset({"\\Flagged"})),
        ("<w2@t>", frozenset()),
        ("<w3@t>", frozenset()),
    ]
    for n in range(1, len(steps) + 1):
        user = dovecot.add_user()
        config = _change_wins_scenario(tmp_path / f"n{n}", dovecot, user)
        maildir = tmp_path / f"n{n}" / "Mail"
        crashed = run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_AT": str(n)})
        assert crashed.returncode == -signal.SIGKILL, (n, crashed.stderr)
        run_syncd("sync", config=config, check=True)
        _no_duplicates(server_snapshot(dovecot, user))
        _no_duplicates(local_snapshot(maildir, "maildir++"))
        assert _end_state(dovecot, user, maildir) == expected, (n, steps[n - 1])
