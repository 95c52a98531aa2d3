"""The progress of the daemon's running sync, in its status file.

While an account syncs, a small thread writes the account's copies so far
(:class:`~syncd.engine.progress.Snapshot`) into the status file every
:data:`PUBLISH_EVERY` seconds, so ``syncd status`` shows ``syncing: 2480/3000
messages, 120/150 MB, 0:09 left`` -- and a stalled link reads as a falling rate,
not as the last good figure.  Nothing is written for a sync that copies nothing.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Final

from syncd.engine.progress import Meter
from syncd.status.runtime import StatusFile

#: Seconds between two writes of the progress (each replaces the whole small file).
PUBLISH_EVERY: Final = 1.0


class ProgressPublisher:
    """``with ProgressPublisher(status, "work") as meter:`` around one sync call, with
    ``RunOptions(progress=meter)``; the progress leaves the file when it ends."""

    def __init__(self, status: StatusFile, account: str, *, every: float = PUBLISH_EVERY) -> None:
        self.status = status
        self.account = account
        self.every = every
        self.meter = Meter()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._publish, name=f"progress-{account}", daemon=True
        )

    def __enter__(self) -> Meter:
        self._thread.start()
        return self.meter

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.status.set_progress(self.account, None)

    def _publish(self) -> None:
        while not self._stop.wait(self.every):
            if self.meter.started is not None:
                self.status.set_progress(self.account, self.meter.snapshot())
