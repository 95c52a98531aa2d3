"""The plugins shipped in plugins/ working together in one real sync: list mail filed
by List-Id, spam into Junk, old read mail archived by year; both sides agree after.

They are installed as their pyproject.toml declares them (a ``.dist-info`` with its
entry points; the modules from the source tree) and loaded the way users load them:
by the entry-point names in ``[plugins] enable``."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import summary
from support.imap import append, server_snapshot
from support.mail import make_message
from support.maildir import local_snapshot
from support.run import account_config, write_config

from devserver.dovecot import DevServer, User
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions
from syncd.ext.hooks import RuleHooks
from syncd.ext.loader import load_plugins

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def install_shipped(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install every plugin of plugins/ for this test: its ``.dist-info`` (name,
    version, the entry points of its pyproject.toml) in ``site``, its source
    directory on ``sys.path`` (they are not installed in the test venv)."""
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    for project in sorted(PLUGINS.glob("syncd-*/pyproject.toml")):
        meta = tomllib.loads(project.read_text(encoding="utf-8"))["project"]
        info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
        )
        points = meta["entry-points"]["syncd"]
        (info / "entry_points.txt").write_text(
            "[syncd]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
        )
        monkeypatch.syspath_prepend(str(project.parent))


def test_lists_spam_and_archive_plugins_file_mail_in_one_sync(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_shipped(tmp_path / "site", monkeypatch)
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
    path = write_config(tmp_path, {"test": account_config(dovecot, account, maildir)})
    with path.open("a", encoding="utf-8") as f:
        f.write('[plugins]\nenable = ["lists", "spam", "archive"]\n')
    config = load_config(path)
    plugins = load_plugins(config)
    assert {i.name: (i.distribution, i.status) for i in plugins.infos} == {
        "rules": ("syncd", "loaded"),
        "archive": ("syncd-archive", "loaded"),
        "lists": ("syncd-lists", "loaded"),
        "notmuch": ("syncd-notmuch", "not enabled"),
        "spam": ("syncd-spam", "loaded"),
    }
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
