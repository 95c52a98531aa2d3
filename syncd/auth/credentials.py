"""Credentials: where a password comes from, and how a connection authenticates.

The IMAP store receives an ``Authenticator``, never a password: it calls
``authenticate(client)`` once per connection, after TLS is up.  The password
is fetched at that moment and dropped right after (a ``PasswordSource`` is
asked each time), so a changed password is picked up on the next connection
and no secret lives in long-lived objects.  OAuth2 (XOAUTH2/OAUTHBEARER) will
be another ``Authenticator``.

Sources, in the order the config chooses them: ``password_command`` (an argv,
run without a shell) if set, else the system keyring (service ``syncd``,
user name = account name), where ``syncd password set NAME`` stores it.

No message raised here contains a password or a command's standard output.
"""

from __future__ import annotations

import logging
import subprocess
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from syncd.errors import CredentialError
from syncd.logsetup import add_secret

if TYPE_CHECKING:
    import imapclient

    from syncd.config import AccountConfig

# The name it had before the package split: users\' log filters use it.

logger = logging.getLogger("syncd.credentials")

KEYRING_SERVICE: Final = "syncd"
DEFAULT_COMMAND_TIMEOUT: Final = 30.0
_STDERR_EXCERPT: Final = 120


class PasswordSource(Protocol):
    """Something that can produce the account's password, each time it is asked."""

    def password(self) -> str:
        """The password; ``CredentialError`` (one line, no secret) when there is none."""
        ...


class Authenticator(Protocol):
    """Logs an IMAP connection in.  Called once per connection, after TLS."""

    def authenticate(self, client: imapclient.IMAPClient) -> None:
        """Authenticate *client*.

        Raises ``CredentialError`` when no credential could be obtained; the
        server's refusal propagates as imapclient raises it (``LoginError``).
        """
        ...


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    line = text.splitlines()[0].strip() if text else ""
    if len(line) > _STDERR_EXCERPT:
        line = line[: _STDERR_EXCERPT - 3] + "..."
    return line


@dataclass(frozen=True)
class CommandPassword:
    """A password printed by a command, e.g. ``pass show mail/work``.

    *argv* is run directly, without a shell: no ``$(...)``, pipes, globbing,
    ``~`` or ``$VAR`` expansion (the config layer splits a string with
    ``shlex.split``; use ``["sh", "-c", "..."]`` to get a shell on purpose).
    Standard input is closed.  The password is standard output minus one
    trailing newline (``\\n`` or ``\\r\\n``); output with more lines than that
    is refused rather than guessed at.  A non-zero exit, a timeout, a missing
    executable or empty output raise ``CredentialError`` naming the account,
    ``argv[0]`` and the exit status, with at most the first line of standard
    error (shortened) and never standard output.
    """

    argv: tuple[str, ...]
    timeout: float = DEFAULT_COMMAND_TIMEOUT
    account: str | None = None

    def _fail(self, problem: str) -> CredentialError:
        who = f"account {self.account}: " if self.account else ""
        return CredentialError(f"{who}password_command {self.argv[0]!r} {problem}")

    def password(self) -> str:
        try:
            # Popen rather than subprocess.run: on a timeout, run() waits for the
            # pipes to close, which a grandchild holding them open would delay forever.
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise self._fail("failed: command not found") from None
        except OSError as exc:
            raise self._fail(f"failed: {exc.strerror or type(exc).__name__}") from None
        try:
            stdout, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            raise self._fail(f"timed out after {self.timeout:g} seconds") from None
        if process.returncode != 0:
            detail = _first_line(stderr)
            raise self._fail(
                f"failed (exit status {process.returncode})" + (f": {detail}" if detail else "")
            )
        try:
            text = stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("printed something that is not UTF-8 text") from None
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        if not text:
            raise self._fail("printed nothing (exit status 0)")
        if "\n" in text or "\r" in text:
            # e.g. `pass show` of an entry with extra lines: sending the whole
            # thing as the password would fail in a confusing way, or worse.
            raise self._fail(
                "printed more than one line; it must print only the password "
                '(e.g. password_command = ["sh", "-c", "pass show ENTRY | head -n1"])'
            )
        return text


def keyring_module() -> types.ModuleType:
    # Imported on use: importing keyring scans every backend (slow), and only
    # accounts without password_command and the `syncd password` commands need it.
    import keyring
    import keyring.errors

    return keyring


def keyring_errors(keyring: types.ModuleType) -> tuple[type[BaseException], ...]:
    """What a keyring backend raises when it cannot be used at all.

    keyring's own errors cover a missing backend (``NoKeyringError``) and a
    locked one; the Secret Service backend also lets D-Bus failures through
    as they come: jeepney's ``OSError`` when there is no session bus (a
    headless machine, a cron job, ssh), secretstorage's exceptions, a D-Bus
    error reply.  To the user every one of them means the same thing.
    """
    errors: list[type[BaseException]] = [keyring.errors.KeyringError, OSError]
    try:
        from secretstorage.exceptions import SecretStorageException
    except ImportError:
        pass
    else:
        errors.append(SecretStorageException)
    try:
        from jeepney import DBusErrorResponse
    except ImportError:
        pass
    else:
        errors.append(DBusErrorResponse)
    return tuple(errors)


