"""A server that advertises LIST-STATUS but refuses ``LIST ... RETURN (STATUS ...)``
(NO or BAD: a proxy, an older server, a transient ``NO [SERVERBUG]``) costs at most
the fast path: each folder then asks its own STATUS.  Never the account, the other
accounts of the same ``syncd sync`` run, or the daemon's worker thread."""

from __future__ import annotations

import re
from pathlib import Path

from faults.common import message, seed
from faults.proxy import Conn, Direction, front
from support.imap import append
from support.maildir import local_snapshot
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions


def _refuse_list_status(answer: bytes) -> object:
    """Rewriter: the tagged OK of every ``LIST ... RETURN (STATUS`` becomes ``answer``."""

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and re.match(rb"[A-Za-z0-9]+ OK\b", line):
            tag = line.split(b" ", 1)[0]
            if b"RETURN (STATUS" in conn.command_lines.get(tag, b"").upper():
                return tag + b" " + answer + b"\r\n"
        return line

    return rewrite


def test_list_status_refused_does_not_stop_the_next_account(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """Account ``a`` reaches the server through a proxy that answers NO to
    LIST-STATUS; account ``b`` (configured after it) is healthy.  ``b`` must still be
    synced, and ``a``'s folders too (STATUS per folder is the documented fallback)."""
    maildir_a, maildir_b = tmp_path / "MailA", tmp_path / "MailB"
    seed(dovecot, account, maildir_a)
    append(dovecot, account, "INBOX", message("only-on-server"))
    with front(dovecot, rewrite=_refuse_list_status(b"NO [SERVERBUG] try later")) as p:  # type: ignore[arg-type]
        config = write_config(
            tmp_path,
            {
                "a": account_config(dovecot, account, maildir_a, port=p.port),
                "b": account_config(dovecot, account, maildir_b),
            },
        )
        done = run_syncd("sync", config=config, timeout=90)
    assert "Traceback" not in done.stderr, done.stderr
    # b was never synced: the FolderError from LIST-STATUS escaped AccountSyncer.sync()
    # and ended the CLI's loop over the accounts.
    local_b = local_snapshot(maildir_b, "maildir++")
    assert len(local_b.get("INBOX", [])) >= 7, done.stderr
    local_a = local_snapshot(maildir_a, "maildir++")
    assert len(local_a.get("Archive", [])) == 2, done.stderr


def test_account_syncer_sync_never_raises_when_list_status_is_refused(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """``AccountSyncer.sync`` promises "Never raises a SyncdError: the outcome is in
    the report".  The daemon relies on it: its worker thread catches only
    SyncCancelled, so an escaping FolderError ends the account's worker for good."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    with front(dovecot, rewrite=_refuse_list_status(b"BAD unknown argument")) as p:  # type: ignore[arg-type]
        path = write_config(tmp_path, {"t": account_config(dovecot, account, maildir, port=p.port)})
        config = load_config(path)
        syncer = AccountSyncer(config, config.accounts["t"])
        try:
            report = syncer.sync(RunOptions())
        finally:
            syncer.close()
    assert {f.name for f in report.folders} >= {"INBOX", "Archive"}, report


def test_daemon_worker_survives_a_refused_list_status(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """The daemon's account worker must outlive one bad cycle: after LIST-STATUS was
    refused once, a later request (the server healthy again) is still synced."""
    import time

    from syncd.daemon.queue import Tuning
    from syncd.daemon.runner import AccountRunner

    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    with front(dovecot, rewrite=_refuse_list_status(b"NO [SERVERBUG] try later")) as p:  # type: ignore[arg-type]
        path = write_config(
            tmp_path,
            {"t": account_config(dovecot, account, maildir, port=p.port, idle=[])},
        )
        config = load_config(path)
        runner = AccountRunner(
            config, config.accounts["t"], scheduler=None, tuning=Tuning(backoff_initial=0.1)
        )
        runner.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and runner.syncs == 0 and runner.busy:
                time.sleep(0.1)
            p.rewrite = None  # the server is healthy again
            runner.queue.post_full()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and runner.syncs == 0:
                time.sleep(0.1)
            worker_alive = runner.busy
        finally:
            runner.request_stop()
            runner.join(time.monotonic() + 10)
    assert worker_alive, "the account's worker thread died"
    assert runner.syncs >= 1
