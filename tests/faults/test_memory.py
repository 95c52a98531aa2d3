"""MAL-03 with a memory bound: a server announces an enormous literal, then trickles.

A proxy in front of the real Dovecot rewrites the first ``BODY[]`` literal of one
folder (Archive) to announce 4 GiB or 93 GiB, lets a few KiB of the real bytes through
and then goes silent.  ``syncd sync`` runs as a subprocess whose peak RSS is measured
(``getrusage(RUSAGE_CHILDREN)`` in a small wrapper process): it must stay under a fixed
bound far below what the announcement would need, the run must end with one clear error
naming the announced size, and nothing may be written outside the Maildir root and the
state directory.  Known gap (strict xfail): the error should also name the folder, and
the other folders should still be synced when they come after it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from faults.common import config_for, converged, idempotent, seed, tree
from faults.proxy import Conn, Direction, Fault, Rewriter, front
from support.imap import server_snapshot
from support.maildir import local_snapshot
from support.run import run_syncd_measured

from devserver.dovecot import DevServer, User

#: Peak RSS allowed for a small account's sync, hostile or not.  A normal sync of this
#: account peaks at ~32 MiB on this machine (measured below in the same test, to keep the
#: bound honest); a syncd that allocated the announced literal would need GiBs.
RSS_BOUND_KIB = 150 * 1024


def _huge_literal_in(folder: bytes, size: bytes) -> tuple[Rewriter, list[bool]]:
    """A rewriter by which the first ``BODY[] {n}`` of ``folder`` announces ``size``
    bytes, and a list that gets an entry when it has done so."""
    selected: dict[int, bytes] = {}
    done: list[bool] = []

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "up":
            m = re.match(rb"\S+ (?:SELECT|EXAMINE) \"?([^\"\s]+)", line, re.IGNORECASE)
            if m:
                selected[conn.index] = m.group(1)
        elif not done and selected.get(conn.index) == folder and b"BODY[] {" in line:
            done.append(True)
            return re.sub(rb"BODY\[\] \{\d+\}", b"BODY[] {" + size + b"}", line)
        return line

    return rewrite, done


def _attack(
    tmp_path: Path, server: DevServer, user: User, size: bytes, **overrides: object
) -> tuple[int, str, int]:
    """Seed the account, sync it once through the hostile proxy; returns what
    :func:`run_measured` does.  The snapshot of everything next to ``tmp_path`` is
    compared before and after (O6)."""
    maildir = tmp_path / "Mail"
    seed(server, user, maildir)
    outside = {k: v for k, v in tree(tmp_path.parent).items() if not k.startswith(tmp_path.name)}
    rewrite, done = _huge_literal_in(b"Archive", size)
    # If syncd read on, 4 KiB of the real bytes would pass and then the link go silent
    # (a trickle that stops); syncd must refuse at the announcement instead.
    trickle = Fault("stall", after=b"{" + size + b"}\r\n", extra=4096)
    with front(server, rewrite=rewrite, fault=trickle) as p:
        config = config_for(tmp_path, server, user, maildir, port=p.port, timeout=5, **overrides)
        result = run_syncd_measured(config, "sync", timeout=90)
    assert done, result[1]  # the announcement did reach syncd
    after = {k: v for k, v in tree(tmp_path.parent).items() if not k.startswith(tmp_path.name)}
    assert after == outside
    assert {k.split("/")[0] for k in tree(tmp_path)} <= {"Mail", "state", "config.toml"}
    return result


@pytest.mark.parametrize("size", [b"4294967296", b"99999999999"])
def test_mal03_enormous_literal_keeps_memory_bounded(
    tmp_path: Path, dovecot: DevServer, account: User, size: bytes
) -> None:
    """Peak RSS under the bound (and a normal sync of the same account shape well
    under it); exit 1 with the announced size in an ERROR line, no traceback; nothing
    written outside the root; the next honest run completes, nothing twice."""
    other = dovecot.add_user()
    seed(dovecot, other, tmp_path / "base" / "Mail")
    code, err, normal_peak = run_syncd_measured(
        config_for(tmp_path / "base", dovecot, other, tmp_path / "base" / "Mail"), "sync"
    )
    assert code == 0, err
    assert normal_peak < RSS_BOUND_KIB // 2, f"a normal sync peaks at {normal_peak} KiB"

    code, err, peak = _attack(tmp_path / "t", dovecot, account, size)
    assert peak < RSS_BOUND_KIB, f"peak RSS {peak} KiB (normal sync: {normal_peak} KiB)"
    assert code == 1, err
    assert "Traceback" not in err and "MemoryError" not in err
    assert any("ERROR" in line and size.decode() in line for line in err.splitlines()), err

    maildir = tmp_path / "t" / "Mail"
    config = config_for(tmp_path / "t", dovecot, account, maildir)
    code, err, _ = run_syncd_measured(config, "sync")
    assert code == 0, err
    converged(dovecot, account, maildir)
    idempotent(config)
    assert len(local_snapshot(maildir, "maildir++")["Archive"]) == 2


@pytest.mark.parametrize("connections", [1, 4])
def test_mal03_error_names_the_folder_and_the_other_folders_still_sync(
    tmp_path: Path, dovecot: DevServer, account: User, connections: int
) -> None:
    """Folders INBOX, Archive (attacked), Notes, one after the other on one connection
    or side by side on four: the error names Archive and its announced size; the
    connection is dropped, and INBOX and Notes are synced anyway."""
    code, err, _peak = _attack(
        tmp_path, dovecot, account, b"4294967296", max_connections=connections
    )
    assert code == 1, err
    errors = [line for line in err.splitlines() if "ERROR" in line]
    assert any("Archive" in line and "4294967296" in line for line in errors), err
    local = local_snapshot(tmp_path / "Mail", "maildir++")
    remote = server_snapshot(dovecot, account)
    for folder in ("INBOX", "Notes"):
        assert sorted(v.sha256 for v in local[folder]) == sorted(
            v.sha256 for v in remote[folder]
        ), folder
    assert len(remote["INBOX"]) == 6 + 4 and len(remote["Notes"]) == 2


def test_a_server_that_breaks_every_folder_stops_the_account_after_three(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """Every folder's first body literal announces 4 GiB: each refusal drops that
    folder's connection; after the third the account's run stops with one error (the
    daemon backs off from an account error) instead of logging in again per folder."""
    from devserver.dovecot import populate

    folders = {f"F{i:02d}": 1 for i in range(12)}
    populate(dovecot, account, folders=folders)

    def every_literal(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and b"BODY[] {" in line:
            return re.sub(rb"BODY\[\] \{\d+\}", b"BODY[] {4294967296}", line)
        return line

    with front(dovecot, rewrite=every_literal) as p:
        config = config_for(
            tmp_path, dovecot, account, tmp_path / "Mail", port=p.port, max_connections=1
        )
        logins_before = bytes(p.upstream_bytes).count(b" LOGIN ")
        code, err, _peak = run_syncd_measured(config, "sync", timeout=90)
        logins = bytes(p.upstream_bytes).count(b" LOGIN ") - logins_before
    assert code == 1, err
    assert "the server broke the protocol in 3 folders" in err, err
    assert logins <= 4, f"{logins} logins for 12 folders"  # the first + one per dropped folder
    assert "Traceback" not in err
