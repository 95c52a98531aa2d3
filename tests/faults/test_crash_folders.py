"""CC-09: kill -9 during folder creation.  Local-only folders (one nested) hold mail and
a server-only folder holds mail; syncd must CREATE the server folders, upload into
them and create the local one.  A sweep kills after every durable step of that run
(``SYNCD_TEST_CRASH_AT``) and resumes: a folder that exists on one side only because
of the crash is completed, never treated as deleted; nothing lost, nothing twice,
flags equal to the uninterrupted run.

``slow``: by default (CI) it runs a sample of the points (the first, those around the
first upload into a new folder, any ``folder-create`` step, and the last);
``tests/run.sh --all`` runs every point (17 today, ~15 s)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from faults.common import config_for, converged, duplicates, idempotent, message
from support.imap import append, server_snapshot
from support.maildir import deliver, folder_path, local_snapshot
from support.run import run_syncd

from devserver.dovecot import DevServer, User

NEW_FOLDERS = {"Fresh": 2, "Projects/New": 3}


def _scenario(server: DevServer, where: Path) -> tuple[User, Path, Path]:
    user = server.add_user()
    maildir = where / "Mail"
    append(server, user, "INBOX", message("inbox0"))
    for i in range(2):
        append(server, user, "Remote", message(f"remote{i}"))
    for folder, n in NEW_FOLDERS.items():
        for i in range(n):
            tag = f"{folder.replace('/', '-')}{i}"
            deliver(folder_path(maildir, "maildir++", folder), message(tag), "S" if i else "F")
    config = config_for(where, server, user, maildir, max_connections=1)
    return user, maildir, config


def _by_content(summary_: dict[str, list[tuple[str | None, str, frozenset[str]]]]) -> object:
    return {
        f: sorted((m or "", h, tuple(sorted(fl))) for m, h, fl in rows)
        for f, rows in summary_.items()
    }


@pytest.mark.slow
def test_cc09_crash_during_folder_creation_sweep(
    tmp_path: Path, dovecot: DevServer, full_sweep: bool
) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    user, maildir, config = _scenario(dovecot, ref)
    log = ref / "steps.log"
    run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_LOG": str(log)}, check=True)
    steps = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    expected = converged(dovecot, user, maildir)
    assert set(expected) == {"INBOX", "Remote", *NEW_FOLDERS}
    assert sum(len(v) for v in expected.values()) == 8
    points = list(range(1, len(steps) + 1))
    if not full_sweep:
        # Both CREATEs happen before the first step (folders are made while planning):
        # step 1 is "every folder created, nothing in it yet"; then the first upload
        # into a new folder, and the end.  A "folder-create" step, once syncd has one,
        # is always included.
        first_upload = steps.index("upload-intent") + 1
        creates = {i + 1 for i, name in enumerate(steps) if name == "folder-create"}
        points = sorted({1, first_upload, first_upload + 1, first_upload + 2, len(steps)} | creates)
    for n in points:
        where = tmp_path / f"n{n}"
        where.mkdir()
        user, maildir, config = _scenario(dovecot, where)
        crashed = run_syncd("sync", config=config, env={"SYNCD_TEST_CRASH_AT": str(n)})
        assert crashed.returncode == -signal.SIGKILL, (n, crashed.stderr)
        resumed = run_syncd("sync", config=config, timeout=60)
        assert resumed.returncode == 0, (n, steps[n - 1], resumed.stderr)
        assert "0 deleted here, 0 deleted on the server" in resumed.stderr, resumed.stderr
        got = converged(dovecot, user, maildir)
        assert duplicates(server_snapshot(dovecot, user)) == {}, (n, steps[n - 1])
        assert duplicates(local_snapshot(maildir, "maildir++")) == {}, (n, steps[n - 1])
        assert _by_content(got) == _by_content(expected), (n, steps[n - 1])
        idempotent(config)


def test_cc09_folder_created_just_before_a_crash_is_completed(
    tmp_path: Path, dovecot: DevServer
) -> None:
    """CC-09, the moment no crash step reaches (CREATE acknowledged, nothing recorded):
    the server already has an empty ``Fresh`` and the Maildir an empty ``Remote``, and
    the state knows neither.  The run completes both folders; nothing is deleted."""
    from support.imap import create_folder

    user, maildir, config = _scenario(dovecot, tmp_path)
    create_folder(dovecot, user, "Fresh")
    remote_dir = folder_path(maildir, "maildir++", "Remote")
    for sub in ("cur", "new", "tmp"):
        (remote_dir / sub).mkdir(parents=True)
    done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0 deleted here, 0 deleted on the server" in done.stderr, done.stderr
    end = converged(dovecot, user, maildir)
    assert {f: len(v) for f, v in end.items()} == {
        "INBOX": 1, "Remote": 2, "Fresh": 2, "Projects/New": 3,
    }  # fmt: skip
    idempotent(config)
