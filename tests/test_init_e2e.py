"""`syncd init ADDRESS` end to end, as a user runs it, without leaving 127.0.0.1.

Every source is a local server this file starts and stops: an HTTP server standing
in for the ISPDB, a tiny UDP DNS server (dnspython builds the answers) for SRV, MX
and the autoconfig host names, and the suite's private Dovecot with its throwaway
CA.  `--dns-server` sends every look-up to the local DNS server, so
autoconfig.example.org and friends get NXDOMAIN instead of a trip to the Internet.
"""

from __future__ import annotations

import contextlib
import http.server
import shlex
import socket
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import keyring
import keyring.backend
import pytest
from click.testing import CliRunner
from support import StartServer
from support.maildir import local_snapshot
from support.run import run_syncd

from devserver.dovecot import DevServer, User, populate
from syncd.cli.init import init_command
from syncd.config import load_config
from syncd.discover.http import MAX_BODY, FetchError, HttpFetcher

# --------------------------------------------------------------------------- local servers


class _Handler(http.server.BaseHTTPRequestHandler):
    documents: dict[str, bytes]
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        target = self.documents.get("redirect:" + self.path.split("?")[0])
        if target is not None:
            self.send_response(302)
            self.send_header("Location", target.decode())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.documents.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Web:
    port: int
    documents: dict[str, bytes]
    requests: list[str]

    @property
    def ispdb(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1.1/"


@pytest.fixture
def web() -> Iterator[Web]:
    """An HTTP server on 127.0.0.1 (free port) serving ``documents`` by path; a
    ``"redirect:PATH"`` entry answers PATH with a 302 to its value."""
    documents: dict[str, bytes] = {}
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"documents": documents, "requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Web(server.server_address[1], documents, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Dns:
    port: int
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)

    @property
    def option(self) -> str:
        return f"127.0.0.1:{self.port}"


