"""The private-Dovecot harness itself: what every integration test stands on."""

from __future__ import annotations

import imaplib
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import imapclient
import pytest
from support import StartServer, contents, summary
from support.imap import append, connect, server_snapshot, session, set_flags
from support.mail import make_message
from support.maildir import deliver, folder_path, local_snapshot, set_local_flags
from support.run import account_config, write_config

import devserver.dovecot as devserver
from devserver.dovecot import DevServer, User


def _gone(server: DevServer) -> bool:
    return not server.running and devserver._instance_pids(server.instance) == []


def test_fresh_account_logs_in_to_an_empty_inbox(dovecot: DevServer, account: User) -> None:
    with socket.create_connection((dovecot.host, dovecot.port)) as sock:
        assert sock.recv(100).startswith(b"* OK")
    with session(dovecot, account) as client:
        assert b"QRESYNC" in client.capabilities()
    assert server_snapshot(dovecot, account) == {"INBOX": []}


def test_wrong_password_is_refused(dovecot: DevServer, account: User) -> None:
    with pytest.raises(imapclient.exceptions.LoginError):
        connect(dovecot, User(account.name, account.password + "x"))


def test_populate_fills_the_expected_folders(dovecot: DevServer, account: User) -> None:
    assert devserver.populate(dovecot, account, seed=7) == dict(devserver.DEFAULT_FOLDERS)
    snap = server_snapshot(dovecot, account)
    assert {f: len(v) for f, v in snap.items()} == {
        "INBOX": 30,
        "Archive": 20,
        "Lists/python": 15,
        "Projets/Été": 10,
    }
    views = [v for folder in snap.values() for v in folder]
    assert len({v.message_id for v in views}) == len(views)
    assert any(v.subject and not v.subject.isascii() for v in views)
    assert {"\\Seen", "\\Flagged", "\\Answered"} <= set().union(*(v.flags for v in views))
    assert any(v.size > 1000 for v in views)  # the ones with an attachment


def test_populate_is_deterministic(dovecot: DevServer) -> None:
    one, two = dovecot.add_user(), dovecot.add_user()
    small = {"INBOX": 5, "Projets/Été": 3}
    devserver.populate(dovecot, one, seed=3, folders=small)
    devserver.populate(dovecot, two, seed=3, folders=small)
    assert summary(server_snapshot(dovecot, one)) == summary(server_snapshot(dovecot, two))


