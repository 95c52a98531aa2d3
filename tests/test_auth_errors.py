"""Authentication and keyring failures read as one line naming the account (issue 12).

A keyring that cannot be opened (no D-Bus session bus on a headless machine, a
Secret Service error) or is missing, and a login the server refuses: each is one
line on stderr that names the account and says what to do, never a traceback and
never raw ``b'...'`` bytes.  The other accounts of the run still sync.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest
from support.imap import append
from support.mail import make_message
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User
from syncd.auth.credentials import KeyringPassword, delete_password, set_password
from syncd.errors import CredentialError

# The Secret Service backend with no session bus: what `syncd` meets under cron or ssh.
NO_DBUS = {
    "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
    "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/syncd-test-bus",
}


class BrokenBusKeyring(keyring.backend.KeyringBackend):
    """Raises what jeepney raises when the session bus socket is missing."""

    priority = 1  # type: ignore[assignment]

    def _fail(self) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    def get_password(self, service: str, username: str) -> str | None:
        self._fail()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self._fail()

    def delete_password(self, service: str, username: str) -> None:
        self._fail()


@pytest.fixture
def broken_bus() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(BrokenBusKeyring())
    yield
    keyring.set_keyring(previous)


@pytest.mark.usefixtures("broken_bus")
def test_a_backend_without_its_bus_is_one_line_naming_the_account_and_the_ways_out() -> None:
    for action in (
        lambda: KeyringPassword("work").password(),
        lambda: set_password("work", "pw"),
        lambda: delete_password("work"),
    ):
        with pytest.raises(CredentialError) as raised:
            action()
        message = str(raised.value)
        assert message.startswith("account work: cannot ")
        assert "D-Bus" in message
        assert "password_command" in message
        assert "keyrings.alt" in message
        assert "\n" not in message


def _one_line_without_traceback(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert "b'" not in stderr and 'b"' not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    return "\n".join(lines)


def test_password_set_without_a_session_bus_is_one_line(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {"work": {"host": "127.0.0.1", "user": "u", "maildir": str(tmp_path / "Mail")}},
    )
    proc = run_syncd("password", "set", "work", config=config, env=NO_DBUS)
    # click reads the password from the closed stdin and may prompt; either way no traceback
    text = _one_line_without_traceback(proc.stderr)
    assert proc.returncode != 0
    assert "account work" in text or "password" in text


def test_sync_with_an_unusable_keyring_fails_that_account_only(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    second_account = dovecot.add_user()
    for i in range(2):
        append(dovecot, second_account, "INBOX", make_message(subject=f"m{i}"))
    keyring_only = account_config(dovecot, account, tmp_path / "Work", password_command=None)
    ok = account_config(dovecot, second_account, tmp_path / "Home")
    config = write_config(tmp_path, {"work": keyring_only, "home": ok})

    proc = run_syncd("sync", config=config, env=NO_DBUS)

    assert proc.returncode == 1
    text = _one_line_without_traceback(proc.stderr)
    failing = [line for line in text.splitlines() if "cannot read the keyring" in line]
    assert failing, text
    assert all("work" in line for line in failing)
    assert "D-Bus" in failing[0] and "password_command" in failing[0]
    # the other account synced all its mail
    assert len(list((tmp_path / "Home" / "cur").iterdir())) + len(
        list((tmp_path / "Home" / "new").iterdir())
    ) == 2


def test_a_refused_login_is_text_naming_the_account(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    wrong = account_config(
        dovecot, account, tmp_path / "Mail", password_command=["printf", "%s", "wrong"]
    )
    config = write_config(tmp_path, {"work": wrong})

    proc = run_syncd("sync", config=config)

    assert proc.returncode == 1
    text = _one_line_without_traceback(proc.stderr)
    assert "work" in text
    assert "AUTHENTICATIONFAILED" in text or "Authentication failed" in text, text
