"""How fast does ``syncd daemon`` push changes, and what does it cost while idle?

Against a private Dovecot (started here, stopped at the end), with the real daemon
running as a subprocess (``interval = 1h``, so only IDLE and the Maildir watcher can
explain a fast arrival), it measures:

- **server -> local**: APPEND by another IMAP client -> the file appears in the Maildir;
- **local -> server**: a flag rename in ``cur/`` (as a mail reader does) -> the server
  reports the flag;

each as p50/p95/max over ``--events`` events (one at a time, with a pause between them so
they do not coalesce), then the daemon's CPU time and RSS over an idle period
(``--idle``, default 10 minutes), read from ``/proc/<pid>``.

    .venv/bin/python benchmarks/latency.py [--events 100] [--idle 600] [--json]

Poll resolution is 5 ms on the local side and 20 ms on the server side; the local -> server
figure includes the watcher's 0.5 s debounce, by design.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devserver.dovecot import DevServer, User, start

HERE = Path(__file__).resolve().parent
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def message(i: int) -> bytes:
    return (
        f"From: Bench <bench@example.org>\r\nTo: you@example.org\r\n"
        f"Subject: latency {i}\r\nMessage-ID: <latency.{i}.{os.getpid()}@syncd.bench>\r\n"
        f"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n\r\nbody {i}\r\n"
    ).encode()


def entries(maildir: Path) -> set[str]:
    out: set[str] = set()
    for sub in ("new", "cur"):
        with contextlib.suppress(FileNotFoundError), os.scandir(maildir / sub) as it:
            out.update(f"{sub}/{e.name}" for e in it)
    return out


def wait_for(check: Any, deadline: float, what: str, interval: float) -> Any:
    end = time.monotonic() + deadline
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise SystemExit(f"latency.py: timed out waiting for {what}")
        time.sleep(interval)


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(pct(0.95), 3),
        "max": round(ordered[-1], 3),
    }


def _config(tmp: Path, server: DevServer, user: User, maildir: Path) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f'[general]\nstate_dir = "{tmp / "state"}"\n\n'
        f"[accounts.bench]\n"
        f'host = "{server.host}"\nport = {server.port}\ntls = "none"\n'
        f'user = "{user.name}"\npassword_command = ["printf", "%s", "{user.password}"]\n'
        f'maildir = "{maildir}"\ninterval = "1h"\n',
        encoding="utf-8",
    )
    return path


def run(events: int, idle: float, pause: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="syncd-latency-"))
    tmp.chmod(0o755)  # Dovecot's mail processes must reach the mail directory
    server = start(tmp / "server")
    daemon: subprocess.Popen[bytes] | None = None
    log = tmp / "daemon.log"
    try:
        user = server.add_user()
        maildir = tmp / "Mail"
        config = _config(tmp, server, user, maildir)
        with log.open("wb") as log_file:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "syncd", "--config", str(config), "daemon"],
                stderr=log_file,
                stdout=log_file,
            )
        wait_for((maildir / "cur").is_dir, 60, "the start-up sync", 0.05)
        client = server.connect(user)
        try:
            # Server -> local: APPEND, then watch the Maildir for the new file.
            to_local: list[float] = []
            uids: dict[str, int] = {}
            for i in range(events):
                before = entries(maildir)
                started = time.monotonic()
                response = client.append("INBOX", message(i))
                match = _APPENDUID.search(response if isinstance(response, bytes) else b"")
                new = wait_for(
                    lambda before=before: entries(maildir) - before, 30, f"message {i}", 0.005
                )
                to_local.append(time.monotonic() - started)
                if match is not None:
                    uids[next(iter(new))] = int(match.group(1))
                time.sleep(pause)

            # Local -> server: rename cur/NAME:2, to cur/NAME:2,F and poll the server's flags.
            time.sleep(1.0)  # let the follow-up syncs of phase one settle
            client.select_folder("INBOX", readonly=True)
            to_server: list[float] = []
            for entry, uid in uids.items():
                base = entry.split("/", 1)[1].split(":2,")[0]
                current = next(
                    (e for e in entries(maildir) if e.split("/", 1)[1].split(":2,")[0] == base),
                    None,
                )
                if current is None:
                    continue
                info = current.partition(":2,")[2]
                src = maildir / current
                dst = maildir / "cur" / f"{base}:2,{''.join(sorted(set(info) | {'F'}))}"
                started = time.monotonic()
                src.rename(dst)

                def flagged(uid: int = uid) -> bool:
                    client.noop()
                    data = client.fetch([uid], ["FLAGS"])
                    return b"\\Flagged" in data.get(uid, {}).get(b"FLAGS", ())

                wait_for(flagged, 30, f"flag of UID {uid}", 0.02)
                to_server.append(time.monotonic() - started)
                time.sleep(pause)
        finally:
            with contextlib.suppress(Exception):
                client.logout()

        # Idle: nothing happens; sample the daemon's CPU time and RSS.
        time.sleep(2.0)
        pid = daemon.pid
        cpu0, rss0, t0 = proc_cpu(pid), proc_rss_kib(pid), time.monotonic()
        rss_max = rss0
        while time.monotonic() - t0 < idle:
            time.sleep(min(10.0, max(0.0, idle - (time.monotonic() - t0))))
            rss_max = max(rss_max, proc_rss_kib(pid))
        cpu1, rss1, t1 = proc_cpu(pid), proc_rss_kib(pid), time.monotonic()

        daemon.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = daemon.wait(60)
        stop_seconds = time.monotonic() - stopped
        return {
            "events": events,
            "server_to_local_s": summary(to_local),
            "local_flag_to_server_s": summary(to_server),
            "idle": {
                "seconds": round(t1 - t0, 1),
                "cpu_seconds": round(cpu1 - cpu0, 3),
                "cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
                "rss_kib_start": rss0,
                "rss_kib_end": rss1,
                "rss_kib_max": rss_max,
            },
            "sigterm": {"exit_code": code, "seconds": round(stop_seconds, 2)},
        }
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        server.stop()
        if os.environ.get("SYNCD_BENCH_KEEP"):
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100, help="events per direction")
    parser.add_argument("--idle", type=float, default=600.0, help="idle period in seconds")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between events")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    result = run(args.events, args.idle, args.pause)
    if args.json:
        print(json.dumps(result))
        return 0
    a, b, idle = result["server_to_local_s"], result["local_flag_to_server_s"], result["idle"]
    print(
        f"server APPEND -> local file : p50 {a['p50']:.3f}s  p95 {a['p95']:.3f}s  "
        f"max {a['max']:.3f}s  (n={a['n']})"
    )
    print(
        f"local flag -> server flag   : p50 {b['p50']:.3f}s  p95 {b['p95']:.3f}s  "
        f"max {b['max']:.3f}s  (n={b['n']})"
    )
    print(
        f"idle {idle['seconds']:.0f}s: CPU {idle['cpu_seconds']:.2f}s "
        f"({idle['cpu_percent']:.3f}%), RSS {idle['rss_kib_start']} -> "
        f"{idle['rss_kib_end']} KiB (max {idle['rss_kib_max']})"
    )
    print(f"SIGTERM: exit {result['sigterm']['exit_code']} in {result['sigterm']['seconds']}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
