"""A stop (the daemon's cancel event) during one folder is honoured at the next folder
boundary too, not only between copy batches: a SIGTERM during the first folder does
not let the later folders be selected, also when they hold only flag changes."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from faults.proxy import front
from support.imap import set_flags
from support.run import account_config, write_config

from devserver.dovecot import DevServer, User, populate
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions, SyncCancelled


def test_a_stop_during_the_first_folder_does_not_sync_the_others(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    folders = {"INBOX": 3, "Archive": 3, "Lists": 3, "Work": 3}
    populate(dovecot, account, folders=folders)
    cancel = threading.Event()
    selects_after_stop: list[str] = []

    def on_command(line: str) -> None:
        if " SELECT " in line.upper() or " EXAMINE " in line.upper():
            if cancel.is_set():
                selects_after_stop.append(line)
            elif armed:
                cancel.set()  # SIGTERM arrives while the first folder is being synced

    armed = False
    with front(dovecot, on_command=on_command) as p:
        path = write_config(
            tmp_path,
            {"t": account_config(dovecot, account, tmp_path / "Mail", port=p.port,
                                 max_connections=1, idle=[])},
        )  # fmt: skip
        config = load_config(path)
        syncer = AccountSyncer(config, config.accounts["t"])
        try:
            syncer.sync(RunOptions())
            for folder in folders:  # another client flags every message: flag-only changes
                set_flags(dovecot, account, folder, [1, 2, 3], ["\\Flagged"], mode="add")
            armed = True
            with contextlib.suppress(SyncCancelled):
                syncer.sync(RunOptions(cancel=cancel))
        finally:
            syncer.close()
    assert cancel.is_set()
    assert selects_after_stop == [], f"folders synced after the stop: {selects_after_stop}"
