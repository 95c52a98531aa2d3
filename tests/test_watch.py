"""The Maildir watcher: which path belongs to which folder, the debounce, and — with a
real watchdog observer on a temporary Maildir — what a mail reader's changes post and
what syncd's own changes (its echoes) do not."""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.mail import make_message
from support.maildir import deliver, set_local_flags
from support.run import write_config

from syncd.config import AccountConfig, Layout, load_config
from syncd.daemon import watch
from syncd.daemon.watch import Debouncer, EchoFilter, MaildirWatcher, folder_of
from syncd.stores.maildir.fsio import directory_signature

DEADLINE = 30.0
ROOT = Path("/m")

# watchdog 7.1 warns (harmlessly) when a new folder's directories appear in quick
# succession; `syncd daemon` filters the same warning.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


def wait_for(check: Callable[[], Any], what: str) -> Any:
    end = time.monotonic() + DEADLINE
    while not (result := check()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return result


# --------------------------------------------------------------------------- paths

MAILDIRPP = [
    ("/m/cur/1:2,S", False, (("INBOX",), False)),
    ("/m/new/1", False, (("INBOX",), False)),
    ("/m/tmp/1", False, None),
    ("/m/.Lists.python/cur/1:2,", False, (("Lists", "python"), False)),
    ("/m/.Lists.python/new/1", False, (("Lists", "python"), False)),
    ("/m/.Lists.python/tmp/1", False, None),
    ("/m/.Lists.python", True, (("Lists", "python"), True)),
    ("/m/.Lists.python/cur", True, (("Lists", "python"), True)),
    ("/m/.Archive/dovecot-uidlist", False, None),
    ("/m/dovecot-keywords", False, None),
    ("/m/.Archive/xapian/x", False, None),
    ("/m/.Archive/cur/sub/x", False, None),
    ("/m/.Bad..name/cur/1", False, None),  # an empty component: not a valid folder
    ("/elsewhere/cur/1", False, None),
    ("/m", True, None),
]

NESTED = [
    ("/m/INBOX/cur/1:2,S", False, (("INBOX",), False)),
    ("/m/INBOX/tmp/1", False, None),
    ("/m/Lists/python/new/1", False, (("Lists", "python"), False)),
    ("/m/Lists/python", True, (("Lists", "python"), True)),
    ("/m/Lists/python/cur", True, (("Lists", "python"), True)),
    ("/m/Lists", True, (("Lists",), True)),
    ("/m/cur/1", False, None),  # the root is not a folder in the nested layout
    ("/m/.notmuch/xapian/cur/1", False, None),  # hidden directories are not folders
    ("/m/inbox/cur/1", False, None),  # would not map back to the same directory
    ("/m/Lists/python/dovecot-keywords", False, None),
]


@pytest.mark.parametrize(("path", "is_dir", "expected"), MAILDIRPP)
def test_maildirpp_paths_map_to_their_folder(path: str, is_dir: bool, expected: object) -> None:
    assert folder_of(ROOT, "maildir++", path, is_directory=is_dir) == expected


@pytest.mark.parametrize(("path", "is_dir", "expected"), NESTED)
def test_nested_paths_map_to_their_folder(path: str, is_dir: bool, expected: object) -> None:
    assert folder_of(ROOT, "nested", path, is_directory=is_dir) == expected


FLAT = [
    ("/m/INBOX/cur/1:2,S", False, (("INBOX",), False)),
    ("/m/INBOX.sub/new/1", False, (("INBOX", "sub"), False)),
    ("/m/Lists.python/cur/1", False, (("Lists", "python"), False)),
    ("/m/Lists.python", True, (("Lists", "python"), True)),
    ("/m/Lists.python/tmp/1", False, None),
    ("/m/Lists.python/sub/cur/1", False, None),  # not a flat folder
    ("/m/cur/1", False, None),
    ("/m/.notmuch/cur/1", False, None),
    ("/m/a..b/cur/1", False, None),
    ("/m/inbox/cur/1", False, None),
]


@pytest.mark.parametrize(("path", "is_dir", "expected"), FLAT)
def test_flat_paths_map_to_their_folder(path: str, is_dir: bool, expected: object) -> None:
    assert folder_of(ROOT, "flat", path, is_directory=is_dir) == expected


@pytest.mark.parametrize(
    ("layout", "path", "expected"),
    [
        ("nested", "/m/Projets/&AMk-t&AOk-/cur/1", ("Projets", "\u00c9t\u00e9")),
        ("flat", "/m/Projets.&AMk-t&AOk-/cur/1", ("Projets", "\u00c9t\u00e9")),
        ("maildir++", "/m/.Projets.&AMk-t&AOk-/cur/1", ("Projets", "\u00c9t\u00e9")),
        ("nested", "/m/Projets/\u00c9t\u00e9/cur/1", None),  # UTF-8: not this account's
        ("nested", "/m/Projets/&AGE-/cur/1", None),  # not canonical
        ("flat", "/m/a&b/cur/1", None),
    ],
)
def test_imap_utf7_paths_map_to_their_decoded_folder(
    layout: Layout, path: str, expected: tuple[str, ...] | None
) -> None:
    found = folder_of(ROOT, layout, path, is_directory=False, names="imap-utf-7")
    assert found == (None if expected is None else (expected, False))


# --------------------------------------------------------------------------- debounce


def test_debounce_fires_once_per_quiet_key() -> None:
    fired: list[str] = []
    d: Debouncer[str] = Debouncer(0.2, fired.append)
    try:
        for _ in range(20):
            d.touch("a")
            d.touch("b")
            time.sleep(0.01)
        wait_for(lambda: len(fired) >= 2, "both keys")
        d.touch("c")
        wait_for(lambda: "c" in fired, "the third key")
        assert sorted(fired) == ["a", "b", "c"]
    finally:
        d.stop()


# --------------------------------------------------------------------------- a real watcher


class Posts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[str] = []

    def folder(self, name: str) -> None:
        with self.lock:
            self.items.append(name)

    def full(self) -> None:
        with self.lock:
            self.items.append("FULL")

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.items)


