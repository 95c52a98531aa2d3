"""`syncd init`'s pure parts: autoconfig XML, SRV order, profiles, source order, TOML edit.

No network: the source-order tests use a dict-backed fetcher and resolver.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from syncd.cli.configfile import ConfigWriteError, write_account
from syncd.cli.init import _dns_server
from syncd.config import load_config
from syncd.discover.autoconfig import AutoconfigError, parse_config, substitute
from syncd.discover.dns import SrvRecord, order_srv, registrable_domain
from syncd.discover.http import FetchError
from syncd.discover.model import AddressError, Server, split_address
from syncd.discover.providers import PROVIDERS, provider_for_domain, provider_for_host
from syncd.discover.sources import Sources, autoconfig_urls, ispdb_url
from syncd.discover.tomlwrite import TomlEditError, add_account
from syncd.folders import matches

ADDRESS = "jane.doe@example.org"


def config_xml(*servers: str, root: str = "clientConfig") -> bytes:
    body = "\n".join(servers)
    return (
        f'<?xml version="1.0"?>\n<{root} version="1.1">\n'
        f'<emailProvider id="example.org"><domain>example.org</domain>\n{body}\n'
        f"</emailProvider></{root}>"
    ).encode()


def incoming(
    kind: str = "imap",
    host: str = "imap.%EMAILDOMAIN%",
    port: str | None = "993",
    socket: str = "SSL",
    user: str = "%EMAILADDRESS%",
    auth: tuple[str, ...] = ("password-cleartext",),
) -> str:
    port_xml = f"<port>{port}</port>" if port is not None else ""
    auth_xml = "".join(f"<authentication>{a}</authentication>" for a in auth)
    return (
        f'<incomingServer type="{kind}"><hostname>{host}</hostname>{port_xml}'
        f"<socketType>{socket}</socketType><username>{user}</username>{auth_xml}"
        "</incomingServer>"
    )


# --------------------------------------------------------------------------- XML


def test_placeholders_are_filled_in() -> None:
    assert substitute("%EMAILLOCALPART%", ADDRESS) == "jane.doe"
    assert substitute("%EMAILDOMAIN%", ADDRESS) == "example.org"
    assert substitute("x-%EMAILADDRESS%", ADDRESS) == "x-jane.doe@example.org"


@pytest.mark.parametrize(
    ("server_xml", "expected"),
    [
        (incoming(), Server("imap.example.org", 993, "tls", ADDRESS, ("password",), "s")),
        (
            incoming(socket="STARTTLS", port="143", user="%EMAILLOCALPART%"),
            Server("imap.example.org", 143, "starttls", "jane.doe", ("password",), "s"),
        ),
        (
            incoming(socket="plain", port=None),
            Server("imap.example.org", 143, "none", ADDRESS, ("password",), "s"),
        ),
        (
            incoming(host="IMAP.Gmail.COM.", auth=("OAuth2", "password-cleartext")),
            Server("imap.gmail.com", 993, "tls", ADDRESS, ("oauth2", "password"), "s"),
        ),
        (  # a placeholder we cannot fill: no user rather than a wrong one
            incoming(user="%REALNAME%", auth=("NTLM",)),
            Server("imap.example.org", 993, "tls", None, (), "s"),
        ),
    ],
)
def test_incoming_server(server_xml: str, expected: Server) -> None:
    parsed = parse_config(config_xml(server_xml), ADDRESS, source="s")
    assert parsed.imap == (expected,)
    assert parsed.provider_id == "example.org"


def test_pop3_is_counted_not_used_and_order_is_kept() -> None:
    doc = config_xml(
        incoming(kind="pop3", port="995"),
        incoming(host="a.example.org"),
        incoming(host="b.example.org"),
    )
    parsed = parse_config(doc, ADDRESS, source="s")
    assert [s.host for s in parsed.imap] == ["a.example.org", "b.example.org"]
    assert parsed.pop3 == 1


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<clientConfig><emailProvider><displayName>&lol3;</displayName></emailProvider></clientConfig>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<clientConfig><emailProvider><incomingServer type="imap"><hostname>&x;</hostname>
</incomingServer></emailProvider></clientConfig>"""


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<clientConfig><emailProvider>", "not well-formed"),
        (b"", "not well-formed"),
        (b"\xff\xfe garbage", "not well-formed"),
        (BILLION_LAUGHS, "DOCTYPE"),
        (EXTERNAL_ENTITY, "DOCTYPE"),
        (config_xml(incoming(), root="html"), "not a clientConfig"),
        (b"<clientConfig/>", "no emailProvider"),
        (config_xml(incoming(host="evil host/../x")), "bad hostname"),
        (config_xml(incoming(host="")), "no hostname"),
        (config_xml(incoming(port="99999")), "bad port"),
        (config_xml(incoming(port="-1")), "bad port"),
        (config_xml(incoming(socket="TLS1.0")), "unknown socketType"),
    ],
)
def test_bad_documents_are_refused_in_one_line(document: bytes, message: str) -> None:
    with pytest.raises(AutoconfigError, match=message) as info:
        parse_config(document, ADDRESS, source="s")
    assert "\n" not in str(info.value)
    assert "/etc/passwd" not in str(info.value) and "root:" not in str(info.value)


