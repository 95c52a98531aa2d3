"""syncd-notmuch: `notmuch new` after a sync that changed the Maildir."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import syncd_notmuch

from syncd.api import AccountInfo, FolderSummary, SyncSummary


def account(**settings: Any) -> AccountInfo:
    return AccountInfo(
        "a", "imap.example.org", "me", Path("/m"), "maildir++", None, {"notmuch": settings}
    )


def summary(*, downloaded: int = 1, dry_run: bool = False) -> SyncSummary:
    return SyncSummary("a", dry_run, None, (FolderSummary("INBOX", downloaded=downloaded),))


@pytest.fixture
def fake_notmuch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `notmuch` on PATH that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    script = bin_dir / "notmuch"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_hook_runs_notmuch_new_after_a_sync_that_changed_mail(fake_notmuch: Path) -> None:
    runner = syncd_notmuch.NotmuchRunner()
    runner.syncd_after_sync(account(), summary())
    assert fake_notmuch.read_text() == "new --quiet\n"


@pytest.mark.parametrize("quiet", [summary(downloaded=0), summary(dry_run=True)])
def test_nothing_runs_when_nothing_changed_or_dry_run(
    fake_notmuch: Path, quiet: SyncSummary
) -> None:
    syncd_notmuch.NotmuchRunner().syncd_after_sync(account(), quiet)
    assert not fake_notmuch.exists()


def test_missing_notmuch_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no notmuch here
    runner = syncd_notmuch.NotmuchRunner()
    with caplog.at_level(logging.WARNING):
        runner.syncd_after_sync(account(), summary())
        runner.syncd_after_sync(account(), summary())
    assert [r.getMessage() for r in caplog.records].count(
        "notmuch not found: not indexing new mail (install notmuch, or remove "
        '"notmuch" from [plugins] enable)'
    ) == 1


def test_failing_command_is_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        syncd_notmuch.NotmuchRunner().syncd_after_sync(
            account(command=["sh", "-c", "echo broken db >&2; exit 3"]), summary()
        )
    assert "exited 3: broken db" in caplog.text
