"""A small OAuth2 authorization server on 127.0.0.1 for syncd's OAuth2 tests.

Standard library only (``http.server`` in a thread), so it tests syncd's client
against an independent implementation rather than against authlib itself.

Endpoints (all on ``http://127.0.0.1:<free port>``):

- ``GET /authorize``: RFC 6749 §4.1 with RFC 7636 PKCE (``S256`` only). Auto-approves
  as :attr:`OAuthServer.approve_as` and redirects (302) to ``redirect_uri`` with
  ``code`` and ``state``; the test plays the browser by GETting the URL. With
  :attr:`OAuthServer.deny` set it redirects with ``error=access_denied``.
- ``POST /token``: grants ``authorization_code`` (checks client, redirect URI and
  ``code_verifier``), ``refresh_token`` (with **rotation**: each use returns a new
  refresh token and invalidates the old one) and the RFC 8628 device grant
  (``authorization_pending`` for :attr:`pending_polls` polls, optionally one
  ``slow_down``, then tokens once :meth:`approve_device` was called -- or at once
  when :attr:`auto_approve_device`).
- ``POST /device``: RFC 8628 device authorization request.
- ``POST /introspect``: RFC 7662, for Dovecot's ``oauth2`` passdb
  (``introspection_mode = post``): ``{"active": true, "username": ...}`` for a live
  access token, ``{"active": false}`` otherwise.

Switches for tests: :meth:`revoke_refresh_tokens` (the next refresh gets
``invalid_grant``), :attr:`access_token_lifetime` (seconds, e.g. 2),
:meth:`expire_access_tokens`. Counters: :attr:`grants` (grant types in order),
:attr:`introspections`.

Use it as a context manager (or call :meth:`stop`): the thread and socket are gone
when it exits. :func:`dovecot_oauth2_conf` writes the passdb settings that make a
``devserver.dovecot`` Dovecot check tokens against it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    username: str
    scope: str


@dataclass
class _Device:
    client_id: str
    user_code: str
    scope: str
    polls: int = 0
    approved_as: str | None = None
    slowed: bool = False


@dataclass
class OAuthServer:
    """The server's state; :meth:`start` binds and serves it (see the module docstring)."""

    clients: dict[str, str | None] = field(default_factory=lambda: {"syncd-test": None})
    approve_as: str = "user"
    deny: bool = False
    access_token_lifetime: float = 3600.0
    rotate_refresh_tokens: bool = True
    pending_polls: int = 2
    slow_down_once: bool = False
    auto_approve_device: bool = False
    device_interval: int = 1
    grants: list[str] = field(default_factory=list)
    introspections: int = 0
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    #: every access and refresh token ever issued, for scans that none leaked anywhere
    issued: list[str] = field(default_factory=list)
    _codes: dict[str, _Code] = field(default_factory=dict, repr=False)
    _access: dict[str, tuple[str, float]] = field(default_factory=dict, repr=False)
    _refresh: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    _devices: dict[str, _Device] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _httpd: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on 127.0.0.1 on a free port and serve in a daemon thread."""
        state: OAuthServer = self

        class Handler(_Handler):
            oauth = state

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switches ----------------------------------------------------------------------

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far is refused from now on (``invalid_grant``)."""
        with self._lock:
            self._refresh.clear()

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is refused from now on (introspection)."""
        with self._lock:
            self._access.clear()

    def approve_device(self, user_code: str, username: str | None = None) -> None:
        """The user entered *user_code* and approved, as *username* (default approve_as)."""
        with self._lock:
            for device in self._devices.values():
                if device.user_code == user_code:
                    device.approved_as = username or self.approve_as
                    return
        raise KeyError(user_code)

    def live_refresh_tokens(self) -> list[str]:
        """The refresh tokens the server would accept now."""
        with self._lock:
            return list(self._refresh)

    def live_access_tokens(self) -> list[str]:
        """The access tokens that introspect as active now."""
        now = time.time()
        with self._lock:
            return [t for t, (_u, exp) in self._access.items() if exp > now]

    # -- grants ------------------------------------------------------------------------

    def _issue(self, username: str, client_id: str, scope: str) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        refresh = "rt-" + secrets.token_urlsafe(24)
        self._access[access] = (username, time.time() + self.access_token_lifetime)
        self._refresh[refresh] = (username, client_id)
        self.issued += [access, refresh]
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.access_token_lifetime),
            "refresh_token": refresh,
            "scope": scope,
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Handle GET /authorize; returns (status, headers, json body)."""
        self.authorize_requests.append(dict(query))
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        loopback = redirect_uri.startswith(("http://127.0.0.1:", "http://localhost:"))
        if client_id not in self.clients or not loopback:
            return 400, {}, {"error": "invalid_request"}
        params: dict[str, str] = {"state": query.get("state", "")}
        if query.get("response_type") != "code":
            params["error"] = "unsupported_response_type"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            params["error"] = "invalid_request"
            params["error_description"] = "PKCE S256 required"
        elif self.deny:
            params["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            with self._lock:
                self._codes[code] = _Code(
                    client_id,
                    redirect_uri,
                    query["code_challenge"],
                    self.approve_as,
                    query.get("scope", ""),
                )
            params["code"] = code
        location = redirect_uri + "?" + urllib.parse.urlencode(params)
        return 302, {"Location": location}, {}

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, Any]:
        """Handle POST /token; returns (status, json body)."""
        client_id = form.get("client_id") or (basic[0] if basic else "")
        secret = form.get("client_secret") or (basic[1] if basic else None)
        if client_id not in self.clients or self.clients[client_id] not in (None, secret):
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type", "")
        with self._lock:
            self.grants.append(grant)
            if grant == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)
                if code is None or code.client_id != client_id:
                    return 400, {"error": "invalid_grant", "error_description": "unknown code"}
                if form.get("redirect_uri") != code.redirect_uri:
                    return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
                verifier = form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode("ascii")).digest()
                challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
                if not verifier or challenge != code.challenge:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE failed"}
                return 200, self._issue(code.username, client_id, code.scope)
            if grant == "refresh_token":
                old = form.get("refresh_token", "")
                entry = self._refresh.get(old)
                if entry is None or entry[1] != client_id:
                    return 400, {"error": "invalid_grant", "error_description": "bad refresh"}
                body = self._issue(entry[0], client_id, form.get("scope", ""))
                if self.rotate_refresh_tokens:
                    del self._refresh[old]
                else:
                    del self._refresh[body["refresh_token"]]
                    del body["refresh_token"]
                return 200, body
            if grant == DEVICE_GRANT:
                device = self._devices.get(form.get("device_code", ""))
                if device is None or device.client_id != client_id:
                    return 400, {"error": "invalid_grant"}
                device.polls += 1
                if self.slow_down_once and not device.slowed:
                    device.slowed = True
                    return 400, {"error": "slow_down"}
                if self.auto_approve_device and device.polls > self.pending_polls:
                    device.approved_as = device.approved_as or self.approve_as
                if device.approved_as is None:
                    return 400, {"error": "authorization_pending"}
                del self._devices[form["device_code"]]
                return 200, self._issue(device.approved_as, client_id, device.scope)
        return 400, {"error": "unsupported_grant_type"}

    def device(self, form: dict[str, str]) -> tuple[int, Any]:
        """Handle POST /device (RFC 8628 §3.1)."""
        client_id = form.get("client_id", "")
        if client_id not in self.clients:
            return 401, {"error": "invalid_client"}
        device_code = secrets.token_urlsafe(24)
        user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
        with self._lock:
            self._devices[device_code] = _Device(client_id, user_code, form.get("scope", ""))
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": f"{self.url}/device-approve",
            "expires_in": 600,
            "interval": self.device_interval,
        }

    def introspect(self, form: dict[str, str]) -> tuple[int, Any]:
        """Handle POST /introspect (RFC 7662 §2)."""
        with self._lock:
            self.introspections += 1
            entry = self._access.get(form.get("token", ""))
        if entry is None or entry[1] <= time.time():
            return 200, {"active": False}
        return 200, {"active": True, "username": entry[0], "exp": int(entry[1])}


