"""Bad local input (RELIABILITY.md group E): odd, broken, unreadable or vanished Maildir
content must never crash a run, never be uploaded as junk, and above all never turn
into server deletions.  Tests run as root, so "permission denied" is made real by
running syncd without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (setpriv); the full disk is
a 1 MiB tmpfs mounted for the test (``mount`` works in this sandbox as root)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.common import config_for, converged, idempotent, message, seed, settles
from support.imap import append, server_snapshot
from support.maildir import deliver, folder_path, local_snapshot
from support.run import run_syncd

from devserver.dovecot import DevServer, User


def _server_ids(server: DevServer, user: User, folder: str = "INBOX") -> list[str | None]:
    return sorted(v.message_id or "" for v in server_snapshot(server, user).get(folder, []))


def test_loc01_02_tmp_files_dotfiles_fifos_and_dirs_are_not_messages(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-01 (files in tmp/), LOC-02 (dot-files, a FIFO, a sub-directory, a copied
    dovecot-uidlist in cur/): none is uploaded; the real messages are."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    (maildir / "tmp" / "1700000000.M1P1.host").write_bytes(message("in-tmp"))
    (maildir / "cur" / ".DS_Store").write_bytes(b"\0\0junk")
    (maildir / "cur" / ".#editor-lock").write_bytes(message("dot"))
    (maildir / "cur" / "subdir").mkdir()
    os.mkfifo(maildir / "cur" / "a-fifo")
    config = config_for(tmp_path, dovecot, account, maildir)
    done = run_syncd("sync", config=config, timeout=60)
    assert "Traceback" not in done.stderr
    ids = _server_ids(dovecot, account)
    assert "<in-tmp@faults.test>" not in ids and "<dot@faults.test>" not in ids
    assert len(ids) == 10
    run_syncd("sync", config=config, timeout=60)  # junk reported again at most; no change
    assert len(_server_ids(dovecot, account)) == 10


def test_loc02_a_copied_dovecot_uidlist_in_cur_is_not_uploaded(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-02: ``cur/dovecot-uidlist`` (a control file a user copied by mistake) is not
    a message: it must be reported, not uploaded."""
    maildir = tmp_path / "Mail"
    deliver(maildir, message("real"), "S")
    (maildir / "cur" / "dovecot-uidlist").write_bytes(b"3 V1 N1\n")
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, timeout=60)
    assert _server_ids(dovecot, account) == ["<real@faults.test>"]


