"""Interoperability with a second real server, Cyrus IMAP 3.6 (RELIABILITY.md [C]): the
core scenario and the name cases Dovecot cannot produce.  Cyrus comes from
``tests/cyrus-setup.sh``; when it cannot be set up or started these tests FAIL (never
skip), so CI cannot pass them silently.  Cyrus differs from Dovecot in ways a syncer
must handle (shared/CYRUS.md §6): parents created as real folders, UIDVALIDITY shared
by folders created in the same second, \\Recent in FLAGS, extra response codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.common import (
    config_for,
    core_changes,
    core_check,
    core_first_sync,
    idempotent,
    message,
    settles,
)
from faults.cyrus import CyrusServer, running_cyrus
from support.imap import session
from support.maildir import local_snapshot
from support.run import run_syncd

pytestmark = pytest.mark.cyrus


@pytest.fixture(scope="module")
def cyrus() -> Iterator[CyrusServer]:
    with running_cyrus() as server:
        yield server


def test_cyrus_core_scenario_same_end_state(tmp_path: Path, cyrus: CyrusServer) -> None:
    user = cyrus.add_user()
    config, maildir = core_first_sync(tmp_path, cyrus, user)
    core_changes(cyrus, user, maildir)
    core_check(cyrus, user, maildir, config)


def test_cyrus_nested_layout(tmp_path: Path, cyrus: CyrusServer) -> None:
    """Nested layout against Cyrus: the same messages land in INBOX/... directories."""
    user = cyrus.add_user()
    maildir = tmp_path / "Mail"
    with session(cyrus, user) as c:  # type: ignore[arg-type]
        c.create_folder("Lists/python")
        for i in range(3):
            c.append("Lists/python", message(f"py{i}"), flags=[b"\\Seen"])
    config = config_for(tmp_path, cyrus, user, maildir, layout="nested")
    done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(local_snapshot(maildir, "nested")["Lists/python"]) == 3
    idempotent(config)


def test_srv07_dot_inside_a_name_and_a_child_stay_apart(tmp_path: Path, cyrus: CyrusServer) -> None:
    """SRV-07: Cyrus (separator "/") allows ``a.b`` as one name next to ``a/b`` (child
    b of a).  In the Maildir++ layout both would be ``.a.b``: syncd must keep them apart
    or refuse one with a clear error -- never merge them -- and do the same next run."""
    user = cyrus.add_user()
    with session(cyrus, user) as c:  # type: ignore[arg-type]
        c.create_folder("a.b")
        c.create_folder("a/b")
        c.append("a.b", message("dotted"))
        c.append("a/b", message("child"))
    maildir = tmp_path / "Mail"
    config = config_for(tmp_path, cyrus, user, maildir)
    first = run_syncd("sync", config=config, timeout=60)
    local = local_snapshot(maildir, "maildir++")
    for folder, views in local.items():
        assert len({v.message_id for v in views}) == len(views), folder
        assert not (
            {"<dotted@faults.test>", "<child@faults.test>"} <= {v.message_id for v in views}
        ), f"{folder}: two server folders merged into one local folder"
    if first.returncode != 0:
        assert "a.b" in first.stderr or "a/b" in first.stderr, first.stderr
    second = run_syncd("sync", config=config, timeout=60)
    assert second.returncode == first.returncode
    assert local_snapshot(maildir, "maildir++") == local
    assert "0 downloaded, 0 uploaded" in second.stderr


def test_cyrus_uploads_are_paired_and_flags_round_trip(tmp_path: Path, cyrus: CyrusServer) -> None:
    """APPENDUID from Cyrus, keywords and \\Recent (never synced as a flag)."""
    user = cyrus.add_user()
    maildir = tmp_path / "Mail"
    from support.maildir import deliver

    for i in range(5):
        deliver(maildir, message(f"up{i}"), "FS" if i % 2 else "")
    with session(cyrus, user) as c:  # type: ignore[arg-type]
        c.append("INBOX", message("kw"), flags=[b"$Label1", b"\\Flagged"])
    config = config_for(tmp_path, cyrus, user, maildir)
    end = settles(cyrus, user, maildir, config, timeout=60)
    assert all("\\Recent" not in flags for _m, _h, flags in end["INBOX"])
    assert len(end["INBOX"]) == 6
