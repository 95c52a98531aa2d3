"""A no-op `syncd sync` through a running daemon, beside mbsync's no-op (issue 14).

Against a private Dovecot (started here, stopped at the end): two users with the
same mail (N messages in three folders, the same seed), one synced by syncd, one
by mbsync (FSync yes, Maildir++, plaintext LOGIN on 127.0.0.1: the benchmark's
settings).  After both initial syncs it times, interleaved, ``--repeat`` runs of

- ``syncd sync`` while ``syncd daemon`` runs (the command rides the daemon's
  control socket: no login, no engine start-up in the command);
- ``mbsync -a`` with nothing to do;
- ``syncd sync`` alone (the daemon stopped): the one-shot no-op, for reference;

and prints the medians and the ratios.  Wall time of the whole command, as a user
waits for it.

    .venv/bin/python -m benchmarks.ride [--messages 10000] [--repeat 15] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import tools
from benchmarks.measure import byte_compile
from devserver.dovecot import populate, start

HERE = Path(__file__).resolve().parent


def _timed(tool: tools.Tool) -> float:
    began = time.perf_counter()
    proc = subprocess.run(tool.argv, env=dict(tool.env), capture_output=True, text=True,
                          check=False)  # fmt: skip
    took = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.name} exited {proc.returncode}:\n{proc.stderr}")
    return took


def _wait_for_socket(state_dir: Path, daemon: subprocess.Popen[bytes]) -> None:
    from syncd.daemon.control import socket_path

    path = socket_path(state_dir)
    deadline = time.monotonic() + 120
    while not path.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the daemon did not open its control socket")
        time.sleep(0.1)


def run(messages: int, repeat: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="syncd-ride-"))
    tmp.chmod(0o755)
    server = start(tmp / "dovecot")
    daemon: subprocess.Popen[bytes] | None = None
    try:
        folders = {"INBOX": messages // 2, "Archive": messages // 4, "Lists/python": messages // 4}
        users = [server.add_user() for _ in range(2)]
        for user in users:
            populate(server, user, folders=folders, seed=7)
        # The main benchmark's configs: fsync on, Maildir++, plaintext LOGIN on loopback.
        syncd, mbsync = (
            tools.make(name, tmp / name, tools.Account(server.host, server.port, u.name,
                                                       u.password), project=HERE.parent)
            for name, u in zip(("syncd", "mbsync"), users, strict=True)
        )  # fmt: skip
        initial = {"syncd": _timed(syncd), "mbsync": _timed(mbsync)}

        config = syncd.argv[syncd.argv.index("--config") + 1]
        daemon = subprocess.Popen(
            [syncd.argv[0], "--config", config, "-q", "daemon"],
            env=dict(syncd.env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_socket(tmp / "syncd" / "state", daemon)
        _timed(syncd)  # the daemon's own first cycle is done before timing starts
        rides, noops = [], []
        for _ in range(repeat):
            rides.append(_timed(syncd))
            noops.append(_timed(mbsync))
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        daemon = None
        alone = [_timed(syncd) for _ in range(repeat)]
        ride, mb, one = (statistics.median(x) for x in (rides, noops, alone))
        return {
            "messages": messages,
            "repeat": repeat,
            "initial_s": initial,
            "median_s": {"syncd_through_daemon": ride, "mbsync": mb, "syncd_one_shot": one},
            "ratio_vs_mbsync": {"syncd_through_daemon": ride / mb, "syncd_one_shot": one / mb},
        }
    finally:
        if daemon is not None:
            daemon.kill()
            daemon.wait()
        server.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)



def main() -> int:
    byte_compile(Path(__file__).resolve().parent.parent)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = run(args.messages, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m, r = result["median_s"], result["ratio_vs_mbsync"]
    print(f"no-op at {args.messages} messages, median of {args.repeat} (wall, seconds)")
    print(f"  syncd sync through the daemon  {m['syncd_through_daemon']:.3f}"
          f"   {r['syncd_through_daemon']:.2f} x mbsync")  # fmt: skip
    print(f"  mbsync -a                      {m['mbsync']:.3f}")
    print(f"  syncd sync, one-shot           {m['syncd_one_shot']:.3f}"
          f"   {r['syncd_one_shot']:.2f} x mbsync")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