@pytest.mark.parametrize(
    "address", ["nobody", "@example.org", "a@", "a@localhost", "a b@example.org", "a@ex/ample.org"]
)
def test_bad_addresses(address: str) -> None:
    with pytest.raises(AddressError):
        split_address(address)


def test_address_domain_is_lower_cased() -> None:
    assert split_address("Jane@Example.ORG.") == ("Jane", "example.org")


# --------------------------------------------------------------------------- DNS


def srv(priority: int, weight: int, port: int, target: str) -> SrvRecord:
    return SrvRecord(priority, weight, port, target)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], []),
        ([srv(0, 0, 0, "")], []),  # "." target: decidedly not offered
        (
            [srv(10, 1, 993, "b.example.org"), srv(0, 0, 993, "a.example.org")],
            ["a.example.org", "b.example.org"],
        ),
        (  # equal priority: heavier weight first
            [srv(5, 10, 993, "light.example.org"), srv(5, 60, 993, "heavy.example.org")],
            ["heavy.example.org", "light.example.org"],
        ),
        (  # malformed targets and ports are dropped, the rest kept
            [srv(0, 0, 993, "bad name"), srv(0, 0, 0, "zero.example.org"), srv(1, 0, 993, "ok.x")],
            ["ok.x"],
        ),
    ],
)
def test_srv_order(records: list[SrvRecord], expected: list[str]) -> None:
    assert [r.target for r in order_srv(records)] == expected


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("aspmx.l.google.com", "google.com"),
        ("example-org.mail.protection.outlook.com", "outlook.com"),
        ("mx1.example.co.uk", "example.co.uk"),
        ("in1-smtp.messagingengine.com.", "messagingengine.com"),
        ("example.org", "example.org"),
    ],
)
def test_registrable_domain(host: str, domain: str) -> None:
    assert registrable_domain(host) == domain


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (None, 53)),
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_dns_server_option(value: str | None, expected: tuple[str | None, int]) -> None:
    assert _dns_server(value) == expected


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize(
    ("domain", "key"),
    [
        ("gmail.com", "gmail"),
        ("googlemail.com", "gmail"),
        ("outlook.com", "microsoft"),
        ("hotmail.com", "microsoft"),
        ("fastmail.com", "fastmail"),
        ("icloud.com", "icloud"),
        ("me.com", "icloud"),
        ("yahoo.com", "yahoo"),
        ("example.org", None),
        ("notgmail.com", None),
    ],
)
def test_profile_by_domain(domain: str, key: str | None) -> None:
    profile = provider_for_domain(domain)
    assert (profile.key if profile else None) == key


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("imap.gmail.com", "gmail"),
        ("aspmx.l.google.com", "gmail"),  # a Google Workspace domain's MX
        ("outlook.office365.com", "microsoft"),
        ("example-org.mail.protection.outlook.com", "microsoft"),
        ("in1-smtp.messagingengine.com", "fastmail"),
        ("imap.mail.me.com", "icloud"),
        ("imap.mail.yahoo.com", "yahoo"),
        ("imap.example.org", None),
        ("evilgoogle.com", None),
    ],
)
def test_profile_by_host(host: str, key: str | None) -> None:
    profile = provider_for_host(host)
    assert (profile.key if profile else None) == key


