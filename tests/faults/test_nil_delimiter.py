"""SRV-08 end to end: a server whose LIST says ``NIL`` for the hierarchy delimiter.

A proxy in front of the real Dovecot rewrites every ``* LIST (...) "/" name`` (and
``LSUB``) to ``* LIST (...) NIL name``: a flat namespace.  With only top-level folders
(INBOX, Archive, a non-ASCII name with a space, a folder created locally) syncd must
sync flat: one local folder per server folder, mail and flags both ways, a second run
changes nothing.  A local folder with a nested name cannot exist on such a server: it
is reported in one error line naming it, its mail stays local, and the rest syncs.
"""

from __future__ import annotations

import re
from pathlib import Path

from faults.common import NOOP, config_for, converged, message
from faults.proxy import Conn, Direction, front
from support.imap import append, server_snapshot, set_flags
from support.maildir import deliver, folder_path, local_snapshot, set_local_flags
from support.run import run_syncd

from devserver.dovecot import DevServer, User

_DELIMITED = re.compile(rb'^(\* (?:LIST|LSUB) \([^)]*\)) "(?:[^"\\]|\\.)" ', re.IGNORECASE)
SERVER_FOLDERS = ("INBOX", "Archive", "Été 2024")


def flat(direction: Direction, line: bytes, conn: Conn) -> bytes:
    """Rewriter: every LIST/LSUB entry says NIL for the delimiter."""
    if direction == "down":
        return _DELIMITED.sub(rb"\1 NIL ", line)
    return line


def test_srv08_nil_delimiter_syncs_flat_both_ways(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    maildir = tmp_path / "Mail"
    for n, folder in enumerate(SERVER_FOLDERS):
        for i in range(3):
            append(dovecot, account, folder, message(f"f{n}-{i}"), flags=["\\Seen"][: i % 2])
    deliver(maildir, message("local-inbox"), "S")
    deliver(folder_path(maildir, "maildir++", "Notes"), message("local-notes"), "F")
    seen: list[bytes] = []

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        out = flat(direction, line, conn)
        if out.startswith((b"* LIST", b"* LSUB")):
            seen.append(out)
        return out

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        first = run_syncd("sync", config=config)
        assert first.returncode == 0, first.stderr
        assert seen and all(b") NIL " in line for line in seen), seen
        assert "Traceback" not in first.stderr
        # One-component local folders, and Notes created flat on the server.
        names = {p.name for p in maildir.iterdir() if p.name.startswith(".") and p.is_dir()}
        assert names == {".Archive", ".Été 2024", ".Notes"}
        end = converged(dovecot, account, maildir)
        assert sorted(end) == ["Archive", "INBOX", "Notes", "Été 2024"]
        assert len(end["INBOX"]) == 4 and len(end["Été 2024"]) == 3

        # Flags both ways: on the server in a non-ASCII folder, locally in Notes.
        set_flags(dovecot, account, "Été 2024", [1], ["\\Flagged"], mode="add")
        notes = next((folder_path(maildir, "maildir++", "Notes") / "cur").iterdir())
        set_local_flags(notes, "FS")
        second = run_syncd("sync", config=config)
        assert second.returncode == 0, second.stderr
        end = converged(dovecot, account, maildir)
        assert {"\\Flagged"} <= {f for _m, _h, flags in end["Été 2024"] for f in flags}
        assert [flags for _m, _h, flags in end["Notes"]] == [frozenset({"\\Flagged", "\\Seen"})]

        again = run_syncd("sync", config=config)
        assert again.returncode == 0 and NOOP in again.stderr, again.stderr


def test_srv08_nested_local_folder_on_a_flat_server_is_one_clear_error(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """``.Lists.python`` (``Lists/python``) cannot be created on a flat server: one ERROR
    line names it and says why, every run; its mail stays local and nothing is created
    on the server; the other folders sync."""
    maildir = tmp_path / "Mail"
    append(dovecot, account, "INBOX", message("far"))
    nested = deliver(folder_path(maildir, "maildir++", "Lists/python"), message("nested"), "S")
    deliver(maildir, message("near"))
    with front(dovecot, rewrite=flat) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        runs = [run_syncd("sync", config=config) for _ in range(2)]
    for run in runs:
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1, run.stderr
        assert "Lists/python" in errors[0] and "no hierarchy delimiter" in errors[0]
    assert nested.exists()
    remote = server_snapshot(dovecot, account)
    assert sorted(remote) == ["INBOX"]
    assert sorted(v.message_id or "" for v in remote["INBOX"]) == [
        "<far@faults.test>", "<near@faults.test>"
    ]  # fmt: skip
    assert len(local_snapshot(maildir, "maildir++")["INBOX"]) == 2
