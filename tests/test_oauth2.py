"""OAuth2 (issue 12) without an IMAP server: settings, the browser and device logins,
the token cache (expiry, refresh, rotation, invalid_grant), the retry rule, and that
no token reaches a log line, an error or a repr.

The token endpoint is ``support.oauth_server.OAuthServer`` on 127.0.0.1; the
keyring is keyrings.alt's plaintext file backend in ``tmp_path``.
"""

from __future__ import annotations

import base64
import hashlib
import imaplib
import io
import logging
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
import pytest
import requests
from imapclient.exceptions import LoginError
from keyrings.alt.file import PlaintextKeyring
from support.oauth_server import OAuthServer

from syncd.auth.login import login_with_browser, login_with_device
from syncd.auth.oauth2 import (
    KeyringTokenStore,
    OAuth2Authenticator,
    OAuth2Settings,
    TokenCommandAuthenticator,
    TokenManager,
    authenticator_for_oauth2,
    parse_oauth2_table,
    refresh_token_username,
)
from syncd.errors import AccountError, ConfigError, CredentialError
from syncd.logsetup import setup_logging

WHERE = "config.toml: accounts.work.oauth2"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def file_keyring(tmp_path: Path) -> Iterator[PlaintextKeyring]:
    """keyrings.alt's file backend in tmp_path, as the keyring for every test here
    (so none can touch the real one)."""
    previous = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with OAuthServer(clients={"syncd-test": None, "confidential": "s3cret-client"}) as server:
        yield server


def settings_for(server: OAuthServer, **overrides: Any) -> OAuth2Settings:
    raw: dict[str, object] = {
        "provider": "custom",
        "client_id": "syncd-test",
        "authorize_url": f"{server.url}/authorize",
        "token_url": f"{server.url}/token",
        "device_url": f"{server.url}/device",
        "scopes": ["imap", "offline_access"],
        **overrides,
    }
    return parse_oauth2_table(raw, WHERE)


def browser(tamper: Callable[[str], str] = lambda url: url) -> Callable[[str], object]:
    """An ``out`` that plays the user's browser when it sees the authorization URL:
    GET it (the server auto-approves), then follow the redirect -- *tamper* may
    change the redirect URL first -- to syncd's loopback listener."""

    def play(url: str) -> None:
        location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
        requests.get(tamper(location), timeout=10)

    def out(line: str) -> None:
        if line.startswith("http://"):
            threading.Thread(target=play, args=(line,), daemon=True).start()

    return out


def logged_in(server: OAuthServer, account: str = "work") -> str:
    """Run the browser login against *server*; return the stored refresh token."""
    login_with_browser(settings_for(server), account, open_browser=False, out=browser())
    token = keyring.get_password("syncd", refresh_token_username(account))
    assert token
    return token


# --------------------------------------------------------------------------- settings


def test_google_profile_is_filled_in() -> None:
    s = parse_oauth2_table({"provider": "google", "client_id": "id", "client_secret": "x"}, WHERE)
    assert s.authorize_url == "https://accounts.google.com/o/oauth2/v2/auth"
    assert s.token_url == "https://oauth2.googleapis.com/token"
    assert s.device_url == "https://oauth2.googleapis.com/device/code"
    assert s.scopes == ("https://mail.google.com/",)
    assert s.redirect_host == "127.0.0.1"


def test_microsoft_profile_is_filled_in() -> None:
    s = parse_oauth2_table({"provider": "microsoft", "client_id": "id"}, WHERE)
    base = "https://login.microsoftonline.com/common/oauth2/v2.0"
    assert (s.authorize_url, s.token_url, s.device_url) == (
        f"{base}/authorize",
        f"{base}/token",
        f"{base}/devicecode",
    )
    assert s.scopes == ("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access")
    assert s.client_secret is None