def test_profiles_use_tls_on_993_and_oauth2_only_where_needed() -> None:
    for profile in PROVIDERS:
        server = profile.server("me@" + sorted(profile.domains)[0], "p")
        assert (server.port, server.tls) == (993, "tls")
    oauth = {p.key: p.oauth2 for p in PROVIDERS}
    assert oauth == {
        "gmail": "google",
        "microsoft": "microsoft",
        "fastmail": None,
        "icloud": None,
        "yahoo": None,
    }
    icloud = provider_for_domain("icloud.com")
    assert icloud is not None and icloud.server("jane@icloud.com", "p").user == "jane"


@pytest.mark.parametrize(
    ("folder", "excluded"),
    [
        (("[Gmail]", "All Mail"), True),
        (("[Gmail]", "Important"), True),
        (("[Google Mail]", "All Mail"), True),
        (("[Gmail]", "Sent Mail"), False),
        (("INBOX",), False),
        (("G", "All Mail"), False),  # "[Gmail]" unescaped would be a character class
    ],
)
def test_gmail_exclusions_match_the_real_folder_names(
    folder: tuple[str, ...], excluded: bool
) -> None:
    gmail = provider_for_domain("gmail.com")
    assert gmail is not None
    assert matches(folder, ("*",), gmail.exclude) is not excluded


# --------------------------------------------------------------------------- source order


class FakeFetcher:
    def __init__(self, documents: dict[str, bytes]) -> None:
        self.documents = documents
        self.asked: list[str] = []

    def get(self, url: str) -> bytes:
        self.asked.append(url)
        if url not in self.documents:
            raise FetchError("HTTP 404")
        return self.documents[url]


class FakeResolver:
    def __init__(
        self, srv: dict[str, list[SrvRecord]] | None = None, mx: dict[str, list[str]] | None = None
    ) -> None:
        self._srv = srv or {}
        self._mx = mx or {}

    def srv(self, name: str) -> list[SrvRecord]:
        if name not in self._srv:
            raise LookupError(f"{name} does not exist")
        return self._srv[name]

    def mx(self, domain: str) -> list[str]:
        if domain not in self._mx:
            raise LookupError(f"no MX record for {domain}")
        return self._mx[domain]


ISPDB = "https://ispdb.test/v1.1/"


def sources(fetcher: FakeFetcher, resolver: FakeResolver | None = None) -> Sources:
    return Sources(fetcher=fetcher, resolver=resolver or FakeResolver(), ispdb=ISPDB)


def test_nothing_found_lists_every_source_once() -> None:
    fetcher = FakeFetcher({})
    result = sources(fetcher).discover(ADDRESS)
    assert not result.found
    labels = [a.source.split()[0] for a in result.attempts]
    assert labels == ["autoconfig", "autoconfig", "well-known", "ISPDB", "SRV", "SRV", "MX"]
    assert fetcher.asked == [url for _l, url in autoconfig_urls(ADDRESS, "example.org")] + [
        ispdb_url(ISPDB, "example.org")
    ]
    assert all("nothing" in a.outcome for a in result.attempts)


