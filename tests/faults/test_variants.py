"""Server variants (RELIABILITY.md group D, [D]): the core scenario -- every kind of
change on both sides after a first sync -- must end in the same state whether Dovecot
offers UIDPLUS, CONDSTORE, QRESYNC and MOVE or hides them, whatever its hierarchy
separator, and after the server reassigned every UID (SRV-01, SRV-14, SRV-04, SRV-07)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from faults.common import (
    EXPECTED_CORE,
    config_for,
    converged,
    core_changes,
    core_check,
    core_first_sync,
    idempotent,
    message,
    seed,
)
from support import StartServer
from support.imap import append, server_snapshot, session
from support.maildir import local_snapshot
from support.run import run_syncd

from devserver.dovecot import DevServer, capabilities_without

VARIANTS = {
    "all-extensions": {},
    "no-UIDPLUS": {"capability": capabilities_without("UIDPLUS")},
    "no-CONDSTORE-QRESYNC": {"capability": capabilities_without("CONDSTORE", "QRESYNC")},
    "no-MOVE": {"capability": capabilities_without("MOVE")},
    "none-of-them": {
        "capability": capabilities_without("UIDPLUS", "CONDSTORE", "QRESYNC", "MOVE", "MULTIAPPEND")
    },
    "separator-dot": {"separator": "."},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_core_scenario_same_end_state(
    tmp_path: Path, dovecot_server: StartServer, variant: str
) -> None:
    server = dovecot_server(**VARIANTS[variant])
    user = server.add_user()
    config, maildir = core_first_sync(tmp_path, server, user)
    core_changes(server, user, maildir)
    core_check(
        server, user, maildir, config, deleted_kept="UIDPLUS" in variant or "none" in variant
    )


def _reset_uids(server: DevServer, user: object, folder: str = "") -> None:
    """Delete a server folder's dovecot-uidlist and index files: Dovecot then gives every
    message a new UID and the folder a new UIDVALIDITY (documented behaviour)."""
    base = server.maildir(user)  # type: ignore[arg-type]
    where = base / f".{folder}" if folder else base
    removed = 0
    for path in list(where.glob("dovecot-uidlist")) + list(where.glob("dovecot.index*")):
        path.unlink()
        removed += 1
    assert removed, f"no Dovecot index files in {where}"


@pytest.mark.parametrize("when", ["before-changes", "with-changes"])
def test_srv01_uids_reset_on_the_server(tmp_path: Path, dovecot: DevServer, when: str) -> None:
    """SRV-01: the server reassigns every UID (new UIDVALIDITY), content unchanged:
    messages are re-paired, nothing downloaded or uploaded twice, nothing deleted."""
    user = dovecot.add_user()
    config, maildir = core_first_sync(tmp_path, dovecot, user)
    if when == "before-changes":
        _reset_uids(dovecot, user)
        _reset_uids(dovecot, user, "Archive")
        done = run_syncd("sync", config=config, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "0 downloaded, 0 uploaded" in done.stderr, done.stderr
        assert "UIDVALIDITY" in done.stderr
        converged(dovecot, user, maildir)
        core_changes(dovecot, user, maildir)
        core_check(dovecot, user, maildir, config)
        return
    # Changes on both sides *and* the UID reset before one run: syncd cannot tell a
    # deletion from a message it never paired, so it errs on the side of keeping:
    # far1 (deleted locally) and far3 (expunged on the server) come back.  Nothing is
    # lost, nothing is twice, and the run after is a no-op.
    core_changes(dovecot, user, maildir)
    _reset_uids(dovecot, user)
    done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 0, done.stderr
    end = converged(dovecot, user, maildir)
    got = {mid for mid, _h, _f in end["INBOX"]}
    assert set(EXPECTED_CORE["INBOX"]) <= got
    assert got - set(EXPECTED_CORE["INBOX"]) <= {"<far1@faults.test>", "<far3@faults.test>"}
    idempotent(config)


def test_srv02_folder_recreated_empty_keeps_local_mail(tmp_path: Path, dovecot: DevServer) -> None:
    """SRV-02/SRV-03: the server folder is deleted and re-created empty (new UIDVALIDITY,
    no messages): local mail is untouched and not silently re-uploaded or deleted."""
    user = dovecot.add_user()
    maildir = tmp_path / "Mail"
    for i in range(8):
        append(dovecot, user, "Archive", message(f"keep{i}"))
    config = config_for(tmp_path, dovecot, user, maildir)
    run_syncd("sync", config=config, check=True)
    with session(dovecot, user) as c:
        c.delete_folder("Archive")
        c.create_folder("Archive")
    done = run_syncd("sync", config=config, timeout=60)
    local = local_snapshot(maildir, "maildir++")
    assert len(local["Archive"]) == 8  # nothing deleted locally
    if done.returncode == 0:
        # re-uploading is acceptable only as "the same 8 messages, once each"
        converged(dovecot, user, maildir)
    else:
        assert "Archive" in done.stderr
        assert server_snapshot(dovecot, user)["Archive"] == []


def test_srv09_non_ascii_and_special_names_round_trip(tmp_path: Path, dovecot: DevServer) -> None:
    """SRV-09: names with umlauts, `&`, Cyrillic, spaces, quotes and % survive both ways
    and are stable across runs."""
    user = dovecot.add_user()
    names = ["Entwürfe", "A & B", "Réponses 1200+1201", "проект", 'say "hi"', "50% off"]
    for name in names:
        append(dovecot, user, name, message(f"srv-{names.index(name)}"))
    maildir = tmp_path / "Mail"
    seed(dovecot, user, maildir, n_far=1, n_near=1)
    config = config_for(tmp_path, dovecot, user, maildir)
    run_syncd("sync", config=config, check=True)
    end = converged(dovecot, user, maildir)
    for name in names:
        assert len(end[name]) == 1, name
    again = run_syncd("sync", config=config, timeout=60)
    assert "0 downloaded, 0 uploaded" in again.stderr
    assert "creating" not in again.stderr


def test_variants_do_not_leak_between_runs(tmp_path: Path) -> None:
    """The UID reset helper only touches Dovecot's own index files (guards the test)."""
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("dovecot-uidlist", "dovecot.index", "dovecot.index.log", "cur"):
        (folder / name).touch()
    fake = type("S", (), {"maildir": lambda self, u: folder})()
    _reset_uids(fake, None)  # type: ignore[arg-type]
    assert sorted(p.name for p in folder.iterdir()) == ["cur"]
    shutil.rmtree(folder)


