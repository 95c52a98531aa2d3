"""Probe one candidate server: TLS handshake, CAPABILITY, optionally a login.

Rules, each a refusal rather than a fallback:

- the certificate and host name are verified (system CAs plus ``ca_file``);
- ``starttls`` is used only when the server advertises STARTTLS;
- a ``none`` (plain) candidate is upgraded when it advertises STARTTLS and is
  refused otherwise: no password is ever sent over a plaintext connection;
- a server that says LOGINDISABLED after TLS cannot take syncd's password login.

The password, when given, is used only over the verified TLS connection, for one
LOGIN, and is not kept.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from syncd.discover.model import Server
from syncd.errors import AccountError
from syncd.stores.imap.parse import clean_text
from syncd.stores.tls import ssl_context


class ProbeError(Exception):
    """The candidate cannot be used; ``str`` is one line naming it and why."""


@dataclass(frozen=True)
class ProbeResult:
    """A usable server: *server* may differ from the candidate (plain -> starttls)."""

    server: Server
    capabilities: frozenset[str]
    logged_in: bool


def _context(ca_file: Path | None) -> ssl.SSLContext:
    # The context the IMAP store uses: what passes the probe passes the sync.
    try:
        return ssl_context(ca_file)
    except AccountError as exc:
        raise ProbeError(str(exc)) from None


def _caps(client: Any) -> frozenset[str]:
    return frozenset(
        c.decode("ascii", "replace").upper() if isinstance(c, bytes) else str(c).upper()
        for c in client.capabilities()
    )


def probe(
    server: Server,
    *,
    ca_file: Path | None = None,
    timeout: float = 15.0,
    user: str | None = None,
    password: str | None = None,
) -> ProbeResult:
    """Connect to *server* as described in the module docstring; ``ProbeError`` if unusable.

    With *user* and *password*, also log in (over TLS only) and log out again.
    """
    import imapclient
    import imapclient.exceptions

    where = str(server)
    ctx = _context(ca_file)
    client: Any = None
    try:
        if server.tls == "tls":
            client = imapclient.IMAPClient(
                server.host, server.port, ssl=True, ssl_context=ctx, timeout=timeout
            )
        else:
            client = imapclient.IMAPClient(server.host, server.port, ssl=False, timeout=timeout)
            if "STARTTLS" not in _caps(client):
                raise ProbeError(
                    f"{where}: the server offers no TLS (no STARTTLS); syncd will not send "
                    "a password over a plaintext connection"
                )
            client.starttls(ctx)
            server = replace(server, tls="starttls")
        caps = _caps(client)
        if "IMAP4REV1" not in caps and "IMAP4REV2" not in caps:
            raise ProbeError(f"{where}: not an IMAP4rev1 server (CAPABILITY lacks IMAP4rev1)")
        if "LOGINDISABLED" in caps and "password" in server.auth and "oauth2" not in server.auth:
            raise ProbeError(f"{where}: the server refuses password login (LOGINDISABLED)")
        logged_in = False
        if user is not None and password is not None:
            client.login(user, password)
            logged_in = True
        return ProbeResult(server=server, capabilities=caps, logged_in=logged_in)
    except ssl.SSLCertVerificationError as exc:
        hint = "" if ca_file else " (use --ca-file to trust a private CA)"
        raise ProbeError(f"{where}: certificate not trusted: {exc.verify_message}{hint}") from None
    except ssl.SSLError as exc:
        raise ProbeError(f"{where}: TLS handshake failed ({exc.reason or exc})") from None
    except imapclient.exceptions.LoginError:
        raise ProbeError(f"{where}: login refused for user {user!r}") from None
    except socket.gaierror:
        raise ProbeError(f"{where}: host name does not resolve") from None
    except TimeoutError:
        raise ProbeError(f"{where}: timed out after {timeout:g}s") from None
    except (OSError, imaplib.IMAP4.error) as exc:
        reason = getattr(exc, "strerror", None) or clean_text(exc) or type(exc).__name__
        raise ProbeError(f"{where}: {reason}") from None
    finally:
        if client is not None:
            # Best effort: the answer is already decided, a failed goodbye changes nothing.
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                client.logout()
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                client.shutdown()
