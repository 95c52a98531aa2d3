"""Content identity that ignores the headers other sync tools add to each message.

mbsync writes ``X-TUID: <12 chars>`` into every message it copies (both ways),
offlineimap ``X-OfflineIMAP: <n>-<m>`` when the server lacks UIDPLUS, and
``X-Keywords:`` when its ``synclabels`` was on.  The helpers live in
:mod:`syncd.message` (the engine's content pairing uses them too); re-exported
here under the names the adoption code has always used.
"""

from __future__ import annotations

from syncd.message import (
    ADDED_HEADERS,
    adopted_body_hash,
    adopted_identity,
    adopted_wire_size,
    strip_added_headers,
)

__all__ = [
    "ADDED_HEADERS",
    "adopted_body_hash",
    "adopted_identity",
    "adopted_wire_size",
    "strip_added_headers",
]
