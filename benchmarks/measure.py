"""Measuring a child process (wall, CPU, peak RSS) and the machine it runs on."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_STARTUP_REPEAT = 5


@dataclasses.dataclass(frozen=True)
class Usage:
    """What one child process cost."""

    wall: float
    user: float
    sys: float
    maxrss_kb: int
    returncode: int

    @property
    def cpu(self) -> float:
        return self.user + self.sys


class Children:
    """The child process currently running, so that an interrupt can kill it."""

    def __init__(self) -> None:
        self.current: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """Kill the running child's whole process group (the tool and GNU time)."""
        proc = self.current
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
        self.current = None


#: GNU time (Debian package ``time``) measures the peak RSS; see :func:`run_timed`.
GNU_TIME = "/usr/bin/time"


def run_timed(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None,
    log: Path | None,
    timeout: float,
    children: Children,
) -> Usage:
    """Run ``argv`` to completion; its output goes to ``log`` (appended) or nowhere.

    Wall clock and user+sys CPU come from ``wait4`` on the child. The peak RSS cannot:
    Linux carries the high-water mark of the memory a child had before ``exec`` over
    into its ``ru_maxrss``, and a child forked from this (large) Python process would
    report at least this process's size -- ~50 MB even for mbsync. So the tool runs
    under GNU time, a small C program whose own child starts small, and its ``%M`` (the
    grandchild's ``ru_maxrss``) is the peak RSS. The child gets its own process group;
    after ``timeout`` s (or on an interrupt) the whole group is killed.
    """
    with contextlib.ExitStack() as stack:
        out: Any = subprocess.DEVNULL
        if log is not None:
            out = stack.enter_context(log.open("ab"))
            out.write(f"\n=== {datetime.now(UTC):%H:%M:%S} {' '.join(argv)}\n".encode())
            out.flush()
        rss_file = stack.enter_context(tempfile.NamedTemporaryFile("r", suffix=".rss"))
        wrapped = [GNU_TIME, "-q", "-f", "%M", "-o", rss_file.name, "--", *argv]
        start = time.perf_counter()
        proc = subprocess.Popen(
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
        )
        children.current = proc
        timer = threading.Timer(timeout, lambda: _killpg(proc.pid))
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        children.current = None
        lines = rss_file.read().split()
        maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    return Usage(wall, usage.ru_utime, usage.ru_stime, maxrss, proc.returncode)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def machine_facts(workdir: Path) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem_gb = round(int(first.split()[1]) / 1024 / 1024, 1)
    fs = subprocess.run(
        ["stat", "-f", "-c", "%T", str(workdir)], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem": fs or "unknown",
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "root": os.geteuid() == 0,
    }


def startup_times(project: Path, kids: Children) -> dict[str, dict[str, float]]:
    """Best-of-5 cost of starting each program and doing nothing (no server involved)."""
    py = str(project / ".venv/bin/python")
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import syncd.cli.app'": [py, "-c", "import syncd.cli.app"],
        "syncd --version": [str(project / ".venv/bin/syncd"), "--version"],
        "mbsync --version": ["mbsync", "--version"],
        "offlineimap --version": ["offlineimap", "--version"],
    }
    out = {}
    for label, argv in commands.items():
        if shutil.which(argv[0]) is None:
            continue
        best = min(
            (
                run_timed(argv, env=None, log=None, timeout=60, children=kids)
                for _ in range(_STARTUP_REPEAT)
            ),
            key=lambda u: u.wall,
        )
        out[label] = {
            "wall_s": round(best.wall, 4),
            "cpu_s": round(best.cpu, 4),
            "rss_mb": round(best.maxrss_kb / 1024, 1),
        }
    return out


def byte_compile(project: Path) -> None:
    """Byte-compile syncd as `pip install` does: with PYTHONDONTWRITEBYTECODE set (some
    shells, CI), every timed run would compile its modules again and be measured."""
    import sys

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(project / "syncd")],
                   check=True, capture_output=True)  # fmt: skip
