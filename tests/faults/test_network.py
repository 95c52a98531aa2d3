"""Network faults (RELIABILITY.md group B, plus CC-03): a proxy between syncd and the real
Dovecot cuts, stalls, delays or resets the link at chosen bytes.  The run that meets the
fault must end (never hang) with a clear error and leave nothing half-done; the next run
over a healthy link converges: nothing lost, nothing twice, flags equal (O1-O4)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from faults.common import config_for, converged, duplicates, message, seed, settles
from faults.proxy import Fault, front
from support.imap import append, server_snapshot
from support.maildir import deliver, local_snapshot
from support.run import run_syncd, toml_text

from devserver.dovecot import DevServer, User

BIG = 2_500_000  # bytes of filler: its literal announces {25xxxxx}


@pytest.mark.parametrize("action", ["cut", "rst", "halfclose"])
def test_net01_link_lost_mid_literal_then_next_run_converges(
    tmp_path: Path, dovecot: DevServer, account: User, action: str
) -> None:
    """NET-01: the link dies in the middle of a 2.5 MB BODY[] literal."""
    append(dovecot, account, "INBOX", message("big", size_pad=BIG))
    seed(dovecot, account, tmp_path / "Mail")
    maildir = tmp_path / "Mail"
    fault = Fault(action, "down", after=b"BODY[] {25", extra=400_000)  # type: ignore[arg-type]
    with front(dovecot, fault=fault) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, timeout=5)
        first = run_syncd("sync", config=config, timeout=90)
        assert p.fired == 1
        assert first.returncode == 1, first.stderr
        assert "Traceback" not in first.stderr
        assert "connection" in first.stderr.lower()
        # nothing half-written where a mail reader would see it
        for view in local_snapshot(maildir, "maildir++").get("INBOX", []):
            assert view.message_id is not None and view.message_id.endswith("@faults.test>")
        end = settles(dovecot, account, maildir, config, timeout=90)
        assert len(end["INBOX"]) == 11


def test_net02_server_stalls_mid_response_times_out(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """NET-02 (and NET-08 for a one-shot run): bytes stop flowing, the socket stays open."""
    append(dovecot, account, "INBOX", message("big", size_pad=BIG))
    seed(dovecot, account, tmp_path / "Mail")
    maildir = tmp_path / "Mail"
    with front(dovecot, fault=Fault("stall", "down", after=b"BODY[] {25", extra=1000)) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, timeout=2)
        first = run_syncd("sync", config=config, timeout=90)  # a hang fails here
        assert p.fired == 1
        assert first.returncode == 1, first.stderr
        assert "timed out" in first.stderr, first.stderr
        second = run_syncd("sync", config=config, timeout=90)
        assert second.returncode == 0, second.stderr
    converged(dovecot, account, maildir)


def test_net03_starttls_acknowledged_then_silence(
    tmp_path: Path, dovecot_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NET-03: the server says OK to STARTTLS and then never answers the handshake."""
    server = dovecot_server(tls="starttls")  # type: ignore[operator]
    user = server.add_user()
    maildir = tmp_path / "Mail"
    deliver(maildir, message("local"), "S")
    fault = Fault("stall", "down", after=b"Begin TLS negotiation now.\r\n")
    with front(server, fault=fault) as p:
        config = config_for(tmp_path, server, user, maildir, port=p.port, timeout=2)
        first = run_syncd("sync", config=config, timeout=60)
        assert p.fired == 1
        assert first.returncode == 1, first.stderr
        assert "timed out" in first.stderr.lower() or "handshake" in first.stderr.lower()
        assert user.password.encode() not in bytes(p.upstream_bytes)


def test_net04_untagged_bye_mid_fetch(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    """NET-04: the server kicks us (`doveadm kick`: untagged BYE) while we fetch bodies."""
    seed(dovecot, account, tmp_path / "Mail")
    maildir = tmp_path / "Mail"
    kicked: list[str] = []

    def kick_once(command: str) -> None:
        if "BODY.PEEK[]" in command and not kicked:
            kicked.append(command)
            dovecot.kick(account)

    with front(dovecot, on_command=kick_once) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, max_connections=1)
        first = run_syncd("sync", config=config, timeout=60)
        assert kicked
        assert first.returncode == 1, first.stderr
        assert "Traceback" not in first.stderr
        second = run_syncd("sync", config=config, timeout=60)
        assert second.returncode == 0, second.stderr
    converged(dovecot, account, maildir)