def test_domain_autoconfig_wins_over_ispdb() -> None:
    http_url = autoconfig_urls(ADDRESS, "example.org")[1][1]
    assert http_url.startswith("http://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=")
    fetcher = FakeFetcher(
        {
            http_url: config_xml(incoming(host="own.example.org")),
            ispdb_url(ISPDB, "example.org"): config_xml(incoming(host="db.example.org")),
        }
    )
    result = sources(fetcher).discover(ADDRESS)
    assert [s.host for s in result.servers] == ["own.example.org"]
    assert result.attempts[-1].outcome.startswith("found own.example.org:993")
    assert ispdb_url(ISPDB, "example.org") not in fetcher.asked


def test_pop3_only_document_goes_on_to_the_next_source() -> None:
    fetcher = FakeFetcher(
        {
            autoconfig_urls(ADDRESS, "example.org")[0][1]: config_xml(incoming(kind="pop3")),
            ispdb_url(ISPDB, "example.org"): config_xml(incoming()),
        }
    )
    result = sources(fetcher).discover(ADDRESS)
    assert "only POP3" in result.attempts[0].outcome
    assert result.servers[0].source == f"ISPDB {ispdb_url(ISPDB, 'example.org')}"


def test_srv_records_give_tls_then_starttls() -> None:
    resolver = FakeResolver(
        srv={
            "_imaps._tcp.example.org": [srv(1, 0, 993, "b.example.org"), srv(0, 0, 993, "a.x")],
            "_imap._tcp.example.org": [srv(0, 0, 143, "c.example.org")],
        }
    )
    result = sources(FakeFetcher({}), resolver).discover(ADDRESS)
    assert [str(s) for s in result.servers] == [
        "a.x:993 (tls)",
        "b.example.org:993 (tls)",
        "c.example.org:143 (starttls)",
    ]
    assert all(s.user == ADDRESS for s in result.servers)


def test_srv_dot_target_means_not_offered() -> None:
    resolver = FakeResolver(
        srv={"_imaps._tcp.example.org": [srv(0, 0, 0, "")], "_pop3s._tcp.example.org": []}
    )
    result = sources(FakeFetcher({}), resolver).discover(ADDRESS)
    assert any("not offered" in a.outcome for a in result.attempts)
    assert not result.found


def test_mx_domain_is_looked_up_in_the_ispdb() -> None:
    resolver = FakeResolver(mx={"example.org": ["mx2.hoster.test", "mx1.hoster.test"]})
    fetcher = FakeFetcher(
        {ispdb_url(ISPDB, "hoster.test"): config_xml(incoming(host="imap.hoster.test"))}
    )
    result = sources(fetcher, resolver).discover(ADDRESS)
    assert [s.host for s in result.servers] == ["imap.hoster.test"]
    assert result.provider is None


def test_google_workspace_domain_is_found_through_its_mx() -> None:
    resolver = FakeResolver(mx={"example.org": ["aspmx.l.google.com", "alt1.aspmx.l.google.com"]})
    result = sources(FakeFetcher({}), resolver).discover(ADDRESS)
    assert result.provider is not None and result.provider.oauth2 == "google"
    assert [str(s) for s in result.servers] == ["imap.gmail.com:993 (tls)"]


def test_known_domain_uses_the_profile_without_network() -> None:
    fetcher = FakeFetcher({})
    result = sources(fetcher).discover("jane@gmail.com")
    assert fetcher.asked == []
    assert result.provider is not None and result.provider.key == "gmail"


def test_discovered_host_selects_a_profile() -> None:
    fetcher = FakeFetcher(
        {ispdb_url(ISPDB, "example.org"): config_xml(incoming(host="outlook.office365.com"))}
    )
    result = sources(fetcher).discover(ADDRESS)
    assert result.provider is not None and result.provider.oauth2 == "microsoft"


# --------------------------------------------------------------------------- TOML edit

COMMENTED = """\
# My syncd config -- keep this comment.

[general]
state_dir = "state"   # relative to this file

# Work mail, synced every 5 minutes.
[accounts.work]
host = "127.0.0.1"
tls = "none"          # loopback only
user = "me"
maildir = "Mail/work"

# Plugins come last in this file.
[plugins]
# enable = ["lists"]
"""


