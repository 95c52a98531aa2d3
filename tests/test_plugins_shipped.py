"""The plugins shipped in plugins/ working together in one real sync: list mail filed
by List-Id, spam into Junk, old read mail archived by year; both sides agree after."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from support import summary
from support.imap import append, server_snapshot
from support.mail import make_message
from support.maildir import local_snapshot
from support.run import account_config, write_config

from syncd.account import AccountSyncer
from syncd.config import load_config
from syncd.devserver import DevServer, User
from syncd.folder_sync import RunOptions
from syncd.plugins import RuleHooks, load_plugins

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def shipped(name: str) -> ModuleType:
    """Import plugins/syncd-<name>/syncd_<name>.py (not installed in the test venv)."""
    path = PLUGINS / f"syncd-{name}" / f"syncd_{name}.py"
    spec = importlib.util.spec_from_file_location(f"syncd_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lists_spam_and_archive_plugins_file_mail_in_one_sync(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    old = datetime(2015, 6, 1, tzinfo=UTC)
    mail = [
        (make_message(subject="hello"), (), None),
        (
            make_message(subject="py", headers={"List-Id": "Python <python-list.python.org>"}),
            (),
            None,
        ),
        (
            make_message(
                subject="spammy list",
                headers={"List-Id": "<dev.example.org>", "X-Spam-Flag": "YES"},
            ),
            (),
            None,
        ),
        (make_message(subject="old read"), ("\\Seen",), old),
        (make_message(subject="old unread"), (), old),
        (make_message(subject="old starred"), ("\\Seen", "\\Flagged"), old),
    ]
    for raw, flags, date in mail:
        append(dovecot, account, "INBOX", raw, flags=flags, date=date)
    maildir = tmp_path / "Mail"
    config = load_config(
        write_config(tmp_path, {"test": account_config(dovecot, account, maildir)})
    )
    plugins = load_plugins(
        config,
        extra=[(name, shipped(name)) for name in ("lists", "spam", "archive")],
        use_entry_points=False,
    )
    hooks = RuleHooks(config, plugins)
    syncer = AccountSyncer(config, config.accounts["test"], hooks=hooks)
    try:
        report = syncer.sync(RunOptions())
        syncer.sync(RunOptions())  # folders the rules created arrive on the next run
    finally:
        syncer.close()
        hooks.close()

    assert report.ok, report
    remote = server_snapshot(dovecot, account)
    assert {folder: sorted(v.subject or "" for v in views) for folder, views in remote.items()} == {
        "INBOX": ["hello", "old starred", "old unread"],
        "Lists/python-list": ["py"],
        "Junk": ["spammy list"],
        "Archive/2015": ["old read"],
    }
    assert summary(local_snapshot(maildir, "maildir++")) == summary(remote)
