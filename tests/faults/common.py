"""Shared steps of the failure-catalogue tests (RELIABILITY.md §2.1 oracles).

- :func:`seed` puts a small, deterministic account in place (server mail in two
  folders, local mail in two folders) so that end states can be compared across server
  variants and fault runs message by message.
- :func:`converged` is oracles O1-O3: both sides hold the same messages with the same
  flags, nothing twice; it returns the common summary.
- :func:`idempotent` is O4: a second run changes nothing.
- :func:`tree` snapshots a directory tree, for O6 (containment).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from support import summary
from support.imap import append, server_snapshot
from support.mail import make_message
from support.maildir import deliver, folder_path, local_snapshot
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User

NOOP = "0 downloaded, 0 uploaded, 0 flag changes, 0 deleted here, 0 deleted on the server"


def message(tag: str, size_pad: int = 0) -> bytes:
    """A message whose bytes depend only on ``tag`` (so hashes compare across runs)."""
    return make_message(
        subject=f"msg {tag}", message_id=f"<{tag}@faults.test>", body=f"body of {tag}\n",
        size_pad=size_pad,
    )  # fmt: skip


def seed(server: Any, user: User, maildir: Path, *, n_far: int = 6, n_near: int = 4) -> None:
    """Server: ``n_far`` messages in INBOX and 2 in Archive; local: ``n_near`` in INBOX
    and 2 in a local-only folder ``Notes``."""
    for i in range(n_far):
        append(server, user, "INBOX", message(f"far{i}"), flags=["\\Seen"] if i % 2 else [])
    for i in range(2):
        append(server, user, "Archive", message(f"arc{i}"))
    for i in range(n_near):
        deliver(maildir, message(f"near{i}"), "S" if i % 2 else "")
    for i in range(2):
        deliver(folder_path(maildir, "maildir++", "Notes"), message(f"note{i}"), "F")


def config_for(tmp_path: Path, server: Any, user: User, maildir: Path, **overrides: Any) -> Path:
    """A config for one account ``t`` on ``server`` (overrides as in ``account_config``)."""
    acc = account_config(server, user, maildir, **overrides)
    return write_config(tmp_path, {"t": acc})


def duplicates(snapshot: dict[str, list[Any]]) -> dict[str, int]:
    """Folder -> number of messages present more than once (empty when none)."""
    out = {}
    for folder, views in snapshot.items():
        extra = sum(k - 1 for k in Counter(v.sha256 for v in views).values() if k > 1)
        if extra:
            out[folder] = extra
    return out


def converged(
    server: Any, user: User, maildir: Path, *, deleted_kept: bool = False
) -> dict[str, Any]:
    """O1-O3: the same messages (by content) and flags on both sides, nothing twice.

    ``deleted_kept``: the server lacks UIDPLUS, so syncd marks deletions ``\\Deleted``
    and leaves the expunge to the user (guarantee 6); such messages count as gone."""
    remote = server_snapshot(server, user)
    if deleted_kept:
        remote = {f: [v for v in vs if "\\Deleted" not in v.flags] for f, vs in remote.items()}
    local = local_snapshot(maildir, "maildir++")
    assert duplicates(remote) == {}, "duplicates on the server"
    assert duplicates(local) == {}, "duplicates in the Maildir"
    assert summary(local) == summary(remote)
    return summary(remote)


def idempotent(config: Path) -> None:
    """O4: another run right away changes nothing and succeeds."""
    again = run_syncd("sync", config=config)
    assert again.returncode == 0, again.stderr
    assert NOOP in again.stderr, again.stderr


def settles(
    server: Any,
    user: User,
    maildir: Path,
    config: Path,
    *,
    timeout: float = 120,
    deleted_kept: bool = False,
) -> dict[str, Any]:
    """The usual ending of a fault test, in one place: a sync run succeeds, both sides
    have converged (O1-O3), and another run changes nothing (O4).  Returns the
    converged snapshot."""
    done = run_syncd("sync", config=config, timeout=timeout)
    assert done.returncode == 0, done.stderr
    end = converged(server, user, maildir, deleted_kept=deleted_kept)
    idempotent(config)
    return end


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of everything under ``root`` (symlinks not
    followed); for before/after containment checks."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def ids(summary_: dict[str, Any]) -> dict[str, list[tuple[str | None, frozenset[str]]]]:
    """Folder -> sorted (message_id, flags): comparable across servers and runs."""
    return {f: sorted((m, fl) for m, _h, fl in rows) for f, rows in summary_.items()}


__all__ = [
    "NOOP",
    "DevServer",
    "config_for",
    "converged",
    "duplicates",
    "idempotent",
    "ids",
    "message",
    "seed",
    "settles",
    "tree",
]  # fmt: skip


# --------------------------------------------------------------------------- core scenario
# RELIABILITY.md §5: "run each scenario against every server variant and assert the same
# end state".  After a first sync, every kind of change happens on both sides; the
# expected end state is written out below (message-id -> flags per folder).

EXPECTED_CORE: dict[str, dict[str, frozenset[str]]] = {
    "INBOX": {
        "<far0@faults.test>": frozenset({"\\Flagged"}),  # flagged locally
        "<far2@faults.test>": frozenset({"\\Answered"}),  # answered on the server
        "<far4@faults.test>": frozenset(),
        "<far5@faults.test>": frozenset({"\\Seen"}),
        "<near0@faults.test>": frozenset(),
        "<near1@faults.test>": frozenset({"\\Seen"}),
        "<near2@faults.test>": frozenset(),
        "<near3@faults.test>": frozenset({"\\Seen"}),
        "<farnew@faults.test>": frozenset(),  # new on the server
        "<nearnew@faults.test>": frozenset({"\\Seen"}),  # new locally
        # far1: deleted locally; far3: expunged on the server
    },
    "Archive": {"<arc0@faults.test>": frozenset(), "<arc1@faults.test>": frozenset()},
    "Notes": {
        "<note0@faults.test>": frozenset({"\\Flagged"}),
        "<note1@faults.test>": frozenset({"\\Flagged"}),
    },
    "Projects/2024": {"<proj0@faults.test>": frozenset()},  # new folder on the server
    "Local/Sub": {"<loc0@faults.test>": frozenset({"\\Seen"})},  # new folder locally
}


def _local_file(maildir: Path, mid: str) -> Path:
    for sub in ("cur", "new"):
        for p in (maildir / sub).iterdir():
            if f"Message-ID: {mid}".encode() in p.read_bytes():
                return p
    raise AssertionError(f"{mid} not found in {maildir}")


def core_first_sync(tmp_path: Path, server: Any, user: User, **overrides: Any) -> tuple[Path, Path]:
    """Seed and sync once; returns (config, maildir)."""
    maildir = tmp_path / "Mail"
    seed(server, user, maildir)
    config = config_for(tmp_path, server, user, maildir, **overrides)
    first = run_syncd("sync", config=config, timeout=120)
    assert first.returncode == 0, first.stderr
    converged(server, user, maildir)
    return config, maildir


def core_changes(server: Any, user: User, maildir: Path) -> None:
    """Every kind of change on both sides (see EXPECTED_CORE)."""
    from support.imap import session
    from support.maildir import set_local_flags

    set_local_flags(_local_file(maildir, "<far0@faults.test>"), "F")
    _local_file(maildir, "<far1@faults.test>").unlink()
    deliver(maildir, message("nearnew"), "S")
    deliver(folder_path(maildir, "maildir++", "Local/Sub"), message("loc0"), "S")
    append(server, user, "INBOX", message("farnew"))
    append(server, user, "Projects/2024", message("proj0"))
    with session(server, user) as c:
        c.select_folder("INBOX", readonly=True)
        by_mid = {}
        uids = c.search("ALL")
        for uid, data in c.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]).items():
            raw = next(v for k, v in data.items() if k.startswith(b"BODY"))
            by_mid[raw.split(b":", 1)[1].strip().decode()] = uid
        c.select_folder("INBOX")
        c.add_flags([by_mid["<far2@faults.test>"]], [b"\\Answered"], silent=True)
        # A plain EXPUNGE, as a client without UIDPLUS would (the only \\Deleted message).
        c.add_flags([by_mid["<far3@faults.test>"]], [b"\\Deleted"], silent=True)
        c.expunge()


def core_check(
    server: Any, user: User, maildir: Path, config: Path, *, deleted_kept: bool = False
) -> None:
    """Sync, then the end state is EXPECTED_CORE on both sides, and a rerun is a no-op.
    Empty folders the server made up on its own (Cyrus creates parents) are ignored."""
    second = run_syncd("sync", config=config, timeout=120)
    assert second.returncode == 0, second.stderr
    end = converged(server, user, maildir, deleted_kept=deleted_kept)
    got = {
        folder: {mid: flags for mid, _h, flags in rows}
        for folder, rows in end.items()
        if rows or folder in EXPECTED_CORE
    }
    assert got == EXPECTED_CORE
    idempotent(config)
