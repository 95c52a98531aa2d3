"""Moves between folders: bytes on the wire, syncd beside mbsync and offlineimap (issue 14).

Against a private Dovecot (started here, stopped at the end): one user per tool, each
with the same ``--messages`` messages of ``--size`` bytes in INBOX and an empty
Archive; each tool syncs them once (the benchmark's settings: tools.py).  Then

1. a mail reader moves every message from the local INBOX to the local Archive (a
   rename, as mutt, aerc or notmuch do; mbsync's ``,U=`` is taken out of the name, as
   its manual asks of a reader that moves files) and the tool syncs;
2. another client moves them back on the server (``UID MOVE`` Archive -> INBOX) and
   the tool syncs again.

For each sync it prints the bytes the tool sent (``in``) and received (``out``) in
Dovecot's logout counters, the bodies fetched, and the wall time, and checks that
each folder holds what it should on both sides (counts).

    .venv/bin/python -m benchmarks.moves [--messages 100] [--size 1000000] [--json]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import tools
from benchmarks.measure import byte_compile
from devserver.dovecot import DevServer, User, start

HERE = Path(__file__).resolve().parent
_UID_IN_NAME = re.compile(r",U=\d+")


def _message(i: int, size: int) -> bytes:
    rng = random.Random(i)
    head = (
        f"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.com>\r\n"
        f"Subject: attachment {i}\r\nDate: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
        f"Message-ID: <move-{i}@bench.syncd>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    raw = base64.encodebytes(rng.randbytes(max(0, size - len(head)) * 3 // 4 + 1))
    return head + raw.replace(b"\n", b"\r\n")[: max(0, size - len(head))]


def _fill(server: DevServer, user: User, messages: int, size: int) -> None:
    client = server.connect(user)
    try:
        client.create_folder("Archive")
        for i in range(messages):
            client.append("INBOX", _message(i, size), flags=["\\Seen"])
    finally:
        client.logout()


def _quiet(server: DevServer, user: User, timeout: float = 10.0) -> int:
    """The log offset once every session of ``user`` so far has its logout line."""
    logins = re.compile(rf"Login: user=<{re.escape(user.name)}>,.* session=<([^>]*)>")
    logouts = re.compile(rf"imap\({re.escape(user.name)}\)<[^>]*><([^>]*)>: Info: Disconnected")
    deadline = time.monotonic() + timeout
    while True:
        offset = server.log_offset()
        text = server.log_file.read_bytes()[:offset].decode("utf-8", "replace")
        if set(logins.findall(text)) <= set(logouts.findall(text)) or time.monotonic() > deadline:
            return offset
        time.sleep(0.05)


def _sync(tool: tools.Tool, server: DevServer, user: User) -> dict[str, Any]:
    offset = _quiet(server, user)
    began = time.perf_counter()
    proc = subprocess.run(tool.argv, env=dict(tool.env), capture_output=True, text=True,
                          check=False)  # fmt: skip
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.name} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    t = server.traffic(user, offset)
    return {"sent": t.in_bytes, "received": t.out_bytes, "bodies": t.body_count, "wall_s": wall}


def _local_count(tool: tools.Tool, folder: str) -> int:
    path = tool.folder_path(folder)
    return sum(1 for sub in ("cur", "new") for p in (path / sub).iterdir() if p.is_file())


def _server_count(server: DevServer, user: User, folder: str) -> int:
    client = server.connect(user)
    try:
        return int(client.select_folder(folder, readonly=True)[b"EXISTS"])
    finally:
        client.logout()


def _check(tool: tools.Tool, server: DevServer, user: User, inbox: int, archive: int) -> None:
    for folder, want in (("INBOX", inbox), ("Archive", archive)):
        got = (_local_count(tool, folder), _server_count(server, user, folder))
        if got != (want, want):
            raise RuntimeError(f"{tool.name}: {folder} holds {got} (here, server), not {want}")


def _move_here(tool: tools.Tool) -> None:
    src, dst = tool.folder_path("INBOX"), tool.folder_path("Archive")
    for sub in ("cur", "new"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for path in list((src / sub).iterdir()):
            if path.is_file():
                path.rename(dst / sub / _UID_IN_NAME.sub("", path.name))


def _move_on_server(server: DevServer, user: User) -> None:
    client = server.connect(user)
    try:
        client.select_folder("Archive")
        client.move(client.search("ALL"), "INBOX")
    finally:
        client.logout()


def _venv_project() -> Path:
    """The project whose .venv runs syncd: this one, or (a git worktree without its
    own .venv, PYTHONPATH pointing here) the one of the running interpreter."""
    here = HERE.parent
    return here if (here / ".venv").is_dir() else Path(sys.prefix).parent


def run(messages: int, size: int, names: list[str]) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="syncd-moves-"))
    tmp.chmod(0o755)  # Dovecot's mail processes (uid 65534 under root) must get in
    server = start(tmp / "dovecot")
    out: dict[str, Any] = {"messages": messages, "size": size, "tools": {}}
    try:
        for name in names:
            user = server.add_user()
            _fill(server, user, messages, size)
            account = tools.Account(server.host, server.port, user.name, user.password)
            tool = tools.make(name, tmp / name, account, project=_venv_project())
            initial = _sync(tool, server, user)
            _check(tool, server, user, messages, 0)
            _move_here(tool)
            here = _sync(tool, server, user)
            _check(tool, server, user, 0, messages)
            _move_on_server(server, user)
            there = _sync(tool, server, user)
            _check(tool, server, user, messages, 0)
            out["tools"][name] = {"initial": initial, "moved_here": here, "moved_on_server": there}
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return out


def main() -> int:
    byte_compile(HERE.parent)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--tools", default=",".join(tools.TOOLS))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = run(args.messages, args.size, args.tools.split(","))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.messages} messages of {args.size} bytes moved INBOX -> Archive here, then "
          "back on the server (Dovecot's logout counters)")  # fmt: skip
    print(f"  {'tool':<12} {'move':<16} {'sent':>12} {'received':>12} {'bodies':>7} {'wall s':>7}")
    for name, runs in result["tools"].items():
        for label in ("moved_here", "moved_on_server"):
            r = runs[label]
            print(f"  {name:<12} {label:<16} {r['sent']:>12,} {r['received']:>12,} "
                  f"{r['bodies']:>7} {r['wall_s']:>7.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