def test_adding_an_account_keeps_comments_and_order(tmp_path: Path) -> None:
    values = {
        "host": "imap.example.org",
        "port": 993,
        "tls": "tls",
        "user": "jane",
        "maildir": "Mail/new",
        "exclude": ["[[]Gmail]/All Mail", 'quote"and\\backslash'],
    }
    text = add_account(COMMENTED, "new", values, comment="found by syncd init")
    assert text.startswith(COMMENTED)
    data = tomllib.loads(text)
    assert list(data["accounts"]) == ["work", "new"]
    assert data["accounts"]["new"] == values
    assert "# found by syncd init" in text
    path = tmp_path / "config.toml"
    path.write_text(text)
    config = load_config(path)
    assert list(config.accounts) == ["work", "new"]
    assert config.accounts["new"].exclude == tuple(values["exclude"])  # type: ignore[arg-type]


def test_oauth2_keys_go_in_a_sub_table() -> None:
    text = add_account(None, "g", {"host": "imap.gmail.com", "auth": "oauth2",
                                   "oauth2": {"provider": "google"}})  # fmt: skip
    assert text.startswith("# syncd configuration, written by `syncd init`.")
    data = tomllib.loads(text)
    assert data["accounts"]["g"] == {
        "host": "imap.gmail.com",
        "auth": "oauth2",
        "oauth2": {"provider": "google"},
    }
    assert "[accounts.g.oauth2]" in text


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        (COMMENTED, "already has an account named 'work'"),
        ("accounts = 3\n", "not a table"),
        ('accounts = { x = { host = "h" } }\n', "cannot add"),
        ("[accounts\n", "not valid TOML"),
    ],
)
def test_toml_edit_refusals(existing: str, message: str) -> None:
    with pytest.raises(TomlEditError, match=message):
        add_account(existing, "work", {"host": "h"})


# --------------------------------------------------------------------------- config file


def test_account_that_does_not_validate_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(COMMENTED)
    path.chmod(0o640)
    with pytest.raises(ConfigWriteError) as info:  # inside the first account's Maildir
        write_account(path, "new", {"host": "h.example.org", "user": "u",
                                    "maildir": "Mail/work/sub"})  # fmt: skip
    assert "does not validate" in info.value.lines[0]
    assert any("accounts.new.maildir" in line for line in info.value.lines[1:])
    assert path.read_text() == COMMENTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # no temp file left


def test_new_file_is_private_and_an_oauth2_account_validates(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    values = {"host": "127.0.0.1", "tls": "none", "user": "u", "maildir": "Mail",
              "auth": "oauth2", "oauth2": {"provider": "google", "client_id": "c"}}  # fmt: skip
    notes = write_account(path, "a.b", values)
    assert path.stat().st_mode & 0o777 == 0o600
    assert notes == []
    assert "a.b" in tomllib.loads(path.read_text())["accounts"]


def test_an_oauth2_account_without_its_client_id_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigWriteError) as raised:
        write_account(path, "w", {"host": "127.0.0.1", "tls": "none", "user": "u",
                                  "maildir": "Mail", "auth": "oauth2",
                                  "oauth2": {"provider": "google"}})  # fmt: skip
    assert any("accounts.w.oauth2.client_id: missing" in line for line in raised.value.lines)
    assert not path.exists()


def test_registering_init_keeps_syncd_start_up_light() -> None:
    """`syncd check` must start fast: init's heavy libraries load only when it runs,
    and no subcommand's module is imported until that subcommand is used."""
    code = (
        "import sys, click, syncd.cli.main\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dns', 'tomlkit'}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('syncd.cli.')"
        " and m not in ('syncd.cli.main', 'syncd.cli.common')))\n"
        "print('init' in syncd.cli.main.cli.list_commands(click.Context(syncd.cli.main.cli)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["[]", "[]", "True"]
