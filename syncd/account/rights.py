"""Mailbox ACLs (RFC 4314): a folder the user may only read is synced one way.

When the server has ACL, the user's rights on a folder (``MYRIGHTS``) are asked
once and kept in the state; asked again after :data:`RIGHTS_TTL`, or when the
folder's last sync failed or the server refused a message (a write refused because
the rights were taken away).
A folder without any right that changes it -- ``i`` (insert: APPEND), ``w``
(write flags), ``t`` (delete messages), ``e`` (expunge) -- is synced from the server
only, with one line saying why, instead of failing every cycle on its writes.
(``s``, keeping ``\\Seen``, alone does not count: a reader's rights are often
``lrs``.)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from syncd.engine.reconcile import Policy
from syncd.engine.state import StateDB
from syncd.errors import FolderError

if TYPE_CHECKING:
    from syncd.stores.imap.session import ImapSession

#: How long the rights asked of a folder are trusted (seconds).
RIGHTS_TTL = 24 * 3600
#: Rights that change a mailbox's messages (RFC 4314 §2.1).
WRITE_RIGHTS = frozenset("itwe")


def read_only(rights: str) -> bool:
    """Whether ``rights`` allow no change to the mailbox's messages."""
    return not WRITE_RIGHTS & set(rights)


def policy_for_rights(
    session: ImapSession,
    db: StateDB,
    far_name: str,
    policy: Policy,
    log: logging.LoggerAdapter[logging.Logger],
    *,
    dry_run: bool,
    now: float | None = None,
) -> Policy:
    """``policy``, made server-to-local only when the folder is read-only for the
    user.  Costs nothing without ACL, or while the kept rights are fresh."""
    if not policy.push or "ACL" not in session.capabilities:
        return policy
    now = time.time() if now is None else now
    kept = db.rights(far_name)
    st = db.folder(far_name)
    # A write refused since (the rights taken away?): ask again.
    failed = st is not None and (st.last_error is not None or bool(db.refusals(st.id)))
    if kept is None or now - kept[1] > RIGHTS_TTL or failed:
        try:
            rights = session.myrights(far_name)
        except FolderError as exc:
            log.debug("MYRIGHTS not answered (%s); synced as usual", exc)
            return policy
        if not dry_run:
            db.set_rights(far_name, rights, now)
    else:
        rights = kept[0]
    if not read_only(rights):
        return policy
    log.info(
        "read-only on the server (your rights: %s): synced from the server only; "
        "local changes stay here",
        rights or "none",
    )
    return dataclasses.replace(policy, push=False)
