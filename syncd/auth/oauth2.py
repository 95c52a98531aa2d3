"""OAuth2 for IMAP: the refresh-token store, the access-token cache and the authenticators.

The entry points the rest of syncd uses are all importable from here (the
settings live in ``syncd.config.oauth2``, the SASL exchange in ``syncd.auth.sasl``,
the ``syncd login`` flows in ``syncd.auth.login``):

- ``parse_oauth2_table(raw, where)`` turns an account's ``[accounts.NAME.oauth2]``
  table into a frozen ``OAuth2Settings`` (provider profile filled in), or raises
  ``ConfigError`` with one line naming the key.  Called once by the config layer.
- ``TokenManager`` holds one account's access token in memory, refreshes it
  ``margin`` seconds before it expires (and on demand after a refused login),
  stores a rotated refresh token and turns a refused refresh token
  (``invalid_grant``) into a ``CredentialError`` that tells the user to run
  ``syncd login ACCOUNT``.  Thread-safe: the daemon's connections share it.
- ``OAuth2Authenticator`` / ``TokenCommandAuthenticator`` implement the
  ``Authenticator`` protocol of ``syncd.auth.credentials``;
  ``authenticator_for_oauth2`` picks one.
- The refresh token lives in the system keyring, service ``syncd``, user name
  ``"<account>:oauth2-refresh-token"`` (``refresh_token_username``), beside the
  password entry of ``syncd password set`` (user name ``<account>``) without
  colliding with it.  Every keyring call goes through ``KeyringTokenStore``.

Why authlib: it is maintained, implements RFC 6749 token requests, RFC 7636
PKCE (S256) and the client authentication methods, parses token responses into
``OAuth2Token`` with ``expires_at``, and reports OAuth error responses as
``OAuthError`` with the ``error`` code, so nothing here hand-parses a token
response.  Its requests integration is used (requests is ubiquitous and
synchronous, as syncd is); requests-oauthlib would do too, but it has been in
maintenance mode for years and needs oauthlib besides.

Secrets: no access token, refresh token or client secret ever appears in a log
line, an exception message or a ``repr``; each token is also registered with
``syncd.logsetup.add_secret`` as soon as it is seen, so even a stray traceback
is masked.  Nothing is written to a state file.
"""

from __future__ import annotations

import hashlib
import shlex
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from syncd.auth.credentials import (
    KEYRING_SERVICE,
    CommandPassword,
    keyring_errors,
    keyring_failure,
    keyring_module,
)
from syncd.auth.sasl import choose_mechanism, connection_usable, sasl_login
from syncd.config.oauth2 import AUTHORIZE_EXTRAS, PROVIDERS, OAuth2Settings, parse_oauth2_table
from syncd.errors import AccountError, ConfigError, CredentialError
from syncd.logsetup import account_logger, add_secret

if TYPE_CHECKING:
    import imapclient

__all__ = [  # OAuth2Settings and parse_oauth2_table live in syncd.config.oauth2
    "AUTHORIZE_EXTRAS",
    "PROVIDERS",
    "KeyringTokenStore",
    "OAuth2Authenticator",
    "OAuth2Settings",
    "TokenCommandAuthenticator",
    "TokenManager",
    "TokenStore",
    "authenticator_for_oauth2",
    "describe_oauth_error",
    "login_hint",
    "oauth_client",
    "oauth_errors",
    "parse_oauth2_table",
    "refresh_token_username",
]

#: Seconds before ``expires_at`` at which a cached access token counts as expired.
DEFAULT_EXPIRY_MARGIN: Final = 60.0
#: Seconds for one HTTP request to a token endpoint.
DEFAULT_HTTP_TIMEOUT: Final = 30.0
#: Used when a token response has no ``expires_in``: refresh after this long anyway.
DEFAULT_LIFETIME: Final = 3600.0
REFRESH_TOKEN_SUFFIX: Final = ":oauth2-refresh-token"  # noqa: S105 - a keyring user name, not a secret


