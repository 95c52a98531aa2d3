"""Credentials (password command, keyring, authenticator) and the log secret mask."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from syncd.auth.credentials import (
    CommandPassword,
    KeyringPassword,
    PasswordAuthenticator,
    authenticator_for,
    delete_password,
    password_source_for,
    set_password,
)
from syncd.config import load_config
from syncd.errors import CredentialError
from syncd.logsetup import account_logger, add_secret, setup_logging

SECRET = "s3cr3t-Pa55word"
PY = sys.executable


def py(code: str) -> tuple[str, ...]:
    """An argv running *code* with this Python (no shell involved)."""
    return (PY, "-c", textwrap.dedent(code))


# --------------------------------------------------------------------------- password command


@pytest.mark.parametrize(
    ("printed", "password"),
    [
        (f"{SECRET}\n", SECRET),
        (f"{SECRET}\r\n", SECRET),
        (SECRET, SECRET),
        (f"  {SECRET} \n", f"  {SECRET} "),  # only the newline is removed
        ("pässwörd\n", "pässwörd"),
    ],
)
def test_command_output_minus_one_trailing_newline(printed: str, password: str) -> None:
    argv = py(f"import sys; sys.stdout.buffer.write({printed.encode()!r})")
    assert CommandPassword(argv).password() == password


def test_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "x"
    config = tmp_path / "config.toml"
    config.write_text(
        '[general]\nstate_dir = "state"\n'
        f'[accounts.work]\nhost = "h"\nuser = "u"\nmaildir = "mail"\n'
        f'password_command = "echo $(touch {marker}) `touch {marker}` ; touch {marker}"\n'
    )
    source = password_source_for(load_config(config).accounts["work"])
    assert source.password() == f"$(touch {marker}) `touch {marker}` ; touch {marker}"
    assert not marker.exists()


def test_command_stdin_is_closed() -> None:
    argv = py("import sys; data = sys.stdin.read(); print('eof' if data == '' else 'data')")
    assert CommandPassword(argv).password() == "eof"


def test_failure_names_account_command_and_status_but_not_stdout() -> None:
    argv = py(
        f"""
        import sys
        print({SECRET!r})
        sys.stderr.write("gpg: decryption failed: No secret key\\nsecond line {SECRET}\\n")
        sys.exit(2)
        """
    )
    with pytest.raises(CredentialError) as raised:
        CommandPassword(argv, account="work").password()
    message = str(raised.value)
    assert message == (
        f"account work: password_command {PY!r} failed (exit status 2): "
        "gpg: decryption failed: No secret key"
    )
    assert SECRET not in message


def test_long_stderr_is_shortened() -> None:
    argv = py("import sys; sys.stderr.write('e' * 5000); sys.exit(1)")
    with pytest.raises(CredentialError) as raised:
        CommandPassword(argv, account="work").password()
    assert len(str(raised.value)) < 250
    assert str(raised.value).endswith("...")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("pass", "printed nothing (exit status 0)"),
        ("print()", "printed nothing (exit status 0)"),
        (f"print({SECRET!r}); print('user: me')", "printed more than one line"),
        (f"print({SECRET!r}); print()", "printed more than one line"),
        ("import sys; sys.stdout.buffer.write(b'\\xff\\xfe')", "not UTF-8"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "exit status -15"),
    ],
)
def test_bad_output_is_refused_without_echoing_it(code: str, expected: str) -> None:
    with pytest.raises(CredentialError) as raised:
        CommandPassword(py(code), account="work").password()
    message = str(raised.value)
    assert message.startswith(f"account work: password_command {PY!r} ")
    assert expected in message
    assert SECRET not in message
    assert "user: me" not in message


def test_missing_executable(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-pass")
    with pytest.raises(CredentialError) as raised:
        CommandPassword((missing, "show", "x"), account="work").password()
    assert str(raised.value) == (
        f"account work: password_command {missing!r} failed: command not found"
    )


def test_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho x\n")
    script.chmod(0o600)
    with pytest.raises(CredentialError, match="failed: Permission denied"):
        CommandPassword((str(script),)).password()


def test_timeout_kills_the_command_even_if_a_child_holds_its_output(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    argv = py(
        f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "60"])  # inherits our stdout pipe
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
        """
    )
    try:
        with pytest.raises(CredentialError) as raised:
            CommandPassword(argv, timeout=1.0, account="work").password()
        assert str(raised.value) == (
            f"account work: password_command {PY!r} timed out after 1 seconds"
        )
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


