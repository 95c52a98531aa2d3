"""The live progress line of ``syncd sync`` on a terminal.

One line per account while its copies run, redrawn a few times a second with
rich::

    work  INBOX  2480/3000 msgs  120.4/150.2 MB  3.1 MB/s  0:09 left  ━━━━━━━━━━━╺━━━━

It appears only once copies have run for :data:`SHOW_AFTER` seconds without a break, so a short
run prints exactly what it printed before, and it is cleared when the account is
done (its summary line follows).  While it shows, log lines are printed above it
and the periodic progress log lines are left out (the line says the same).
Only on a terminal, never with ``-q`` or ``--no-progress``: under systemd, in a
pipe or a test, the log lines carry the progress instead.  When a running daemon
does the sync, the lines show the progress it publishes in its status file.  rich is imported only
when the line is shown.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self, TextIO

from syncd.engine.progress import Meter, Snapshot
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


class _Display:
    """One live line per account, drawn with rich once :meth:`_due`; a watcher thread
    decides when.  Subclasses say where the progress comes from (:meth:`rows`)."""

    def __init__(self, name: str, stream: TextIO, *, show_after: float = SHOW_AFTER) -> None:
        self.stream = stream
        self.show_after = show_after
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"progress-{name}", daemon=True)
        self._live: Live | None = None
        self._log_stream: TextIO | None = None

    def rows(self) -> list[tuple[str, Snapshot]]:
        """The accounts to show now, each with its copies so far."""
        raise NotImplementedError

    def _due(self) -> bool:
        raise NotImplementedError

    def _poll(self) -> None:
        """Called by the watcher every :data:`_POLL` seconds."""

    def __enter__(self) -> Self:
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
            self._poll()
            if self._live is None and self._due():
                self._start()

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

        grid = Table.grid(padding=(0, 2))
        for _ in range(6):
            grid.add_column(no_wrap=True)
        grid.add_column(width=_BAR_WIDTH)
        for account, snap in self.rows():
            total = snap.bytes_total or snap.messages_total
            done = snap.bytes_done if snap.bytes_total else snap.messages_done
            bar = ProgressBar(total=max(total, 1), completed=done, width=_BAR_WIDTH)
            grid.add_row(account, *snap.columns(), bar)
        return grid


class LiveLine(_Display):
    """Around one account's sync here: ``with LiveLine("work", sys.stderr) as live:``
    then sync with ``RunOptions(progress=live.meter)``."""

    def __init__(self, account: str, stream: TextIO, *, show_after: float = SHOW_AFTER) -> None:
        super().__init__(account, stream, show_after=show_after)
        self.account = account
        self.meter = Meter(quiet=True)

    def rows(self) -> list[tuple[str, Snapshot]]:
        return [(self.account, self.meter.snapshot())]

    def _due(self) -> bool:
        busy = self.meter.busy_since
        return busy is not None and self.meter.clock() - busy >= self.show_after


class DaemonLines(_Display):
    """While ``syncd sync`` waits for the running daemon to sync ``accounts``: the
    progress the daemon publishes in its status file, one line per account that
    copies."""

    def __init__(
        self,
        state_dir: Path,
        accounts: list[str],
        stream: TextIO,
        *,
        show_after: float = SHOW_AFTER,
    ) -> None:
        super().__init__("daemon", stream, show_after=show_after)
        self.state_dir = state_dir
        self.accounts = accounts
        self._rows: list[tuple[str, Snapshot]] = []
        self._lock = threading.Lock()

    def rows(self) -> list[tuple[str, Snapshot]]:
        with self._lock:
            return list(self._rows)

    def _poll(self) -> None:
        from syncd.status.runtime import read_daemons

        found: list[tuple[str, Snapshot]] = []
        for daemon in read_daemons(self.state_dir):
            for name in self.accounts:
                runtime = daemon.accounts.get(name)
                if runtime is not None and runtime.progress is not None:
                    found.append((name, runtime.progress))
        with self._lock:
            self._rows = found

    def _due(self) -> bool:
        return any(not snap.finished and snap.elapsed >= self.show_after for _, snap in self.rows())