# --------------------------------------------------------------------------- keyring


class TokenStore(Protocol):
    """Where one account's refresh token is kept between runs."""

    def load(self) -> str | None:
        """The stored refresh token, None when there is none; ``CredentialError`` when
        the store cannot be read (one line, no secret)."""
        ...

    def save(self, refresh_token: str) -> None:
        """Store *refresh_token*, replacing any previous one; ``CredentialError`` on failure."""
        ...


def refresh_token_username(account: str) -> str:
    """The keyring user name of *account*'s refresh token: ``"<account>:oauth2-refresh-token"``."""
    return f"{account}{REFRESH_TOKEN_SUFFIX}"


@dataclass(frozen=True)
class KeyringTokenStore:
    """The refresh token in the system keyring (service ``syncd``).

    Any failure of the keyring (no backend, locked, D-Bus gone) becomes one
    ``CredentialError`` line naming the account; no traceback, no secret.
    """

    account: str

    def _fail(self, action: str, exc: BaseException) -> CredentialError:
        return keyring_failure(self.account, exc, action, instead="oauth2_token_command")

    def load(self) -> str | None:
        keyring = keyring_module()
        try:
            secret = keyring.get_password(KEYRING_SERVICE, refresh_token_username(self.account))
        except keyring_errors(keyring) as exc:
            raise self._fail("read", exc) from None
        if not secret:
            return None
        add_secret(str(secret))
        return str(secret)

    def save(self, refresh_token: str) -> None:
        keyring = keyring_module()
        try:
            keyring.set_password(
                KEYRING_SERVICE, refresh_token_username(self.account), refresh_token
            )
        except keyring_errors(keyring) as exc:
            raise self._fail("write to", exc) from None


# --------------------------------------------------------------------------- HTTP client


def oauth_client(settings: OAuth2Settings, **kwargs: Any) -> Any:
    """An authlib ``OAuth2Session`` (a ``requests.Session``) for *settings*.

    With a client secret the client authenticates with ``client_secret_post`` (both
    Google and Microsoft document the secret as a body parameter); without one it
    sends only ``client_id`` (a public client).  *kwargs* go to the constructor
    (``redirect_uri``, ``code_challenge_method``...).
    """
    from authlib.integrations.requests_client import OAuth2Session

    return OAuth2Session(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scope=settings.scope,
        token_endpoint_auth_method="client_secret_post" if settings.client_secret else "none",
        **kwargs,
    )


def oauth_errors() -> tuple[type[Exception], ...]:
    """The exceptions a token request may raise that are the server's or the network's
    fault: authlib's ``OAuthError`` (an OAuth error response), requests' errors, and
    ``ValueError`` (a response that is not JSON)."""
    import requests
    from authlib.integrations.base_client import OAuthError

    return (OAuthError, requests.RequestException, ValueError)


def describe_oauth_error(exc: Exception) -> str:
    """One line for *exc* from :func:`oauth_errors`, never containing a token."""
    import requests

    if isinstance(exc, requests.RequestException):
        # The URL of a token endpoint carries no secret; the body (which may) is never shown.
        request = getattr(exc, "request", None)
        host = urllib.parse.urlsplit(getattr(request, "url", "") or "").netloc
        kind = type(exc).__name__
        return f"cannot reach the token endpoint{f' {host}' if host else ''} ({kind})"
    error = getattr(exc, "error", None)
    if error:
        description = getattr(exc, "description", None)
        detail = f": {_one_line(str(description))}" if description else ""
        return f"the token endpoint answered {error}{detail}"
    return f"the token endpoint sent an unreadable answer ({_one_line(str(exc))})"


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def login_hint(account: str) -> str:
    """The sentence every "log in again" error ends with."""
    return f"run `syncd login {account}`"


# --------------------------------------------------------------------------- tokens


