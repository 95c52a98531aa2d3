"""The live progress line of ``syncd sync`` on a terminal.

One line per account while its copies run, redrawn a few times a second with
rich::

    work  INBOX  2480/3000 msgs  120.4/150.2 MB  3.1 MB/s  0:09 left  ━━━━━━━━━━━╺━━━━

It appears only once copies have run for :data:`SHOW_AFTER` seconds without a break, so a short
run prints exactly what it printed before, and it is cleared when the account is
done (its summary line follows).  While it shows, log lines are printed above it
and the periodic progress log lines are left out (the line says the same).
Only on a terminal, never with ``-q`` or ``--no-progress``: under systemd, in a
pipe or a test, the log lines carry the progress instead.  rich is imported only
when the line is shown.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Final, TextIO

from syncd.engine.progress import Meter
from syncd.logsetup import set_log_stream

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

#: Seconds a copy runs before the line appears.
SHOW_AFTER: Final = 1.0
_POLL: Final = 0.1  # how often the watcher looks whether the line is due
_BAR_WIDTH: Final = 20


def wanted(stream: TextIO, *, verbosity: int, enabled: bool = True) -> bool:
    """Whether to show the live line on ``stream``: a terminal that can redraw a line,
    not ``-q``, not ``--no-progress``."""
    if not enabled or verbosity < 0 or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


class LiveLine:
    """Around one account's sync: ``with LiveLine("work", sys.stderr) as live:`` then
    sync with ``RunOptions(progress=live.meter)``."""

    def __init__(self, account: str, stream: TextIO, *, show_after: float = SHOW_AFTER) -> None:
        self.account = account
        self.stream = stream
        self.show_after = show_after
        self.meter = Meter(quiet=True)
        self._stop = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, name=f"progress-{account}", daemon=True
        )
        self._live: Live | None = None
        self._log_stream: TextIO | None = None

    def __enter__(self) -> LiveLine:
        self._watcher.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._watcher.join()
        if self._live is not None:
            self._live.stop()  # transient: the line is erased
            if self._log_stream is not None:
                set_log_stream(self._log_stream)

    def _watch(self) -> None:
        while not self._stop.wait(_POLL):
            busy = self.meter.busy_since
            if busy is not None and self.meter.clock() - busy >= self.show_after:
                self._start()
                return

    def _start(self) -> None:
        import sys

        from rich.console import Console
        from rich.live import Live

        redirect = self.stream is sys.stderr
        live = Live(
            console=Console(file=self.stream),
            get_renderable=self.render,
            transient=True,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=redirect,
        )
        live.start(refresh=True)
        self._live = live
        if redirect:
            # sys.stderr is now rich's proxy: log lines are printed above the line,
            # not over it.
            self._log_stream = set_log_stream(sys.stderr)

    def render(self) -> RenderableType:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        snap = self.meter.snapshot()
        grid = Table.grid(padding=(0, 2))
        row = [self.account, *snap.columns()]
        for _ in row:
            grid.add_column(no_wrap=True)
        grid.add_column(width=_BAR_WIDTH)
        total = snap.bytes_total or snap.messages_total
        done = snap.bytes_done if snap.bytes_total else snap.messages_done
        grid.add_row(*row, ProgressBar(total=max(total, 1), completed=done, width=_BAR_WIDTH))
        return grid
