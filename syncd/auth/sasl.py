"""SASL OAUTHBEARER (RFC 7628) and XOAUTH2 over an imapclient connection.

Which mechanism to use, the client's messages, one AUTHENTICATE exchange, and
whether a connection can take another attempt.  No token handling: the caller
passes the access token in, and nothing here logs it (imaplib's own trace shows
``AUTHENTICATE **REDACTED**`` and the literal's size only).
"""

from __future__ import annotations

import imaplib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import imapclient


def choose_mechanism(client: imapclient.IMAPClient) -> str:
    """``"OAUTHBEARER"`` when the server advertises ``AUTH=OAUTHBEARER`` (RFC 7628),
    else ``"XOAUTH2"`` (advertised or not: some servers only accept it unannounced)."""
    capabilities = {bytes(c).upper() for c in client.capabilities()}
    return "OAUTHBEARER" if b"AUTH=OAUTHBEARER" in capabilities else "XOAUTH2"


def sasl_initial_response(mechanism: str, user: str, token: str) -> str:
    """The client's first SASL message: RFC 7628 §3.1 for OAUTHBEARER (GS2 header with
    the authorization identity, ``auth=Bearer``), Google's/Microsoft's XOAUTH2 format
    (``user=...^Aauth=Bearer ...^A^A``) otherwise."""
    if mechanism == "OAUTHBEARER":
        gs2 = "n,a=" + user.replace("=", "=3D").replace(",", "=2C") + ","
        return f"{gs2}\x01auth=Bearer {token}\x01\x01"
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def sasl_login(client: imapclient.IMAPClient, mechanism: str, user: str, token: str) -> None:
    """One ``AUTHENTICATE`` with *mechanism*; the server's refusal raises ``LoginError``.

    Not imapclient's ``oauthbearer_login``/``oauth2_login``: they answer the server's
    error challenge with the credentials again, where RFC 7628 §3.2.3 wants a single
    %x01 (OAUTHBEARER) and XOAUTH2 an empty response, after which the server says NO
    and the connection stays usable for another attempt.  A lost connection
    (``imaplib.IMAP4.abort``) propagates as it is, so the caller can tell the two apart.
    """
    from imapclient.exceptions import LoginError

    initial = sasl_initial_response(mechanism, user, token)
    after_error = "\x01" if mechanism == "OAUTHBEARER" else ""
    sent = False

    def respond(_challenge: bytes) -> str:
        nonlocal sent
        if sent:
            return after_error  # the challenge was the server's JSON error report
        sent = True
        return initial

    try:
        client._imap.authenticate(mechanism, respond)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:
        raise LoginError(str(exc)) from None


def connection_usable(client: imapclient.IMAPClient) -> bool:
    """Whether another AUTHENTICATE may be tried on this connection (NONAUTH, alive)."""
    imap = getattr(client, "_imap", None)
    if imap is None or getattr(imap, "state", None) != "NONAUTH":
        return False
    try:
        client.noop()
    except (imaplib.IMAP4.error, OSError):
        return False
    return True
