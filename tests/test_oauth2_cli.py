"""OAuth2 accounts driven as a user drives them: `syncd login`, `syncd sync`, a revoked
token, `oauth2_token_command` -- against a real Dovecot that asks the test OAuth2
server (RFC 7662 introspection) whether each token is live (issue 12).

Each `syncd` runs as its own process with a file keyring (keyrings.alt) under the
test's directory; the test plays the browser by GETting the URL `syncd login`
prints.  At the end of each test every token the OAuth2 server ever issued is
looked for in everything syncd printed and in its state directory: none may be
there.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.imap import append
from support.mail import make_message
from support.oauth_server import OAuthServer, oauth_dovecot
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User

REFUSED = re.compile(
    r"account work: the OAuth2 refresh token was refused \(expired or revoked\); "
    r"run `syncd login work`"
)


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(oauth: OAuthServer) -> Iterator[DevServer]:
    with oauth_dovecot(oauth) as dovecot:
        yield dovecot


class Run:
    """The test's `syncd` runs: one config, one file keyring, every output kept."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.config = config
        self.state = tmp_path / "state"
        self.env = {
            "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
            "XDG_DATA_HOME": str(tmp_path / "data"),
        }
        self.outputs: list[str] = []

    def syncd(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = run_syncd(*args, config=self.config, env=self.env)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def login(self) -> str:
        """`syncd login work --no-browser`, with this test as the browser."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--config", str(self.config), "login", "work",
             "--no-browser", "--timeout", "30"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**_environ(), **self.env},
        )  # fmt: skip
        assert proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("http://"):
                threading.Thread(
                    target=requests.get, args=(line.strip(),), kwargs={"timeout": 10}, daemon=True
                ).start()
        out, _ = proc.communicate(timeout=60)
        self.outputs += ["".join(lines), out]
        assert proc.returncode == 0, "".join(lines)
        return lines[-1].strip()

    def leaked(self, oauth: OAuthServer) -> list[str]:
        """Issued tokens found in any output or any file of the state directory."""
        texts = list(self.outputs)
        if self.state.exists():
            texts += [
                p.read_bytes().decode("latin-1") for p in self.state.rglob("*") if p.is_file()
            ]
        return [t for t in oauth.issued if any(t in text for text in texts)]


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def _oauth_account(
    server: DevServer, user: User, maildir: Path, oauth: OAuthServer, **extra: Any
) -> dict[str, Any]:
    table = account_config(server, user, maildir, password_command=None, auth="oauth2", **extra)
    if "oauth2_token_command" not in extra:
        table["oauth2"] = {
            "provider": "custom",
            "client_id": "syncd-test",
            "authorize_url": f"{oauth.url}/authorize",
            "token_url": f"{oauth.url}/token",
            "scopes": ["imap", "offline_access"],
        }
    return table


def _files(maildir: Path) -> int:
    return sum(1 for sub in ("cur", "new") for _ in (maildir / sub).iterdir())


@pytest.fixture
def user(server: DevServer, oauth: OAuthServer) -> User:
    account = server.add_user()
    oauth.approve_as = account.name
    oauth.access_token_lifetime = 3600
    return account


def test_login_then_sync_then_rotation_is_kept(
    tmp_path: Path, server: DevServer, oauth: OAuthServer, user: User
) -> None:
    for i in range(3):
        append(server, user, "INBOX", make_message(subject=f"oauth {i}"))
    config = write_config(tmp_path, {"work": _oauth_account(server, user, tmp_path / "M", oauth)})
    run = Run(tmp_path, config)
    assert run.syncd("check").returncode == 0

    last = run.login()
    assert last.startswith("account work: logged in; refresh token stored in the keyring")

    first = run.syncd("sync")
    assert first.returncode == 0, first.stderr
    assert _files(tmp_path / "M") == 3
    assert re.search(
        rf"Login: user=<{re.escape(user.name)}>, method=OAUTHBEARER", server.log_file.read_text()
    )
    # Every run refreshes (the access token lives in memory only) and the server
    # rotates the refresh token each time: the next runs work only if syncd stored it.
    append(server, user, "INBOX", make_message(subject="oauth later"))
    grants_before = len(oauth.grants)
    for _ in range(2):
        again = run.syncd("sync", "-v")
        assert again.returncode == 0, again.stderr
    assert oauth.grants[grants_before:] == ["refresh_token", "refresh_token"]
    assert _files(tmp_path / "M") == 4
    assert run.leaked(oauth) == []


def test_a_revoked_refresh_token_is_one_line_and_the_other_accounts_sync(
    tmp_path: Path, server: DevServer, oauth: OAuthServer, user: User
) -> None:
    home = server.add_user()
    append(server, home, "INBOX", make_message(subject="home mail"))
    config = write_config(
        tmp_path,
        {
            "work": _oauth_account(server, user, tmp_path / "Work", oauth),
            "home": account_config(server, home, tmp_path / "Home"),
        },
    )
    run = Run(tmp_path, config)
    run.login()
    oauth.revoke_refresh_tokens()

    proc = run.syncd("sync")

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    refused = [line for line in proc.stderr.splitlines() if REFUSED.search(line)]
    assert refused, proc.stderr
    assert _files(tmp_path / "Home") == 1  # the other account synced
    assert run.leaked(oauth) == []


def test_a_token_command_logs_in(
    tmp_path: Path, server: DevServer, oauth: OAuthServer, user: User
) -> None:
    append(server, user, "INBOX", make_message(subject="via command"))
    access = _issue_access_token(oauth, user)
    token_file = tmp_path / "token"
    token_file.write_text(access + "\n", encoding="utf-8")
    table = _oauth_account(
        server, user, tmp_path / "M", oauth, oauth2_token_command=["cat", str(token_file)]
    )
    config = write_config(tmp_path, {"work": table})
    run = Run(tmp_path, config)

    proc = run.syncd("sync", "-vv")

    assert proc.returncode == 0, proc.stderr
    assert _files(tmp_path / "M") == 1
    assert access not in "".join(run.outputs)


def _issue_access_token(oauth: OAuthServer, user: User) -> str:
    """An access token for *user*, as a token helper (oama, mutt_oauth2.py) would print."""
    issued = oauth._issue(user.name, "syncd-test", "imap")
    return str(issued["access_token"])


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"auth": "oauth2"}, '"oauth2" needs a [accounts.work.oauth2] table'),
        ({"oauth2_token_command": "oama access me"}, 'is "password" but oauth2_token_command'),
        (
            {"auth": "oauth2", "oauth2": {"provider": "google"}},
            "accounts.work.oauth2.client_id: missing",
        ),
        (
            {"auth": "oauth2", "oauth2_token_command": "x", "oauth2": {"provider": "google",
                                                                     "client_id": "c"}},
            "not both",
        ),
    ],
)
def test_bad_oauth2_settings_are_one_line_and_exit_2(
    tmp_path: Path, table: dict[str, Any], problem: str
) -> None:
    account = {"host": "imap.example.org", "user": "u", "maildir": str(tmp_path / "M"), **table}
    config = write_config(tmp_path, {"work": account})
    proc = run_syncd("check", config=config)
    assert proc.returncode == 2
    assert problem in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
