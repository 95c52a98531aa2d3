"""POP3: syncd beside getmail6, downloading the same mail drop (issue 13).

Against a private Dovecot serving POP3 (started here, stopped at the end): two
users with the same N messages in their INBOX.  syncd (``protocol = "pop3"``,
``keep_on_server = true``, fsync on, its default) and getmail6
(``SimplePOP3Retriever`` into a Maildir, ``read_all = false``, ``delete = false``:
only new mail, kept on the server) each download everything once, then run again
with nothing new.  Plaintext on 127.0.0.1 for both.  Prints the wall times and the
ratios; both Maildirs are checked to hold exactly N files.

    .venv/bin/python -m benchmarks.pop3 [--messages 10000]

getmail6 comes from Debian (``apt-get install getmail6``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import byte_compile
from devserver.dovecot import DevServer, User, populate, start


def _syncd(tmp: Path, server: DevServer, user: User) -> tuple[list[str], Path]:
    maildir = tmp / "syncd-mail"
    config = tmp / "syncd.toml"
    config.write_text(
        f'[general]\nstate_dir = "{tmp / "state"}"\n\n[accounts.p]\nprotocol = "pop3"\n'
        f'host = "{server.host}"\nport = {server.pop3_port}\ntls = "none"\n'
        f'user = "{user.name}"\npassword_command = ["printf", "%s", "{user.password}"]\n'
        f'maildir = "{maildir}"\n',
        encoding="utf-8",
    )
    return [sys.executable, "-m", "syncd", "-q", "--config", str(config), "sync"], maildir


def _getmail(tmp: Path, server: DevServer, user: User) -> tuple[list[str], Path]:
    maildir = tmp / "getmail-mail"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    home = tmp / "getmail"
    home.mkdir()
    rc = home / "getmailrc"
    rc.write_text(
        "[retriever]\ntype = SimplePOP3Retriever\n"
        f"server = {server.host}\nport = {server.pop3_port}\n"
        f"username = {user.name}\npassword = {user.password}\n\n"
        f"[destination]\ntype = Maildir\npath = {maildir}/\n\n"
        "[options]\nverbose = 0\nread_all = false\ndelete = false\n",
        encoding="utf-8",
    )
    if os.geteuid() == 0:
        # getmail refuses to deliver as root (and, switching users per message, can
        # hang waiting for its child): run all of it as nobody, who owns its files.
        for path in (home, rc, maildir, *maildir.iterdir()):
            shutil.chown(path, "nobody", "nogroup")
    return ["getmail", "--rcfile", str(rc), "--getmaildir", str(home)], maildir


def _timed(argv: list[str]) -> float:
    as_nobody = argv[0] == "getmail" and os.geteuid() == 0
    began = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          user="nobody" if as_nobody else None,
                          group="nogroup" if as_nobody else None)  # fmt: skip
    took = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} ... exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return took


def _count(maildir: Path) -> int:
    return sum(len(os.listdir(maildir / sub)) for sub in ("cur", "new"))


def run(messages: int) -> dict[str, Any]:
    if shutil.which("getmail") is None:
        raise SystemExit("getmail6 is not installed: apt-get install getmail6")
    tmp = Path(tempfile.mkdtemp(prefix="syncd-pop3-bench-"))
    tmp.chmod(0o755)
    server = start(tmp / "dovecot", pop3=True)
    try:
        users = [server.add_user() for _ in range(2)]
        for user in users:
            populate(server, user, folders={"INBOX": messages}, seed=3)
        syncd, syncd_mail = _syncd(tmp, server, users[0])
        getmail, getmail_mail = _getmail(tmp, server, users[1])
        result: dict[str, Any] = {"messages": messages}
        for phase in ("initial", "nothing new"):
            result[phase] = {"syncd": _timed(syncd), "getmail6": _timed(getmail)}
        counts = {"syncd": _count(syncd_mail), "getmail6": _count(getmail_mail)}
        if counts != {"syncd": messages, "getmail6": messages}:
            raise RuntimeError(f"expected {messages} messages in each Maildir, found {counts}")
        return result
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)



def main() -> int:
    byte_compile(Path(__file__).resolve().parent.parent)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.messages)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"POP3, {args.messages} messages, wall seconds (one run each)")
    for phase in ("initial", "nothing new"):
        s, g = result[phase]["syncd"], result[phase]["getmail6"]
        print(f"  {phase:<12} syncd {s:7.2f}   getmail6 {g:7.2f}   syncd/getmail6 {s / g:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