def _serve_dns(sock: socket.socket, zone: Dns, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            wire, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        except OSError:
            return
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text().lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            zone.queries.append(f"{rdtype} {name}")
            answers = zone.records.get((name, rdtype))
            if answers:
                response.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, *answers))
            elif not any(n == name for n, _t in zone.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(response.to_wire(), peer)


@pytest.fixture
def dns_server() -> Iterator[Dns]:
    """A UDP DNS server on 127.0.0.1 (free port) answering from ``records``:
    ``{("_imaps._tcp.example.org.", "SRV"): ["0 1 993 localhost."]}``; other names
    get NXDOMAIN."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    zone = Dns(sock.getsockname()[1])
    stop = threading.Event()
    thread = threading.Thread(target=_serve_dns, args=(sock, zone, stop), daemon=True)
    thread.start()
    try:
        yield zone
    finally:
        stop.set()
        thread.join(5)
        sock.close()


# --------------------------------------------------------------------------- helpers


def autoconfig_xml(host: str, port: int, socket_type: str = "SSL") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <incomingServer type="pop3">
      <hostname>{host}</hostname><port>995</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>{host}</hostname><port>{port}</port><socketType>{socket_type}</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
  </emailProvider>
</clientConfig>""".encode()


@pytest.fixture(scope="module")
def tls_dovecot(dovecot_server: StartServer) -> DevServer:
    return dovecot_server(tls="tls")


def init(
    config: Path,
    address: str,
    *extra: str,
    web: Web,
    dns_zone: Dns,
    user: User | None = None,
    server: DevServer | None = None,
    maildir: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    args = [
        "init", address, "--non-interactive",
        "--ispdb", web.ispdb,
        "--dns-server", dns_zone.option,
        "--timeout", "5",
    ]  # fmt: skip
    if user is not None:
        args += ["--password-command", shlex.join(["printf", "%s", user.password])]
    if server is not None and server.ca_file is not None:
        args += ["--ca-file", str(server.ca_file)]
    if maildir is not None:
        args += ["--maildir", str(maildir)]
    return run_syncd(*args, *extra, config=config, timeout=120)


def assert_syncs(tmp_path: Path, config: Path, maildir: Path, expected: dict[str, int]) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    run_syncd("check", config=config, env=env, check=True)
    run_syncd("sync", config=config, env=env, check=True)
    snapshot = local_snapshot(maildir, "maildir++")
    assert {folder: len(views) for folder, views in snapshot.items()} == expected


# --------------------------------------------------------------------------- tests


def test_ispdb_config_is_written_checked_and_syncs(
    tmp_path: Path, tls_dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    user = tls_dovecot.add_user()
    populate(tls_dovecot, user, folders={"INBOX": 3, "Archive": 2})
    web.documents["/v1.1/example.org"] = autoconfig_xml("localhost", tls_dovecot.port)
    config, maildir = tmp_path / "conf" / "config.toml", tmp_path / "Mail"

    proc = init(config, f"{user.name}@example.org", "--name", "ex", web=web,
                dns_zone=dns_server, user=user, server=tls_dovecot, maildir=maildir)  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "autoconfig https://autoconfig.example.org/" in out and "does not exist" in out
    assert f"ISPDB {web.ispdb}example.org: found localhost:{tls_dovecot.port} (tls)" in out
    assert "login ok" in out
    assert out.strip().splitlines()[-1] == f"next: syncd --config {config} sync ex"
    account = tomllib.loads(config.read_text())["accounts"]["ex"]
    assert account["host"] == "localhost" and account["port"] == tls_dovecot.port
    assert account["tls"] == "tls" and account["user"] == user.name  # %EMAILLOCALPART%
    assert account["ca_file"] == str(tls_dovecot.ca_file)
    assert "auth" not in account  # a password account: nothing the schema does not know
    assert config.stat().st_mode & 0o077 == 0
    assert "A autoconfig.example.org." in dns_server.queries
    assert_syncs(tmp_path, config, maildir, {"INBOX": 3, "Archive": 2})


def test_srv_records_are_used_when_no_document_exists(
    tmp_path: Path, tls_dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    user = tls_dovecot.add_user()
    populate(tls_dovecot, user, folders={"INBOX": 2})
    dns_server.records[("_imaps._tcp.example.net.", "SRV")] = [
        f"0 10 {tls_dovecot.port} localhost.",
    ]
    dns_server.records[("_imap._tcp.example.net.", "SRV")] = ["0 0 0 ."]
    config, maildir = tmp_path / "config.toml", tmp_path / "Mail"

    proc = init(config, f"{user.name}@example.net", "--user", user.name, web=web,
                dns_zone=dns_server, user=user, server=tls_dovecot, maildir=maildir)  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    assert "SRV _imap._tcp.example.net: service not offered" in proc.stdout
    assert f"SRV _imaps._tcp.example.net: found localhost:{tls_dovecot.port} (tls)" in proc.stdout
    assert "example" in tomllib.loads(config.read_text())["accounts"]
    assert_syncs(tmp_path, config, maildir, {"INBOX": 2})


def test_mx_domain_leads_to_the_hosters_settings(
    tmp_path: Path, tls_dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    user = tls_dovecot.add_user()
    populate(tls_dovecot, user, folders={"INBOX": 1})
    dns_server.records[("example.com.", "MX")] = ["20 mx2.hoster.test.", "10 mx1.hoster.test."]
    web.documents["/v1.1/hoster.test"] = autoconfig_xml("localhost", tls_dovecot.port)
    config, maildir = tmp_path / "config.toml", tmp_path / "Mail"

    proc = init(config, f"{user.name}@example.com", web=web, dns_zone=dns_server,
                user=user, server=tls_dovecot, maildir=maildir)  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    assert "MX example.com: mx1.hoster.test (domain hoster.test)" in proc.stdout
    assert f"ISPDB (MX) {web.ispdb}hoster.test: found" in proc.stdout
    assert_syncs(tmp_path, config, maildir, {"INBOX": 1})


COMMENTED = """\
# Hand-written; init must not touch a byte of this.

[general]
state_dir = "state"   # next to this file

# The first account.
[accounts.first]
host = "127.0.0.1"
tls = "none"          # loopback only
user = "someone"
password_command = ["printf", "%s", "x"]
maildir = "Mail/first"

# Plugins after the accounts, on purpose.
[plugins]
# enable = ["lists"]
"""


def test_second_account_keeps_comments_and_order(
    tmp_path: Path, tls_dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    user = tls_dovecot.add_user()
    web.documents["/v1.1/example.org"] = autoconfig_xml("localhost", tls_dovecot.port)
    config = tmp_path / "config.toml"
    config.write_text(COMMENTED)

    proc = init(config, f"{user.name}@example.org", "--name", "second", web=web,
                dns_zone=dns_server, user=user, server=tls_dovecot,
                maildir=tmp_path / "Mail" / "second")  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    text = config.read_text()
    assert text.startswith(COMMENTED)
    assert list(load_config(config).accounts) == ["first", "second"]
    run_syncd("check", config=config, check=True)

    again = init(config, f"{user.name}@example.org", "--name", "second", web=web,
                 dns_zone=dns_server, user=user, server=tls_dovecot)  # fmt: skip
    assert again.returncode == 2
    assert "already has an account named 'second'; use --name" in again.stderr
    assert "looking up" not in again.stdout  # refused before any network traffic
    assert config.read_text() == text


def test_plaintext_only_server_gets_no_password(
    tmp_path: Path, dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    assert dovecot.tls == "none"
    user = dovecot.add_user()
    web.documents["/v1.1/example.org"] = autoconfig_xml("127.0.0.1", dovecot.port, "plain")
    config = tmp_path / "config.toml"

    proc = init(config, f"{user.name}@example.org", web=web, dns_zone=dns_server, user=user)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no TLS" in lines[0] and "plaintext" in lines[0]
    assert user.password not in proc.stdout + proc.stderr
    assert not config.exists()
    with contextlib.suppress(FileNotFoundError):  # no login was even tried
        assert f"user=<{user.name}>" not in dovecot.log_file.read_text()


def test_starttls_is_used_only_when_advertised(
    tmp_path: Path, dovecot_server: StartServer, web: Web, dns_server: Dns
) -> None:
    server = dovecot_server(tls="starttls")
    user = server.add_user()
    populate(server, user, folders={"INBOX": 2})
    # The document says "plain": the probe finds STARTTLS advertised and upgrades.
    web.documents["/v1.1/example.org"] = autoconfig_xml(server.host, server.port, "plain")
    config, maildir = tmp_path / "config.toml", tmp_path / "Mail"

    proc = init(config, f"{user.name}@example.org", web=web, dns_zone=dns_server,
                user=user, server=server, maildir=maildir)  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    account = tomllib.loads(config.read_text())["accounts"]["example"]
    assert account["tls"] == "starttls"
    assert_syncs(tmp_path, config, maildir, {"INBOX": 2})


def test_nothing_found_says_what_was_tried(tmp_path: Path, web: Web, dns_server: Dns) -> None:
    config = tmp_path / "config.toml"
    proc = init(config, "jane@nowhere.example", web=web, dns_zone=dns_server)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "syncd: no IMAP settings found for jane@nowhere.example; tried:"
    tried = [line.strip().split()[0] for line in lines[1:-1]]
    assert tried == ["autoconfig", "autoconfig", "well-known", "ISPDB", "SRV", "SRV", "MX"]
    assert web.requests == ["/v1.1/nowhere.example"]
    assert not config.exists()


def test_oauth2_profile_writes_provider_keys_and_exclusions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gmail through the built-in profile. The probe is replaced: the real
    imap.gmail.com is out of bounds for tests, and OAuth2 sends no password anyway."""
    import syncd.discover.probe as probe_module
    from syncd.discover.model import Server
    from syncd.discover.probe import ProbeResult

    probed: list[tuple[Server, str | None]] = []

    def fake_probe(server: Server, **kwargs: object) -> ProbeResult:
        probed.append((server, kwargs.get("password")))  # type: ignore[arg-type]
        return ProbeResult(server, frozenset({"IMAP4REV1", "AUTH=XOAUTH2"}), logged_in=False)

    monkeypatch.setattr(probe_module, "probe", fake_probe)
    config = tmp_path / "config.toml"
    result = CliRunner().invoke(
        init_command,
        ["jane@gmail.com", "--non-interactive", "--config", str(config),
         "--ispdb", "http://127.0.0.1:9/v1.1/", "--maildir", str(tmp_path / "Mail"),
         "--password-command", "false", "--client-id", "123.apps.googleusercontent.com",
         "--client-secret", "not-so-secret"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert [(str(s), pw) for s, pw in probed] == [("imap.gmail.com:993 (tls)", None)]
    account = tomllib.loads(config.read_text())["accounts"]["gmail"]
    assert account["auth"] == "oauth2"
    assert account["oauth2"] == {
        "provider": "google",
        "client_id": "123.apps.googleusercontent.com",
        "client_secret": "not-so-secret",
    }
    assert account["user"] == "jane@gmail.com"
    assert account["exclude"] == [
        "[[]Gmail]/All Mail", "[[]Gmail]/Important",
        "[[]Google Mail]/All Mail", "[[]Google Mail]/Important",
    ]  # fmt: skip
    assert "password_command" not in account
    assert "Gmail signs in with OAuth2; --password-command is not used" in result.output
    assert f"next: syncd --config {config} login gmail  then  " in result.output


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A test-only in-memory keyring backend."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


def test_interactive_password_is_checked_then_kept_in_the_keyring(
    tmp_path: Path, tls_dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    user = tls_dovecot.add_user()
    web.documents["/v1.1/example.org"] = autoconfig_xml("localhost", tls_dovecot.port)
    config = tmp_path / "config.toml"
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    try:
        result = CliRunner().invoke(
            init_command,
            [f"{user.name}@example.org", "--config", str(config), "--ispdb", web.ispdb,
             "--dns-server", dns_server.option, "--ca-file", str(tls_dovecot.ca_file),
             "--maildir", str(tmp_path / "Mail")],
            input=f"{user.password}\n",
        )  # fmt: skip
    finally:
        keyring.set_keyring(previous)

    assert result.exit_code == 0, result.output
    assert "login ok" in result.output
    assert memory.store == {("syncd", "example"): user.password}
    account = tomllib.loads(config.read_text())["accounts"]["example"]
    assert "password_command" not in account
    assert "password set" not in result.output
    assert result.output.strip().splitlines()[-1].endswith("sync example")


def test_wrong_password_fails_the_probe(
    tmp_path: Path, tls_dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    user = tls_dovecot.add_user()
    web.documents["/v1.1/example.org"] = autoconfig_xml("localhost", tls_dovecot.port)
    config = tmp_path / "config.toml"
    wrong = User(user.name, "not-" + user.password)

    proc = init(config, f"{user.name}@example.org", web=web, dns_zone=dns_server,
                user=wrong, server=tls_dovecot)  # fmt: skip

    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"syncd: localhost:{tls_dovecot.port} (tls): login refused for user '{user.name}'"
    )
    assert not config.exists()


def test_untrusted_certificate_is_refused_without_ca_file(
    tmp_path: Path, tls_dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    user = tls_dovecot.add_user()
    web.documents["/v1.1/example.org"] = autoconfig_xml("localhost", tls_dovecot.port)
    config = tmp_path / "config.toml"

    proc = init(config, f"{user.name}@example.org", web=web, dns_zone=dns_server, user=user)

    assert proc.returncode == 1
    assert "certificate not trusted" in proc.stderr and "--ca-file" in proc.stderr
    assert not config.exists()


def test_fetch_caps_the_body_follows_redirects_and_never_downgrades(web: Web) -> None:
    base = f"http://127.0.0.1:{web.port}"
    web.documents["/big"] = b"x" * (MAX_BODY + 1)
    web.documents["/small"] = b"<clientConfig/>"
    web.documents["redirect:/moved"] = b"/small"
    fetcher = HttpFetcher(timeout=5)
    assert fetcher.get(f"{base}/moved") == b"<clientConfig/>"
    with pytest.raises(FetchError, match="larger than"):
        fetcher.get(f"{base}/big")
    with pytest.raises(FetchError, match="HTTP 404"):
        fetcher.get(f"{base}/missing")
    web.documents["redirect:/loop"] = b"/loop"
    with pytest.raises(FetchError, match="too many redirects"):
        fetcher.get(f"{base}/loop")
    with pytest.raises(FetchError, match="not an http"):
        fetcher.get("file:///etc/passwd")


def test_hostile_document_is_skipped_with_a_reason(
    tmp_path: Path, web: Web, dns_server: Dns
) -> None:
    web.documents["/v1.1/example.org"] = (
        b'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<clientConfig><emailProvider><incomingServer type='imap'><hostname>&x;</hostname>"
        b"</incomingServer></emailProvider></clientConfig>"
    )
    proc = init(tmp_path / "config.toml", "jane@example.org", web=web, dns_zone=dns_server)
    assert proc.returncode == 2
    assert f"ISPDB {web.ispdb}example.org: nothing (refused: the document has a DOCTYPE" in (
        proc.stderr
    )
    assert "root:" not in proc.stdout + proc.stderr


def test_dry_run_prints_the_table_and_writes_nothing(
    tmp_path: Path, tls_dovecot: DevServer, web: Web, dns_server: Dns
) -> None:
    user = tls_dovecot.add_user()
    web.documents["/v1.1/example.org"] = autoconfig_xml("localhost", tls_dovecot.port)
    config = tmp_path / "config.toml"
    proc = init(config, f"{user.name}@example.org", "--dry-run", web=web, dns_zone=dns_server,
                user=user, server=tls_dovecot)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout[proc.stdout.index("[accounts.example]") :]
    assert tomllib.loads(table)["accounts"]["example"]["port"] == tls_dovecot.port
    assert not config.exists()


def test_interactive_run_asks_for_a_login_name_the_source_left_out(
    tmp_path: Path, web: Web, dns_server: Dns, monkeypatch: pytest.MonkeyPatch
) -> None:
    import syncd.discover.probe as probe_module
    from syncd.discover.model import Server
    from syncd.discover.probe import ProbeResult

    logins: list[object] = []

    def fake_probe(server: Server, **kwargs: object) -> ProbeResult:
        logins.append(kwargs.get("user"))
        return ProbeResult(server, frozenset({"IMAP4REV1"}), logged_in=False)

    monkeypatch.setattr(probe_module, "probe", fake_probe)
    web.documents["/v1.1/example.org"] = autoconfig_xml("imap.example.org", 993).replace(
        b"%EMAILLOCALPART%", b"%REALNAME%"
    )
    config = tmp_path / "config.toml"
    result = CliRunner().invoke(
        init_command,
        ["jane@example.org", "--config", str(config), "--ispdb", web.ispdb,
         "--dns-server", dns_server.option, "--dry-run"],
        input="jdoe\n\n",  # the login name, then an empty password: set it later
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "login name (the source did not say)" in result.output
    assert logins == ["jdoe"]
    assert 'user = "jdoe"' in result.output


def test_an_oauth2_provider_without_a_client_id_says_what_to_register(tmp_path: Path) -> None:
    """Microsoft 365 signs in with OAuth2 only: without --client-id nothing is probed or
    written, and one line says what to do."""
    config = tmp_path / "config.toml"
    result = CliRunner().invoke(
        init_command,
        ["jane@outlook.com", "--non-interactive", "--config", str(config),
         "--ispdb", "http://127.0.0.1:9/v1.1/"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "signs in with OAuth2 only: register an app" in result.output
    assert "--client-id" in result.output
    assert not config.exists()
