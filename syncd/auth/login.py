"""``syncd login ACCOUNT``: obtain an OAuth2 refresh token and store it in the keyring.

Two flows, both ending with the refresh token stored (``KeyringTokenStore``:
service ``syncd``, user ``"<account>:oauth2-refresh-token"``) and one line saying so:

- ``login_with_browser``: the authorization-code flow with PKCE (RFC 7636, S256) and
  a loopback redirect (RFC 8252 §7.3): a one-shot HTTP listener on 127.0.0.1, on a
  free port, receives the browser's redirect; ``state`` is checked before the code
  is exchanged.
- ``login_with_device``: the device authorization grant (RFC 8628), for machines
  without a browser: the user opens a URL elsewhere and types a code while this
  polls the token endpoint at the server's ``interval`` (5 s more after each
  ``slow_down``).

Every failure is a ``CredentialError`` with one line naming the account (the CLI
prints it and exits non-zero); the keyring is checked *before* the user is sent to
the browser, so an unusable keyring costs one line, not a wasted login.  Nothing
here logs or prints a token, a code or the verifier; only the authorization URL
(which carries the PKCE challenge and state, both useless to an observer without
the verifier) and the device flow's user code are shown, because the user needs them.
"""

from __future__ import annotations

import http.server
import logging
import math
import os
import secrets
import sys
import time
import urllib.parse
import webbrowser
from collections.abc import Callable, Mapping
from typing import Any, Final

from syncd.auth.credentials import KEYRING_SERVICE, warn_if_plaintext_keyring
from syncd.auth.oauth2 import (
    KeyringTokenStore,
    TokenStore,
    describe_oauth_error,
    oauth_client,
    oauth_errors,
    refresh_token_username,
)
from syncd.config.oauth2 import AUTHORIZE_EXTRAS, OAuth2Settings
from syncd.errors import CredentialError
from syncd.logsetup import add_secret

logger = logging.getLogger(__name__)

DEVICE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_LOGIN_TIMEOUT: Final = 300.0
DEFAULT_DEVICE_INTERVAL: Final = 5
SLOW_DOWN_STEP: Final = 5  # RFC 8628 §3.5
_VERIFIER_LENGTH: Final = 64  # RFC 7636 §4.1: 43..128 unreserved characters
_READ_TIMEOUT: Final = 10.0  # a browser connection that sends nothing must not hang us

_PAGE: Final = (
    "<!doctype html><meta charset=utf-8><title>syncd</title>"
    "<p>syncd: {message}</p><p>You can close this tab.</p>"
)

Out = Callable[[str], object]


def login_with_browser(
    settings: OAuth2Settings,
    account_name: str,
    *,
    open_browser: bool = True,
    out: Out = print,
    timeout: float = DEFAULT_LOGIN_TIMEOUT,
    store: TokenStore | None = None,
    http_timeout: float = 30.0,
) -> None:
    """Run the authorization-code flow with PKCE and store the refresh token.

    Prints (through *out*) the authorization URL, and opens it with ``webbrowser``
    when *open_browser* and a graphical session seems present (never fatal).  Waits
    up to *timeout* seconds for the redirect to ``http://<redirect_host>:<port>/``
    (listener on 127.0.0.1 only, one request served), checks ``state``, exchanges
    the code with the verifier, stores the refresh token in *store* (default: the
    keyring) and prints one line saying so.  Raises ``CredentialError`` (one line)
    on a refusal, a wrong state, a timeout, an error answer, a missing refresh
    token or an unusable keyring.
    """
    store = store if store is not None else KeyringTokenStore(account_name)
    store.load()  # fail now, in one line, if the keyring is unusable
    verifier = secrets.token_urlsafe(48)[:_VERIFIER_LENGTH]
    with _RedirectListener() as listener:
        redirect_uri = f"http://{settings.redirect_host}:{listener.port}/"
        client = oauth_client(settings, redirect_uri=redirect_uri, code_challenge_method="S256")
        try:
            url, state = client.create_authorization_url(
                settings.authorize_url,
                code_verifier=verifier,
                **AUTHORIZE_EXTRAS.get(settings.provider, {}),
            )
            out(f"account {account_name}: open this URL in a browser and allow access:")
            out(url)
            if open_browser:
                _open_browser(url)
            params = listener.wait(timeout)
            if params is None:
                raise CredentialError(
                    f"account {account_name}: no answer from the browser within "
                    f"{timeout:g} seconds; run `syncd login {account_name}` again"
                )
            if not secrets.compare_digest(params.get("state", ""), state):
                raise CredentialError(
                    f"account {account_name}: the redirect carried a wrong state (not the "
                    f"answer to this login); run `syncd login {account_name}` again"
                )
            if "error" in params:
                detail = params.get("error_description", "")
                raise CredentialError(
                    f"account {account_name}: authorization refused: {params['error']}"
                    + (f" ({_clip(detail)})" if detail else "")
                )
            code = params.get("code", "")
            if not code:
                raise CredentialError(f"account {account_name}: the redirect carried no code")
            add_secret(code)
            try:
                token = client.fetch_token(
                    settings.token_url,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                    redirect_uri=redirect_uri,
                    timeout=http_timeout,
                )
            except oauth_errors() as exc:
                raise CredentialError(
                    f"account {account_name}: exchanging the code failed: "
                    f"{describe_oauth_error(exc)}"
                ) from None
        finally:
            client.close()
    _store(token, account_name, store, out)


