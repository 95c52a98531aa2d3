"""Output a person can read (issue 15): what `syncd sync -v` and `--dry-run` print.

Each test here ran against the code before the fix and showed the problem it names.
"""

from __future__ import annotations

from pathlib import Path

from support.imap import append
from support.mail import make_message
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User


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
