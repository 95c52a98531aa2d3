"""Test-only crash injection (isync's ``-Ts<N>``, as an environment switch).

``SYNCD_TEST_CRASH_AT=n`` makes the process SIGKILL itself right after its
n-th durable step; ``SYNCD_TEST_CRASH_LOG=path`` appends the name of every
step reached to that file, so a sweep can count them first.  Without these
variables :func:`step` costs one integer comparison.
"""

from __future__ import annotations

import os
import signal

_crash_at = int(os.environ.get("SYNCD_TEST_CRASH_AT", "0") or 0)
_log_path = os.environ.get("SYNCD_TEST_CRASH_LOG") or None
_count = 0


def step(name: str) -> None:
    """Mark a durable step (intent written, file renamed, APPEND acknowledged...)."""
    global _count  # noqa: PLW0603 - process-wide counter is the point of a crash switch
    if not _crash_at and _log_path is None:
        return
    _count += 1
    if _log_path is not None:
        with open(_log_path, "a", encoding="utf-8") as log:  # noqa: PTH123 - tiny append
            log.write(f"{_count} {name}\n")
    if _count == _crash_at:
        os.kill(os.getpid(), signal.SIGKILL)
