"""Large transfers and server limits (RELIABILITY.md NET-07 uploads, SRV-13, SRV-15):
a big APPEND over a slow link is not a timeout while bytes flow; a 20 MB message
round-trips byte-exact both ways; an APPEND over the server's size limit or over quota
keeps the local message, lets the rest continue, exits 1, and (quota) is uploaded once
the quota allows it.  The quota/limit servers are real Dovecots with the quota plugin."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

from faults.common import config_for, converged, duplicates, idempotent, message
from faults.proxy import front
from support import StartServer
from support.imap import append, server_snapshot, session
from support.mail import make_message
from support.maildir import deliver, local_snapshot
from support.run import run_syncd

from devserver.dovecot import DevServer, User


def test_net07_large_upload_over_a_slow_link_is_not_a_timeout(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """NET-07 (uploads): a 20 MB APPEND at 3 MB/s takes ~7 s, longer than the 4 s
    timeout, but every 64 KiB of it moves well within it: the upload must succeed and
    the message arrive exactly once.  (20 MB because loopback gives the client a 4 MB
    send buffer: a smaller message would be "sent" at once; the buffered tail must
    drain within the timeout, hence the rate.)"""
    maildir = tmp_path / "Mail"
    big = message("slowup", size_pad=20_000_000)
    deliver(maildir, big, "S")
    with front(dovecot, rate=3_000_000) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, timeout=4)
        done = run_syncd("sync", config=config, timeout=90)
        assert done.returncode == 0, done.stderr
        remote = server_snapshot(dovecot, account)["INBOX"]
        assert [v.message_id for v in remote] == ["<slowup@faults.test>"]
        assert remote[0].flags == frozenset({"\\Seen"})
        end = converged(dovecot, account, maildir)
        assert len(end["INBOX"]) == 1
        idempotent(config)


QUOTA_CONF = """
mail_plugins = $mail_plugins quota
protocol imap {
  mail_plugins = $mail_plugins imap_quota
}
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=200K
}
"""


def _raise_quota(server: DevServer, user: User) -> None:
    """Give ``user`` a 50 MB quota through a userdb extra field of its passwd-file
    (devserver writes ``name:pw:uid:gid::home::``; the extra fields follow)."""
    path = server.users_dir / user.name
    line = path.read_text(encoding="utf-8").rstrip("\n")
    old = path.stat().st_mtime
    path.write_text(line + "userdb_quota_rule=*:storage=50M\n", encoding="utf-8")
    # Dovecot re-reads a passwd-file when its mtime (whole seconds) changed, at most
    # once a second (as DevServer.set_password does).
    os.utime(path, (int(old) + 1, int(old) + 1))
    time.sleep(1.1)


def test_srv15_over_quota_append_keeps_the_message_and_the_rest_continues(
    tmp_path: Path, dovecot_server: StartServer
) -> None:
    """SRV-15: a 300 kB message does not fit a 200 kB quota.  The run uploads the small
    messages, downloads the server's, keeps the big one locally, says why and exits 1;
    once the quota is raised the next run uploads it exactly once."""
    server = dovecot_server(extra_conf=QUOTA_CONF)
    user = server.add_user()
    maildir = tmp_path / "Mail"
    append(server, user, "INBOX", message("far0"))
    for i in range(3):
        deliver(maildir, message(f"small{i}"), "S")
    deliver(maildir, message("huge", size_pad=300_000), "F")
    deliver(maildir, message("small3"))
    config = config_for(tmp_path, server, user, maildir)
    first = run_syncd("sync", config=config, timeout=60)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert "quota" in first.stderr.lower(), first.stderr
    remote = {v.message_id for v in server_snapshot(server, user)["INBOX"]}
    assert remote == {f"<small{i}@faults.test>" for i in range(4)} | {"<far0@faults.test>"}
    local = {v.message_id: v.flags for v in local_snapshot(maildir, "maildir++")["INBOX"]}
    assert local["<huge@faults.test>"] == frozenset({"\\Flagged"})  # kept, untouched
    assert "<far0@faults.test>" in local  # the download happened
    assert len(local) == 6

    _raise_quota(server, user)
    second = run_syncd("sync", config=config, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "1 uploaded" in second.stderr, second.stderr
    end = converged(server, user, maildir)
    assert len(end["INBOX"]) == 6
    huge = [
        v for v in server_snapshot(server, user)["INBOX"] if v.message_id == "<huge@faults.test>"
    ]
    assert len(huge) == 1 and huge[0].flags == frozenset({"\\Flagged"})
    idempotent(config)


def _server_bodies(server: DevServer, user: User) -> dict[str, bytes]:
    """Message-ID -> exact BODY[] bytes of every INBOX message on the server."""
    out: dict[str, bytes] = {}
    with session(server, user) as c:
        c.select_folder("INBOX", readonly=True)
        for data in c.fetch(c.search("ALL"), ["BODY.PEEK[]"]).values():
            raw = data[b"BODY[]"]
            mid = next(
                line.split(b":", 1)[1].strip().decode()
                for line in raw.split(b"\r\n")
                if line.lower().startswith(b"message-id:")
            )
            out[mid] = raw
    return out


def test_srv13_20_mb_messages_round_trip_byte_exact_both_ways(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """SRV-13: a 20 MB message (a random binary attachment) downloads byte-exact (up to
    CRLF -> LF), and another one uploads byte-exact; a rerun is a no-op.  (Memory is not
    measured; Dovecot announces no APPENDLIMIT, so the over-limit case is not run.)"""
    rng = random.Random(13)
    down = make_message(
        subject="big down", message_id="<bigdown@faults.test>",
        attachment=rng.randbytes(15_000_000),
    )  # fmt: skip
    up = make_message(
        subject="big up", message_id="<bigup@faults.test>",
        attachment=rng.randbytes(15_000_000),
    )  # fmt: skip
    assert len(down) > 20_000_000 and len(up) > 20_000_000
    append(dovecot, account, "INBOX", down)
    maildir = tmp_path / "Mail"
    uploaded = deliver(maildir, up, "S")
    config = config_for(tmp_path, dovecot, account, maildir)
    done = run_syncd("sync", config=config, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 downloaded, 1 uploaded" in done.stderr, done.stderr
    on_server = _server_bodies(dovecot, account)
    assert on_server == {"<bigdown@faults.test>": down, "<bigup@faults.test>": up}
    local = {v.message_id: v.path for v in local_snapshot(maildir, "maildir++")["INBOX"]}
    # Downloads are stored with Unix line ends (syncd.message.to_lf), byte for byte
    # otherwise; the uploaded file is left exactly as it was.
    assert local["<bigdown@faults.test>"].read_bytes() == down.replace(b"\r\n", b"\n")
    assert local["<bigup@faults.test>"].read_bytes() == up
    assert local["<bigup@faults.test>"].name.split(":")[0] == uploaded.name.split(":")[0]
    idempotent(config)


LIMIT_CONF = QUOTA_CONF.replace("*:storage=200K", "*:storage=50M").replace(
    "  quota_vsizes = yes\n", "  quota_vsizes = yes\n  quota_max_mail_size = 1M\n"
)


def _limit_scenario(
    tmp_path: Path, server: DevServer
) -> tuple[User, Path, list[subprocess.CompletedProcess[str]], list[int]]:
    """far0 on the server; small0, toobig (1.5 MB) and small1 locally; two runs through
    a proxy.  Returns the user, Maildir, both runs and the APPENDs each run sent."""
    user = server.add_user()
    maildir = tmp_path / "Mail"
    append(server, user, "INBOX", message("far0"))
    deliver(maildir, message("small0"), "S")
    deliver(maildir, message("toobig", size_pad=1_500_000), "S")
    deliver(maildir, message("small1"))
    runs, appends = [], []
    with front(server) as p:
        config = config_for(tmp_path, server, user, maildir, port=p.port)
        for _ in range(2):
            start = len(p.upstream_bytes)
            runs.append(run_syncd("sync", config=config, timeout=60))
            appends.append(bytes(p.upstream_bytes[start:]).count(b" APPEND "))
    return user, maildir, runs, appends


def test_srv13_append_over_the_servers_size_limit_fails_for_that_message_only(
    tmp_path: Path, dovecot_server: StartServer
) -> None:
    """SRV-13 (limit): the server refuses messages over 1 MB (quota_max_mail_size,
    ``NO [LIMIT]``).  The 1.5 MB local message is refused with a clear warning naming
    the file and the server's reason, and kept; the others go up, the server's come
    down; the run exits 1.  The next run uploads nothing twice."""
    server = dovecot_server(extra_conf=LIMIT_CONF)
    user, maildir, runs, _appends = _limit_scenario(tmp_path, server)
    first = runs[0]
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert "not uploaded" in first.stderr and "[LIMIT]" in first.stderr, first.stderr
    assert "1 downloaded, 2 uploaded" in first.stderr, first.stderr
    remote = {v.message_id for v in server_snapshot(server, user)["INBOX"]}
    assert remote == {"<far0@faults.test>", "<small0@faults.test>", "<small1@faults.test>"}
    local = {v.message_id for v in local_snapshot(maildir, "maildir++")["INBOX"]}
    assert local == remote | {"<toobig@faults.test>"}
    assert runs[1].returncode == 1, runs[1].stderr  # still not uploaded: still said
    assert duplicates(server_snapshot(server, user)) == {}


def test_srv13_refused_append_is_not_retried_every_cycle(
    tmp_path: Path, dovecot_server: StartServer
) -> None:
    server = dovecot_server(extra_conf=LIMIT_CONF)
    _user, _maildir, _runs, appends = _limit_scenario(tmp_path, server)
    assert appends[0] >= 1
    assert appends[1] == 0


def test_srv13_a_held_back_message_is_offered_again_when_it_changes(
    tmp_path: Path, dovecot_server: StartServer
) -> None:
    """SRV-13: after the refusal, runs hold the message back (no APPEND, exit 1, the
    summary says "held back"); ``--retry-refused`` offers it once more (refused again);
    once the file is changed to fit, it is uploaded exactly once and the runs exit 0."""
    server = dovecot_server(extra_conf=LIMIT_CONF)
    user = server.add_user()
    maildir = tmp_path / "Mail"
    deliver(maildir, message("small0"), "S")
    big = deliver(maildir, message("toobig", size_pad=1_500_000), "S")
    with front(server) as p:
        config = config_for(tmp_path, server, user, maildir, port=p.port)

        def run(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
            start = len(p.upstream_bytes)
            done = run_syncd("sync", *args, config=config, timeout=60)
            return done, bytes(p.upstream_bytes[start:]).count(b" APPEND ")

        first, sent = run()
        assert first.returncode == 1 and sent >= 1, first.stderr
        held, sent = run()
        assert (held.returncode, sent) == (1, 0), held.stderr
        assert "1 held back (refused by the server)" in held.stderr, held.stderr
        # A held-back message makes the account's last attempt partial: status exits 1,
        # as the sync did, and says why.
        status = run_syncd("status", "--json", config=config)
        assert status.returncode == 1, status.stderr
        [account] = json.loads(status.stdout)["accounts"].values()
        assert (account["state"], account["error_kind"], account["held_back"]) == (
            "idle",
            "held back",
            1,
        )
        [inbox] = [f for f in account["folders"] if f["folder"] == "INBOX"]
        [entry] = inbox["held_back"]
        assert big.name.startswith(entry["message"]) and "[LIMIT]" in entry["reason"], entry
        again, sent = run("--retry-refused")
        assert (again.returncode, sent) == (1, 1), again.stderr
        assert "[LIMIT]" in again.stderr, again.stderr
        # The user trims the message: a smaller file renamed over it (same unique name).
        current = next((maildir / "cur").glob(big.name.split(":")[0] + "*"))
        trimmed = maildir / "tmp" / "trimmed"
        trimmed.write_bytes(message("toobig", size_pad=1000))
        os.replace(trimmed, current)
        fits, sent = run()
        assert (fits.returncode, sent) == (0, 1), fits.stderr
        assert "1 uploaded" in fits.stderr, fits.stderr
        quiet, sent = run()
        assert (quiet.returncode, sent) == (0, 0), quiet.stderr
    remote = server_snapshot(server, user)["INBOX"]
    assert sorted(v.message_id for v in remote) == ["<small0@faults.test>", "<toobig@faults.test>"]
    converged(server, user, maildir)
