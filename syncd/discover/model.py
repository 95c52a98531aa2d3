"""What discovery finds and what it tried: plain frozen records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

#: The public Thunderbird ISPDB; ``syncd init --ispdb`` points at another copy.
DEFAULT_ISPDB: Final = "https://autoconfig.thunderbird.net/v1.1/"

TlsMode = Literal["tls", "starttls", "none"]  # the config's values for ``tls``
AuthMethod = Literal["password", "oauth2"]
OAuth2Provider = Literal["google", "microsoft"]


@dataclass(frozen=True)
class Server:
    """One IMAP server a source proposes for the address.

    ``user`` has its placeholders replaced (``None``: the source did not say or used
    one we cannot fill, so the address is the best guess).  ``auth`` lists the
    methods syncd can use, in the source's order of preference (empty: none).
    """

    host: str
    port: int
    tls: TlsMode
    user: str | None
    auth: tuple[AuthMethod, ...]
    source: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.tls})"


@dataclass(frozen=True)
class Attempt:
    """One source asked, and what came of it; ``str`` is the report line."""

    source: str
    outcome: str

    def __str__(self) -> str:
        return f"{self.source}: {self.outcome}"


class AddressError(ValueError):
    """The argument is not an e-mail address we can discover from."""


def split_address(address: str) -> tuple[str, str]:
    """``(local part, domain)`` of *address*; the domain lower-cased, without a final dot.

    ``AddressError`` for anything that is not ``local@domain`` with a plausible domain.
    """
    local, sep, domain = address.strip().rpartition("@")
    domain = domain.lower().rstrip(".")
    if not sep or not local or not domain or "." not in domain:
        raise AddressError(f"not an e-mail address: {address!r} (expected user@domain)")
    if any(c.isspace() or c in "/\\%\0" for c in address) or not is_host_name(domain):
        raise AddressError(f"not an e-mail address: {address!r}")
    return local, domain


def is_host_name(name: str) -> bool:
    """A DNS name made of LDH labels (what a server or SRV target may be called)."""
    if not name or len(name) > 253:
        return False
    labels = name.rstrip(".").split(".")
    return all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in label)
        for label in labels
    )
