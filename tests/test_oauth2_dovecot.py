"""OAuth2 end to end: a real Dovecot checks syncd's tokens against the test OAuth server.

Dovecot's ``oauth2`` passdb asks ``support.oauth_server.OAuthServer`` (RFC 7662
introspection) whether a token is live; the config comes from
``support.oauth_server.dovecot_oauth2_conf`` through ``devserver.dovecot.start``'s
``extra_conf``. Logins go through ``syncd.stores.imap.session.ImapSession.connect``, as the
sync engine's do. Both servers are private to this module and stopped by it.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
import requests
from keyrings.alt.file import PlaintextKeyring
from support.oauth_server import OAuthServer, oauth_dovecot

from devserver.dovecot import DevServer, User
from syncd.auth.credentials import Authenticator
from syncd.auth.login import login_with_browser, login_with_device
from syncd.auth.oauth2 import (
    OAuth2Authenticator,
    OAuth2Settings,
    TokenManager,
    authenticator_for_oauth2,
    parse_oauth2_table,
)
from syncd.errors import AccountError, CredentialError
from syncd.stores.imap.session import ImapSession


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        yield server


def _start(oauth: OAuthServer, mechanisms: str) -> Iterator[DevServer]:
    with oauth_dovecot(oauth, mechanisms) as dovecot:
        yield dovecot


@pytest.fixture(scope="module")
def dovecot_oauth(oauth: OAuthServer) -> Iterator[DevServer]:
    """Advertises AUTH=OAUTHBEARER and AUTH=XOAUTH2."""
    yield from _start(oauth, "oauthbearer xoauth2")


@pytest.fixture(scope="module")
def dovecot_xoauth2(oauth: OAuthServer) -> Iterator[DevServer]:
    """Advertises only AUTH=XOAUTH2 (besides PLAIN and LOGIN)."""
    yield from _start(oauth, "xoauth2")


@pytest.fixture(autouse=True)
def file_keyring(tmp_path: Path) -> Iterator[PlaintextKeyring]:
    previous = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def user(dovecot_oauth: DevServer, oauth: OAuthServer) -> Iterator[User]:
    """A fresh mail user; the OAuth server approves logins as this user."""
    account = dovecot_oauth.add_user()
    oauth.approve_as = account.name
    oauth.access_token_lifetime = 3600
    oauth.auto_approve_device = False
    yield account


def settings_for(oauth: OAuthServer) -> OAuth2Settings:
    return parse_oauth2_table(
        {
            "provider": "custom",
            "client_id": "syncd-test",
            "authorize_url": f"{oauth.url}/authorize",
            "token_url": f"{oauth.url}/token",
            "device_url": f"{oauth.url}/device",
            "scopes": ["imap", "offline_access"],
        },
        "test: accounts.work.oauth2",
    )


def play_browser(line: str) -> None:
    """``out`` for login_with_browser: act as the user's browser on the URL line."""
    if line.startswith("http://"):

        def visit() -> None:
            requests.get(line, timeout=10)  # auto-approved; follows the redirect to syncd

        threading.Thread(target=visit, daemon=True).start()


def connect(server: DevServer, auth: Authenticator) -> ImapSession:
    return ImapSession.connect(
        host=server.host, port=server.port, tls="none", ca_file=None, auth=auth, timeout=10
    )


def logins(server: DevServer, user: User, expected: int = 0) -> list[str]:
    """The SASL mechanisms of *user*'s successful logins, from Dovecot's log.

    Dovecot's log process writes asynchronously: wait up to 5 s for *expected* lines.
    """
    pattern = rf"Login: user=<{re.escape(user.name)}>, method=([A-Z0-9-]+)"
    deadline = time.monotonic() + 5
    while True:
        text = server.log_file.read_text(encoding="utf-8", errors="replace")
        found: list[str] = re.findall(pattern, text)
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def stored_refresh_token() -> str | None:
    return keyring.get_password("syncd", "work:oauth2-refresh-token")


# --------------------------------------------------------------------------- tests


def test_browser_login_then_imap_login_with_oauthbearer(
    dovecot_oauth: DevServer, oauth: OAuthServer, user: User
) -> None:
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        play_browser(line)

    login_with_browser(settings_for(oauth), "work", open_browser=False, out=out)
    assert lines[-1].startswith("account work: logged in; refresh token stored in the keyring")
    assert stored_refresh_token() in oauth.live_refresh_tokens()

    auth = authenticator_for_oauth2("work", settings_for(oauth), user.name)
    session = connect(dovecot_oauth, auth)
    try:
        assert [f.name for f in session.list_folders()] == ["INBOX"]
    finally:
        session.logout()
    assert logins(dovecot_oauth, user, 1) == ["OAUTHBEARER"]
    # The password user next to it still logs in with PLAIN: the oauth2 passdb is additive.
    dovecot_oauth.connect(user).logout()


def test_xoauth2_when_oauthbearer_is_not_advertised(
    dovecot_xoauth2: DevServer, oauth: OAuthServer, file_keyring: PlaintextKeyring
) -> None:
    account = dovecot_xoauth2.add_user()
    oauth.approve_as = account.name
    login_with_browser(settings_for(oauth), "work", open_browser=False, out=play_browser)
    session = connect(
        dovecot_xoauth2, authenticator_for_oauth2("work", settings_for(oauth), account.name)
    )
    session.logout()
    assert logins(dovecot_xoauth2, account, 1) == ["XOAUTH2"]