class TokenManager:
    """One account's OAuth2 access token, kept in memory and refreshed when needed.

    ``access_token()`` returns the cached token while it has more than ``margin``
    seconds left, else refreshes it with the stored refresh token.  A refresh that
    returns a new refresh token (rotation) stores it before the access token is
    used.  Errors, each one line naming the account and never a token:

    - no refresh token stored, or the endpoint refuses it (``invalid_grant``):
      ``CredentialError`` ending in "run `syncd login ACCOUNT`".  A refused token
      is remembered (as a digest, in memory): while the keyring holds the same one,
      later calls fail at once without asking the endpoint again -- the daemon's
      connections and retries do not hammer it -- and a new ``syncd login`` (a new
      token in the keyring) is tried at the next call;
    - any other OAuth error answer (``invalid_client``...): ``CredentialError``;
    - the endpoint cannot be reached or answers garbage: ``AccountError`` (try later).

    Thread-safe: one lock serialises refreshes, so connections opened side by side
    share one refresh.  *clock* (seconds, like ``time.time``) is for tests.
    """

    def __init__(
        self,
        account: str,
        settings: OAuth2Settings,
        *,
        store: TokenStore | None = None,
        margin: float = DEFAULT_EXPIRY_MARGIN,
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.settings = settings
        self.store: TokenStore = store if store is not None else KeyringTokenStore(account)
        self.margin = margin
        self.http_timeout = http_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._refused: bytes | None = None  # digest of the refresh token refused last
        #: How many refreshes this manager made (tests and the retry rule use it).
        self.refreshes = 0

    def __repr__(self) -> str:
        state = "none"
        if self._access_token is not None:
            state = f"cached, expires in {self._expires_at - self._clock():.0f} s"
        return (
            f"TokenManager(account={self.account!r}, provider={self.settings.provider!r}, "
            f"access_token=<{state}>)"
        )

    def access_token(self) -> str:
        """A usable access token: the cached one, or a freshly refreshed one."""
        with self._lock:
            if self._access_token is not None and self._clock() < self._expires_at - self.margin:
                return self._access_token
            return self._refresh_locked()

    def refresh(self) -> str:
        """Refresh now, whatever the cache holds, and return the new access token."""
        with self._lock:
            return self._refresh_locked()

    def invalidate(self) -> None:
        """Forget the cached access token (e.g. the server refused it)."""
        with self._lock:
            self._access_token = None
            self._expires_at = 0.0

    def _refresh_locked(self) -> str:
        refresh_token = self.store.load()
        if refresh_token is None:
            raise CredentialError(
                f"account {self.account}: no OAuth2 refresh token stored; "
                f"{login_hint(self.account)}"
            )
        add_secret(refresh_token)
        digest = hashlib.sha256(refresh_token.encode()).digest()
        if digest == self._refused:
            raise self._refused_error()
        client = oauth_client(self.settings)
        try:
            token = client.refresh_token(
                self.settings.token_url,
                refresh_token=refresh_token,
                timeout=self.http_timeout,
            )
        except oauth_errors() as exc:
            if getattr(exc, "error", None) == "invalid_grant":
                self._refused = digest
            raise self._error(exc) from None
        finally:
            client.close()
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise CredentialError(
                f"account {self.account}: the token endpoint answered without an access token"
            )
        add_secret(access)
        rotated = token.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != refresh_token:
            add_secret(rotated)
            self.store.save(rotated)
            account_logger(self.account).info("stored the rotated OAuth2 refresh token")
        self._access_token = access
        self._expires_at = self._clock() + _lifetime(token)
        self.refreshes += 1
        account_logger(self.account).debug(
            "OAuth2 access token refreshed, valid for %.0f s", self._expires_at - self._clock()
        )
        return access

    def _error(self, exc: Exception) -> CredentialError | AccountError:
        error = getattr(exc, "error", None)
        if error == "invalid_grant":
            return self._refused_error()
        message = f"account {self.account}: OAuth2 refresh failed: {describe_oauth_error(exc)}"
        if error:
            return CredentialError(message)
        return AccountError(message)

    def _refused_error(self) -> CredentialError:
        return CredentialError(
            f"account {self.account}: the OAuth2 refresh token was refused (expired or "
            f"revoked); {login_hint(self.account)}"
        )


def _lifetime(token: Mapping[str, Any]) -> float:
    expires_in = token.get("expires_in")
    try:
        seconds = float(expires_in) if expires_in is not None else DEFAULT_LIFETIME
    except (TypeError, ValueError):
        seconds = DEFAULT_LIFETIME
    return max(seconds, 0.0)


@dataclass(frozen=True)
class OAuth2Authenticator:
    """SASL OAUTHBEARER or XOAUTH2 with a token from a ``TokenManager``.

    Retry rule: when the server refuses a *cached* token, the token is refreshed
    once and a second AUTHENTICATE is sent on the same connection -- IMAP allows
    another attempt in the not-authenticated state -- provided the connection is
    still usable (checked with NOOP).  When the connection is gone, or the refused
    token had just been refreshed, the refusal (``LoginError``) propagates and the
    caller reconnects on its usual schedule.  A token the server refuses right
    after a refresh is a server-side problem (scope, account) that another refresh
    would not fix.
    """

    user: str
    tokens: TokenManager

    def authenticate(self, client: imapclient.IMAPClient) -> None:
        from imapclient.exceptions import LoginError

        mechanism = choose_mechanism(client)
        before = self.tokens.refreshes
        token = self.tokens.access_token()
        try:
            sasl_login(client, mechanism, self.user, token)
        except LoginError:
            if self.tokens.refreshes != before or not connection_usable(client):
                raise
            account_logger(self.tokens.account).info(
                "the server refused the cached OAuth2 access token; "
                "refreshing it and trying once more"
            )
            self.tokens.invalidate()
            sasl_login(client, mechanism, self.user, self.tokens.refresh())
        account_logger(self.tokens.account).debug("authenticated with %s", mechanism)


@dataclass(frozen=True)
class TokenCommandAuthenticator:
    """SASL OAUTHBEARER or XOAUTH2 with an access token printed by a command.

    ``oauth2_token_command`` is run through ``CommandPassword`` (no shell, stdin
    closed, one line of output, timeout) at every connection: the command owns
    caching and refreshing.  Its errors are ``CredentialError`` lines naming the
    account and ``oauth2_token_command``.  No retry: the command would print the
    same token again.
    """

    user: str
    command: CommandPassword

    def authenticate(self, client: imapclient.IMAPClient) -> None:
        try:
            token = self.command.password()
        except CredentialError as exc:
            # CommandPassword speaks of password_command; name the key the user wrote.
            text = str(exc).replace("password_command", "oauth2_token_command")
            raise CredentialError(text.replace("only the password", "only the token")) from None
        add_secret(token)
        sasl_login(client, choose_mechanism(client), self.user, token)


def authenticator_for_oauth2(
    account_name: str,
    source: OAuth2Settings | Sequence[str],
    user: str,
    *,
    store: TokenStore | None = None,
) -> OAuth2Authenticator | TokenCommandAuthenticator:
    """The authenticator for an ``auth = "oauth2"`` account.

    *source* is the account's ``OAuth2Settings``, or its ``oauth2_token_command``
    as an argv (a string is split with ``shlex.split``, like ``password_command``).
    *store* replaces the keyring (tests).  Build it once per account and reuse it:
    the ``TokenManager`` inside caches the access token across connections.
    """
    if isinstance(source, OAuth2Settings):
        return OAuth2Authenticator(user, TokenManager(account_name, source, store=store))
    argv = tuple(shlex.split(source)) if isinstance(source, str) else tuple(source)
    if not argv:
        raise ConfigError(f"account {account_name}: oauth2_token_command is empty")
    return TokenCommandAuthenticator(user, CommandPassword(argv, account=account_name))
