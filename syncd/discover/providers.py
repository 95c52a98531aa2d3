"""Built-in profiles of large providers: server, login, OAuth2 and folder defaults.

A profile is chosen by the address's domain (``me@gmail.com``) or, after
discovery, by the server's host name (a Google Workspace domain discovered
through its MX records ends at ``imap.gmail.com``).  Settings checked against
the providers' published server tables: all five use implicit TLS on 993.

Folder patterns are ``fnmatch`` patterns (see ``syncd.folders.matches``), so a
literal ``[`` is written ``[[]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from syncd.discover.model import OAuth2Provider, Server


@dataclass(frozen=True)
class Provider:
    """One provider's profile.  ``oauth2`` set: password login is not offered."""

    key: str
    name: str
    domains: frozenset[str]
    host_suffixes: tuple[str, ...]  # a server host equal to or under one of these
    host: str
    port: int
    user_is_local_part: bool
    oauth2: OAuth2Provider | None
    exclude: tuple[str, ...]
    note: str

    def server(self, address: str, source: str) -> Server:
        """The profile's server for *address*, as if a source had proposed it."""
        user = address.rpartition("@")[0] if self.user_is_local_part else address
        return Server(
            host=self.host,
            port=self.port,
            tls="tls",
            user=user,
            auth=("oauth2",) if self.oauth2 else ("password",),
            source=source,
        )


PROVIDERS: Final = (
    Provider(
        key="gmail",
        name="Gmail",
        domains=frozenset({"gmail.com", "googlemail.com"}),
        host_suffixes=("gmail.com", "googlemail.com", "google.com"),
        host="imap.gmail.com",
        port=993,
        user_is_local_part=False,
        oauth2="google",
        # Every message is also in "All Mail", and the important ones in
        # "Important": syncing them would store each message two or three times.
        # "[Google Mail]" is the name some countries get.
        exclude=(
            "[[]Gmail]/All Mail",
            "[[]Gmail]/Important",
            "[[]Google Mail]/All Mail",
            "[[]Google Mail]/Important",
        ),
        note="Google accounts sign in with OAuth2",
    ),
    Provider(
        key="microsoft",
        name="Microsoft 365 / Outlook.com",
        domains=frozenset({"outlook.com", "hotmail.com", "live.com", "msn.com"}),
        host_suffixes=("office365.com", "outlook.com"),
        host="outlook.office365.com",
        port=993,
        user_is_local_part=False,
        oauth2="microsoft",
        exclude=(),
        note="Microsoft accounts sign in with OAuth2 (basic authentication is switched off)",
    ),
    Provider(
        key="fastmail",
        name="Fastmail",
        domains=frozenset({"fastmail.com", "fastmail.fm"}),
        host_suffixes=("fastmail.com", "messagingengine.com"),
        host="imap.fastmail.com",
        port=993,
        user_is_local_part=False,
        oauth2=None,
        exclude=(),
        note="Fastmail needs an app password (Settings > Privacy & Security)",
    ),
    Provider(
        key="icloud",
        name="iCloud",
        domains=frozenset({"icloud.com", "me.com", "mac.com"}),
        host_suffixes=("mail.me.com",),
        host="imap.mail.me.com",
        port=993,
        user_is_local_part=True,  # Apple: the name part, not the whole address
        oauth2=None,
        exclude=(),
        note="iCloud needs an app-specific password (appleid.apple.com)",
    ),
    Provider(
        key="yahoo",
        name="Yahoo",
        domains=frozenset({"yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk"}),
        host_suffixes=("mail.yahoo.com",),
        host="imap.mail.yahoo.com",
        port=993,
        user_is_local_part=False,
        oauth2=None,
        exclude=(),
        note="Yahoo needs an app password (Account security > Generate app password)",
    ),
)


def _under(host: str, suffix: str) -> bool:
    return host == suffix or host.endswith("." + suffix)


def provider_for_domain(domain: str) -> Provider | None:
    """The profile for addresses ``@domain``, if it is one of the built-in ones."""
    domain = domain.lower().rstrip(".")
    return next((p for p in PROVIDERS if domain in p.domains), None)


def provider_for_host(host: str) -> Provider | None:
    """The profile whose servers include *host* (an IMAP or MX host name)."""
    host = host.lower().rstrip(".")
    return next((p for p in PROVIDERS if any(_under(host, s) for s in p.host_suffixes)), None)
