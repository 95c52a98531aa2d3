"""Fetch one small document over HTTP(S), with short timeouts and a size cap.

Used for autoconfig documents only.  https certificates are always verified
against the system store; a redirect from https to http is refused; at most
``MAX_REDIRECTS`` redirects and ``MAX_BODY`` bytes.  A *resolve* callable (host ->
IP address) replaces the system resolver, so ``--dns-server`` covers these
look-ups too and tests never leave 127.0.0.1; the URL's host name is still what
the Host header and the certificate check use.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

MAX_BODY: Final = 256 * 1024
MAX_REDIRECTS: Final = 3
DEFAULT_TIMEOUT: Final = 5.0
USER_AGENT: Final = "syncd-init"


class FetchError(Exception):
    """The document could not be fetched; ``str`` is a short reason for the report."""


class Fetcher(Protocol):
    """Something that returns the body of a URL (tests pass a dict-backed fake)."""

    def get(self, url: str) -> bytes:
        """The body of a 200 answer; ``FetchError`` for anything else."""
        ...


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, ip: str | None, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip or self.host, self.port), self.timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int | None, ip: str | None, timeout: float, ctx: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=ctx)
        self._ip = ip
        self._ctx = ctx

    def connect(self) -> None:
        raw = socket.create_connection((self._ip or self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(raw, server_hostname=self.host)


@dataclass(frozen=True)
class HttpFetcher:
    """The real fetcher: http.client, one connection per request."""

    timeout: float = DEFAULT_TIMEOUT
    resolve: Callable[[str], str] | None = None

    def get(self, url: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = self._once(url)
            if status == 200:
                return body
            if status in (301, 302, 303, 307, 308) and location:
                target = urllib.parse.urljoin(url, location)
                if url.startswith("https:") and not target.startswith("https:"):
                    raise FetchError("refused a redirect from https to http")
                url = target
                continue
            raise FetchError(f"HTTP {status}")
        raise FetchError("too many redirects")

    def _once(self, url: str) -> tuple[int, str | None, bytes]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"not an http(s) URL: {url}")
        host = parts.hostname
        try:
            ip = self.resolve(host) if self.resolve is not None else None
        except LookupError as exc:
            raise FetchError(str(exc)) from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            ctx = ssl.create_default_context()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            conn = _HTTPSConnection(host, parts.port, ip, self.timeout, ctx)
        else:
            conn = _HTTPConnection(host, parts.port, ip, self.timeout)
        try:
            conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
            response = conn.getresponse()
            length = response.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY:
                raise FetchError(f"document larger than {MAX_BODY} bytes")
            body = response.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise FetchError(f"document larger than {MAX_BODY} bytes")
            return response.status, response.getheader("Location"), body
        except ssl.SSLCertVerificationError as exc:
            raise FetchError(f"certificate not trusted ({exc.verify_message})") from None
        except socket.gaierror:
            raise FetchError(f"{host} does not resolve") from None
        except TimeoutError:
            raise FetchError(f"timed out after {self.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise FetchError(f"cannot connect ({reason})") from None
        finally:
            conn.close()
