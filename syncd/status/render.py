"""``syncd status`` for people: the text form and the one line for status bars.

The one line (``--short``) is ``NAME MARK WHAT`` per account, joined by `` · ``:
``work ✓ 2m · home ✗ login refused 3h``.  ✓: the last attempt synced everything,
that long ago; ``!``: it synced, but something failed or is held back; ✗: failing
or backing off, for that long; ``↻``: syncing now (``↻ syncing 83%``: the daemon's
copies so far, by bytes).  Where the output's encoding
cannot print these, ASCII stands in (``ok``, ``!``, ``FAIL``, ``~``, `` | ``).
"""

from __future__ import annotations

import time
from typing import Final

from syncd.account.outcome import SHORT
from syncd.status.collect import NEVER_SYNCED, AccountStatus, Status
from syncd.status.runtime import BACKING_OFF, FAILING, SYNCING

_UNICODE: Final = {"ok": "✓", "partial": "!", "failing": "✗", "syncing": "↻", "sep": " · "}
_ASCII: Final = {"ok": "ok", "partial": "!", "failing": "FAIL", "syncing": "~", "sep": " | "}


def can_print(encoding: str | None) -> bool:
    """Whether text in ``encoding`` can carry the one-line form's marks."""
    try:
        "".join(_UNICODE.values()).encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def ago(seconds: float) -> str:
    """A duration in its largest whole unit: ``45s``, ``2m``, ``3h``, ``2d``."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def short_line(status: Status, *, unicode: bool = True) -> str:
    marks = _UNICODE if unicode else _ASCII
    now = status.generated
    return marks["sep"].join(_short(a, marks, now) for a in status.accounts)


def _short(a: AccountStatus, marks: dict[str, str], now: float) -> str:
    attempt = a.attempt
    if a.state == SYNCING:
        line = f"{a.name} {marks['syncing']} syncing"
        if a.progress is not None:
            line += f" {a.progress.percent}%"
        return line
    if a.state in (FAILING, BACKING_OFF):
        what = SHORT.get(a.error_kind or "", "error")
        since = attempt.failing_since if attempt is not None else None
        return f"{a.name} {marks['failing']} {what}" + (
            f" {ago(now - since)}" if since is not None else ""
        )
    if a.state == NEVER_SYNCED:
        return f"{a.name} never synced"
    if attempt is not None and attempt.outcome == "partial":
        what = SHORT.get(a.error_kind or "", "error")
        return f"{a.name} {marks['partial']} {what} {ago(now - attempt.finished)}"
    when = a.last_success
    return f"{a.name} {marks['ok']}" + (f" {ago(now - when)}" if when is not None else "")


def _when(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    delta = t - now
    return f"{stamp} (in {ago(delta)})" if delta > 0 else f"{stamp} ({ago(-delta)} ago)"


def text_lines(status: Status) -> list[str]:
    """The text form: the daemon, then per account its state, attempts and folders."""
    now = status.generated
    lines = []
    if status.daemons:
        for d in status.daemons:
            lines.append(
                f"daemon: running (pid {d.pid}, since {_when(d.since, now)}, syncd {d.version}; "
                f"{', '.join(sorted(d.accounts)) or 'no accounts'})"
            )
    else:
        lines.append("daemon: not running")
    for a in status.accounts:
        lines += _account_lines(a, now)
    return lines


def _account_lines(a: AccountStatus, now: float) -> list[str]:
    attempt = a.attempt
    head = f"{a.name}: {a.state}"
    if a.state == SYNCING and a.syncing_pid is not None:
        head += f" (pid {a.syncing_pid})"
    if a.state in (FAILING, BACKING_OFF) and attempt is not None and attempt.failing_since:
        head += f" since {_when(attempt.failing_since, now)}"
        if attempt.failures > 1:
            head += f", {attempt.failures} attempts"
    lines = [head]
    if a.progress is not None:
        lines.append(f"  syncing: {a.progress.brief()}")
    if a.error:
        lines.append(f"  error: {a.error}")
    if attempt is not None:
        lines.append(f"  last attempt: {_when(attempt.finished, now)}, {attempt.outcome}")
    if a.state != NEVER_SYNCED:
        lines.append(f"  last success: {_when(a.last_success, now)}")
    if a.next_run is not None:
        label = "next attempt" if a.state in (FAILING, BACKING_OFF) else "next run"
        lines.append(f"  {label}: {_when(a.next_run, now)}")
    for f in a.folders:
        line = f"  {f.folder}: {_when(f.last_sync, now)}, {f.server} on server, {f.local} local"
        if f.error:
            line += f", error: {f.error}"
        lines.append(line)
        for held in f.held_back:
            lines.append(
                f"    held back (the server refused it): {held.message} "
                f"({held.size} bytes): {held.reason}"
            )
    return lines
