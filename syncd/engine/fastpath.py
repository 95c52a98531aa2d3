"""The fast path: tell, without opening the far folder or scanning the near one,
that nothing changed on either side since the last clean sync."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from syncd.engine.refusals import Refusal, held_back
from syncd.stores.base import Capability, FarFolder

if TYPE_CHECKING:
    from syncd.engine.state import FolderState


def unchanged(
    far: FarFolder, st: FolderState, signature: str | None, refusals: Mapping[str, Refusal]
) -> bool:
    """Same UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ on the far side (its
    :meth:`~syncd.stores.base.FarFolder.status`, needs MODSEQ), same signature on
    the near side, and no refused message due to be offered again."""
    if (
        signature is None
        or signature != st.near_signature
        or st.highestmodseq is None
        or Capability.MODSEQ not in far.capabilities
    ):
        return False
    if refusals:
        limit, now = far.append_limit, time.time()
        due = [r for r in refusals.values() if not held_back(r, size=r.size, limit=limit, now=now)]
        if due:
            return False  # a refused message is due to be offered again
    status = far.status()
    return (
        status is not None
        and status.uidvalidity == st.uidvalidity
        and status.highestmodseq == st.highestmodseq
        and status.uidnext == st.uidnext
        and status.messages == st.far_count
    )