def test_tls_certificate_verifies_for_localhost(dovecot_server: StartServer) -> None:
    server = dovecot_server(tls="tls")
    assert server.ca_file is not None
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    with (
        socket.create_connection(("localhost", server.port)) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.recv(100).startswith(b"* OK")
    user = server.add_user()
    with session(server, user) as client:
        assert client.list_folders()


def test_starttls_refuses_login_before_tls(dovecot_server: StartServer) -> None:
    server = dovecot_server(tls="starttls")
    user = server.add_user()
    plain = imaplib.IMAP4(server.host, server.port)
    try:
        assert "STARTTLS" in plain.capabilities
        with pytest.raises(imaplib.IMAP4.error, match=r"PRIVACYREQUIRED|disallowed"):
            plain.login(user.name, user.password)
    finally:
        plain.shutdown()
    with session(server, user) as client:  # STARTTLS first, then LOGIN
        assert client.list_folders()


@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_wrong_host_certificate_fails_verification(dovecot_server: StartServer, tls: str) -> None:
    server = dovecot_server(tls=tls, wrong_host_cert=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(server, server.add_user())


def test_capabilities_can_be_hidden(dovecot_server: StartServer) -> None:
    server = dovecot_server(capability=devserver.capabilities_without("MOVE", "UIDPLUS"))
    with session(server, server.add_user()) as client:
        caps = client.capabilities()
    assert b"MOVE" not in caps
    assert b"UIDPLUS" not in caps
    assert b"IDLE" in caps


def test_dot_separator(dovecot_server: StartServer) -> None:
    server = dovecot_server(separator=".")
    user = server.add_user()
    devserver.populate(server, user, folders={"Lists/python": 2})
    with session(server, user) as client:
        names = {name for _f, _d, name in client.list_folders()}
    assert "Lists.python" in names
    assert len(server_snapshot(server, user)["Lists/python"]) == 2


def test_kick_disconnects_the_user(dovecot: DevServer, account: User) -> None:
    client = connect(dovecot, account)
    client.select_folder("INBOX")
    dovecot.kick(account)
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()
        client.noop()


def test_stop_leaves_no_process(fresh_dovecot: StartServer) -> None:
    server = fresh_dovecot()
    server.add_user()
    server.stop()
    assert _gone(server)
    server.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=2)


def test_a_broken_config_fails_loudly_with_the_log(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="syncd-broken-"))
    root.chmod(0o755)
    with pytest.raises(devserver.DevServerError, match="no_such_setting"):
        devserver.start(root, extra_conf="no_such_setting = 1")
    mine = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, str(root))]
    assert mine == []


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_command_line_start_and_stop(tmp_path: Path) -> None:
    directory = tmp_path / "server"  # under /tmp/pytest-of-root (0700): gets relocated
    out = subprocess.run(
        [sys.executable, "-m", "devserver.dovecot", "start", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    info = json.loads(out.stdout)
    try:
        assert set(info) == {"host", "port", "pid", "user", "password", "ca_file"}
        client = imapclient.IMAPClient(info["host"], info["port"], ssl=False)
        client.login(info["user"], info["password"])
        client.logout()
    finally:
        subprocess.run(
            [sys.executable, "-m", "devserver.dovecot", "stop", "--dir", str(directory)],
            capture_output=True,
            timeout=60,
            check=True,
        )
    assert not devserver._alive(info["pid"])


def test_support_snapshots_agree_across_sides(
    dovecot: DevServer, account: User, tmp_path: Path
) -> None:
    raw = make_message(subject="Réunion — été", attachment=b"\x00\x01" * 100)
    uid = append(dovecot, account, "Projets/Été", raw, flags=["\\Seen", "$Forwarded"])
    set_flags(dovecot, account, "Projets/Été", [uid], ["\\Flagged"], mode="add")
    for layout in ("maildir++", "nested"):
        root = tmp_path / layout
        msg = deliver(folder_path(root, layout, "Projets/Été"), raw, new=True)
        set_local_flags(msg, "SPF")
        deliver(folder_path(root, layout, "INBOX"), b"", "")
        local = local_snapshot(root, layout)
        assert local["Projets/Été"][0].subject == "Réunion — été"
        server = {k: v for k, v in server_snapshot(dovecot, account).items() if k != "INBOX"}
        assert summary(server) == summary({"Projets/Été": local["Projets/Été"]})
        assert contents(local)["INBOX"] == contents({"x": local["INBOX"]})["x"]


def test_written_config_is_the_toml_a_user_would_write(
    dovecot_server: StartServer, tmp_path: Path
) -> None:
    server = dovecot_server(tls="tls")
    user = server.add_user(password='p"w\\ %s x')
    account = account_config(server, user, tmp_path / "Mail", exclude=["Spam"], layout=None)
    path = write_config(tmp_path, {"work": account, "ünï": {"host": "x"}})
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["general"] == {"state_dir": str(tmp_path / "state")}
    work = data["accounts"]["work"]
    assert work["tls"] == "tls"
    assert work["ca_file"] == str(server.ca_file)
    assert work["exclude"] == ["Spam"]
    assert "layout" not in work
    assert data["accounts"]["ünï"] == {"host": "x"}
    # The password command, run as syncd would (argv, no shell), prints the password.
    out = subprocess.run(work["password_command"], capture_output=True, text=True, check=True)
    assert out.stdout == user.password
    with session(server, user) as client:  # and the server accepts that password
        assert client.list_folders()


def test_traffic_counts_what_a_session_fetched_and_appended(dovecot: DevServer) -> None:
    user = dovecot.add_user()
    body = b"Subject: counted\r\n\r\n" + b"x" * 5000 + b"\r\n"
    before = dovecot.log_offset()
    client = dovecot.connect(user)
    client.append("INBOX", body)
    client.logout()
    appended = dovecot.traffic(user, before)
    assert appended.sessions == 1
    assert appended.in_bytes > len(body)
    assert appended.body_bytes == 0

    before = dovecot.log_offset()
    client = dovecot.connect(user)
    client.select_folder("INBOX")
    client.fetch([1], ["BODY.PEEK[]"])
    client.logout()
    fetched = dovecot.traffic(user, before)
    assert fetched.sessions == 1
    assert fetched.body_count == 1
    assert fetched.body_bytes == len(body)
    assert fetched.in_bytes < 1000