def make_account(tmp_path: Path, **extra: Any) -> AccountConfig:
    table = {
        "host": "127.0.0.1",
        "port": 1,
        "tls": "none",
        "user": "u",
        "password_command": ["true"],
        "maildir": str(tmp_path / "Mail"),
        **extra,
    }
    return load_config(write_config(tmp_path, {"test": table})).accounts["test"]


def make_folder(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[MaildirWatcher, Posts, EchoFilter, Path]]:
    root = tmp_path / "Mail"
    make_folder(root)
    make_folder(root / ".Lists.python")
    make_folder(root / ".Archive")
    posts, echo = Posts(), EchoFilter()
    for parts, path in [
        (("INBOX",), root),
        (("Lists", "python"), root / ".Lists.python"),
        (("Archive",), root / ".Archive"),
    ]:
        echo.begin(parts)
        echo.end(parts, directory_signature(path))  # as after the daemon's start-up sync
    watcher = MaildirWatcher(
        make_account(tmp_path, exclude=["Spam"]),
        post_folder=posts.folder,
        post_full=posts.full,
        echo=echo,
        debounce=0.2,
    )
    assert watcher.start()
    try:
        yield watcher, posts, echo, root
    finally:
        watcher.stop()


def test_a_readers_changes_post_one_sync_of_that_folder(watched: Any) -> None:
    _watcher, posts, _echo, root = watched
    folder = root / ".Lists.python"
    paths = [deliver(folder, make_message(f"m{i}"), new=True) for i in range(5)]
    for path in paths:
        set_local_flags(path, "S")
    wait_for(posts.snapshot, "a request")
    deliver(root, make_message("marker"))  # INBOX: posted after Lists/python has settled
    wait_for(lambda: "INBOX" in posts.snapshot(), "the marker")
    # One request per quiet period: normally exactly one; never one per event.
    assert set(posts.snapshot()) == {"Lists/python", "INBOX"}
    assert posts.snapshot().count("Lists/python") < len(paths)