_BACKENDS: Final = (
    "a Secret Service such as gnome-keyring or KeePassXC with a D-Bus session, "
    "or the keyrings.alt package for a file"
)


def keyring_failure(
    account: str, exc: BaseException, action: str, *, instead: str = ""
) -> CredentialError:
    """One line for a keyring that could not be used: which account, why, what to do.

    *instead* names the config key that avoids the keyring (``password_command`` by
    default; ``oauth2_token_command`` for an OAuth2 refresh token).
    """
    reason = _first_line(str(exc).encode()) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError) and exc.errno:
        # jeepney's socket error says "No such file or directory": name what was missing.
        reason = f"no D-Bus session bus to reach the Secret Service: {reason}"
    if instead:
        return CredentialError(
            f"account {account}: cannot {action} the keyring ({reason}); set {instead} in "
            f"the config, or configure a keyring backend ({_BACKENDS})"
        )
    return CredentialError(
        f"account {account}: cannot {action} the keyring ({reason}); set password_command in "
        f"the config (e.g. pass or gpg), or configure a keyring backend for `syncd password "
        f"set {account}` ({_BACKENDS})"
    )


@dataclass(frozen=True)
class KeyringPassword:
    """The password stored in the system keyring under service ``syncd``, user *account*."""

    account: str

    def password(self) -> str:
        keyring = keyring_module()
        try:
            secret = keyring.get_password(KEYRING_SERVICE, self.account)
        except keyring_errors(keyring) as exc:
            raise keyring_failure(self.account, exc, "read") from None
        if not secret:
            raise CredentialError(
                f"no password for account {self.account}: set one with "
                f"`syncd password set {self.account}` or configure password_command"
            )
        return str(secret)


@dataclass(frozen=True)
class PasswordAuthenticator:
    """``LOGIN user password``, with the password fetched from *source* at each call."""

    user: str
    source: PasswordSource = field(repr=False)

    def authenticate(self, client: imapclient.IMAPClient) -> None:
        secret = self.source.password()
        add_secret(secret)  # so a stray traceback or trace line shows *** instead
        if secret.isascii() and self.user.isascii():
            client.login(self.user, secret)
        else:
            # imaplib's LOGIN can only send ASCII; AUTHENTICATE PLAIN carries UTF-8.
            client.plain_login(self.user, secret)

    def __repr__(self) -> str:
        return f"PasswordAuthenticator(user={self.user!r}, source={type(self.source).__name__})"


def password_source_for(account: AccountConfig) -> PasswordSource:
    """``CommandPassword`` when the account sets password_command, else ``KeyringPassword``."""
    if account.password_command is not None:
        return CommandPassword(
            account.password_command, timeout=DEFAULT_COMMAND_TIMEOUT, account=account.name
        )
    return KeyringPassword(account.name)


def authenticator_for(account: AccountConfig) -> Authenticator:
    """The authenticator the IMAP store uses for *account* (today: password LOGIN)."""
    return PasswordAuthenticator(account.user, password_source_for(account))


def set_password(account_name: str, password: str) -> None:
    """Store *password* in the keyring for *account_name* (``syncd password set``)."""
    keyring = keyring_module()
    if not password:
        raise CredentialError(f"account {account_name}: refusing to store an empty password")
    try:
        keyring.set_password(KEYRING_SERVICE, account_name, password)
    except keyring_errors(keyring) as exc:
        raise keyring_failure(account_name, exc, "write to") from None
    warn_if_plaintext_keyring("passwords", "password_command")


def warn_if_plaintext_keyring(what: str, instead: str) -> None:
    """Warn when the keyring in use keeps *what* unencrypted on disk (keyrings.alt's
    plaintext backend), suggesting the config key *instead* with an encrypted store."""
    backend = keyring_module().get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    if "plaintext" in name.lower():
        logger.warning(
            "the keyring backend %s stores %s unencrypted on disk; "
            "consider %s with an encrypted store (pass, gpg) instead",
            name,
            what,
            instead,
        )


def delete_password(account_name: str) -> None:
    """Remove the stored password of *account_name* (``syncd password delete``)."""
    keyring = keyring_module()
    try:
        keyring.delete_password(KEYRING_SERVICE, account_name)
    except keyring.errors.PasswordDeleteError:
        raise CredentialError(f"no password stored for account {account_name}") from None
    except keyring_errors(keyring) as exc:
        raise keyring_failure(account_name, exc, "write to") from None