# --------------------------------------------------------------------------- authenticator


class RecordingClient:
    """Stands in for imapclient.IMAPClient: only ``login`` is called."""

    def __init__(self) -> None:
        self.logins: list[tuple[str, str]] = []

    def login(self, user: str, password: str) -> None:
        self.logins.append((user, password))


class CountingSource:
    def __init__(self) -> None:
        self.calls = 0

    def password(self) -> str:
        self.calls += 1
        return f"{SECRET}-{self.calls}"


def test_authenticator_fetches_the_password_for_each_connection() -> None:
    source = CountingSource()
    authenticator = PasswordAuthenticator("me@example.org", source)
    first, second = RecordingClient(), RecordingClient()
    authenticator.authenticate(first)
    authenticator.authenticate(second)
    assert first.logins == [("me@example.org", f"{SECRET}-1")]
    assert second.logins == [("me@example.org", f"{SECRET}-2")]
    assert SECRET not in repr(authenticator)
    assert SECRET not in str(vars(authenticator))


def test_authenticator_repr_hides_command_output() -> None:
    authenticator = PasswordAuthenticator("me", CommandPassword(py(f"print({SECRET!r})")))
    authenticator.authenticate(RecordingClient())
    assert repr(authenticator) == "PasswordAuthenticator(user='me', source=CommandPassword)"


def test_authenticator_for_chooses_command_then_keyring(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[general]\nstate_dir = "state"\n'
        '[accounts.cmd]\nhost = "h"\nuser = "u1"\nmaildir = "m1"\n'
        'password_command = ["pass", "show", "x"]\n'
        '[accounts.kr]\nhost = "h"\nuser = "u2"\nmaildir = "m2"\n'
    )
    accounts = load_config(config).accounts
    assert password_source_for(accounts["cmd"]) == CommandPassword(
        ("pass", "show", "x"), account="cmd"
    )
    assert password_source_for(accounts["kr"]) == KeyringPassword("kr")
    authenticator = authenticator_for(accounts["kr"])
    assert isinstance(authenticator, PasswordAuthenticator)
    assert authenticator.user == "u2"


# --------------------------------------------------------------------------- keyring


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A test-only in-memory backend."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_keyring_round_trip(memory_keyring: MemoryKeyring) -> None:
    set_password("work", SECRET)
    assert memory_keyring.store == {("syncd", "work"): SECRET}
    assert KeyringPassword("work").password() == SECRET
    delete_password("work")
    with pytest.raises(CredentialError) as raised:
        KeyringPassword("work").password()
    assert str(raised.value) == (
        "no password for account work: set one with `syncd password set work` "
        "or configure password_command"
    )


