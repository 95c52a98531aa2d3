"""SRV (RFC 6186) and MX look-ups through dnspython, with an injectable name server.

``DnsLookup(nameserver="127.0.0.1", port=5353)`` asks only that server (tests, or
a split-horizon resolver); ``DnsLookup()`` uses the system's resolv.conf.  Every
failure becomes ``LookupError`` with a short reason for the report.

The ordering helpers are pure: ``order_srv`` sorts by priority, then by weight
(heaviest first).  RFC 2782 asks for a weighted random choice among equal
priorities; a fixed order gives the same config from the same DNS, and the probe
tries the next record when one fails anyway.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import dns.exception
import dns.resolver

from syncd.discover.model import is_host_name

DEFAULT_TIMEOUT: Final = 5.0

# Public suffixes of more than one label that mail hosts commonly sit under.  A
# full Public Suffix List would be another dependency for a heuristic whose
# result is only ever a name to ask the ISPDB about.
_MULTI_LABEL_SUFFIXES: Final = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "co.jp", "ne.jp", "or.jp", "com.au", "net.au",
        "org.au", "co.nz", "com.br", "com.cn", "com.tw", "co.in", "co.za", "com.mx",
        "com.ar", "co.kr", "com.tr", "com.sg", "com.hk",
    }
)  # fmt: skip


@dataclass(frozen=True, order=True)
class SrvRecord:
    """One SRV answer; ``target`` without the final dot ("" for "." = not offered)."""

    priority: int
    weight: int
    port: int
    target: str


def order_srv(records: Iterable[SrvRecord]) -> list[SrvRecord]:
    """Usable records in the order to try them: priority up, weight down, then name.

    A lone ``.`` target means "service decidedly not offered" (RFC 2782): the
    result is empty; ``.`` and malformed targets among others are dropped too.
    """
    usable = [r for r in records if r.target and is_host_name(r.target) and 0 < r.port < 65536]
    return sorted(usable, key=lambda r: (r.priority, -r.weight, r.target, r.port))


def registrable_domain(host: str) -> str:
    """The domain an organisation registered for *host*: ``aspmx.l.google.com`` ->
    ``google.com``, ``mx1.example.co.uk`` -> ``example.co.uk`` (a heuristic)."""
    labels = host.lower().rstrip(".").split(".")
    keep = 3 if ".".join(labels[-2:]) in _MULTI_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


class DnsLookup:
    """SRV, MX and address look-ups.  Not thread-safe; cheap to create."""

    def __init__(
        self, nameserver: str | None = None, port: int = 53, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if nameserver is None:
            self._resolver = dns.resolver.Resolver()
        else:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [nameserver]
            self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout

    def _query(self, name: str, rdtype: str) -> dns.resolver.Answer:
        try:
            return self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise LookupError(f"{name} does not exist") from None
        except dns.resolver.NoAnswer:
            raise LookupError(f"no {rdtype} record for {name}") from None
        except dns.resolver.NoNameservers:
            raise LookupError(f"no name server answered for {name}") from None
        except dns.exception.Timeout:
            raise LookupError(f"DNS timed out for {name}") from None
        except dns.exception.DNSException as exc:
            raise LookupError(f"DNS failed for {name} ({type(exc).__name__})") from None

    def srv(self, name: str) -> list[SrvRecord]:
        """The SRV records of *name*, unordered (see ``order_srv``)."""
        answer = self._query(name, "SRV")
        return [
            SrvRecord(
                priority=int(r.priority),
                weight=int(r.weight),
                port=int(r.port),
                target=r.target.to_text(omit_final_dot=True).lower().rstrip("."),
            )
            for r in answer
        ]

    def mx(self, domain: str) -> list[str]:
        """MX host names of *domain*, lowest preference value first."""
        answer = self._query(domain, "MX")
        pairs = sorted(
            (int(r.preference), r.exchange.to_text(omit_final_dot=True).lower()) for r in answer
        )
        return [host for _pref, host in pairs if host and host != "."]

    def address(self, host: str) -> str:
        """An IPv4 (else IPv6) address of *host*: the ``resolve`` for ``HttpFetcher``.

        An address literal is returned as it is, and ``localhost`` is 127.0.0.1,
        without asking the name server."""
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(host.strip("[]")))
        if host.lower().rstrip(".") == "localhost":
            return "127.0.0.1"
        try:
            return _first(self._query(host, "A"))
        except LookupError:
            return _first(self._query(host, "AAAA"))


def _first(answer: dns.resolver.Answer) -> str:
    for record in answer:
        return str(record)
    raise LookupError("empty DNS answer")
