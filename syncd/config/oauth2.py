"""The ``[accounts.NAME.oauth2]`` table: provider profiles and their validation.

``parse_oauth2_table`` is what the config layer calls, once, at start-up; it returns
a frozen ``OAuth2Settings`` with the provider's endpoints and scopes filled in, or
raises ``ConfigError`` with one line naming the key.  Nothing here does I/O.
"""

from __future__ import annotations

import types
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from syncd.errors import ConfigError

PROVIDERS: Final = ("google", "microsoft", "custom")
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class _Profile:
    authorize_url: str
    token_url: str
    device_url: str | None
    scopes: tuple[str, ...]


# Checked against the providers' documentation (Google "OAuth 2.0 for Mobile & Desktop
# Apps" and "... for TV and Limited-Input Devices"; Microsoft "Authenticate an IMAP,
# POP or SMTP connection using OAuth" and the v2.0 device-code flow).  Google's device
# flow allows only a short list of scopes, which (in its docs) does not include
# https://mail.google.com/: `syncd login --device` is meant for Microsoft and custom
# servers, though the endpoint is listed so Google answers for itself.
_PROFILES: Final[Mapping[str, _Profile]] = types.MappingProxyType(
    {
        "google": _Profile(
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",  # noqa: S106 - a URL
            device_url="https://oauth2.googleapis.com/device/code",
            scopes=("https://mail.google.com/",),
        ),
        "microsoft": _Profile(
            authorize_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",  # noqa: S106
            device_url="https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
            # POP would be https://outlook.office.com/POP.AccessAsUser.All; syncd is IMAP.
            scopes=("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"),
        ),
    }
)
#: Extra authorization-request parameters per provider: Google issues a refresh token
#: only with access_type=offline, and again on a repeated login only with prompt=consent.
AUTHORIZE_EXTRAS: Final[Mapping[str, Mapping[str, str]]] = types.MappingProxyType(
    {"google": types.MappingProxyType({"access_type": "offline", "prompt": "consent"})}
)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class OAuth2Settings:
    """One account's OAuth2 client settings, with the provider's endpoints filled in.

    ``client_secret`` is None for a public client (then PKCE alone protects the code).
    ``device_url`` is None when the provider has no device flow.  ``redirect_host``
    is the host written in the loopback redirect URI (``127.0.0.1`` by default; some
    app registrations only accept ``localhost``); the listener always binds 127.0.0.1.
    """

    provider: str
    client_id: str
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    device_url: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    redirect_host: str = "127.0.0.1"

    @property
    def scope(self) -> str:
        """The scopes as the space-separated ``scope`` parameter."""
        return " ".join(self.scopes)


_KEYS: Final = (
    "provider",
    "client_id",
    "client_secret",
    "authorize_url",
    "token_url",
    "device_url",
    "scopes",
    "redirect_host",
)
_CUSTOM_ONLY: Final = ("authorize_url", "token_url", "device_url", "scopes")


def parse_oauth2_table(raw: Mapping[str, object], where: str) -> OAuth2Settings:
    """Validate an ``[accounts.NAME.oauth2]`` table and return its ``OAuth2Settings``.

    *where* prefixes every message and names the table, e.g.
    ``"/home/me/.config/syncd/config.toml: accounts.work.oauth2"``; a problem reads
    ``"<where>.client_id: missing (the OAuth2 client ID of your app registration)"``.
    Keys: ``provider`` ("google" | "microsoft" | "custom", required), ``client_id``
    (required), ``client_secret`` (optional), ``redirect_host`` (optional:
    "127.0.0.1" or "localhost"); with ``provider = "custom"`` also ``authorize_url``,
    ``token_url``, ``scopes`` (required) and ``device_url`` (optional).  Endpoint URLs
    must be https (http only to a loopback address, for testing).  Raises
    ``ConfigError`` (one line) at the first problem; never returns partial settings.
    """

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}.{key}: {message}")

    def text(key: str, *, required: bool, hint: str = "") -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                raise fail(key, "missing" + (f" ({hint})" if hint else ""))
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(key, f"must be a non-empty string (got {_describe(value)})")
        return value.strip()

    for key in raw:
        if key not in _KEYS:
            raise fail(key, f"unknown key (known: {', '.join(_KEYS)})")
    provider = text("provider", required=True, hint='"google", "microsoft" or "custom"')
    if provider not in PROVIDERS:
        raise fail("provider", f'must be "google", "microsoft" or "custom" (got "{provider}")')
    client_id = text("client_id", required=True, hint="the OAuth2 client ID of your app")
    assert client_id is not None
    client_secret = text("client_secret", required=False)
    # Microsoft's app registrations take http://localhost for desktop apps (any port);
    # RFC 8252 prefers the IP literal, which Google and most servers accept.
    redirect_host = text("redirect_host", required=False) or (
        "localhost" if provider == "microsoft" else "127.0.0.1"
    )
    if redirect_host not in ("127.0.0.1", "localhost"):
        raise fail("redirect_host", f'must be "127.0.0.1" or "localhost" (got "{redirect_host}")')

    if provider != "custom":
        for key in _CUSTOM_ONLY:
            if key in raw:
                raise fail(key, f'is set by provider "{provider}"; only provider "custom" takes it')
        profile = _PROFILES[provider]
        return OAuth2Settings(
            provider=provider,
            client_id=client_id,
            client_secret=client_secret,
            authorize_url=profile.authorize_url,
            token_url=profile.token_url,
            device_url=profile.device_url,
            scopes=profile.scopes,
            redirect_host=redirect_host,
        )

    urls: dict[str, str | None] = {}
    for key in ("authorize_url", "token_url", "device_url"):
        value = text(key, required=key != "device_url", hint='required with provider "custom"')
        if value is not None:
            problem = _url_problem(value)
            if problem:
                raise fail(key, problem)
        urls[key] = value
    scopes = raw.get("scopes")
    if scopes is None:
        raise fail("scopes", 'missing (required with provider "custom")')
    if (
        not isinstance(scopes, list | tuple)
        or not scopes
        or not all(isinstance(s, str) and s and not any(c.isspace() for c in s) for s in scopes)
    ):
        raise fail(
            "scopes",
            f"must be a non-empty list of scope strings without spaces (got {_describe(scopes)})",
        )
    authorize_url, token_url = urls["authorize_url"], urls["token_url"]
    assert authorize_url is not None and token_url is not None
    return OAuth2Settings(
        provider=provider,
        client_id=client_id,
        client_secret=client_secret,
        authorize_url=authorize_url,
        token_url=token_url,
        device_url=urls["device_url"],
        scopes=tuple(str(s) for s in scopes),
        redirect_host=redirect_host,
    )


def _describe(value: object) -> str:
    if isinstance(value, str):
        return '""' if not value.strip() else "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "an empty list" if not value else "a list"
    return "a table" if isinstance(value, Mapping) else type(value).__name__


def _url_problem(url: str) -> str | None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return None
    if parsed.scheme == "http" and parsed.hostname in _LOOPBACK_HOSTS:
        return None  # a local test server; tokens never leave the machine
    if parsed.scheme == "http":
        return "must be https (tokens would travel in clear text); http only to 127.0.0.1"
    return f"must be an https URL (got {url!r})"