def test_loc03_zero_byte_headerless_and_truncated_files(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-03: a zero-byte file is not uploaded (reported); a file starting with a blank
    line and a file cut in the middle of a header are handled without a crash; the
    other messages sync."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    deliver(maildir, b"")
    deliver(maildir, b"\nno headers here\n")
    deliver(maildir, message("truncated")[:57])
    config = config_for(tmp_path, dovecot, account, maildir)
    done = run_syncd("sync", config=config, timeout=60)
    assert "Traceback" not in done.stderr
    assert "skipped" in done.stderr or "empty" in done.stderr, done.stderr
    remote = server_snapshot(dovecot, account)["INBOX"]
    assert len(remote) == 12  # 10 seeded + header-less + truncated; not the empty one
    again = run_syncd("sync", config=config, timeout=60)
    assert "0 downloaded, 0 uploaded" in again.stderr
    assert len(server_snapshot(dovecot, account)["INBOX"]) == 12


def test_loc04_odd_file_names(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    """LOC-04: no info part, unknown and unsorted letters, keyword letters, Dovecot's
    ,S=/,W= fields, a Windows ``!2,`` separator and a name that is not UTF-8: all parsed
    without a crash, each uploaded once, flags right, stable on the next run."""
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir()
    names = {
        "1.M1P1.h": (b"no-info", frozenset()),
        "2.M2P2.h:2,ZYX": (b"unknown", frozenset()),
        "3.M3P3.h:2,SF": (b"unsorted", frozenset({"\\Seen", "\\Flagged"})),
        "4.M4P4.h:2,Sab": (b"keywords", None),
        "5.M5P5.h,S=1234,W=1260:2,S": (b"sizes", frozenset({"\\Seen"})),
        "6.M6P6.h!2,S": (b"windows", None),
    }
    for name, (tag, _flags) in names.items():
        (maildir / "cur" / name).write_bytes(message(tag.decode()))
    raw = os.fsencode(str(maildir / "cur")) + b"/7.M7P7.h\xff\xfe:2,S"
    with open(raw, "wb") as f:
        f.write(message("non-utf8"))
    config = config_for(tmp_path, dovecot, account, maildir)
    done = run_syncd("sync", config=config, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    remote = {v.message_id: v.flags for v in server_snapshot(dovecot, account)["INBOX"]}
    for _name, (tag, flags) in names.items():
        mid = f"<{tag.decode()}@faults.test>"
        assert mid in remote, (mid, done.stderr)
        if flags is not None:
            assert remote[mid] == flags, mid
    again = run_syncd("sync", config=config, timeout=60)
    assert "0 downloaded, 0 uploaded" in again.stderr, again.stderr
    assert len(server_snapshot(dovecot, account)["INBOX"]) == len(remote)


def test_loc05_symlinks_are_never_read_or_followed(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-05: ``cur/evil:2,S -> /etc/passwd`` is not uploaded; a folder that is a
    symlink out of the root is not synced; deleting never follows a link."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    secret_dir = tmp_path / "outside"
    secret_dir.mkdir()
    (secret_dir / "private.txt").write_text("Subject: private\n\nprivate data\n")
    (maildir / "cur" / "1.M1P1.evil:2,S").symlink_to("/etc/passwd")
    (maildir / "cur" / "2.M2P2.evil:2,S").symlink_to(secret_dir / "private.txt")
    outside_folder = tmp_path / "elsewhere"
    for sub in ("cur", "new", "tmp"):
        (outside_folder / sub).mkdir(parents=True)
    (outside_folder / "cur" / "3.M3P3.x:2,").write_bytes(message("outside-folder"))
    (maildir / ".Linked").symlink_to(outside_folder)
    config = config_for(tmp_path, dovecot, account, maildir)
    done = run_syncd("sync", config=config, timeout=60)
    assert "Traceback" not in done.stderr
    remote = server_snapshot(dovecot, account)
    wire = b"".join(v.sha256.encode() for vs in remote.values() for v in vs)
    assert all("root:" not in (v.subject or "") for vs in remote.values() for v in vs)
    assert all(v.subject != "private" for vs in remote.values() for v in vs)
    assert "<outside-folder@faults.test>" not in {
        v.message_id for vs in remote.values() for v in vs
    }
    assert wire  # the real mail did sync
    assert (secret_dir / "private.txt").exists()
    assert (outside_folder / "cur" / "3.M3P3.x:2,").exists()


def _syncd_without_dac(config: Path) -> subprocess.CompletedProcess[str]:
    """Run syncd as root *without* the capabilities that let root ignore file modes."""
    drop = "-dac_override,-dac_read_search"
    return subprocess.run(
        ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}",
         sys.executable, "-m", "syncd", "--config", str(config), "sync"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_loc06_unreadable_message_is_not_a_deletion(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-06: one synced message chmod 000: reported and skipped, never treated as
    deleted; the rest (a new local message) syncs."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    before = server_snapshot(dovecot, account)
    victim = sorted((maildir / "cur").iterdir())[0]
    victim.chmod(0o000)
    deliver(maildir, message("new-after"), "S")
    try:
        done = _syncd_without_dac(config)
    finally:
        victim.chmod(0o600)
    assert "Traceback" not in done.stderr, done.stderr
    after = server_snapshot(dovecot, account)
    assert {v.message_id for v in before["INBOX"]} <= {v.message_id for v in after["INBOX"]}
    assert "<new-after@faults.test>" in {v.message_id for v in after["INBOX"]}
    run_syncd("sync", config=config, check=True)
    converged(dovecot, account, maildir)


def test_loc06_unreadable_folder_is_not_a_deletion(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-06: a synced folder chmod 000: that folder fails with an error naming it;
    once readable again, nothing is uploaded or downloaded twice."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    archive = folder_path(maildir, "maildir++", "Archive")
    archive.chmod(0o000)
    try:
        done = _syncd_without_dac(config)
    finally:
        archive.chmod(0o700)
    assert done.returncode == 1
    assert "gone" not in done.stderr, done.stderr
    run_syncd("sync", config=config, check=True)
    end = converged(dovecot, account, maildir)
    assert len(end["Archive"]) == 2


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"cannot mount a tmpfs here: {proc.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_loc07_disk_full_while_downloading(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-07: the Maildir is on a 1 MiB tmpfs and the server holds 2.4 MB: write errors
    are caught, no partial file is left in cur/ or new/, nothing is inferred as deleted;
    after the disk grows, the next run completes."""
    for i in range(6):
        append(dovecot, account, "INBOX", message(f"fat{i}", size_pad=400_000))
    with _tmpfs(tmp_path / "disk", "1m") as disk:
        maildir = disk / "Mail"
        deliver(maildir, message("local-small"), "S")
        config = config_for(tmp_path, dovecot, account, maildir)
        full = run_syncd("sync", config=config, timeout=60)
        assert "Traceback" not in full.stderr
        assert "space" in full.stderr.lower(), full.stderr
        for view in local_snapshot(maildir, "maildir++")["INBOX"]:
            assert view.message_id is not None  # whole messages only
        assert len(server_snapshot(dovecot, account)["INBOX"]) == 7  # nothing deleted
        assert not list((maildir / "tmp").iterdir())  # partial download cleaned up
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        end = settles(dovecot, account, maildir, config, timeout=60)
        assert len(end["INBOX"]) == 7
        shutil.rmtree(maildir)


def test_loc07_a_run_that_could_not_save_messages_exits_non_zero(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-07 / O7: a run that left messages unsaved (disk full) must not report success."""
    for i in range(4):
        append(dovecot, account, "INBOX", message(f"fat{i}", size_pad=400_000))
    with _tmpfs(tmp_path / "disk", "1m") as disk:
        config = config_for(tmp_path, dovecot, account, disk / "Mail")
        full = run_syncd("sync", config=config, timeout=60)
        shutil.rmtree(disk / "Mail")
    assert "No space left" in full.stderr
    assert full.returncode == 1, full.stderr


def test_loc10_folder_emptied_directory_kept_small_folder(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-10 for a small folder (6 messages, all deleted locally): the brake trips."""
    for i in range(6):
        append(dovecot, account, "Small", message(f"small{i}"))
    maildir = tmp_path / "Mail"
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    for f in (folder_path(maildir, "maildir++", "Small") / "cur").iterdir():
        f.unlink()
    done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 1
    assert "--allow-mass-delete" in done.stderr
    assert len(server_snapshot(dovecot, account)["Small"]) == 6


@pytest.mark.parametrize("how", ["empty-directory", "dangling-symlink"])
def test_loc11_maildir_root_vanished(
    tmp_path: Path, dovecot: DevServer, account: User, how: str
) -> None:
    """LOC-11: the Maildir root is replaced by an empty directory (an unmounted disk's
    mount point) or a dangling symlink: no server deletion, no upload."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    before = server_snapshot(dovecot, account)
    shutil.rmtree(maildir)
    if how == "empty-directory":
        maildir.mkdir()
    else:
        maildir.symlink_to(tmp_path / "unmounted-disk")
    done = run_syncd("sync", config=config, timeout=60)
    assert "Traceback" not in done.stderr
    assert "0 uploaded" in done.stderr or done.returncode == 1, done.stderr
    assert "deleted on the server" not in done.stderr.replace("0 deleted on the server", "")
    assert server_snapshot(dovecot, account) == before


def test_loc11_empty_root_of_a_synced_account_is_refused(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-11: the root exists but every synced folder in it is gone: refuse the
    account (exit 1, nothing written) instead of re-downloading everything."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    shutil.rmtree(maildir)
    maildir.mkdir()
    done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 1, done.stderr
    assert list(maildir.iterdir()) == []


def test_loc12_lf_only_file_is_uploaded_once(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """LOC-12: a message with bare LF line ends: uploaded as CRLF, never re-uploaded
    because the sizes differ."""
    maildir = tmp_path / "Mail"
    deliver(maildir, message("lf-only").replace(b"\r\n", b"\n"), "S")
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    idempotent(config)
    idempotent(config)
    assert _server_ids(dovecot, account) == ["<lf-only@faults.test>"]


@pytest.mark.parametrize("hostname", ["mail/host:1", "a:b/c", "sp ace\\back", "ünï/cödé"])
def test_loc13_host_names_are_escaped_and_deliveries_never_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostname: str
) -> None:
    """LOC-13: the host name carries ``/`` and ``:`` (escaped ``\\057`` / ``\\072``
    as the Maildir spec says), and two writers on one Maildir (two hosts on NFS) in the
    same microsecond with the same pid still get distinct names; a name that does
    collide is refused (O_EXCL + link), never overwriting the first file."""
    import socket
    import time

    import syncd.stores.maildir.folder as maildir_module
    from syncd.errors import MessageError

    for sub in ("cur", "new", "tmp"):
        (tmp_path / sub).mkdir()
    monkeypatch.setattr(socket, "gethostname", lambda: hostname)
    writers = [maildir_module.MaildirFolder(tmp_path, fsync=False) for _ in range(2)]
    name = writers[0].new_name()
    host_part = name.split(".", 2)[2]
    assert "/" not in name and ":" not in name and not name.startswith(".")
    assert "/" not in host_part and ":" not in host_part
    if "/" in hostname:
        assert "\\057" in host_part
    if ":" in hostname:
        assert "\\072" in host_part
    assert name.isascii()
    # the same second, microsecond and pid for everyone: only the random part differs
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_123_456_000)
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    written: dict[str, bytes] = {}
    for i in range(200):
        writer = writers[i % 2]
        data = f"Subject: {i}\n\nbody {i}\n".encode()
        msg = writer.deliver(data, name=writer.new_name(), flags=frozenset(), mtime=None)
        written[msg.filename] = data
    assert len(written) == 200
    files = {p.name: p.read_bytes() for p in (tmp_path / "cur").iterdir()}
    assert files == written
    # a forced collision: refused, the first file intact, nothing left in tmp/
    first_name, first_data = next(iter(written.items()))
    with pytest.raises(MessageError, match="already exists"):
        writers[1].deliver(
            b"Subject: intruder\n\nx\n", name=first_name.split(":2,")[0], flags=frozenset(),
            mtime=None,
        )  # fmt: skip
    assert (tmp_path / "cur" / first_name).read_bytes() == first_data
    assert list((tmp_path / "tmp").iterdir()) == []
    assert len(list((tmp_path / "cur").iterdir())) == 200
