"""CC-13: the order of durability steps in a real sync against Dovecot.

A downloaded message is durable only if, in this order, (1) its file in ``tmp/`` is
fsynced, (2) it is linked or renamed into ``new/``/``cur/``, (3) the directory that
gained it is fsynced -- and only then (4) the state commit records the pair; a flag
change is a rename whose directory is fsynced before the commit that rebases the pair
(the file's bytes did not change, so maildir.py promises no file fsync for it).  With
``fsync = false`` nothing is fsynced at all.

The sync runs in-process with ``os.fsync``, ``os.link``, ``os.rename``, ``os.replace``
and ``StateDB.apply`` wrapped to record one ordered event log (each call's start and
end, from one counter shared by every thread).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.imap import append, server_snapshot, set_flags
from support.mail import make_message
from support.maildir import deliver
from support.run import account_config, write_config

from devserver.dovecot import DevServer, User, populate
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions
from syncd.engine.state import StateDB

FOLDERS = {"INBOX": 14, "Archive": 10}


@dataclass(frozen=True)
class Event:
    kind: str  # "fsync", "link", "rename", "commit"
    paths: tuple[str, ...]  # fsync: the file or directory; link/rename: (src, dst)
    names: frozenset[str]  # commit: unique names of the pairs added or rebased
    start: int
    end: int


class Recorder:
    """Wraps the durability calls; ``events`` lists them in order of completion."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[Event] = []
        self._clock = itertools.count()
        real_fsync, real_link = os.fsync, os.link
        real_rename, real_replace = os.rename, os.replace
        real_apply = StateDB.apply

        def fsync(fd: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            self._call("fsync", (path,), frozenset(), lambda: real_fsync(fd))

        def link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self._call("link", (str(src), str(dst)), frozenset(),
                       lambda: real_link(src, dst, *args, **kwargs))  # fmt: skip

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self._call("rename", (str(src), str(dst)), frozenset(),
                       lambda: real_rename(src, dst, *args, **kwargs))  # fmt: skip

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self._call("rename", (str(src), str(dst)), frozenset(),
                       lambda: real_replace(src, dst, *args, **kwargs))  # fmt: skip

        def apply(db: StateDB, folder_id: int, **kwargs: Any) -> None:
            kwargs = {k: list(v) for k, v in kwargs.items()}  # iterables are read twice
            names = {p.near for p in kwargs.get("add", ())} | {
                p.near for p, _ in kwargs.get("rebase", ())
            }
            self._call("commit", (), frozenset(n for n in names if n),
                       lambda: real_apply(db, folder_id, **kwargs))  # fmt: skip

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(StateDB, "apply", apply)

    def _call(self, kind: str, paths: tuple[str, ...], names: frozenset[str],
              call: Callable[[], object]) -> None:  # fmt: skip
        start = next(self._clock)
        call()
        self.events.append(Event(kind, paths, names, start, next(self._clock)))

    def of(self, kind: str) -> Iterator[Event]:
        return (e for e in self.events if e.kind == kind)

    def commit_of(self, name: str) -> Event:
        found = [e for e in self.of("commit") if name in e.names]
        assert len(found) == 1, f"{name}: {len(found)} commits record it"
        return found[0]

    def dir_fsync_between(self, directory: str, after: int, before: int) -> bool:
        """Whether ``directory`` was fsynced wholly after ``after`` and before ``before``."""
        return any(
            e.paths == (directory,) and e.start > after and e.end < before for e in self.of("fsync")
        )


def unique(path: str) -> str:
    return Path(path).name.split(":2,", 1)[0]


def letters(path: str) -> str:
    return Path(path).name.partition(":2,")[2]


def sync(config: Path) -> None:
    cfg = load_config(config)
    syncer = AccountSyncer(cfg, cfg.accounts["test"])
    try:
        report = syncer.sync(RunOptions())
    finally:
        syncer.close()
    assert report.ok, report


def setup(tmp_path: Path, server: DevServer, user: User, **overrides: Any) -> tuple[Path, Path]:
    populate(server, user, folders=FOLDERS)
    maildir = tmp_path / "Mail"
    config = write_config(
        tmp_path, {"test": account_config(server, user, maildir, new_to_new=True, **overrides)}
    )
    return config, maildir


def test_download_fsync_rename_dirsync_commit_in_order(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every downloaded message (24, two folders): file fsync < link into new/ or cur/
    < fsync of that directory < the commit that records its pair."""
    config, maildir = setup(tmp_path, dovecot, account)
    rec = Recorder(monkeypatch)
    sync(config)

    links = [e for e in rec.of("link") if str(maildir) in e.paths[1]]
    assert len(links) == sum(FOLDERS.values())
    assert {Path(e.paths[1]).parent.name for e in links} == {"new", "cur"}  # both kinds
    assert {Path(e.paths[1]).parent.parent for e in links} == {maildir, maildir / ".Archive"}
    for ln in links:
        tmp, final = ln.paths
        assert Path(tmp).parent.name == "tmp"
        file_syncs = [e for e in rec.of("fsync") if e.paths == (tmp,)]
        assert len(file_syncs) == 1, f"{tmp} fsynced {len(file_syncs)} times"
        assert file_syncs[0].end < ln.start, f"{final} linked before its fsync completed"
        commit = rec.commit_of(unique(final))
        assert rec.dir_fsync_between(str(Path(final).parent), ln.end, commit.start), (
            f"{final}: no fsync of its directory between the link and the commit"
        )


def test_flag_rename_dirsync_then_commit_without_file_fsync(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server-side flag changes renamed locally (new/ -> cur/ and within cur/): the
    directory is fsynced after the rename and before the commit; the file is not
    fsynced (its bytes did not change).  A local upload renames nothing locally."""
    config, maildir = setup(tmp_path, dovecot, account)
    sync(config)
    for folder, count in FOLDERS.items():
        # $Forwarded (letter P) is a flag populate() never sets: every message changes.
        set_flags(dovecot, account, folder, range(1, count + 1), ["\\Seen", "$Forwarded"],
                  mode="add")  # fmt: skip
    uploaded = deliver(maildir, make_message(subject="written offline"), "S")
    rec = Recorder(monkeypatch)
    sync(config)

    renames = [e for e in rec.of("rename") if str(maildir) in e.paths[1]]
    assert len(renames) == sum(FOLDERS.values())
    assert {Path(e.paths[0]).parent.name for e in renames} == {"new", "cur"}
    synced_paths = {p for e in rec.of("fsync") for p in e.paths}
    for rn in renames:
        src, dst = rn.paths
        assert {"P", "S"} <= set(letters(dst)), dst
        assert src not in synced_paths and dst not in synced_paths  # no file fsync
        commit = rec.commit_of(unique(dst))
        for directory in {Path(src).parent, Path(dst).parent}:
            assert rec.dir_fsync_between(str(directory), rn.end, commit.start), (
                f"{dst}: {directory} not fsynced between the rename and the commit"
            )
    assert not list(rec.of("link"))  # nothing new to download
    assert uploaded.exists()  # the upload left its file where it was
    touched = {unique(p) for e in rec.events for p in e.paths}
    assert unique(str(uploaded)) not in touched
    assert "written offline" in {v.subject for v in server_snapshot(dovecot, account)["INBOX"]}


def test_fsync_false_never_fsyncs(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fsync = false``: an initial sync, a flag sync and a new message: no fsync at
    all (neither files nor directories), and the mail still arrives."""
    config, maildir = setup(tmp_path, dovecot, account, fsync=False)
    rec = Recorder(monkeypatch)
    sync(config)
    set_flags(dovecot, account, "INBOX", [1, 2], ["\\Flagged"], mode="add")
    append(dovecot, account, "Archive", make_message(subject="late"))
    sync(config)
    assert list(rec.of("fsync")) == []
    assert len(list(rec.of("link"))) == sum(FOLDERS.values()) + 1
    assert len([e for e in rec.of("rename") if "F" in letters(e.paths[1])]) >= 2
    assert (
        len(list((maildir / ".Archive" / "cur").iterdir()))
        + len(list((maildir / ".Archive" / "new").iterdir()))
        == FOLDERS["Archive"] + 1
    )