def test_net05_append_acknowledged_too_late_is_not_appended_twice(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """NET-05: the APPEND succeeded on the server but its tagged OK arrives after our
    timeout; the next run must find the uploaded messages instead of uploading again."""
    maildir = tmp_path / "Mail"
    for i in range(5):
        deliver(maildir, message(f"up{i}"), "S")
    fault = Fault("delay", "down", after=b"OK [APPENDUID", seconds=6)
    with front(dovecot, fault=fault) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, timeout=2)
        first = run_syncd("sync", config=config, timeout=60)
        assert p.fired == 1
        assert first.returncode == 1, first.stderr
        assert len(server_snapshot(dovecot, account)["INBOX"]) == 5  # the APPEND did happen
        end = settles(dovecot, account, maildir, config, timeout=60)
        assert len(end["INBOX"]) == 5


@pytest.mark.parametrize(
    ("direction", "after"),
    [
        ("up", b"+FLAGS.SILENT (\\Deleted)\r\n"),  # \Deleted stored, UID EXPUNGE never sent
        ("down", b"* VANISHED"),  # expunged on the server, the answer lost
    ],
)
def test_net06_link_lost_during_a_large_expunge(
    tmp_path: Path, dovecot: DevServer, account: User, direction: str, after: bytes
) -> None:
    """NET-06: 15 of 40 messages deleted locally; the link dies around the EXPUNGE.  The
    next run must not download the \\Deleted (or expunged) messages again."""
    for i in range(40):
        append(dovecot, account, "INBOX", message(f"m{i}"))
    maildir = tmp_path / "Mail"
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    for path in sorted((maildir / "cur").iterdir())[:15]:
        path.unlink()
    fault = Fault("cut", direction, after=after)  # type: ignore[arg-type]
    with front(dovecot, fault=fault) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        first = run_syncd("sync", config=config, timeout=60)
        assert p.fired == 1
        assert first.returncode == 1, first.stderr
        end = settles(dovecot, account, maildir, config, timeout=60)
        assert len(end["INBOX"]) == 25


def test_net07_slow_link_is_not_a_timeout(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """NET-07: a 300 kB download at 100 kB/s with 50 ms latency takes longer than the
    1 s timeout in total, but bytes keep flowing: timeouts are idle-based.  (Uploads:
    test_limits.py::test_net07_large_upload_over_a_slow_link_is_not_a_timeout.)"""
    append(dovecot, account, "INBOX", message("slow", size_pad=300_000))
    maildir = tmp_path / "Mail"
    with front(dovecot, latency=0.05, rate=100_000) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, timeout=1)
        done = run_syncd("sync", config=config, timeout=90)
        assert done.returncode == 0, done.stderr
    converged(dovecot, account, maildir)


def test_net09_connection_refused_changes_nothing(tmp_path: Path) -> None:
    """NET-09: nothing listens; one clear line, exit 1, no Maildir change."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: refused
    maildir = tmp_path / "Mail"
    deliver(maildir, message("local"), "S")
    before = sorted(p.name for p in (maildir / "cur").iterdir())
    config = tmp_path / "config.toml"
    config.write_text(
        toml_text(
            {
                "general": {"state_dir": str(tmp_path / "state")},
                "accounts": {
                    "t": {
                        "host": "127.0.0.1",
                        "port": port,
                        "tls": "none",
                        "user": "x",
                        "password_command": ["printf", "%s", "pw-never-sent"],
                        "maildir": str(maildir),
                    }
                },
            }
        )
    )
    done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 1
    assert "cannot connect" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in (maildir / "cur").iterdir()) == before


def test_net09_wrong_password_one_attempt_no_fallback(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """NET-09: a refused login is not retried in a loop and not retried another way."""
    maildir = tmp_path / "Mail"
    deliver(maildir, message("local"), "S")
    with front(dovecot) as p:
        config = config_for(
            tmp_path, dovecot, account, maildir, port=p.port,
            password_command=["printf", "%s", "wrong-password-123"],
        )  # fmt: skip
        done = run_syncd("sync", config=config, timeout=60)
        wire = bytes(p.upstream_bytes)
        assert p.connections == 1
    assert done.returncode == 1
    assert "login refused" in done.stderr, done.stderr
    assert wire.count(b" LOGIN ") + wire.count(b" AUTHENTICATE ") == 1
    assert server_snapshot(dovecot, account) == {"INBOX": []}


def test_cc03_link_cut_mid_append_literal(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """CC-03: the connection dies after half of an APPEND literal was sent; Dovecot drops
    the partial message and the next run uploads it exactly once."""
    maildir = tmp_path / "Mail"
    deliver(maildir, message("bigup", size_pad=1_000_000), "S")
    for i in range(3):
        deliver(maildir, message(f"small{i}"))
    with front(dovecot, fault=Fault("cut", "up", after=b"APPEND", extra=500_000)) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        first = run_syncd("sync", config=config, timeout=60)
        assert p.fired == 1
        assert first.returncode == 1, first.stderr
        second = run_syncd("sync", config=config, timeout=60)
        assert second.returncode == 0, second.stderr
    end = converged(dovecot, account, maildir)
    assert len(end["INBOX"]) == 4
    assert duplicates(server_snapshot(dovecot, account)) == {}
