"""Output a person can read (issue 15): what `syncd sync -v` and `--dry-run` print.

Each test here ran against the code before the fix and showed the problem it names.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.imap import append
from support.mail import make_message
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User
from syncd.engine.cycle import FolderSync
from syncd.engine.options import RunOptions
from syncd.engine.reconcile import Policy
from syncd.engine.report import FolderReport
from syncd.engine.state import StateDB
from syncd.model import Pair
from syncd.stores.memory import FAR_DEFAULT, MemoryFar, MemoryNear


def test_one_capability_line_per_account_per_run(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    for folder in ("INBOX", "A", "B", "C"):
        append(dovecot, account, folder, make_message(subject=f"in {folder}"))
    config = write_config(
        tmp_path,
        {"work": account_config(dovecot, account, tmp_path / "Mail", max_connections=3)},
    )

    proc = run_syncd("sync", "-v", config=config, check=True)

    caps = [line for line in proc.stderr.splitlines() if "capabilities" in line.lower()]
    assert len(caps) == 1, proc.stderr
    assert "IMAP4REV1" in caps[0] and "work" in caps[0]


# --------------------------------------------------------------------------- plan lines

ALICE = "Alice Example <alice@example.org>"


def _msg(subject: str, day: int) -> bytes:
    return make_message(subject=subject, sender=ALICE, date=datetime(2024, 1, day, tzinfo=UTC))


def _run(far: MemoryFar, near: MemoryNear, db_path: Path, *, dry: bool, log: Any) -> FolderReport:
    db = StateDB(db_path)
    try:
        return FolderSync(
            far=far.folder("INBOX"),
            near=near,
            db=db,
            policy=Policy(),
            options=RunOptions(dry_run=dry),
            log=log,
        ).run()
    finally:
        db.close()


def _scene(tmp_path: Path) -> tuple[MemoryFar, MemoryNear, Path]:
    """One message per kind of step: new on each side, a flag changed on the server,
    one deleted on each side."""
    far, near, db_path = MemoryFar(FAR_DEFAULT), MemoryNear(), tmp_path / "state.db"
    seen_there = far.other_append("INBOX", _msg("Flag me", 2))
    near.other_add(_msg("Flag me", 2), (), name="n-flag")
    gone_there = far.other_append("INBOX", _msg("Gone there", 3))
    near.other_add(_msg("Gone there", 3), (), name="n-gone-there")
    gone_here = far.other_append("INBOX", _msg("Gone here", 4))
    db = StateDB(db_path)
    try:
        st = db.ensure_folder("INBOX")
        pairs = [
            Pair(seen_there, "n-flag", frozenset()),
            Pair(gone_there, "n-gone-there", frozenset()),
            Pair(gone_here, "n-gone-here", frozenset()),
        ]
        db.replace_pairs(st.id, pairs, uidvalidity=far.box("INBOX").uidvalidity)
    finally:
        db.close()
    far.other_set_flags("INBOX", seen_there, ["\\Seen"])
    far.other_expunge("INBOX", gone_there)
    far.other_append("INBOX", _msg("Quarterly report", 3))
    near.other_add(_msg("Draft reply", 5), ["\\Seen"], name="n-new")
    return far, near, db_path


def test_dry_run_lines_name_the_message_and_say_why(tmp_path: Path) -> None:
    """Issue 15: dry-run lines read `copy far 1 -> near (\\Seen)` -- which message?"""
    far, near, db_path = _scene(tmp_path)
    log = logging.LoggerAdapter(logging.getLogger("syncd.test.readable"), {})

    lines = _run(far, near, db_path, dry=True, log=log).planned

    assert lines == [
        f'upload "Draft reply" from {ALICE}, 5 Jan 2024: new here '
        "[copy near n-new -> far (\\Seen)]",
        f'download "Quarterly report" from {ALICE}, 3 Jan 2024: new on the server '
        "[copy far 4 -> near ()]",
        f'change the flags of "Flag me" from {ALICE}, 2 Jan 2024: flag merge: changed on the '
        "server [near n-flag: +\\Seen]",
        f'delete here "Gone there" from {ALICE}, 3 Jan 2024: deleted on the server '
        "[delete near n-gone-there]",
        f'delete on the server "Gone here" from {ALICE}, 4 Jan 2024: deleted here [delete far 3]',
    ]


def test_verbose_log_names_each_planned_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    far, near, db_path = _scene(tmp_path)
    log = logging.LoggerAdapter(logging.getLogger("syncd.test.readable"), {})
    with caplog.at_level(logging.DEBUG, logger="syncd.test.readable"):
        report = _run(far, near, db_path, dry=False, log=log)
    assert report.downloaded == report.uploaded == 1
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert f'download "Quarterly report" from {ALICE}, 3 Jan 2024: new on the server ' in "\n".join(
        debug
    )
    assert any(line.startswith('delete here "Gone there"') for line in debug), debug


def test_plan_lines_read_no_header_when_not_verbose(tmp_path: Path) -> None:
    """Headers are read for a dry run or -v only: a plain sync asks the server nothing more."""
    far, near, db_path = _scene(tmp_path)
    asked: list[object] = []
    folder = far.folder("INBOX")
    original = type(folder).headers

    def spy(self: Any, keys: Any, fields: Any) -> Any:
        asked.append(list(keys))
        return original(self, keys, fields)

    log = logging.LoggerAdapter(logging.getLogger("syncd.test.quiet"), {})
    logging.getLogger("syncd.test.quiet").setLevel(logging.INFO)
    try:
        type(folder).headers = spy  # type: ignore[method-assign]
        _run(far, near, db_path, dry=True, log=log)
        assert asked == [[4, 3]]  # one batch: the new message and the one deleted here
        asked.clear()
        _run(far, near, db_path, dry=False, log=log)
        assert asked == []
    finally:
        type(folder).headers = original  # type: ignore[method-assign]


def test_dry_run_and_verbose_sync_name_server_messages(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """The same lines against Dovecot: the far headers come in one UID FETCH."""
    append(dovecot, account, "Big", _msg("Quarterly report", 3), flags=["\\Seen"])
    append(dovecot, account, "Big", make_message(subject="=?utf-8?q?R=C3=A9union?=", sender=ALICE))
    config = write_config(tmp_path, {"work": account_config(dovecot, account, tmp_path / "Mail")})

    dry = run_syncd("sync", "--dry-run", config=config, check=True)

    lines = [line for line in dry.stdout.splitlines() if line.startswith("work/Big: ")]
    assert lines[0] == (
        f'work/Big: download "Quarterly report" from {ALICE}, 3 Jan 2024: new on the server '
        "[copy far 1 -> near (\\Seen)]"
    ), dry.stdout
    assert lines[1].startswith(f'work/Big: download "Réunion" from {ALICE}, '), dry.stdout

    verbose = run_syncd("sync", "-v", config=config, check=True)

    assert (
        f'DEBUG work/Big: download "Quarterly report" from {ALICE}, 3 Jan 2024: new on the server'
        in verbose.stderr
    ), verbose.stderr
