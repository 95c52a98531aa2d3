"""A one-shot ``syncd sync`` imports what it runs and nothing else (issue 14): no
plugin manager and no scan of the installed distributions by syncd when no plugin or
rule is configured, no readers of other tools' state -- told by Python's own import
log (``PYTHONPROFILEIMPORTTIME``).  imapclient itself still asks importlib.metadata for
its version (which parses its METADATA with the email package): ~10 ms syncd leaves
alone rather than patch a third-party module at import."""

from __future__ import annotations

from pathlib import Path

from support.imap import append, set_flags
from support.mail import make_message
from support.maildir import local_snapshot
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User

NOT_NEEDED = {
    "pluggy",
    "syncd.ext.loader",
    "syncd.account.adoption",
    "syncd.adopt.common",
    "platformdirs",
}


def _imported(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_a_sync_imports_only_what_it_runs(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    uid = append(dovecot, account, "INBOX", make_message(message_id="<a@t>"))
    maildir = tmp_path / "Mail"
    config = write_config(tmp_path, {"test": account_config(dovecot, account, maildir)})
    run_syncd("sync", config=config, check=True)
    set_flags(dovecot, account, "INBOX", [uid], ["\\Seen"])
    proc = run_syncd("sync", config=config, env={"PYTHONPROFILEIMPORTTIME": "1"}, check=True)
    imported = _imported(proc.stderr)
    assert "syncd.engine.delta" in imported, proc.stderr[-2000:]  # the log is there
    assert imported & NOT_NEEDED == set()
    [msg] = local_snapshot(maildir, "maildir++")["INBOX"]
    assert msg.flags == {"\\Seen"}  # and the change it was run for arrived