def test_expired_access_token_is_refreshed_and_rotation_stored(
    dovecot_oauth: DevServer, oauth: OAuthServer, user: User
) -> None:
    oauth.access_token_lifetime = 4
    login_with_browser(settings_for(oauth), "work", open_browser=False, out=play_browser)
    first_refresh_token = stored_refresh_token()
    manager = TokenManager("work", settings_for(oauth), margin=1.0)
    auth = OAuth2Authenticator(user.name, manager)

    connect(dovecot_oauth, auth).logout()
    connect(dovecot_oauth, auth).logout()  # the cached token: no refresh
    assert manager.refreshes == 1
    time.sleep(3.2)  # inside the margin now (not yet expired): refreshed before use
    connect(dovecot_oauth, auth).logout()
    assert manager.refreshes == 2
    assert logins(dovecot_oauth, user, 3) == ["OAUTHBEARER"] * 3
    stored = stored_refresh_token()
    assert stored != first_refresh_token
    assert stored in oauth.live_refresh_tokens()
    assert first_refresh_token not in oauth.live_refresh_tokens()


@pytest.mark.parametrize(
    ("server_fixture", "mechanism"),
    [("dovecot_oauth", "OAUTHBEARER"), ("dovecot_xoauth2", "XOAUTH2")],
)
def test_a_refused_access_token_is_refreshed_once_on_the_same_connection(
    oauth: OAuthServer, request: pytest.FixtureRequest, server_fixture: str, mechanism: str
) -> None:
    server: DevServer = request.getfixturevalue(server_fixture)
    account = server.add_user()
    oauth.approve_as = account.name
    login_with_browser(settings_for(oauth), "work", open_browser=False, out=play_browser)
    manager = TokenManager("work", settings_for(oauth))
    auth = OAuth2Authenticator(account.name, manager)
    connect(server, auth).logout()
    oauth.expire_access_tokens()  # the server forgets the cached token early
    session = connect(server, auth)  # refused, refreshed, accepted: one connection
    try:
        assert session.list_folders()
    finally:
        session.logout()
    assert manager.refreshes == 2
    assert logins(server, account, 2) == [mechanism, mechanism]
    log = server.log_file.read_text(encoding="utf-8", errors="replace")
    # Dovecot logs one failed attempt for that connection before the login, not a BAD.
    assert f"method={mechanism}" in log
    assert "Disconnected (auth failed" not in log


def test_a_revoked_refresh_token_gives_one_line(
    dovecot_oauth: DevServer, oauth: OAuthServer, user: User
) -> None:
    login_with_browser(settings_for(oauth), "work", open_browser=False, out=play_browser)
    manager = TokenManager("work", settings_for(oauth))
    auth = OAuth2Authenticator(user.name, manager)
    connect(dovecot_oauth, auth).logout()
    oauth.revoke_refresh_tokens()
    oauth.expire_access_tokens()
    with pytest.raises(CredentialError) as raised:
        connect(dovecot_oauth, auth)
    assert str(raised.value) == (
        "account work: the OAuth2 refresh token was refused (expired or revoked); "
        "run `syncd login work`"
    )


def test_a_token_for_another_user_is_refused(
    dovecot_oauth: DevServer, oauth: OAuthServer, user: User
) -> None:
    login_with_browser(settings_for(oauth), "work", open_browser=False, out=play_browser)
    other = dovecot_oauth.add_user()
    auth = authenticator_for_oauth2("work", settings_for(oauth), other.name)
    with pytest.raises(AccountError, match="login refused"):
        connect(dovecot_oauth, auth)
    assert logins(dovecot_oauth, other) == []


def test_oauth2_token_command(dovecot_oauth: DevServer, oauth: OAuthServer, user: User) -> None:
    login_with_browser(settings_for(oauth), "work", open_browser=False, out=play_browser)
    token = TokenManager("work", settings_for(oauth)).access_token()
    command = [sys.executable, "-c", f"print({token!r})"]
    connect(dovecot_oauth, authenticator_for_oauth2("work", command, user.name)).logout()
    assert logins(dovecot_oauth, user, 1) == ["OAUTHBEARER"]


def test_device_login_then_imap_login(
    dovecot_oauth: DevServer, oauth: OAuthServer, user: User
) -> None:
    oauth.auto_approve_device = True
    oauth.pending_polls = 1
    lines: list[str] = []
    login_with_device(settings_for(oauth), "work", out=lines.append, sleep=lambda s: None)
    assert "enter the code" in lines[0]
    connect(
        dovecot_oauth, authenticator_for_oauth2("work", settings_for(oauth), user.name)
    ).logout()
    assert logins(dovecot_oauth, user, 1) == ["OAUTHBEARER"]


def test_no_token_in_any_log_line(
    dovecot_oauth: DevServer,
    oauth: OAuthServer,
    user: User,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    login_with_browser(settings_for(oauth), "work", open_browser=False, out=play_browser)
    manager = TokenManager("work", settings_for(oauth))
    auth = OAuth2Authenticator(user.name, manager)
    connect(dovecot_oauth, auth).logout()
    oauth.expire_access_tokens()
    connect(dovecot_oauth, auth).logout()  # with a refused token and a retry
    secrets_seen = [
        *oauth.live_access_tokens(),
        *oauth.live_refresh_tokens(),
        manager.access_token(),
    ]
    assert secrets_seen
    for secret in secrets_seen:
        assert secret not in caplog.text
        assert secret not in dovecot_oauth.log_tail(200)