def test_syncds_own_changes_are_not_posted(watched: Any) -> None:
    _watcher, posts, echo, root = watched
    folder = root / ".Archive"
    # As the worker does: begin, write, then record what it left behind.
    echo.begin(("Archive",))
    written = deliver(folder, make_message("downloaded by syncd"))
    set_local_flags(written, "FS")
    echo.end(("Archive",), directory_signature(folder))
    deliver(root / ".Lists.python", make_message("marker"))  # a reader, later
    wait_for(lambda: "Lists/python" in posts.snapshot(), "the marker")
    assert posts.snapshot() == ["Lists/python"]


def test_a_change_while_syncd_syncs_the_folder_is_decided_after_it(watched: Any) -> None:
    _watcher, posts, echo, root = watched
    folder = root / ".Archive"
    echo.begin(("Archive",))
    deliver(folder, make_message("by a reader, during the sync"))
    time.sleep(0.6)  # several debounce periods pass while the folder is busy
    assert posts.snapshot() == []
    # syncd's sync ends before it saw that file: its signature is older, so it is posted.
    echo.end(("Archive",), (0, 0, 0, 0, 0, 0))
    wait_for(lambda: posts.snapshot() == ["Archive"], "the deferred request")


def test_a_change_between_the_first_sync_and_the_watch_is_posted(tmp_path: Path) -> None:
    """The daemon's first sync ends before the watch begins: a reader's change in
    between fires no event, and used to wait for the next full sync (an hour)."""
    root = make_folder(tmp_path / "Mail")
    folder = make_folder(root / ".Lists.python")
    echo, posts = EchoFilter(), Posts()
    for parts, path in [(("INBOX",), root), (("Lists", "python"), folder)]:
        echo.begin(parts)
        echo.end(parts, directory_signature(path))
    deliver(folder, make_message("filed by a reader before the watch began"))
    watcher = MaildirWatcher(
        make_account(tmp_path), post_folder=posts.folder, post_full=posts.full,
        echo=echo, debounce=0.2,
    )  # fmt: skip
    assert watcher.start()
    try:
        wait_for(lambda: "Lists/python" in posts.snapshot(), "the catch-up request")
        time.sleep(0.5)  # INBOX, unchanged, is looked at too and not posted
        assert posts.snapshot() == ["Lists/python"]
    finally:
        watcher.stop()


def test_a_new_local_folder_asks_for_a_full_sync(watched: Any) -> None:
    _watcher, posts, _echo, root = watched
    make_folder(root / ".Projects")
    deliver(root / ".Projects", make_message("first"))
    wait_for(lambda: "FULL" in posts.snapshot(), "the full sync")
    assert "Projects" not in posts.snapshot()


def test_tmp_and_excluded_folders_are_ignored(watched: Any) -> None:
    _watcher, posts, _echo, root = watched
    (root / "tmp" / "partial").write_bytes(b"half a message")
    make_folder(root / ".Spam")
    deliver(root / ".Spam", make_message("spam"))
    deliver(root / ".Archive", make_message("marker"))
    wait_for(lambda: "Archive" in posts.snapshot(), "the marker")
    assert posts.snapshot() == ["Archive"]


def test_inotify_limits_are_logged_once_and_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    make_folder(tmp_path / "Mail")

    class Exhausted(watch.Observer):  # type: ignore[misc,valid-type]
        def start(self) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watch, "Observer", Exhausted)
    caplog.set_level(logging.INFO, logger="syncd")
    posts = Posts()
    watcher = MaildirWatcher(
        make_account(tmp_path), post_folder=posts.folder, post_full=posts.full, echo=EchoFilter()
    )
    assert watcher.start() is False
    assert watcher.start() is False
    watcher.stop()
    assert watcher.failed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "inotify watch limit reached" in warnings[0]
    assert "max_user_watches" in warnings[0]
