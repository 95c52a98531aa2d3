"""TLS for the far stores: one client context and one way to say why a certificate
was refused, for IMAP and POP3 alike."""

from __future__ import annotations

import ssl
from pathlib import Path

from syncd.errors import AccountError


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's trust store (plus ``ca_file``), TLS 1.2 or newer, host names checked."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise AccountError(f"cannot load ca_file {ca_file}: {exc}") from exc
    return ctx


def cert_problem(exc: ssl.SSLCertVerificationError, ca_file: Path | None) -> str:
    """One line for a refused certificate, saying what to do about a self-signed one."""
    reason = exc.verify_message or exc.reason or str(exc)
    text = f"certificate verify failed: {reason}"
    if exc.verify_code in (18, 19, 20, 21):  # self-signed / unknown issuer
        text += (
            " (set ca_file to trust it)"
            if ca_file is None
            else f" (not signed by a CA in {ca_file} or the system store)"
        )
    return text
