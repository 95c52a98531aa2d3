"""A throwaway, private Dovecot IMAP server for tests, the quick start and benchmarks.

Nothing here touches the system Dovecot: every file the server uses (config, runtime
sockets, state, log, passwd-file, mail, TLS material) lives under the ``root`` directory
given to :func:`start`, the server listens on 127.0.0.1 on a free port, and it is stopped
by the pid Dovecot writes to ``<base_dir>/master.pid``.

Library use::

    server = start(Path("/tmp/x"), tls="starttls")
    user = server.add_user()
    populate(server, user)
    ...
    server.stop()

Command line (used by ``contrib/quickstart.sh`` and the benchmarks)::

    python -m devserver.dovecot start --dir D [--tls none|tls|starttls] [--populate] [--pop3]
        [--acl]
    python -m devserver.dovecot stop --dir D

``start`` prints one JSON line ``{"host","port","pid","user","password","ca_file"}`` and
returns, leaving the (daemonised) server running; ``stop`` stops it again. With
``--pop3`` the line also has ``pop3_port`` (and ``pop3s_port`` when there is TLS).

Everything fails loudly with :class:`DevServerError` (including the tail of Dovecot's log)
when Dovecot is missing or does not come up: a test run must never pass without a server.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import email.policy
import email.utils
import itertools
import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self

log = logging.getLogger(__name__)

TlsMode = Literal["none", "tls", "starttls"]

#: Linux's limit for a unix socket path is 108 bytes; Dovecot's longest socket name under
#: base_dir is ~30 characters, so a longer base_dir makes Dovecot fail in obscure ways.
_MAX_BASE_DIR = 70
_STATE_FILE = "devserver.json"
_INSTANCE_PREFIX = "syncd-dev-"
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_BIND_ATTEMPTS = 5
_NOBODY = 65534
_STARTTLS_HOST = "127.0.0.2"

#: The capability list Dovecot 2.3 advertises after login with this module's config.
#: Handy to build a reduced list: see :func:`capabilities_without`.
DEFAULT_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
)

DEFAULT_FOLDERS: Mapping[str, int] = MappingProxyType(
    {"INBOX": 30, "Archive": 20, "Lists/python": 15, "Projets/Été": 10}
)


class DevServerError(RuntimeError):
    """The private Dovecot could not be set up, started, reached or stopped."""


def capabilities_without(*names: str) -> str:
    """Return :data:`DEFAULT_CAPABILITIES` minus ``names`` (case-insensitive), for ``start``.

    ``capabilities_without("MOVE", "UIDPLUS")`` gives a full list, which *replaces* what
    Dovecot advertises (a value starting with ``+`` would only add to it).
    Note: hiding CONDSTORE also hides QRESYNC's prerequisite; hide both together.
    """
    drop = {n.upper() for n in names}
    return " ".join(c for c in DEFAULT_CAPABILITIES.split() if c.upper() not in drop)


@dataclasses.dataclass(frozen=True)
class Traffic:
    """Dovecot's logout counters of some IMAP sessions, summed (see DevServer.traffic)."""

    sessions: int = 0
    in_bytes: int = 0  # what the client sent: APPENDed messages count here
    out_bytes: int = 0  # what the server sent
    body_count: int = 0  # messages whose BODY[] (or RFC822) was fetched
    body_bytes: int = 0
    hdr_count: int = 0
    hdr_bytes: int = 0
    expunged: int = 0


_LOGOUT = re.compile(
    r"imap\((?P<user>[^)]*)\)<[^>]*><[^>]*>: Info: Disconnected: .*?"
    r" in=(?P<in>\d+) out=(?P<out>\d+)(?P<rest>.*)$",
    re.M,
)


def _traffic(log_text: str, user: str) -> Traffic:
    totals = dict.fromkeys(("sessions", "in_bytes", "out_bytes", "body_count", "body_bytes",
                            "hdr_count", "hdr_bytes", "expunged"), 0)  # fmt: skip
    for m in _LOGOUT.finditer(log_text):
        if m.group("user") != user:
            continue
        fields = dict(kv.split("=", 1) for kv in m.group("rest").split() if "=" in kv)
        totals["sessions"] += 1
        totals["in_bytes"] += int(m.group("in"))
        totals["out_bytes"] += int(m.group("out"))
        for key in ("body_count", "body_bytes", "hdr_count", "hdr_bytes", "expunged"):
            value = fields.get(key, "0")
            totals[key] += int(value) if value.isdigit() else 0
    return Traffic(**totals)


@dataclasses.dataclass(frozen=True)
class User:
    """A mail account on a :class:`DevServer`."""

    name: str
    password: str