@pytest.mark.parametrize("variant", ["all-extensions", "no-MOVE"])
def test_trash_moves_a_local_deletion_once(
    tmp_path: Path, dovecot_server: StartServer, variant: str
) -> None:
    """With ``trash``, a local deletion moves the server copy to Trash (UID MOVE, or COPY
    then \\Deleted + UID EXPUNGE without MOVE): once, never lost."""
    server = dovecot_server(**VARIANTS[variant])
    user = server.add_user()
    config, maildir = core_first_sync(tmp_path, server, user, trash="Trash")
    victim = next(
        v
        for v in local_snapshot(maildir, "maildir++")["INBOX"]
        if v.message_id == "<far1@faults.test>"
    )
    victim.path.unlink()
    for _ in range(2):
        done = run_syncd("sync", config=config, timeout=60)
        assert done.returncode == 0, done.stderr
    end = converged(server, user, maildir)
    assert "<far1@faults.test>" not in {m for m, _h, _f in end["INBOX"]}
    assert [m for m, _h, _f in end["Trash"]] == ["<far1@faults.test>"]
    idempotent(config)


def test_trash_move_is_complete_after_one_run(tmp_path: Path, dovecot: DevServer) -> None:
    """O4 with ``trash``: the run right after a sync that moved mail to Trash changes
    nothing."""
    user = dovecot.add_user()
    config, maildir = core_first_sync(tmp_path, dovecot, user, trash="Trash")
    next(v for v in local_snapshot(maildir, "maildir++")["INBOX"]).path.unlink()
    run_syncd("sync", config=config, check=True)
    idempotent(config)