class _Handler(BaseHTTPRequestHandler):
    oauth: OAuthServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines carry codes and tokens; tests read the counters instead

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body or status != 302 else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8")
        return dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return urllib.parse.unquote(user), urllib.parse.unquote(password)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/authorize":
            query = dict(urllib.parse.parse_qsl(url.query))
            status, headers, body = self.oauth.authorize(query)
            self._send(status, body, headers)
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        form = self._form()
        if path == "/token":
            status, body = self.oauth.token(form, self._basic())
        elif path == "/device":
            status, body = self.oauth.device(form)
        elif path == "/introspect":
            status, body = self.oauth.introspect(form)
        else:
            status, body = 404, {"error": "not_found"}
        self._send(status, body)


def dovecot_oauth2_conf(
    directory: Path, server: OAuthServer, mechanisms: str = "oauthbearer xoauth2"
) -> str:
    """Write ``dovecot-oauth2.conf.ext`` into *directory* and return the ``extra_conf``
    for ``devserver.dovecot.start`` that adds the ``oauth2`` passdb.

    Dovecot 2.3 checks an OAUTHBEARER/XOAUTH2 token through the passdb chain; the
    oauth2 passdb is restricted to those mechanisms, so password logins never reach
    it, and it comes after the passwd-file passdb, whose "password mismatch" for a
    token lets the chain go on (``result_failure = continue``, the default).
    *mechanisms* replaces Dovecot's ``auth_mechanisms`` besides ``plain login``: pass
    ``"xoauth2"`` for a server that does not advertise OAUTHBEARER.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    ext = directory / "dovecot-oauth2.conf.ext"
    ext.write_text(
        "introspection_mode = post\n"
        f"introspection_url = {server.url}/introspect\n"
        "username_attribute = username\n"
        "active_attribute = active\n"
        "active_value = true\n"
        "force_introspection = yes\n",
        encoding="utf-8",
    )
    ext.chmod(0o644)
    return (
        f"auth_mechanisms = plain login {mechanisms}\n"
        "passdb {\n"
        "  driver = oauth2\n"
        f"  mechanisms = {mechanisms}\n"
        f"  args = {ext}\n"
        "}\n"
    )


@contextlib.contextmanager
def oauth_dovecot(server: OAuthServer, mechanisms: str = "oauthbearer xoauth2") -> Iterator[Any]:
    """A private Dovecot (``devserver.dovecot.DevServer``) that checks OAuth2 tokens
    against *server*; stopped and removed on exit."""
    import devserver.dovecot as devserver

    # Not tmp_path: Dovecot's mail processes must reach the directory (see conftest.py).
    root = Path(tempfile.mkdtemp(prefix="syncd-oauth-"))
    root.chmod(0o755)
    try:
        extra = dovecot_oauth2_conf(root / "oauth2", server, mechanisms)
        dovecot = devserver.start(root / "dovecot", extra_conf=extra)
        try:
            yield dovecot
        finally:
            dovecot.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