@dataclasses.dataclass
class DevServer:
    """A running private Dovecot. Mutable only in that :meth:`stop` marks it stopped.

    ``ca_file`` is the PEM of the throwaway CA that signed the server certificate when
    ``tls`` is not ``"none"`` (``None`` otherwise); the certificate is valid for
    ``cert_host`` (``localhost``, 127.0.0.1 and 127.0.0.2 -- or only ``imap.invalid`` for
    a ``wrong_host_cert`` server). ``conf`` is the dovecot.conf in use.

    ``host`` is 127.0.0.1, except for ``tls="starttls"`` where it is 127.0.0.2: Dovecot
    counts a connection from an address to itself as secure and would accept LOGIN
    before STARTTLS; through 127.0.0.2 it refuses it, as a remote server would. The
    STARTTLS port also answers on 127.0.0.1 (so ``localhost`` works).

    ``pop3_port`` / ``pop3s_port`` are set only for a server started with ``pop3=True``:
    POP3 on ``host`` (STLS offered when the server has TLS, same 127.0.0.2 rule) and,
    with TLS, implicit-TLS POP3 on 127.0.0.1. The POP3 INBOX is the IMAP INBOX.
    """

    root: Path
    port: int
    pid: int
    tls: TlsMode
    ca_file: Path | None
    conf: Path
    host: str = "127.0.0.1"
    base_dir: Path = dataclasses.field(default=Path())
    instance: str = ""
    log_file: Path = dataclasses.field(default=Path())
    users_dir: Path = dataclasses.field(default=Path())
    #: The name clients use for certificate checks (the cert is valid for it unless
    #: the server was started with ``wrong_host_cert``).
    cert_host: str = "localhost"
    pop3_port: int | None = None
    pop3s_port: int | None = None
    _stopped: bool = dataclasses.field(default=False, repr=False)
    _counter: Iterator[int] = dataclasses.field(
        default_factory=lambda: itertools.count(1), repr=False
    )

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> User:
        """Create a user with an empty mailbox and return it; it can log in at once.

        ``name`` defaults to a fresh ``u<n>`` unique on this server; ``password`` to a
        random token. Adding an existing name is an error.
        """
        if name is None:
            existing = set(self.users())
            name = next(f"u{n}" for n in self._counter if f"u{n}" not in existing)
        elif name in self.users():
            raise DevServerError(f"user {name!r} already exists on {self.root}")
        if not name or any(c in name for c in ":/\n\0%") or name.startswith("."):
            raise DevServerError(f"unusable user name {name!r}")
        if password is None:
            password = secrets.token_urlsafe(12)
        self._write_user(name, password)
        return User(name, password)

    def set_password(self, user: User | str, password: str) -> User:
        """Change a user's password on the server (e.g. to test a rejected login).

        Takes about a second: Dovecot re-checks a passwd-file at most once a second.
        """
        name = user if isinstance(user, str) else user.name
        path = self.users_dir / name
        if not path.exists():
            raise DevServerError(f"no user {name!r} on {self.root}")
        old = path.stat().st_mtime
        self._write_user(name, password)
        # Dovecot reloads when the mtime (whole seconds) or size changed, and stats the
        # file at most once per second of its clock.
        os.utime(path, (int(old) + 1, int(old) + 1))
        time.sleep(1.1)
        return User(name, password)

    def _write_user(self, name: str, password: str) -> None:
        if any(c in password for c in ":\n\0"):
            raise DevServerError("passwords may not contain ':' or newlines in a passwd-file")
        uid, gid = _mail_ids()
        home = self.root / "mail" / name
        # One passwd-file per user: Dovecot looks a single file up at most once per
        # second, so a user appended to a shared file right after another login would
        # be "unknown" for up to a second; a new file is read on first use.
        (self.users_dir / name).write_text(
            f"{name}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n", encoding="utf-8"
        )

    def users(self) -> list[str]:
        """Names of the users on this server, in creation order."""
        entries = sorted(self.users_dir.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [p.name for p in entries]

    def maildir(self, user: User | str) -> Path:
        """The server-side mail directory of ``user`` (Dovecot's, do not write to it)."""
        return self.root / "mail" / (user if isinstance(user, str) else user.name)

    # -- administration ----------------------------------------------------------------

    def doveadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``doveadm -c <conf> *args`` against this instance and return the result.

        Raises :class:`DevServerError` with doveadm's output when ``check`` and it fails.
        """
        cmd = ["doveadm", "-c", str(self.conf), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if check and proc.returncode != 0:
            raise DevServerError(
                f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout}"
            )
        return proc

    def set_rights(self, user: User | str, folder: str, rights: str) -> None:
        """Give the owner ``user`` only ``rights`` (RFC 4314 letters, ``"lr"``) on
        ``folder`` (``/``-separated, not INBOX): a server started with ``acl=True``."""
        directory = self.maildir(user) / ("." + folder.replace("/", "."))
        acl = directory / "dovecot-acl"
        acl.write_text(f"owner {rights}\n", encoding="utf-8")
        owner = directory.stat()
        if os.geteuid() == 0:
            os.chown(acl, owner.st_uid, owner.st_gid)
        acl.chmod(0o644)

    def kick(self, user: User | str) -> None:
        """Disconnect every IMAP session of ``user`` (the server sends BYE)."""
        name = user if isinstance(user, str) else user.name
        # doveadm kick exits 68 (EX_NOUSER... "no sessions") when nobody was connected.
        proc = self.doveadm("kick", name, check=False)
        if proc.returncode not in (0, 68):
            raise DevServerError(f"doveadm kick {name} failed: {proc.stderr.strip()}")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of Dovecot's log (for error messages)."""
        return _tail(self.log_file, lines)

    # -- traffic ----------------------------------------------------------------------

    def log_offset(self) -> int:
        """Where Dovecot's log ends now: pass it to :meth:`traffic` to count what follows."""
        return self.log_file.stat().st_size if self.log_file.exists() else 0

    def traffic(self, user: User | str, since: int = 0, *, settle: float = 5.0) -> Traffic:
        """What ``user``'s IMAP sessions that ended after log offset ``since`` moved,
        summed from Dovecot's own logout line (``imap_logout_format``'s defaults:
        ``in``/``out`` bytes, ``body_count``/``body_bytes`` of BODY[] fetched, ...).

        Dovecot writes that line a moment after the client has gone: this waits until
        the sum has not changed for 0.3 s (at most ``settle`` seconds), so call it after
        the client process has ended.
        """
        name = user.name if isinstance(user, User) else user
        deadline = time.monotonic() + settle
        last: Traffic | None = None
        while True:
            now = _traffic(_read_from(self.log_file, since), name)
            if now == last or time.monotonic() > deadline:
                return now
            last = now
            time.sleep(0.3)

    # -- clients ----------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this server's CA."""
        if self.ca_file is None:
            raise DevServerError("this server has no TLS (started with tls='none')")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connect(self, user: User, *, timeout: float = 30.0) -> Any:
        """Return an ``imapclient.IMAPClient`` logged in as ``user``.

        Uses implicit TLS / STARTTLS as the server requires, verifying the certificate for
        ``localhost`` against :attr:`ca_file`. The caller logs out.
        """
        import imapclient  # lazily: `python -m devserver.dovecot stop` does not need it

        client: Any
        if self.tls == "tls":
            client = imapclient.IMAPClient(
                self.cert_host,
                self.port,
                ssl=True,
                ssl_context=self.ssl_context(),
                timeout=timeout,
            )
        else:
            client = imapclient.IMAPClient(self.host, self.port, ssl=False, timeout=timeout)
            if self.tls == "starttls":
                client.starttls(self.ssl_context())
        try:
            client.login(user.name, user.password)
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the master process is still alive."""
        return not self._stopped and _alive(self.pid)

    def stop(self) -> None:
        """Stop the server: SIGTERM to the master, wait up to 10 s, then SIGKILL.

        Also kills any leftover process of this instance. Idempotent.
        """
        if self._stopped:
            return
        _stop_instance(self.pid, self.instance)
        self._stopped = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def to_json(self) -> dict[str, Any]:
        """The fields needed to find this server again from another process."""
        return {
            "root": str(self.root),
            "host": self.host,
            "port": self.port,
            "pid": self.pid,
            "tls": self.tls,
            "ca_file": str(self.ca_file) if self.ca_file else None,
            "conf": str(self.conf),
            "base_dir": str(self.base_dir),
            "instance": self.instance,
            "pop3_port": self.pop3_port,
            "pop3s_port": self.pop3s_port,
        }


# ---------------------------------------------------------------------------------------
# start


def start(
    root: Path,
    *,
    tls: TlsMode = "none",
    capability: str | None = None,
    separator: str = "/",
    extra_conf: str = "",
    wrong_host_cert: bool = False,
    pop3: bool = False,
    acl: bool = False,
) -> DevServer:
    """Write a private dovecot.conf under ``root``, start Dovecot and return the server.

    - ``tls``: ``"none"`` (plaintext LOGIN allowed), ``"tls"`` (implicit TLS on the port)
      or ``"starttls"`` (STARTTLS advertised; LOGIN before it is refused). Both TLS modes
      create a throwaway CA (``ca_file``) and a certificate for ``localhost`` /
      ``127.0.0.1`` -- or, with ``wrong_host_cert``, only for ``imap.invalid``.
    - ``capability``: replaces the advertised capability list (see
      :func:`capabilities_without`); a value starting with ``+`` adds to it instead.
    - ``separator``: the hierarchy separator of the (only) namespace.
    - ``extra_conf``: appended verbatim to the config (later settings win).
    - ``pop3``: also serve POP3 (needs dovecot-pop3d): ``pop3_port`` (plain, STLS when
      ``tls`` is not ``"none"``) and ``pop3s_port`` (implicit TLS, only with TLS);
      UIDLs are ``%08Xu%08Xv`` and APOP is enabled. Off by default: nothing else changes.
    - ``acl``: load Dovecot's ``acl`` and ``imap_acl`` plugins (ACL, MYRIGHTS; RFC 4314),
      rights kept per mailbox in ``dovecot-acl`` files, read afresh on every access; see
      :meth:`DevServer.set_rights`. Off by default.

    ``root`` is created if needed; it must be empty of another running server. When run
    as root the mail processes run as uid 65534, so ``root`` and all its parents must be
    traversable by others (a directory under /tmp is; one under /root is not).
    Raises :class:`DevServerError` with the tail of Dovecot's log when it fails.
    """
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    dovecot = shutil.which("dovecot") or _first_existing("/usr/sbin/dovecot")
    if dovecot is None:
        raise DevServerError(
            "dovecot is not installed (need the Debian packages dovecot-core and "
            "dovecot-imapd; run contrib/setup.sh as root)"
        )
    if not Path("/usr/lib/dovecot/imap").exists() and shutil.which("imap") is None:
        raise DevServerError("Dovecot's IMAP server is missing: install dovecot-imapd")
    if pop3 and not Path("/usr/lib/dovecot/pop3").exists() and shutil.which("pop3") is None:
        raise DevServerError("Dovecot's POP3 server is missing: install dovecot-pop3d")
    _check_traversable(root)

    base_dir = root / "run"
    if len(str(base_dir)) > _MAX_BASE_DIR:
        # Unix socket paths are limited to 108 bytes; keep the sockets in a short
        # private directory and remember where (the state file records it).
        base_dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
    base_dir.mkdir(mode=0o755, exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    (root / "mail").mkdir(mode=0o755, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(root / "mail", _NOBODY, _NOBODY)
    users_dir = root / "users"
    users_dir.mkdir(mode=0o755, exist_ok=True)
    log_file = root / "dovecot.log"
    conf = root / "dovecot.conf"
    instance = f"{_INSTANCE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"

    ca_file: Path | None = None
    cert_pair: tuple[Path, Path] | None = None
    if tls != "none":
        ca_file, cert_pair = _make_certs(
            root / "tls",
            "imap.invalid" if wrong_host_cert else "localhost",
            with_ip=not wrong_host_cert,
        )
    elif wrong_host_cert:
        raise DevServerError("wrong_host_cert needs tls='tls' or tls='starttls'")

    last_error = ""
    for _attempt in range(_BIND_ATTEMPTS):
        port = _free_port()
        pop3_ports = (_free_port(), _free_port() if tls != "none" else 0) if pop3 else None
        conf.write_text(
            _render_conf(
                root=root,
                base_dir=base_dir,
                instance=instance,
                port=port,
                tls=tls,
                cert_pair=cert_pair,
                capability=capability,
                separator=separator,
                users_dir=users_dir,
                log_file=log_file,
                extra_conf=extra_conf,
                pop3_ports=pop3_ports,
                acl=acl,
            ),
            encoding="utf-8",
        )
        log_start = log_file.stat().st_size if log_file.exists() else 0
        # The daemonised master inherits stdout/stderr: pipes would never reach EOF, so
        # its early (pre-log) errors go to a file instead.
        startup_err = root / "dovecot.startup.err"
        with startup_err.open("w+", encoding="utf-8") as err:
            proc = subprocess.run(
                [dovecot, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                timeout=30,
                check=False,
            )
            err.seek(0)
            early = err.read()
        if proc.returncode != 0:
            last_error = (early + _read_from(log_file, log_start)).strip()
            if "in use" in last_error:  # someone took the port between probe and bind
                continue
            raise DevServerError(
                f"dovecot -c {conf} exited {proc.returncode}:\n{last_error[-3000:]}"
            )
        pid = _wait_for_pid(base_dir / "master.pid", log_file)
        server = DevServer(
            root=root,
            host=_STARTTLS_HOST if tls == "starttls" else "127.0.0.1",
            port=port,
            pid=pid,
            tls=tls,
            ca_file=ca_file,
            conf=conf,
            base_dir=base_dir,
            instance=instance,
            log_file=log_file,
            users_dir=users_dir,
            pop3_port=pop3_ports[0] if pop3_ports else None,
            pop3s_port=pop3_ports[1] or None if pop3_ports else None,
        )
        try:
            _wait_for_greeting(server)
        except BaseException:
            server.stop()
            raise
        (root / _STATE_FILE).write_text(json.dumps(server.to_json()), encoding="utf-8")
        log.info("dovecot %s listening on 127.0.0.1:%d (pid %d)", instance, port, pid)
        return server
    raise DevServerError(
        f"dovecot could not bind a port after {_BIND_ATTEMPTS} tries:\n{last_error[-3000:]}"
    )


def _render_conf(
    *,
    root: Path,
    base_dir: Path,
    instance: str,
    port: int,
    tls: TlsMode,
    cert_pair: tuple[Path, Path] | None,
    capability: str | None,
    separator: str,
    users_dir: Path,
    log_file: Path,
    extra_conf: str,
    pop3_ports: tuple[int, int] | None = None,
    acl: bool = False,
) -> str:
    uid, gid = _mail_ids()
    lines = [
        "# generated by devserver.dovecot -- a private, throwaway instance",
        f"instance_name = {instance}",
        f"base_dir = {base_dir}",
        f"state_dir = {root / 'state'}",
        f"log_path = {log_file}",
        "protocols = imap",
        "listen = 127.0.0.1",
        "auth_mechanisms = plain login",
        "mail_location = maildir:" + str(root / "mail") + "/%u",
        f"first_valid_uid = {uid}",
        f"last_valid_uid = {uid}",
        f"first_valid_gid = {gid}",
        "mail_max_userip_connections = 100",
        # Tests of rejected passwords need not wait the default 2 s per failure, nor
        # slow down every later login from 127.0.0.1 (anvil's brute-force penalty).
        "auth_failure_delay = 0",
        "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}",
        # Short so IDLE tests see "still here" and new-mail notifications quickly.
        "imap_idle_notify_interval = 5 secs",
        "mailbox_idle_check_interval = 1 secs",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN username_format=%u {users_dir}/%u",
        "}",
        "userdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {users_dir}/%u",
        "}",
        "namespace inbox {",
        "  inbox = yes",
        f"  separator = {separator}",
        "}",
    ]
    if os.geteuid() != 0:
        user = _current_user()
        lines += [
            f"default_login_user = {user}",
            f"default_internal_user = {user}",
            f"default_internal_group = {_current_group()}",
        ]
        # chroot needs root: every service Dovecot chroots by default runs unchrooted.
        lines += [
            f"service {name} {{\n  chroot =\n}}"
            for name in (
                "aggregator",
                "anvil",
                "director",
                "imap-login",
                "imap-urlauth-login",
                "ipc",
                "old-stats",
                "pop3-login",
                "submission-login",
            )
        ]
    if capability is not None:
        lines.append(f"imap_capability = {capability}")
    if tls == "none":
        lines += [
            "ssl = no",
            "disable_plaintext_auth = no",
            "service imap-login {",
            f"  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}",
            "  inet_listener imaps {\n    port = 0\n  }",
            "}",
        ]
    else:
        assert cert_pair is not None
        cert, key = cert_pair
        lines += [
            "ssl = required",
            "disable_plaintext_auth = yes",
            f"ssl_cert = <{cert}",
            f"ssl_key = <{key}",
            "ssl_min_protocol = TLSv1.2",
            "service imap-login {",
        ]
        if tls == "tls":
            lines += [
                "  inet_listener imap {\n    port = 0\n  }",
                f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {port}\n"
                "    ssl = yes\n  }",
            ]
        else:
            # Dovecot treats a connection whose local and remote IPs are equal as secure
            # and would accept LOGIN before STARTTLS; on 127.0.0.2 (client 127.0.0.1) it
            # does not. 127.0.0.1 stays open for clients that connect to "localhost".
            lines += [
                f"  inet_listener imap {{\n    address = 127.0.0.1, {_STARTTLS_HOST}\n"
                f"    port = {port}\n  }}",
                "  inet_listener imaps {\n    port = 0\n  }",
            ]
        lines.append("}")
    # imap-urlauth and friends are started by `protocols = imap`; keep them off the net.
    lines += [
        "service imap-urlauth-login {\n  inet_listener imap-urlauth {\n    port = 0\n  }\n}",
    ]
    if pop3_ports is not None:
        lines += _pop3_conf(tls, *pop3_ports)
    if acl:
        lines += [
            "mail_plugins = $mail_plugins acl",
            "protocol imap {\n  mail_plugins = $mail_plugins imap_acl\n}",
            "plugin {\n  acl = vfile:cache_secs=0\n}",
        ]
    if extra_conf:
        lines += ["# extra_conf", extra_conf]
    return "\n".join(lines) + "\n"


def _pop3_conf(tls: TlsMode, port: int, tls_port: int) -> list[str]:
    """POP3 beside IMAP: the same users, mail, TLS and plaintext-auth rules."""
    # The same address rule as IMAP STARTTLS: on 127.0.0.2 USER/PASS before STLS is refused.
    address = "127.0.0.1" if tls == "none" else f"127.0.0.1, {_STARTTLS_HOST}"
    tls_listener = (
        f"  inet_listener pop3s {{\n    address = 127.0.0.1\n    port = {tls_port}\n"
        "    ssl = yes\n  }"
        if tls_port
        else "  inet_listener pop3s {\n    port = 0\n  }"
    )
    return [
        "protocols = imap pop3",
        # APOP needs the plaintext password, which the passwd-files have ({PLAIN}).
        "auth_mechanisms = plain login apop",
        # Dovecot's recommended format for new installs: UID + UIDVALIDITY, stable.
        "pop3_uidl_format = %08Xu%08Xv",
        "service pop3-login {",
        f"  inet_listener pop3 {{\n    address = {address}\n    port = {port}\n  }}",
        tls_listener,
        "}",
    ]


def _make_certs(directory: Path, host: str, *, with_ip: bool) -> tuple[Path, tuple[Path, Path]]:
    """Create a throwaway CA and a server certificate for ``host`` with the openssl CLI.

    Returns ``(ca_pem, (server_pem, server_key))``. EC keys: generating them is instant.
    """
    if shutil.which("openssl") is None:
        raise DevServerError("the openssl command is missing (Debian package openssl)")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, pem = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    san = f"DNS:{host}" + (f",IP:127.0.0.1,IP:{_STARTTLS_HOST}" if with_ip else "")
    ext.write_text(
        f"subjectAltName = {san}\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n",
        encoding="utf-8",
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        ca_key,
        "-out",
        ca_pem,
        "-days",
        "30",
        "-subj",
        "/CN=syncd throwaway test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    _openssl("req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={host}")
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca_pem,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        pem,
        "-days",
        "30",
        "-extfile",
        ext,
    )
    return ca_pem, (pem, key)


def _openssl(*args: str | Path) -> None:
    proc = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise DevServerError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_pid(pid_file: Path, log_file: Path) -> int:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(pid_file.read_text().strip())
            if _alive(pid):
                return pid
        time.sleep(0.02)
    raise DevServerError(f"dovecot wrote no live pid to {pid_file}:\n{_tail(log_file, 40)}")


def _wait_for_greeting(server: DevServer) -> None:
    """Poll the port until it answers ``* OK`` (after the TLS handshake for ``tls``)."""
    deadline = time.monotonic() + _START_TIMEOUT
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not _alive(server.pid):
            raise DevServerError(
                f"dovecot (pid {server.pid}) died while starting:\n{server.log_tail()}"
            )
        try:
            with socket.create_connection((server.host, server.port), timeout=2) as raw:
                if server.tls == "tls":
                    ctx = ssl.create_default_context(cafile=str(server.ca_file))
                    ctx.check_hostname = False  # a wrong_host_cert server must start too
                    with ctx.wrap_socket(raw) as tls_sock:
                        greeting = tls_sock.recv(512)
                else:
                    greeting = raw.recv(512)
            if greeting.startswith(b"* OK"):
                return
            last = DevServerError(f"unexpected greeting {greeting[:80]!r}")
        except (OSError, ssl.SSLError) as exc:
            last = exc
        time.sleep(0.05)
    raise DevServerError(
        f"dovecot on port {server.port} did not greet within {_START_TIMEOUT:.0f} s "
        f"({last}):\n{server.log_tail()}"
    )


# ---------------------------------------------------------------------------------------
# processes


def _alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (pid 1 here may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _instance_pids(instance: str) -> list[int]:
    """Pids of the child processes of a Dovecot instance: they are titled
    ``dovecot-<instance_name>/<service>`` (the master is found by its pid instead)."""
    if not instance:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"-{instance}".encode() in cmdline.split(b"\0", 1)[0] and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _is_dovecot_master(pid: int, conf: Path | None = None) -> bool:
    """Guard against pid reuse before signalling a pid read from a file."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    joined = b" ".join(cmdline)
    if b"dovecot" not in joined:
        return False
    return conf is None or str(conf).encode() in joined or _INSTANCE_PREFIX.encode() in joined


def _stop_instance(pid: int, instance: str) -> None:
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            log.warning("dovecot pid %d ignored SIGTERM for %.0f s; killing", pid, _STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # The master normally takes its children with it; anything left of this instance
    # (identified by its unique instance name) is killed so nothing outlives a test run.
    for _ in range(50):
        leftovers = _instance_pids(instance)
        if not leftovers:
            return
        for child in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        time.sleep(0.05)
    raise DevServerError(f"processes of {instance} survived SIGKILL: {_instance_pids(instance)}")


def leftover_pids() -> list[int]:
    """Pids of every live process (masters included) of any instance this module
    started *from this process*: empty after all servers were stopped."""
    children = _instance_pids(f"{_INSTANCE_PREFIX}{os.getpid()}-")
    masters = set()
    for pid in children:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if _is_dovecot_master(ppid):
            masters.add(ppid)
    return sorted(masters) + children


# ---------------------------------------------------------------------------------------
# helpers


def _mail_ids() -> tuple[int, int]:
    """The uid/gid mail files belong to: Dovecot refuses uid 0 for mail access."""
    if os.geteuid() == 0:
        return _NOBODY, _NOBODY
    return os.getuid(), os.getgid()


def _current_group() -> str:
    import grp  # POSIX-only; needed only when not root

    return grp.getgrgid(os.getgid()).gr_name


def _current_user() -> str:
    import pwd  # POSIX-only; needed only when not root

    return pwd.getpwuid(os.getuid()).pw_name


def _check_traversable(root: Path) -> None:
    if os.geteuid() != 0:
        return
    for parent in [root, *root.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            raise DevServerError(
                f"{parent} is not traversable by others (mode {mode & 0o777:o}); Dovecot's "
                f"mail processes run as uid {_NOBODY} and could not reach {root}/mail. "
                "Put the server root somewhere like /tmp (tempfile.mkdtemp()) or "
                "chmod o+x the directory."
            )


def _first_existing(*paths: str) -> str | None:
    return next((p for p in paths if Path(p).exists()), None)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------------------------------
# sample mail

_PEOPLE = (
    ("Alice Martin", "alice@example.org"),
    ("Bob Lee", "bob@example.com"),
    ("Chloé Dubois", "chloe@exemple.fr"),
    ("Dmitri Иванов", "dmitri@example.net"),
    ("Python-list", "python-list@python.org"),
    ("Eve Müller", "eve@beispiel.de"),
    ("田中 花子", "hanako@example.jp"),
)
_SUBJECTS = (
    "Meeting notes for {day}",
    "Re: quarterly report",
    "Réunion de lundi — ordre du jour",
    "Invoice #{n}",
    "[Python] PEP discussion: typing improvements",
    "Grüße aus Berlin",
    "Fwd: photos from the trip 📷",
    "Your order has shipped",
    "Привет, как дела?",
    "Build failed on main ({n})",
    "会議の予定",
)
_BODIES = (
    "Hi,\n\nPlease find the notes below.\n\n- item one\n- item two\n\nThanks,\n{name}\n",
    "Bonjour,\n\nVoici le compte rendu de la réunion. À bientôt !\n\n{name}\n",
    "Hello all,\n\nThe build is green again after the fix in {n}.\n\nCheers\n",
    "Hallo,\n\nviele Grüße und bis später.\n\n{name}\n",
)


def sample_message(rng: random.Random, folder: str, index: int, seed: int) -> bytes:
    """One deterministic, realistic message (bytes, CRLF line endings).

    Non-ASCII headers are RFC 2047-encoded; about every fifth message is multipart with a
    small attachment.
    """
    sender = rng.choice(_PEOPLE)
    rcpt = rng.choice(_PEOPLE)
    date = datetime(2024, 1, 1, 9, 0, tzinfo=UTC) + timedelta(
        hours=index * 7 + rng.randrange(5), minutes=rng.randrange(60)
    )
    n = rng.randrange(1000, 9999)
    msg = EmailMessage()
    msg["From"] = email.utils.formataddr(sender)
    msg["To"] = email.utils.formataddr(rcpt)
    msg["Date"] = email.utils.format_datetime(date)
    msg["Subject"] = rng.choice(_SUBJECTS).format(day=date.strftime("%A"), n=n)
    slug = folder.encode("utf-8").hex()[:16]
    msg["Message-ID"] = f"<s{seed}.{slug}.{index}@devserver.syncd.test>"
    msg.set_content(rng.choice(_BODIES).format(name=sender[0], n=n))
    if index % 5 == 3:
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(200, 2000)))
        msg.add_attachment(
            payload,
            maintype="application",
            subtype="octet-stream",
            filename=f"report-{n}.bin",
        )
        # email picks a random boundary from the global RNG; fix it for determinism.
        msg.set_boundary(f"=_syncd_{seed}_{slug}_{index}")
    return msg.as_bytes(policy=email.policy.SMTP)


def _sample_flags(rng: random.Random) -> tuple[str, ...]:
    flags = []
    if rng.random() < 0.6:
        flags.append("\\Seen")
    if rng.random() < 0.15:
        flags.append("\\Flagged")
    if rng.random() < 0.15:
        flags.append("\\Answered")
    return tuple(flags)


def populate(
    server: DevServer,
    user: User,
    *,
    seed: int = 0,
    folders: Mapping[str, int] = DEFAULT_FOLDERS,
) -> dict[str, int]:
    """Fill ``user``'s mailbox with deterministic sample mail via IMAP APPEND.

    ``folders`` maps folder names written with ``/`` as the hierarchy separator (they are
    translated to the server's) to message counts; missing folders are created. The same
    ``seed`` gives the same messages, flags and internal dates. Messages are appended to
    whatever the folders already hold. Returns ``folders`` as a plain dict.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not secrets
    client = server.connect(user)
    try:
        delim = _delimiter(client)
        existing = {name for _flags, _d, name in client.list_folders()}
        for folder, count in folders.items():
            name = folder.replace("/", delim) if folder.upper() != "INBOX" else "INBOX"
            if name not in existing and folder.upper() != "INBOX":
                client.create_folder(name)
                existing.add(name)
            for i in range(count):
                raw = sample_message(rng, folder, i, seed)
                date = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i * 7)
                client.append(name, raw, flags=_sample_flags(rng), msg_time=date)
    finally:
        with contextlib.suppress(Exception):
            client.logout()
    return dict(folders)


def _delimiter(client: Any) -> str:
    namespaces = client.namespace()
    personal = namespaces.personal or [("", "/")]
    delim = personal[0][1]
    return delim if isinstance(delim, str) else "/"


# ---------------------------------------------------------------------------------------
# command line


def _state(directory: Path) -> dict[str, Any]:
    path = directory / _STATE_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DevServerError(f"no dev server state in {directory} ({path} missing)") from None
    return data


def stop_dir(directory: Path) -> bool:
    """Stop the server whose state is in ``directory`` (from ``start --dir``).

    Returns False when there was nothing running. Safe to call twice.
    """
    try:
        state = _state(directory)
    except DevServerError:
        return False
    root = Path(state["root"])
    conf = Path(state["conf"])
    pid_file = Path(state["base_dir"]) / "master.pid"
    pid = int(state["pid"])
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(pid_file.read_text().strip())
    running = _alive(pid) and _is_dovecot_master(pid, conf)
    if running:
        _stop_instance(pid, str(state.get("instance", "")))
    else:
        _stop_instance(-1, str(state.get("instance", "")))
    if root != directory.absolute():
        # start --dir relocated the server (see _cli_start); it was ours to remove.
        shutil.rmtree(root, ignore_errors=True)
    (directory / _STATE_FILE).unlink(missing_ok=True)
    return running


def _cli_start(args: argparse.Namespace) -> int:
    directory = Path(args.dir).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(DevServerError):
        if _alive(int(_state(directory)["pid"])):
            stop_dir(directory)
    root = directory / "dovecot"
    try:
        _check_traversable(directory)
    except DevServerError:
        # e.g. a checkout under /root: the mail processes (uid 65534) cannot reach it,
        # so the server lives in /tmp and the state file here points at it.
        root = Path(tempfile.mkdtemp(prefix="syncd-devserver-"))
        root.chmod(0o755)
    if root.exists() and root == directory / "dovecot":
        shutil.rmtree(root)  # a fresh server each time: no stale mail or sockets
    server = start(root, tls=args.tls, pop3=args.pop3, acl=args.acl)
    try:
        user = server.add_user(args.user, args.password)
        if args.populate:
            populate(server, user, seed=args.seed)
    except BaseException:
        server.stop()
        raise
    state = server.to_json()
    (directory / _STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    out = {
        "host": server.host,
        "port": server.port,
        "pid": server.pid,
        "user": user.name,
        "password": user.password,
        "ca_file": str(server.ca_file) if server.ca_file else None,
    }
    if args.pop3:
        out |= {"pop3_port": server.pop3_port, "pop3s_port": server.pop3s_port}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devserver.dovecot start|stop --dir D``; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m devserver.dovecot",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a throwaway Dovecot and print JSON")
    p_start.add_argument("--dir", required=True, help="directory for the server's files")
    p_start.add_argument("--tls", choices=["none", "tls", "starttls"], default="none")
    p_start.add_argument("--populate", action="store_true", help="add sample mail")
    p_start.add_argument("--seed", type=int, default=0)
    p_start.add_argument("--user", default="demo")
    p_start.add_argument("--password", default=None)
    p_start.add_argument("--pop3", action="store_true", help="also serve POP3")
    p_start.add_argument("--acl", action="store_true", help="enable ACL (MYRIGHTS)")
    p_stop = sub.add_parser("stop", help="stop the server started with --dir")
    p_stop.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "start":
            return _cli_start(args)
        stopped = stop_dir(Path(args.dir))
        sys.stderr.write("stopped\n" if stopped else "no dev server was running\n")
        return 0
    except DevServerError as exc:
        sys.stderr.write(f"devserver: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