def test_deleting_a_missing_password(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(CredentialError, match=r"^no password stored for account work$"):
        delete_password("work")


def test_empty_password_is_not_stored(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(CredentialError, match="refusing to store an empty password"):
        set_password("work", "")
    assert memory_keyring.store == {}


def test_no_keyring_backend_names_both_options() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        for action in (
            lambda: KeyringPassword("work").password(),
            lambda: set_password("work", SECRET),
            lambda: delete_password("work"),
        ):
            with pytest.raises(CredentialError) as raised:
                action()
            message = str(raised.value)
            assert message.startswith("account work: cannot ")
            assert "`syncd password set work`" in message
            assert "password_command" in message
            assert "\n" not in message
            assert SECRET not in message
    finally:
        keyring.set_keyring(previous)


def test_real_backend_loading_path_across_processes(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "HOME": str(tmp_path / "home"),
    }
    stored = subprocess.run(
        [
            PY,
            "-c",
            f"from syncd.auth.credentials import set_password; set_password('work', {SECRET!r})",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # keyrings.alt keeps it in plain text: syncd says so.
    assert "stores passwords unencrypted" in stored.stderr
    assert SECRET not in stored.stderr + stored.stdout
    assert (tmp_path / "data" / "python_keyring").is_dir()
    read = subprocess.run(
        [
            PY,
            "-c",
            "from syncd.auth.credentials import KeyringPassword as K; print(K('work').password())",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert read.stdout == f"{SECRET}\n"


# --------------------------------------------------------------------------- logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    syncd_level = logging.getLogger("syncd").level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("syncd").setLevel(syncd_level)
    logging.captureWarnings(False)


def logged(verbosity: int, emit: Any, timestamps: str = "0") -> str:
    stream = io.StringIO()
    setup_logging(verbosity, stream=stream, environ={"SYNCD_LOG_TIMESTAMPS": timestamps})
    emit()
    return stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_account_lines_read_account_folder_message() -> None:
    def emit() -> None:
        account_logger("work", "INBOX").info("downloaded %d messages", 12)
        account_logger("work").warning("server offline")
        logging.getLogger("syncd.daemon").warning("IDLE not supported")

    assert logged(0, emit) == (
        "INFO work/INBOX: downloaded 12 messages\n"
        "WARNING work: server offline\n"
        "WARNING syncd.daemon: IDLE not supported\n"
    )


def test_account_records_carry_name_and_context(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="syncd"):
        account_logger("work", "INBOX").info("downloaded %d messages", 12)
    (record,) = caplog.records
    assert record.name == "syncd.account.work"
    assert record.getMessage() == "work/INBOX: downloaded 12 messages"


@pytest.mark.usefixtures("restore_logging")
def test_timestamps_by_default_and_not_with_syncd_log_timestamps_0() -> None:
    def emit() -> None:
        logging.getLogger("syncd.x").warning("hello")

    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING syncd\.x: hello\n", logged(0, emit, "1")
    )
    assert logged(0, emit, "0") == "WARNING syncd.x: hello\n"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [
        (-1, ["syncd warning"]),
        (0, ["syncd info", "syncd warning"]),
        (1, ["syncd debug", "syncd info", "syncd warning"]),
        # imapclient's DEBUG lines quote message literals: never shown, even at -vv
        (2, ["syncd debug", "syncd info", "syncd warning"]),
    ],
)
def test_verbosity_levels(verbosity: int, shown: list[str]) -> None:
    def emit() -> None:
        log = logging.getLogger("syncd.engine")
        log.debug("syncd debug")
        log.info("syncd info")
        log.warning("syncd warning")
        logging.getLogger("imapclient.imaplib").debug("imapclient debug")

    lines = logged(verbosity, emit).splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == shown


@pytest.mark.usefixtures("restore_logging")
def test_registered_secret_is_masked_in_messages_arguments_and_tracebacks() -> None:
    def emit() -> None:
        add_secret(SECRET)
        add_secret("abc")  # too short to mask usefully: ignored
        log = logging.getLogger("syncd.engine")
        log.info("password is %s", SECRET)
        log.info(f"literal {SECRET} in the format string")
        log.info("repr: %r", (SECRET + "'",))
        try:
            raise RuntimeError(f"login failed for {SECRET}")
        except RuntimeError:
            log.exception("stray traceback")
        log.info("abc stays")

    text = logged(0, emit)
    assert SECRET not in text
    assert "password is ***" in text
    assert "literal *** in the format string" in text
    assert "RuntimeError: login failed for ***" in text
    assert "abc stays" in text


@pytest.mark.usefixtures("restore_logging")
def test_authenticating_registers_the_password_with_the_mask() -> None:
    def emit() -> None:
        source = CommandPassword(py(f"print({SECRET!r})"))
        PasswordAuthenticator("me", source).authenticate(RecordingClient())
        # Set up again (as a second call would): the secret is still masked.
        logging.getLogger("imapclient.imaplib").warning("> LOGIN me %s", SECRET)

    first = logged(0, emit)
    assert first == "WARNING imapclient.imaplib: > LOGIN me ***\n"
    again = logged(2, lambda: logging.getLogger("x").warning(SECRET))
    assert again == "WARNING x: ***\n"
    assert (
        len([h for h in logging.getLogger().handlers if type(h).__name__ == "_SyncdHandler"]) == 1
    )