def test_custom_provider_takes_its_endpoints() -> None:
    s = parse_oauth2_table(
        {
            "provider": "custom",
            "client_id": "id",
            "authorize_url": "https://id.example/auth",
            "token_url": "https://id.example/token",
            "scopes": ["mail"],
            "redirect_host": "localhost",
        },
        WHERE,
    )
    assert (s.device_url, s.scopes, s.scope, s.redirect_host) == (
        None,
        ("mail",),
        "mail",
        "localhost",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"client_id": "x"}, 'provider: missing ("google", "microsoft" or "custom")'),
        (
            {"provider": "yahoo", "client_id": "x"},
            'provider: must be "google", "microsoft" or "custom" (got "yahoo")',
        ),
        ({"provider": "google"}, "client_id: missing (the OAuth2 client ID of your app)"),
        ({"provider": "google", "client_id": ""}, 'client_id: must be a non-empty string (got "")'),
        ({"provider": "google", "client_id": 3}, "client_id: must be a non-empty string (got 3)"),
        ({"provider": "google", "client_id": "x", "clientid": "y"}, "clientid: unknown key"),
        (
            {"provider": "google", "client_id": "x", "token_url": "https://a/t"},
            'token_url: is set by provider "google"; only provider "custom" takes it',
        ),
        (
            {"provider": "custom", "client_id": "x", "authorize_url": "https://a/a"},
            'token_url: missing (required with provider "custom")',
        ),
        (
            {
                "provider": "custom",
                "client_id": "x",
                "authorize_url": "https://a/a",
                "token_url": "http://id.example/token",
                "scopes": ["s"],
            },
            "token_url: must be https (tokens would travel in clear text)",
        ),
        (
            {
                "provider": "custom",
                "client_id": "x",
                "authorize_url": "https://a/a",
                "token_url": "https://a/t",
            },
            'scopes: missing (required with provider "custom")',
        ),
        (
            {
                "provider": "custom",
                "client_id": "x",
                "authorize_url": "https://a/a",
                "token_url": "https://a/t",
                "scopes": "mail",
            },
            "scopes: must be a non-empty list of scope strings without spaces (got a string)",
        ),
        (
            {"provider": "google", "client_id": "x", "redirect_host": "0.0.0.0"},
            'redirect_host: must be "127.0.0.1" or "localhost" (got "0.0.0.0")',
        ),
    ],
)
def test_bad_oauth2_tables_name_the_key_in_one_line(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_oauth2_table(raw, WHERE)
    text = str(raised.value)
    assert text.startswith(f"{WHERE}.{message}")
    assert "\n" not in text


def test_settings_repr_hides_the_client_secret() -> None:
    s = parse_oauth2_table(
        {"provider": "google", "client_id": "id", "client_secret": "s3cret-client"}, WHERE
    )
    assert "s3cret-client" not in repr(s)
    assert s.client_secret == "s3cret-client"


# --------------------------------------------------------------------------- browser login


def test_browser_login_uses_pkce_s256_and_stores_the_refresh_token(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    lines: list[str] = []
    play = browser()

    def out(line: str) -> None:
        lines.append(line)
        play(line)

    login_with_browser(settings_for(oauth), "work", open_browser=False, out=out)

    (request,) = oauth.authorize_requests
    assert request["code_challenge_method"] == "S256"
    assert len(request["code_challenge"]) == 43  # base64url(SHA-256), no padding
    assert request["redirect_uri"].startswith("http://127.0.0.1:")
    assert request["scope"] == "imap offline_access"
    assert oauth.grants == ["authorization_code"]  # the server checked the verifier
    stored = file_keyring.get_password("syncd", "work:oauth2-refresh-token")
    assert stored in oauth.live_refresh_tokens()
    assert lines[-1] == (
        "account work: logged in; refresh token stored in the keyring "
        "(service syncd, user work:oauth2-refresh-token)"
    )
    assert all(stored not in line for line in lines)


def test_browser_login_opens_the_browser_when_asked(
    oauth: OAuthServer, file_keyring: PlaintextKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    play = browser()

    def fake_open(url: str) -> bool:
        opened.append(url)
        play(url)
        return True

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("webbrowser.open", fake_open)
    login_with_browser(settings_for(oauth), "work", out=lambda line: None)
    assert len(opened) == 1
    assert opened[0].startswith(f"{oauth.url}/authorize?")


def test_a_tampered_code_challenge_fails_the_exchange(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    # A code issued for another challenge must not be redeemable with our verifier.
    def tamper_authorize(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        digest = hashlib.sha256(b"attacker").digest()
        query["code_challenge"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return parts._replace(query=urllib.parse.urlencode(query)).geturl()

    def out(line: str) -> None:
        if line.startswith("http://"):
            browser()(tamper_authorize(line))

    with pytest.raises(CredentialError) as raised:
        login_with_browser(settings_for(oauth), "work", open_browser=False, out=out)
    assert str(raised.value) == (
        "account work: exchanging the code failed: the token endpoint answered "
        "invalid_grant: PKCE failed"
    )
    assert file_keyring.get_password("syncd", "work:oauth2-refresh-token") is None


def test_a_wrong_state_is_refused_before_the_exchange(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    def tamper(url: str) -> str:
        return url.replace("state=", "state=x")

    with pytest.raises(CredentialError, match="the redirect carried a wrong state"):
        login_with_browser(settings_for(oauth), "work", open_browser=False, out=browser(tamper))
    assert oauth.grants == []


def test_a_refusal_in_the_browser_is_one_line(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    oauth.deny = True
    with pytest.raises(CredentialError) as raised:
        login_with_browser(settings_for(oauth), "work", open_browser=False, out=browser())
    assert str(raised.value) == "account work: authorization refused: access_denied"


def test_no_browser_answer_times_out(oauth: OAuthServer, file_keyring: PlaintextKeyring) -> None:
    with pytest.raises(CredentialError) as raised:
        login_with_browser(
            settings_for(oauth), "work", open_browser=False, out=lambda line: None, timeout=0.3
        )
    assert str(raised.value) == (
        "account work: no answer from the browser within 0.3 seconds; run `syncd login work` again"
    )


def test_an_unusable_keyring_fails_before_the_browser(oauth: OAuthServer) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    lines: list[str] = []
    try:
        with pytest.raises(CredentialError) as raised:
            login_with_browser(settings_for(oauth), "work", open_browser=False, out=lines.append)
    finally:
        keyring.set_keyring(previous)
    message = str(raised.value)
    assert message.startswith("account work: cannot read the keyring (")
    assert "oauth2_token_command" in message
    assert "\n" not in message
    assert lines == []


def test_confidential_client_sends_its_secret(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    settings = settings_for(oauth, client_id="confidential", client_secret="s3cret-client")
    login_with_browser(settings, "work", open_browser=False, out=browser())
    assert oauth.grants == ["authorization_code"]
    wrong = settings_for(oauth, client_id="confidential", client_secret="wrong")
    with pytest.raises(CredentialError, match="invalid_client"):
        login_with_browser(wrong, "work", open_browser=False, out=browser())


# --------------------------------------------------------------------------- device login


def test_device_login_polls_with_interval_and_slow_down(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    oauth.slow_down_once = True
    oauth.pending_polls = 2
    oauth.auto_approve_device = True
    slept: list[float] = []
    lines: list[str] = []
    login_with_device(settings_for(oauth), "work", out=lines.append, sleep=slept.append)
    # poll 1: slow_down (interval 1 -> 6); poll 2: pending; poll 3: tokens.
    assert slept == [1, 6, 6]
    assert oauth.grants == ["urn:ietf:params:oauth:grant-type:device_code"] * 3
    assert lines[0].startswith(f"account work: on any device, open {oauth.url}/device-approve ")
    assert lines[-1].endswith(
        "refresh token stored in the keyring (service syncd, user work:oauth2-refresh-token)"
    )
    assert file_keyring.get_password("syncd", "work:oauth2-refresh-token")


def test_device_login_gives_up_when_the_code_is_not_entered(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(CredentialError) as raised:
        login_with_device(
            settings_for(oauth),
            "work",
            out=lambda line: None,
            timeout=5,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert str(raised.value) == (
        "account work: the code was not entered in time; run `syncd login work --device` again"
    )


def test_device_login_without_a_device_url() -> None:
    s = parse_oauth2_table(
        {
            "provider": "custom",
            "client_id": "id",
            "authorize_url": "https://a/a",
            "token_url": "https://a/t",
            "scopes": ["s"],
        },
        WHERE,
    )
    with pytest.raises(CredentialError, match="has no device flow configured"):
        login_with_device(s, "work", out=lambda line: None)


# --------------------------------------------------------------------------- token manager


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_access_token_is_cached_until_the_margin(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    logged_in(oauth)
    clock = Clock()
    manager = TokenManager("work", settings_for(oauth), margin=60, clock=clock)
    first = manager.access_token()
    assert manager.access_token() == first
    clock.now += 3600 - 61  # still more than the margin left
    assert manager.access_token() == first
    assert manager.refreshes == 1
    clock.now += 2  # inside the margin: refreshed before it expires
    second = manager.access_token()
    assert second != first
    assert manager.refreshes == 2
    assert oauth.grants == ["authorization_code", "refresh_token", "refresh_token"]


def test_connections_opened_side_by_side_share_one_refresh(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    logged_in(oauth)
    manager = TokenManager("work", settings_for(oauth))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(manager.access_token())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8
    assert len(set(results)) == 1
    assert manager.refreshes == 1  # one token request for eight connections


def test_a_rotated_refresh_token_is_stored(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    original = logged_in(oauth)
    manager = TokenManager("work", settings_for(oauth))
    manager.refresh()
    rotated = file_keyring.get_password("syncd", "work:oauth2-refresh-token")
    assert rotated != original
    assert oauth.live_refresh_tokens() == [rotated]
    manager.refresh()  # uses the rotated one; the original would be refused
    assert file_keyring.get_password("syncd", "work:oauth2-refresh-token") != rotated


def test_without_rotation_the_stored_token_stays(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    oauth.rotate_refresh_tokens = False
    original = logged_in(oauth)
    TokenManager("work", settings_for(oauth)).refresh()
    assert file_keyring.get_password("syncd", "work:oauth2-refresh-token") == original


def test_invalid_grant_tells_the_user_to_log_in_again(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    logged_in(oauth)
    oauth.revoke_refresh_tokens()
    with pytest.raises(CredentialError) as raised:
        TokenManager("work", settings_for(oauth)).access_token()
    assert str(raised.value) == (
        "account work: the OAuth2 refresh token was refused (expired or revoked); "
        "run `syncd login work`"
    )


def test_a_refused_refresh_token_is_not_sent_again_until_a_new_login(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    """The daemon's worker and IDLE listeners share one TokenManager and retry: while
    the keyring holds the token the endpoint refused, they fail at once with the same
    line instead of asking it again (issue 12: not hammer the token endpoint)."""
    logged_in(oauth)
    oauth.revoke_refresh_tokens()
    manager = TokenManager("work", settings_for(oauth))
    before = len(oauth.grants)
    for _ in range(3):
        with pytest.raises(CredentialError, match="run `syncd login work`"):
            manager.access_token()
    assert oauth.grants[before:] == ["refresh_token"]
    logged_in(oauth)  # `syncd login work` in another process: a new token in the keyring
    assert manager.access_token()
    assert oauth.grants[before:] == ["refresh_token", "authorization_code", "refresh_token"]


def test_no_stored_refresh_token(oauth: OAuthServer, file_keyring: PlaintextKeyring) -> None:
    with pytest.raises(CredentialError) as raised:
        TokenManager("work", settings_for(oauth)).access_token()
    assert str(raised.value) == (
        "account work: no OAuth2 refresh token stored; run `syncd login work`"
    )


def test_an_unreachable_token_endpoint_is_an_account_error(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    logged_in(oauth)
    settings = settings_for(oauth)
    oauth.stop()
    manager = TokenManager("work", settings, http_timeout=5)
    with pytest.raises(AccountError) as raised:
        manager.access_token()
    assert str(raised.value).startswith(
        "account work: OAuth2 refresh failed: cannot reach the token endpoint 127.0.0.1:"
    )


# --------------------------------------------------------------------------- secrets


def test_no_token_in_logs_reprs_or_errors(
    oauth: OAuthServer, file_keyring: PlaintextKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(oauth, client_id="confidential", client_secret="s3cret-client")
    lines: list[str] = []
    play = browser()

    def out(line: str) -> None:
        lines.append(line)
        play(line)

    login_with_browser(settings, "work", open_browser=False, out=out)
    manager = TokenManager("work", settings)
    access = manager.access_token()
    auth = OAuth2Authenticator("user@example.org", manager)
    oauth.revoke_refresh_tokens()
    manager.invalidate()
    with pytest.raises(CredentialError) as raised:
        manager.access_token()
    secrets_seen = [access, "s3cret-client", *oauth.live_access_tokens()]
    secrets_seen.append(file_keyring.get_password("syncd", "work:oauth2-refresh-token") or "")
    texts = [caplog.text, repr(manager), repr(auth), repr(settings), str(raised.value), *lines]
    for secret in filter(None, secrets_seen):
        for text in texts:
            assert secret not in text


def test_tokens_are_registered_with_the_log_mask(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    root, syncd_logger = logging.getLogger(), logging.getLogger("syncd")
    saved = (list(root.handlers), root.level, syncd_logger.level)
    stream = io.StringIO()
    setup_logging(1, stream=stream)
    try:
        logged_in(oauth)
        token = TokenManager("work", settings_for(oauth)).access_token()
        logging.getLogger("syncd.test").error("oops: %s", token)  # a bug that leaks it
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        syncd_logger.setLevel(saved[2])
    assert token not in stream.getvalue()
    assert "oops: ***" in stream.getvalue()


# --------------------------------------------------------------------------- retry rule


class FakeImap:
    """imaplib's side of AUTHENTICATE: calls the client's response function like
    imaplib does, first with an empty challenge, then -- when the token is refused --
    with the JSON error report, and raises imaplib's error on refusal."""

    def __init__(self, refuse: set[str] | None) -> None:
        self.state = "NONAUTH"
        self.refuse = refuse  # None: refuse every token
        self.attempts: list[tuple[str, str]] = []
        self.responses: list[str] = []

    def authenticate(self, mechanism: str, respond: Callable[[bytes], str]) -> None:
        initial = respond(b"")
        self.responses.append(initial)
        token = initial.split("auth=Bearer ", 1)[1].split("\x01", 1)[0]
        self.attempts.append((mechanism, token))
        if self.refuse is None or token in self.refuse:
            self.responses.append(respond(b'{"status":"invalid_token"}'))
            raise imaplib.IMAP4.error("[AUTHENTICATIONFAILED] Authentication failed.")
        self.state = "AUTH"


class FakeClient:
    """Just enough of IMAPClient for the authenticators: capabilities, NOOP, _imap."""

    def __init__(
        self, caps: tuple[bytes, ...], refuse: set[str] | None = frozenset(), *, alive: bool = True
    ) -> None:
        self.caps = caps
        self._imap = FakeImap(None if refuse is None else set(refuse))
        self.alive = alive

    @property
    def attempts(self) -> list[tuple[str, str]]:
        return self._imap.attempts

    def capabilities(self) -> tuple[bytes, ...]:
        return self.caps

    def noop(self) -> None:
        if not self.alive:
            raise OSError("connection reset")


BOTH = (b"IMAP4REV1", b"AUTH=PLAIN", b"AUTH=OAUTHBEARER", b"AUTH=XOAUTH2")


def test_oauthbearer_is_preferred_then_xoauth2(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    logged_in(oauth)
    auth = OAuth2Authenticator("u", TokenManager("work", settings_for(oauth)))
    both, xoauth2_only = FakeClient(BOTH, set()), FakeClient((b"AUTH=XOAUTH2",), set())
    auth.authenticate(both)
    auth.authenticate(xoauth2_only)
    assert [a[0] for a in both.attempts + xoauth2_only.attempts] == ["OAUTHBEARER", "XOAUTH2"]


def test_a_refused_cached_token_is_refreshed_once_and_retried(
    oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    logged_in(oauth)
    manager = TokenManager("work", settings_for(oauth))
    cached = manager.access_token()
    client = FakeClient(BOTH, {cached})
    OAuth2Authenticator("u", manager).authenticate(client)
    assert len(client.attempts) == 2
    assert client.attempts[0][1] == cached
    assert client.attempts[1][1] != cached
    assert manager.refreshes == 2


@pytest.mark.parametrize(
    ("caps", "initial", "after_error"),
    [
        (BOTH, "n,a=me@example.org,\x01auth=Bearer tok\x01\x01", "\x01"),
        ((b"AUTH=XOAUTH2",), "user=me@example.org\x01auth=Bearer tok\x01\x01", ""),
    ],
)
def test_sasl_messages(caps: tuple[bytes, ...], initial: str, after_error: str) -> None:
    # RFC 7628 §3.1/§3.2.3 for OAUTHBEARER; Google's and Microsoft's XOAUTH2 format.
    auth = authenticator_for_oauth2(
        "work", [sys.executable, "-c", "print('tok')"], "me@example.org"
    )
    client = FakeClient(caps, {"tok"})
    with pytest.raises(LoginError):
        auth.authenticate(client)
    assert client._imap.responses == [initial, after_error]


@pytest.mark.parametrize("case", ["fresh token refused", "connection gone", "refused twice"])
def test_when_not_to_retry(oauth: OAuthServer, file_keyring: PlaintextKeyring, case: str) -> None:
    logged_in(oauth)
    manager = TokenManager("work", settings_for(oauth))

    if case != "fresh token refused":
        manager.access_token()  # the next login uses a cached token
    client = FakeClient(BOTH, None, alive=case != "connection gone")
    with pytest.raises(LoginError):
        OAuth2Authenticator("u", manager).authenticate(client)
    assert len(client.attempts) == (2 if case == "refused twice" else 1)


# --------------------------------------------------------------------------- token command


def test_authenticator_for_oauth2_picks_the_source(oauth: OAuthServer) -> None:
    settings = settings_for(oauth)
    assert isinstance(authenticator_for_oauth2("work", settings, "u"), OAuth2Authenticator)
    by_string = authenticator_for_oauth2("work", "oama access u@example.org", "u")
    assert isinstance(by_string, TokenCommandAuthenticator)
    assert by_string.command.argv == ("oama", "access", "u@example.org")
    by_argv = authenticator_for_oauth2("work", ["sh", "-c", "x y"], "u")
    assert isinstance(by_argv, TokenCommandAuthenticator)
    assert by_argv.command.argv == ("sh", "-c", "x y")
    with pytest.raises(ConfigError):
        authenticator_for_oauth2("work", "", "u")


def test_token_command_errors_name_the_key() -> None:
    auth = authenticator_for_oauth2("work", [sys.executable, "-c", "raise SystemExit(3)"], "u")
    client = FakeClient(BOTH, set())
    with pytest.raises(CredentialError) as raised:
        auth.authenticate(client)
    assert str(raised.value).startswith("account work: oauth2_token_command ")
    assert "(exit status 3)" in str(raised.value)
    assert client.attempts == []


def test_token_command_token_is_sent(oauth: OAuthServer) -> None:
    auth = authenticator_for_oauth2("work", [sys.executable, "-c", "print('tok-123')"], "u")
    client = FakeClient((b"AUTH=XOAUTH2",), set())
    auth.authenticate(client)
    assert client.attempts == [("XOAUTH2", "tok-123")]


def test_keyring_store_round_trip(file_keyring: PlaintextKeyring) -> None:
    store = KeyringTokenStore("work")
    assert store.load() is None
    store.save("rt-abc")
    assert store.load() == "rt-abc"
    assert file_keyring.get_password("syncd", "work") is None  # the password entry is apart
