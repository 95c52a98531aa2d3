"""A plan as lines a person can read: which message, and why (issue 15).

``copy far 1 -> near (\\Seen)`` names a UID, not a message.  The lines made here
name it by Subject, From and Date and say why the step is planned::

    download "Quarterly report" from Alice <alice@example.org>, 3 Jan 2024: new on
    the server [copy far 1 -> near (\\Seen)]

(one line; the step's own text stays in brackets, for whoever reads the state).
They are made only for ``--dry-run`` and the ``-v`` log, so only then are headers
read: the far side's in one batch (:meth:`FarFolder.headers`, a single command
for an IMAP store), the near side's from the files already listed.  A message
present on both sides is named from the near copy: a local read costs no round
trip.  Planning itself stays pure (:mod:`syncd.engine.reconcile`).
"""

from __future__ import annotations

import email.errors
import email.parser
import email.policy
import logging
import re
from collections.abc import Mapping
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from typing import Final

from syncd.engine.reconcile import Copy, Delete, Forget, Plan, SetFlags
from syncd.errors import FolderError, MessageError
from syncd.model import MsgKey, Side
from syncd.stores.base import FarFolder, NearFolder, NearMessage

FIELDS: Final = ("From", "Subject", "Date")
_TEXT_LIMIT: Final = 80
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")

Step = Copy | SetFlags | Delete | Forget


def describe_plan(
    plan: Plan,
    *,
    far: FarFolder,
    near: NearFolder,
    local: Mapping[str, NearMessage],
    log: logging.LoggerAdapter[logging.Logger],
) -> list[str]:
    """One line per step of ``plan``, in its order: what, which message, why.

    Reads the headers of the far messages no near copy names (one batch) and of
    the near files involved.  A message whose headers cannot be read is named by
    its key alone; the far side's refusal is logged once (a warning), never fatal."""
    sources = [_source(step, local) for step in plan]
    far_keys = [key for side, key in sources if side is Side.FAR and key is not None]
    far_heads: dict[MsgKey, bytes] = {}
    if far_keys:
        try:
            far_heads = far.headers(far_keys, FIELDS)
        except FolderError as exc:
            log.warning("cannot read the headers of the server's messages to name them: %s", exc)
    lines = []
    for step, (side, key) in zip(plan, sources, strict=True):
        head: bytes | None = None
        if side is Side.FAR and key is not None:
            head = far_heads.get(key)
        elif side is Side.NEAR and key is not None:
            head = _near_head(near, local[str(key)])
        label = message_label(head) if head is not None else None
        what = _verb(step) + (f" {label}" if label else "")
        lines.append(f"{what}: {step.why} [{step}]")
    return lines


def message_label(head: bytes) -> str:
    """``"Subject" from Name <address>, 3 Jan 2024`` from raw header lines; parts that
    are missing are left out, a message without any is ``(no Subject, From or Date)``.
    Encoded words are decoded; control characters escaped; each part cut short."""
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    sender, subject, date = (_header_text(msg.get(name)) for name in FIELDS)
    named = " ".join(
        part
        for part in (
            '"' + subject.replace('"', "'") + '"' if subject is not None else "",
            f"from {sender}" if sender is not None else "",
        )
        if part
    )
    when = _date(date) if date is not None else None
    if when is not None:
        named = f"{named}, {when}" if named else when
    return named or "(no Subject, From or Date)"


def _source(step: Step, local: Mapping[str, NearMessage]) -> tuple[Side | None, MsgKey | None]:
    """Where to read the step's message from: the near file when there is one."""
    if isinstance(step, Copy):
        if step.src is Side.NEAR and str(step.key) not in local:
            return None, None
        return step.src, step.key
    if isinstance(step, Delete):
        side, key = step.side, step.pair.key(step.side)
    elif isinstance(step, Forget):
        if step.keep is None:
            return None, None
        side, key = step.keep, step.pair.key(step.keep)
    else:
        near = step.pair.near
        if near is not None and near in local:
            return Side.NEAR, near
        side, key = Side.FAR, step.pair.far
    if side is Side.NEAR and (key is None or str(key) not in local):
        return None, None
    return side, key


def _near_head(near: NearFolder, msg: NearMessage) -> bytes | None:
    try:
        data = near.read(msg)
    except MessageError:
        return None
    end = _HEAD_END.search(data)
    return data[: end.end()] if end is not None else data


def _verb(step: Step) -> str:
    if isinstance(step, Copy):
        return "download" if step.src is Side.FAR else "upload"
    if isinstance(step, Delete):
        return "delete on the server" if step.side is Side.FAR else "delete here"
    if isinstance(step, SetFlags):
        return "change the flags of"
    return "forget" if step.keep is None else "stop syncing"


def _header_text(value: object) -> str | None:
    if value is None:
        return None
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        text = str(value)
    text = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", " ".join(text.split()))
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _date(value: object) -> str | None:
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return f"{when.day} {when:%b %Y}"
