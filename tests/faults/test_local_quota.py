"""LOC-08: the disk quota (EDQUOT) is exceeded while a downloaded message is stored.

A real per-user quota cannot be set up here: the kernel of this sandbox has no
CONFIG_QUOTA (``mount -o loop,usrquota`` of an ext4 image with the quota feature
fails with "The kernel was not built with CONFIG_QUOTA and CONFIG_QFMT_V2").  So the
error is raised where the kernel would raise it -- ``close()`` (NFS, and quota on many
file systems, report it there) or ``fsync()`` of the message file in ``tmp/`` -- by
wrapping ``os.close``/``os.fsync`` in-process for two message files of one folder
(Archive) only, during a real sync against Dovecot.  ``close`` still releases the
descriptor, as Linux does when close() fails.

Expected (RELIABILITY.md LOC-07/LOC-08): those two messages are not in the state and not
in ``new/``/``cur/``; ``tmp/`` holds nothing; a warning line names the folder and says the
quota was exceeded; the other messages of that folder and the other folders sync; the
next run, with the quota lifted, downloads exactly the two missing ones.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from faults.common import config_for, converged, idempotent, message, seed
from support.imap import append

from devserver.dovecot import DevServer, User
from syncd.account.syncer import AccountReport, AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions
from syncd.engine.state import StateDB

OVER_QUOTA = (b"<arc1@faults.test>", b"<arc3@faults.test>")


def sync(config: Path) -> AccountReport:
    cfg = load_config(config)
    syncer = AccountSyncer(cfg, cfg.accounts["t"])
    try:
        return syncer.sync(RunOptions())
    finally:
        syncer.close()


FdCall = Callable[[int], None]


def over_quota(tmp_dir: Path, real: FdCall, *, then_call: bool) -> FdCall:
    """A wrapper of ``os.close``/``os.fsync``: for a file in ``tmp_dir`` holding one of
    the OVER_QUOTA messages, fail with EDQUOT (after the real call when ``then_call``:
    close() releases the descriptor even when it reports an error)."""
    prefix = str(tmp_dir) + "/"

    def wrapper(fd: int) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        hit = False
        if path.startswith(prefix):
            with open(path, "rb") as f:
                head = f.read(4096)
            hit = any(mid in head for mid in OVER_QUOTA)
        if hit and not then_call:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), path)
        real(fd)
        if hit:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), path)

    return wrapper


@pytest.mark.parametrize("syscall", ["close", "fsync"])
def test_loc08_quota_exceeded_while_storing_a_download(
    tmp_path: Path,
    dovecot: DevServer,
    account: User,
    syscall: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)  # Archive: arc0, arc1 on the server
    for i in range(2, 5):
        append(dovecot, account, "Archive", message(f"arc{i}"))
    config = config_for(tmp_path, dovecot, account, maildir)
    archive = maildir / ".Archive"
    real = os.close if syscall == "close" else os.fsync
    with monkeypatch.context() as patch:
        patch.setattr(os, syscall, over_quota(archive / "tmp", real, then_call=syscall == "close"))
        with caplog.at_level(logging.WARNING):
            first = sync(config)

    folders = {f.name: f for f in first.folders}
    assert not first.ok
    assert folders["Archive"].failed == 2 and folders["Archive"].downloaded == 3
    assert folders["INBOX"].failed == 0 and folders["INBOX"].downloaded == 6
    assert folders["Notes"].uploaded == 2
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    quota = [line for line in lines if "quota" in line.lower()]
    assert len(quota) == 2, lines
    assert all(line.startswith("t/Archive: ") and "Disk quota exceeded" in line for line in quota)
    # Not in new/ or cur/, nothing left in tmp/, not in the state.
    stored = [p.read_bytes() for sub in ("cur", "new") for p in (archive / sub).iterdir()]
    assert len(stored) == 3
    assert not any(mid in raw for raw in stored for mid in OVER_QUOTA)
    assert list((archive / "tmp").iterdir()) == []
    db = StateDB(tmp_path / "state" / "t.db")
    try:
        st = db.folder("Archive")
        assert st is not None
        assert db.count_pairs(st.id) == 3
    finally:
        db.close()

    # Quota lifted: exactly the two missing ones come down, nothing twice.
    second = sync(config)
    assert second.ok, second
    assert {f.name: (f.downloaded, f.uploaded) for f in second.folders if f.changed()} == {
        "Archive": (2, 0)
    }
    end = converged(dovecot, account, maildir)
    assert len(end["Archive"]) == 5
    idempotent(config)
