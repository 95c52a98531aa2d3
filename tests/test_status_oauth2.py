"""A refused OAuth2 refresh token (``invalid_grant``) in ``syncd status`` (issues 12, 15):
one-shot and daemon, against a real Dovecot that checks tokens with the test OAuth2
server.  The account shows as failing with the one line that says to run ``syncd
login``; the daemon keeps it backed off without asking the token endpoint again, and
the other account goes on.  No token appears in any output or state file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.imap import append
from support.mail import make_message
from support.oauth_server import OAuthServer, oauth_dovecot
from support.run import account_config, write_config
from test_daemon_e2e import daemon, wait_for
from test_oauth2_cli import Run, _oauth_account

from devserver.dovecot import DevServer

REFUSED = (
    "account work: the OAuth2 refresh token was refused (expired or revoked); "
    "run `syncd login work`"
)


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(oauth: OAuthServer) -> Iterator[DevServer]:
    with oauth_dovecot(oauth) as dovecot:
        yield dovecot


def _status(run: Run, *args: str) -> tuple[int, str]:
    proc = run.syncd("status", *args)
    return proc.returncode, proc.stdout


def test_a_refused_refresh_token_shows_failing_and_the_daemon_does_not_hammer_the_endpoint(
    tmp_path: Path, server: DevServer, oauth: OAuthServer
) -> None:
    user, home = server.add_user(), server.add_user()
    oauth.approve_as = user.name
    append(server, home, "INBOX", make_message(subject="home mail"))
    config = write_config(
        tmp_path,
        {
            "work": _oauth_account(server, user, tmp_path / "Work", oauth, interval="1h"),
            "home": account_config(server, home, tmp_path / "Home", interval="1h"),
        },
    )
    run = Run(tmp_path, config)
    run.login()
    oauth.revoke_refresh_tokens()
    assert run.syncd("sync").returncode == 1

    code, text = _status(run)
    assert code == 1
    assert "work: failing since " in text and f"  error: {REFUSED}\n" in text, text
    code, out = _status(run, "--json")
    work = json.loads(out)["accounts"]["work"]
    assert code == 1 and (work["state"], work["error"], work["error_kind"]) == (
        "failing",
        REFUSED,
        "oauth2",
    )
    code, line = _status(run, "--short")
    assert code == 1 and line.startswith("work ✗ OAuth2 refused "), line
    assert " · home ✓ " in line, line

    grants = len(oauth.grants)
    with daemon(config, tmp_path, run.env) as d:

        def failing() -> dict[str, Any] | None:
            data: dict[str, Any] = json.loads(_status(run, "--json")[1])
            work, home = data["accounts"]["work"], data["accounts"]["home"]
            ready = data["daemons"] and work["daemon_pid"] and work["state"] == "failing"
            return work if ready and home["state"] == "idle" and work["next_run"] else None

        work = wait_for(failing, "the daemon holding work back", d)
        assert work["error"] == REFUSED
        assert work["next_run"] > time.time() + 120  # the longest back-off, not "at once"
        time.sleep(3)  # room for the retry at once that must not come
        assert oauth.grants[grants:] == ["refresh_token"], oauth.grants[grants:]
        code, text = _status(run)
        assert code == 1 and "next attempt: " in text and REFUSED in text, text

        # The user logs in again; a one-shot sync gets through, and status believes it
        # over the daemon's older word.
        run.login()
        assert run.syncd("sync", "work").returncode == 0
        code, out = _status(run, "--json")
        assert code == 0, out
        assert json.loads(out)["accounts"]["work"]["state"] == "idle"
        assert d.stop() == 0
    assert run.leaked(oauth) == []
    assert "Traceback" not in d.log
