"""Ask the sources in Thunderbird's order until one proposes an IMAP server.

Order: a built-in provider profile for the address's domain (no network); the
domain's own autoconfig (``autoconfig.<domain>`` over https then http, then
``https://<domain>/.well-known/autoconfig/...``); the ISPDB; RFC 6186 SRV
records (``_imaps._tcp`` then ``_imap._tcp``); finally the MX host's
registrable domain (ISPDB, its autoconfig, then a built-in profile for the MX
host).  Every source asked leaves one ``Attempt`` line, found or not, so
"nothing found" can say what was tried.

I/O goes through the ``Fetcher`` and ``Resolver`` given; tests pass fakes.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from syncd.discover.autoconfig import AutoconfigError, parse_config
from syncd.discover.dns import SrvRecord, order_srv, registrable_domain
from syncd.discover.http import Fetcher, FetchError
from syncd.discover.model import DEFAULT_ISPDB, Attempt, Server, TlsMode, split_address
from syncd.discover.providers import Provider, provider_for_domain, provider_for_host


class Resolver(Protocol):
    """The DNS look-ups discovery needs (``syncd.discover.dns.DnsLookup``)."""

    def srv(self, name: str) -> list[SrvRecord]:
        """SRV records of *name*; ``LookupError`` when there are none."""
        ...

    def mx(self, domain: str) -> list[str]:
        """MX hosts of *domain*, best first; ``LookupError`` when there are none."""
        ...


@dataclass
class Discovery:
    """The servers found (best first), by which source, and every attempt made."""

    address: str
    servers: list[Server] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    provider: Provider | None = None

    @property
    def found(self) -> bool:
        return bool(self.servers)


def autoconfig_urls(address: str, domain: str) -> list[tuple[str, str]]:
    """``(label, url)`` for the domain's own autoconfig locations, in the order tried."""
    query = urllib.parse.urlencode({"emailaddress": address})
    return [
        ("autoconfig", f"https://autoconfig.{domain}/mail/config-v1.1.xml?{query}"),
        ("autoconfig", f"http://autoconfig.{domain}/mail/config-v1.1.xml?{query}"),
        ("well-known", f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml?{query}"),
    ]


def ispdb_url(ispdb: str, domain: str) -> str:
    """The ISPDB document URL for *domain* (*ispdb* is the base, e.g. ``.../v1.1/``)."""
    return ispdb.rstrip("/") + "/" + urllib.parse.quote(domain)


@dataclass
class Sources:
    """Where to look.  ``ispdb`` is the base URL of a Thunderbird ISPDB copy."""

    fetcher: Fetcher
    resolver: Resolver
    ispdb: str = DEFAULT_ISPDB
    log: Callable[[Attempt], None] | None = None

    def discover(self, address: str) -> Discovery:
        """Find IMAP servers for *address*; ``AddressError`` for a malformed address."""
        _local, domain = split_address(address)
        result = Discovery(address)
        profile = provider_for_domain(domain)
        if profile is not None:
            self._note(result, f"built-in profile for {domain}", f"{profile.name}")
            result.servers = [profile.server(address, f"built-in profile {profile.name}")]
            result.provider = profile
            return result
        if self._documents(result, address, domain, with_ispdb=True):
            return result
        if self._srv(result, address, domain):
            return result
        self._mx(result, address, domain)
        return result

    def _note(self, result: Discovery, source: str, outcome: str) -> None:
        attempt = Attempt(source, outcome)
        result.attempts.append(attempt)
        if self.log is not None:
            self.log(attempt)

    def _documents(self, result: Discovery, address: str, domain: str, *, with_ispdb: bool) -> bool:
        urls = autoconfig_urls(address, domain)
        if with_ispdb:
            urls.append(("ISPDB", ispdb_url(self.ispdb, domain)))
        return any(self._document(result, address, f"{label} {url}", url) for label, url in urls)

    def _document(self, result: Discovery, address: str, source: str, url: str) -> bool:
        try:
            body = self.fetcher.get(url)
            parsed = parse_config(body, address, source=source)
        except (FetchError, AutoconfigError) as exc:
            self._note(result, source, f"nothing ({exc})")
            return False
        if not parsed.imap:
            what = f"only POP3 ({parsed.pop3} servers); syncd needs IMAP" if parsed.pop3 else ""
            self._note(result, source, what or "no IMAP server in the document")
            return False
        self._note(result, source, "found " + ", ".join(str(s) for s in parsed.imap))
        result.servers = list(parsed.imap)
        result.provider = _provider_of(parsed.imap)
        return True

    def _srv(self, result: Discovery, address: str, domain: str) -> bool:
        servers: list[Server] = []
        services: tuple[tuple[str, TlsMode], ...] = (
            ("_imaps._tcp", "tls"),
            ("_imap._tcp", "starttls"),
        )
        for service, tls in services:
            name = f"{service}.{domain}"
            try:
                records = self.resolver.srv(name)
            except LookupError as exc:
                self._note(result, f"SRV {name}", f"nothing ({exc})")
                continue
            ordered = order_srv(records)
            if not ordered:
                self._note(result, f"SRV {name}", "service not offered (target '.')")
                continue
            found = [
                Server(r.target, r.port, tls, address, ("password",), f"SRV {name}")
                for r in ordered
            ]
            self._note(result, f"SRV {name}", "found " + ", ".join(str(s) for s in found))
            servers += found
        if not servers:
            name = f"_pop3s._tcp.{domain}"
            try:
                if order_srv(self.resolver.srv(name)):
                    self._note(result, f"SRV {name}", "only POP3 is offered; syncd needs IMAP")
            except LookupError:
                pass
            return False
        result.servers = servers
        result.provider = _provider_of(servers)
        return True

    def _mx(self, result: Discovery, address: str, domain: str) -> None:
        try:
            hosts = self.resolver.mx(domain)
        except LookupError as exc:
            self._note(result, f"MX {domain}", f"nothing ({exc})")
            return
        if not hosts:
            self._note(result, f"MX {domain}", "no usable MX host")
            return
        mx_domain = registrable_domain(hosts[0])
        self._note(result, f"MX {domain}", f"{hosts[0]} (domain {mx_domain})")
        if mx_domain != domain:
            ispdb = ispdb_url(self.ispdb, mx_domain)
            if self._document(result, address, f"ISPDB (MX) {ispdb}", ispdb):
                return
            for label, url in autoconfig_urls(address, mx_domain)[:1]:
                if self._document(result, address, f"{label} (MX) {url}", url):
                    return
        profile = provider_for_host(hosts[0])
        if profile is not None:
            source = f"built-in profile {profile.name} (MX {hosts[0]})"
            self._note(result, f"built-in profile for MX {hosts[0]}", profile.name)
            result.servers = [profile.server(address, source)]
            result.provider = profile


def _provider_of(servers: list[Server] | tuple[Server, ...]) -> Provider | None:
    return next((p for s in servers if (p := provider_for_host(s.host)) is not None), None)
