"""Thunderbird's autoconfig format (config-v1.1.xml) -> ``Server`` records.  Pure.

The same document comes from ``autoconfig.<domain>``, ``<domain>/.well-known`` and
the ISPDB.  Only ``emailProvider/incomingServer`` of type ``imap`` is used; POP3
servers are counted so the report can say "POP3 only".

The input is hostile until proven otherwise: a DOCTYPE (and so any entity
declaration: "billion laughs", external entities) is refused before an element is
built, values are checked (host name syntax, port range) rather than trusted, and
at most ``MAX_SERVERS`` servers are read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass
from typing import Final

from syncd.discover.model import AuthMethod, Server, TlsMode, is_host_name, split_address

MAX_SERVERS: Final = 20

_SOCKET_TYPES: Final[dict[str, TlsMode]] = {"SSL": "tls", "STARTTLS": "starttls", "plain": "none"}
_DEFAULT_PORTS: Final[dict[TlsMode, int]] = {"tls": 993, "starttls": 143, "none": 143}
# Thunderbird's names; the rest (NTLM, GSSAPI, client-IP-address, TLS-client-cert,
# none) are mechanisms syncd cannot log in with.  "password-encrypted" (CRAM-MD5)
# servers accept LOGIN too once TLS is up, which is all syncd sends passwords over.
_AUTH: Final[dict[str, AuthMethod]] = {
    "password-cleartext": "password",
    "plain": "password",
    "password-encrypted": "password",
    "secure": "password",
    "OAuth2": "oauth2",
}


class AutoconfigError(ValueError):
    """The document is not a usable config-v1.1 XML (one line, no document text)."""


@dataclass(frozen=True)
class ParsedConfig:
    """What one document offers: IMAP servers in its order, and how many POP3 ones."""

    imap: tuple[Server, ...]
    pop3: int
    provider_id: str | None


class _NoDoctype(Exception):
    pass


def _parse_xml(data: bytes) -> ET.Element:
    """Parse *data* with expat, refusing any DOCTYPE, into an ElementTree element."""
    builder = ET.TreeBuilder()
    parser = xml.parsers.expat.ParserCreate()

    def refuse(*_args: object) -> None:
        raise _NoDoctype

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _NoDoctype:
        raise AutoconfigError("refused: the document has a DOCTYPE/entity declaration") from None
    except xml.parsers.expat.ExpatError as exc:
        raise AutoconfigError(f"not well-formed XML ({exc})") from None
    return builder.close()


def substitute(template: str, address: str) -> str:
    """Replace %EMAILADDRESS%, %EMAILLOCALPART% and %EMAILDOMAIN% in *template*."""
    local, domain = split_address(address)
    return (
        template.replace("%EMAILADDRESS%", address)
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", domain)
    )


def _text(element: ET.Element, tag: str) -> str | None:
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _server(element: ET.Element, address: str, source: str) -> Server:
    hostname = _text(element, "hostname")
    if hostname is None:
        raise AutoconfigError("an incomingServer has no hostname")
    host = substitute(hostname, address).lower().rstrip(".")
    if not is_host_name(host):
        raise AutoconfigError(f"bad hostname {host[:80]!r}")
    socket_type = _text(element, "socketType") or "plain"
    if socket_type not in _SOCKET_TYPES:
        raise AutoconfigError(f"unknown socketType {socket_type[:20]!r} for {host}")
    tls = _SOCKET_TYPES[socket_type]
    port_text = _text(element, "port")
    if port_text is None:
        port = _DEFAULT_PORTS[tls]
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise AutoconfigError(f"bad port {port_text[:20]!r} for {host}")
    user_template = _text(element, "username")
    user = substitute(user_template, address) if user_template else None
    if user is not None and "%" in user:  # e.g. %REALNAME%: nothing we can fill in
        user = None
    auth: list[AuthMethod] = []
    for node in element.findall("authentication"):
        method = _AUTH.get((node.text or "").strip())
        if method is not None and method not in auth:
            auth.append(method)
    return Server(host=host, port=port, tls=tls, user=user, auth=tuple(auth), source=source)


def parse_config(data: bytes, address: str, *, source: str) -> ParsedConfig:
    """The IMAP servers of a config-v1.1 document, placeholders filled in for *address*.

    Raises ``AutoconfigError`` for a document that is not XML, has a DOCTYPE, is not
    a ``clientConfig`` with an ``emailProvider``, or has a malformed IMAP server.
    """
    root = _parse_xml(data)
    if root.tag != "clientConfig":
        raise AutoconfigError(f"not a clientConfig document (root element {root.tag[:40]!r})")
    provider = root.find("emailProvider")
    if provider is None:
        raise AutoconfigError("no emailProvider element")
    imap: list[Server] = []
    pop3 = 0
    for element in provider.findall("incomingServer")[:MAX_SERVERS]:
        kind = element.get("type", "")
        if kind == "imap":
            imap.append(_server(element, address, source))
        elif kind == "pop3":
            pop3 += 1
    return ParsedConfig(imap=tuple(imap), pop3=pop3, provider_id=provider.get("id"))
