"""A private, throwaway Cyrus IMAP server (Debian 12 cyrus-imapd 3.6) for interop tests.

The binaries come from ``tests/cyrus-setup.sh`` (unpacked with ``dpkg -x`` into
``$SYNCD_CYRUS_DIR``, default ``<project>/.cache/cyrus``; not installed as a service).
Recipe and pitfalls: shared/CYRUS.md.  The server listens on 127.0.0.1 on a free port,
keeps everything under one temp dir, runs as uid 65534 when started by root, and is
stopped by the pid of its ``master`` (which runs in its own session: on SIGTERM master
signals its whole process group).

:class:`CyrusServer` has the attributes and methods of :class:`devserver.dovecot.DevServer`
that the test helpers use (``host``, ``port``, ``tls``, ``ca_file``, ``add_user``,
``connect``), so ``support.imap`` and ``support.run`` work with it unchanged.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imapclient

from devserver.dovecot import User

PROJECT = Path(__file__).resolve().parents[2]
SETUP = PROJECT / "tests" / "cyrus-setup.sh"
_RUN_AS = "nobody"
_names = itertools.count(1)


class CyrusMissingError(RuntimeError):
    """Cyrus could not be set up or started (the test must fail, not skip)."""


def cyrus_dir() -> Path:
    """Run ``tests/cyrus-setup.sh`` (fast when done) and return the unpacked tree's root."""
    proc = subprocess.run(
        ["bash", str(SETUP)], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise CyrusMissingError(
            f"tests/cyrus-setup.sh failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return Path(proc.stdout.strip().splitlines()[-1]) / "root"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class CyrusServer:
    """One running Cyrus; build it with :func:`start_cyrus`."""

    root: Path
    tree: Path
    port: int
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    tls: str = "none"
    ca_file: Path | None = None
    users: list[User] = field(default_factory=list)

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "LD_LIBRARY_PATH": str(self.tree / "usr/lib/x86_64-linux-gnu"),
            "HOME": str(self.root),
        }

    def add_user(self) -> User:
        """A new user with a random password; the INBOX is created at first login."""
        user = User(f"u{next(_names)}x{secrets.token_hex(2)}", secrets.token_urlsafe(12))
        subprocess.run(
            [str(self.tree / "usr/sbin/saslpasswd2"), "-p", "-c", "-f",
             str(self.root / "sasldb2"), "-u", "localhost", user.name],
            input=user.password.encode(), env=self._env(), check=True, timeout=30,
        )  # fmt: skip
        if os.geteuid() == 0:
            pw = pwd.getpwnam(_RUN_AS)
            os.chown(self.root / "sasldb2", pw.pw_uid, pw.pw_gid)
        self.users.append(user)
        return user

    def connect(self, user: User, *, timeout: float = 30.0) -> Any:
        client = imapclient.IMAPClient(self.host, self.port, ssl=False, timeout=timeout)
        client.login(user.name, user.password)
        return client

    def log_tail(self) -> str:
        try:
            return (self.root / "master.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                # master's children share its process group (its own session).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


_IMAPD_CONF = """\
configdirectory: {tmp}/conf
partition-default: {tmp}/spool
defaultpartition: default
sievedir: {tmp}/sieve
servername: localhost
admins: cyrusadmin
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {tmp}/sasldb2
sasl_mech_list: PLAIN LOGIN
virtdomains: off
altnamespace: yes
unixhierarchysep: yes
autocreate_quota: 0
imapidlepoll: 1
delete_mode: immediate
syslog_prefix: cyrus-test
cyrus_user: {user}
"""

# Every cmd= needs -C: master does not pass its own -C on (CYRUS.md §4.1), and the
# children would read (and write next to) the system /etc/imapd.conf.
_CYRUS_CONF = """\
START {{
  recover cmd="{bin}/ctl_cyrusdb -C {tmp}/imapd.conf -r"
}}
SERVICES {{
  imap cmd="{bin}/imapd -C {tmp}/imapd.conf" listen="127.0.0.1:{port}" prefork=0 maxchild=20
}}
EVENTS {{
  checkpoint cmd="{bin}/ctl_cyrusdb -C {tmp}/imapd.conf -c" period=30
}}
"""


def start_cyrus() -> CyrusServer:
    """Set up (``tests/cyrus-setup.sh``), configure and start a private Cyrus.

    Raises :class:`CyrusMissingError` with master's log when it cannot start.
    """
    tree = cyrus_dir()
    bindir = tree / "usr/lib/cyrus/bin"
    root = Path(tempfile.mkdtemp(prefix="syncd-cyrus-"))
    root.chmod(0o755)
    for sub in ("conf", "conf/socket", "spool", "sieve"):
        (root / sub).mkdir()
    port = _free_port()
    run_as = _RUN_AS if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    (root / "imapd.conf").write_text(_IMAPD_CONF.format(tmp=root, user=run_as))
    (root / "cyrus.conf").write_text(_CYRUS_CONF.format(tmp=root, bin=bindir, port=port))
    pw = pwd.getpwnam(run_as)
    if os.geteuid() == 0:
        for path in [root, *root.rglob("*")]:
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def demote() -> None:
        if os.geteuid() == 0:
            os.setgid(pw.pw_gid)
            os.initgroups(run_as, pw.pw_gid)
            os.setuid(pw.pw_uid)

    env = {
        "PATH": "/usr/bin:/bin",
        "LD_LIBRARY_PATH": str(tree / "usr/lib/x86_64-linux-gnu"),
        "HOME": str(root),
    }
    proc = subprocess.Popen(
        [str(bindir / "master"), "-C", str(root / "imapd.conf"), "-M", str(root / "cyrus.conf"),
         "-p", str(root / "master.pid"), "-D", "-L", str(root / "master.log")],
        cwd=root, preexec_fn=demote, start_new_session=True, env=env,  # noqa: PLW1509 - demotion must happen in the child
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = CyrusServer(root=root, tree=tree, port=port, proc=proc)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            log = server.log_tail()
            shutil.rmtree(root, ignore_errors=True)
            raise CyrusMissingError(f"cyrus master exited {proc.returncode}:\n{log}")
        try:
            with socket.create_connection((server.host, port), timeout=2) as s:
                greeting = s.recv(200)
            if greeting.startswith(b"* OK") and b"localhost" in greeting:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            log = server.log_tail()
            shutil.rmtree(root, ignore_errors=True)
            raise CyrusMissingError(f"cyrus did not greet on port {port}:\n{log}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_cyrus() -> Iterator[CyrusServer]:
    """``with running_cyrus() as server:`` -- start, then stop and remove everything."""
    server = start_cyrus()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