def login_with_device(
    settings: OAuth2Settings,
    account_name: str,
    out: Out = print,
    *,
    timeout: float | None = None,
    store: TokenStore | None = None,
    http_timeout: float = 30.0,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run the device authorization grant (RFC 8628) and store the refresh token.

    Asks ``device_url`` for a device code, prints one line with the verification
    URL and the user code, then polls the token endpoint every ``interval`` seconds
    (the server's, default 5; +5 after each ``slow_down``) until the user approves,
    refuses, or the code expires (``expires_in``, or *timeout* if shorter).  Stores
    the refresh token in *store* (default: the keyring) and prints one line saying
    so.  *sleep* and *clock* are for tests.  Raises ``CredentialError`` (one line).
    """
    if not settings.device_url:
        raise CredentialError(
            f"account {account_name}: provider {settings.provider!r} has no device "
            f"flow configured (device_url); use `syncd login {account_name}` without --device"
        )
    store = store if store is not None else KeyringTokenStore(account_name)
    store.load()  # fail now, in one line, if the keyring is unusable
    client = oauth_client(settings)
    try:
        grant = _device_authorization(client, settings, account_name, http_timeout)
        device_code = grant["device_code"]
        add_secret(device_code)
        uri = grant.get("verification_uri") or grant.get("verification_url")
        out(
            f"account {account_name}: on any device, open {uri} and enter the code "
            f"{grant['user_code']}"
        )
        interval = _positive_int(grant.get("interval"), DEFAULT_DEVICE_INTERVAL)
        lifetime = _positive_int(grant.get("expires_in"), 1800)
        deadline = clock() + min(float(lifetime), timeout if timeout is not None else math.inf)
        while True:
            if clock() + interval > deadline:
                raise CredentialError(
                    f"account {account_name}: the code was not entered in time; "
                    f"run `syncd login {account_name} --device` again"
                )
            sleep(interval)
            try:
                token = client.fetch_token(
                    settings.token_url,
                    grant_type=DEVICE_GRANT,
                    device_code=device_code,
                    timeout=http_timeout,
                )
                break
            except oauth_errors() as exc:
                error = getattr(exc, "error", None)
                if error == "authorization_pending":
                    continue
                if error == "slow_down":
                    interval += SLOW_DOWN_STEP
                    logger.debug("device flow: slow_down, polling every %d s now", interval)
                    continue
                if error == "access_denied":
                    raise CredentialError(
                        f"account {account_name}: authorization refused (access_denied)"
                    ) from None
                if error == "expired_token":
                    raise CredentialError(
                        f"account {account_name}: the code expired before it was entered; "
                        f"run `syncd login {account_name} --device` again"
                    ) from None
                raise CredentialError(
                    f"account {account_name}: device login failed: {describe_oauth_error(exc)}"
                ) from None
    finally:
        client.close()
    _store(token, account_name, store, out)


def _device_authorization(
    client: Any, settings: OAuth2Settings, account_name: str, http_timeout: float
) -> Mapping[str, Any]:
    assert settings.device_url is not None
    data = {"client_id": settings.client_id, "scope": settings.scope}
    try:
        response = client.post(
            settings.device_url, data=data, timeout=http_timeout, withhold_token=True
        )
        body = response.json()
    except oauth_errors() as exc:
        raise CredentialError(
            f"account {account_name}: device authorization request failed: "
            f"{describe_oauth_error(exc)}"
        ) from None
    if not isinstance(body, dict):
        body = {}
    if response.status_code != 200 or "error" in body:
        error = body.get("error", f"HTTP {response.status_code}")
        detail = body.get("error_description")
        raise CredentialError(
            f"account {account_name}: device authorization refused: {error}"
            + (f" ({_clip(str(detail))})" if detail else "")
        )
    for key in ("device_code", "user_code"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise CredentialError(
                f"account {account_name}: the device endpoint answered without {key}"
            )
    if not (body.get("verification_uri") or body.get("verification_url")):
        raise CredentialError(
            f"account {account_name}: the device endpoint answered without verification_uri"
        )
    return body


def _store(token: Mapping[str, Any], account_name: str, store: TokenStore, out: Out) -> None:
    for key in ("access_token", "refresh_token"):
        value = token.get(key)
        if isinstance(value, str) and value:
            add_secret(value)
    refresh = token.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise CredentialError(
            f"account {account_name}: the provider sent no refresh token (for a custom "
            "provider, the offline_access scope may be missing); nothing stored"
        )
    store.save(refresh)
    if isinstance(store, KeyringTokenStore):
        warn_if_plaintext_keyring("the refresh token", "oauth2_token_command")
    where = (
        f"the keyring (service {KEYRING_SERVICE}, user {refresh_token_username(account_name)})"
        if isinstance(store, KeyringTokenStore)
        else "the token store"
    )
    out(f"account {account_name}: logged in; refresh token stored in {where}")


def _positive_int(value: object, default: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        return default
    return number if number > 0 else default


def _clip(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _open_browser(url: str) -> None:
    """Open *url* in a graphical browser if there seems to be one; never raises.

    On Linux/BSD without ``DISPLAY`` or ``WAYLAND_DISPLAY``, ``webbrowser`` would
    fall back to a text browser in this very terminal, which would hide the URL we
    just printed: then the URL is only printed.
    """
    if (
        sys.platform not in ("darwin", "win32")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        return
    try:
        webbrowser.open(url)
    except (webbrowser.Error, OSError) as exc:
        logger.debug("could not open a browser: %s", type(exc).__name__)


class _RedirectHandler(http.server.BaseHTTPRequestHandler):
    timeout = _READ_TIMEOUT
    server: _RedirectServer

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes each request line -- with the code in it -- to stderr.
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/":
            self._reply(404, "nothing here")
            return
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if not params:
            self._reply(400, "this address only receives the answer of an OAuth2 login")
            return
        self.server.result = params
        ok = "code" in params and "error" not in params
        self._reply(
            200 if ok else 400,
            "authorization received; syncd is finishing the login"
            if ok
            else "authorization failed; see the terminal",
        )

    def _reply(self, status: int, message: str) -> None:
        body = _PAGE.format(message=message).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class _RedirectServer(http.server.HTTPServer):
    result: dict[str, str] | None = None


class _RedirectListener:
    """A one-shot loopback listener: 127.0.0.1, a free port, the first redirect wins."""

    def __init__(self) -> None:
        self._server = _RedirectServer(("127.0.0.1", 0), _RedirectHandler)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def wait(self, timeout: float) -> dict[str, str] | None:
        """The query parameters of the redirect, or None after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while self._server.result is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._server.timeout = min(remaining, 1.0)
            self._server.handle_request()
        return self._server.result

    def __enter__(self) -> _RedirectListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.server_close()
