"""syncd-notmuch: `notmuch new` after a sync that changed the Maildir."""

from __future__ import annotations

import dataclasses
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


# -- sync_tags: the hooks around the tag sync (the sync itself: test_notmuch_tags.py and
# -- tests/test_notmuch_tags_e2e.py, on real notmuch databases)


def tag_account(tmp_path: Path, **settings: Any) -> AccountInfo:
    maildir = tmp_path / "Mail"
    maildir.mkdir(exist_ok=True)
    return AccountInfo(
        "a",
        "imap.example.org",
        "me",
        maildir,
        "maildir++",
        None,
        {"notmuch": {"sync_tags": True, **settings}},
        state_dir=tmp_path / "state",
    )


def test_without_sync_tags_nothing_runs_before_a_sync(fake_notmuch: Path) -> None:
    syncd_notmuch.NotmuchRunner().syncd_before_sync(account(), dry_run=False)
    assert not fake_notmuch.exists()


def test_a_dry_run_never_touches_tags(fake_notmuch: Path, tmp_path: Path) -> None:
    runner = syncd_notmuch.NotmuchRunner()
    runner.syncd_before_sync(tag_account(tmp_path), dry_run=True)
    runner.syncd_after_sync(tag_account(tmp_path), summary(dry_run=True))
    assert not fake_notmuch.exists()


def test_with_sync_tags_notmuch_runs_even_when_the_sync_changed_nothing(
    fake_notmuch: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        syncd_notmuch.NotmuchRunner().syncd_after_sync(tag_account(tmp_path), summary(downloaded=0))
    # The fake prints nothing for `count --lastmod`: reported, in one line, not raised.
    assert fake_notmuch.read_text().splitlines() == ["new --quiet", "count --lastmod *"]
    assert "notmuch tags of a not synced: notmuch count --lastmod: unexpected output" in (
        caplog.text
    )


def test_a_malformed_tag_map_is_the_plugins_failure(fake_notmuch: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"plugins\.notmuch\.tag_map\.\\Deleted: only"):
        syncd_notmuch.NotmuchRunner().syncd_before_sync(
            tag_account(tmp_path, tag_map={"\\Deleted": "trash"}), dry_run=False
        )
    assert not fake_notmuch.exists()


def test_no_state_directory_is_a_warning(
    fake_notmuch: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = dataclasses.replace(tag_account(tmp_path), state_dir=None)
    with caplog.at_level(logging.WARNING):
        syncd_notmuch.NotmuchRunner().syncd_before_sync(info, dry_run=False)
    assert "notmuch tags of a: syncd gave no state directory; not synced" in caplog.text
    assert not fake_notmuch.exists()
