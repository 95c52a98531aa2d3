"""End to end: the real ``python -m syncd daemon`` against a real Dovecot, driven by a
second IMAP client and a local "mail reader" that drops and renames files.

The interval is an hour, so anything that arrives within a test's deadline came through
IDLE or the Maildir watcher, not the periodic full sync. Waits poll with a generous
deadline; no timing is asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faults.proxy import front
from support import summary
from support.imap import append, create_folder, fill_inbox, server_snapshot, set_flags
from support.mail import make_message
from support.maildir import deliver, folder_messages, folder_path, local_snapshot, set_local_flags
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User, populate

DEADLINE = 60.0


class Daemon:
    """A running ``syncd daemon`` subprocess; its stderr goes to a file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--config", str(config), "-v", "daemon"],
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, **(env or {})},
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"daemon ignored SIGTERM\n{self.log}") from None
        return self.proc.returncode

    def close(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop()
        self._log.close()


@contextlib.contextmanager
def daemon(config: Path, tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[Daemon]:
    d = Daemon(config, tmp_path / "daemon.log", env)
    try:
        yield d
    finally:
        d.close()


def wait_for(check: Callable[[], Any], what: str, d: Daemon, deadline: float = DEADLINE) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the daemon's log."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if not d.alive():
            raise AssertionError(f"daemon exited ({d.proc.returncode}) waiting for {what}\n{d.log}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}\n{d.log}")
        time.sleep(0.2)


def setup(tmp_path: Path, server: DevServer, user: User, **overrides: Any) -> tuple[Path, Path]:
    maildir = tmp_path / "Mail"
    overrides.setdefault("interval", "1h")
    config = write_config(tmp_path, {"test": account_config(server, user, maildir, **overrides)})
    return config, maildir


def local_ids(maildir: Path, folder: str = "INBOX") -> dict[str | None, frozenset[str]]:
    """Message-ID -> flags of the local copy of ``folder``."""
    path = folder_path(maildir, "maildir++", folder)
    return {v.message_id: v.flags for v in folder_messages(path)} if path.is_dir() else {}


def server_ids(server: DevServer, user: User, folder: str) -> dict[str | None, frozenset[str]]:
    return {v.message_id: v.flags for v in server_snapshot(server, user).get(folder, [])}


def in_step(server: DevServer, user: User, maildir: Path) -> bool:
    local = summary(local_snapshot(maildir, "maildir++"))
    return bool(local) and local == summary(server_snapshot(server, user))


def test_server_changes_arrive_through_idle(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 3})
    config, maildir = setup(tmp_path, dovecot, account)
    with daemon(config, tmp_path) as d:
        wait_for(lambda: len(local_ids(maildir)) == 3, "the start-up sync", d)

        new_id = "<pushed.1@syncd.test>"
        uid = append(dovecot, account, "INBOX", make_message("pushed", message_id=new_id))
        wait_for(lambda: new_id in local_ids(maildir), "the appended message locally", d)

        set_flags(dovecot, account, "INBOX", [uid], ["\\Flagged", "\\Seen"])
        wait_for(
            lambda: local_ids(maildir).get(new_id) == {"\\Flagged", "\\Seen"},
            "the server's flag change locally",
            d,
        )
        # syncd's own writes (the download, the flag rename) must not come back from
        # the watcher as local changes: give it its debounce and more, then look.
        time.sleep(1.5)
        assert "INBOX: changed locally" not in d.log, d.log
        assert d.stop() == 0
    assert in_step(dovecot, account, maildir)


def test_syncds_own_writes_in_a_full_sync_do_not_come_back_from_the_watcher(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """A full sync writes into several folders; none of those writes may be taken for a
    mail reader's change (which would cost a second sync of each folder)."""
    populate(dovecot, account, folders={"INBOX": 1, "Archive": 1, "Lists/python": 1})
    config, maildir = setup(tmp_path, dovecot, account)
    with daemon(config, tmp_path) as d:
        wait_for(lambda: in_step(dovecot, account, maildir), "the start-up sync", d)
        for folder in ("INBOX", "Archive", "Lists/python"):
            append(dovecot, account, folder, make_message(f"more for {folder}"))
        for sub in ("cur", "new", "tmp"):  # a new local folder: the watcher asks a full sync
            (maildir / ".New" / sub).mkdir(parents=True)
        wait_for(lambda: in_step(dovecot, account, maildir), "the full sync", d)
        time.sleep(1.5)  # the watcher's debounce, and more
        changed = [line for line in d.log.splitlines() if "changed locally" in line]
        assert changed == [], d.log
        assert d.stop() == 0


def test_local_changes_in_a_subfolder_reach_the_server(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 1, "Lists/python": 2})
    config, maildir = setup(tmp_path, dovecot, account)
    folder = folder_path(maildir, "maildir++", "Lists/python")
    with daemon(config, tmp_path) as d:
        wait_for(lambda: len(local_ids(maildir, "Lists/python")) == 2, "the start-up sync", d)

        # The mail reader flags one message and files a new one.
        first = folder_messages(folder)[0]
        set_local_flags(first.path, "FS")
        new_id = "<filed.1@syncd.test>"
        deliver(folder, make_message("filed locally", message_id=new_id), "S")

        def arrived() -> bool:
            remote = server_ids(dovecot, account, "Lists/python")
            return remote.get(new_id) == {"\\Seen"} and remote.get(first.message_id) == {
                "\\Flagged",
                "\\Seen",
            }

        wait_for(arrived, "the local changes on the server", d)
        assert d.stop() == 0
    assert in_step(dovecot, account, maildir)


def test_server_kick_does_not_stop_the_daemon(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 2})
    config, maildir = setup(tmp_path, dovecot, account)
    with daemon(config, tmp_path) as d:
        wait_for(lambda: len(local_ids(maildir)) == 2, "the start-up sync", d)
        for round_ in range(2):
            dovecot.kick(account)
            new_id = f"<after-kick.{round_}@syncd.test>"
            append(dovecot, account, "INBOX", make_message("after kick", message_id=new_id))
            wait_for(lambda: new_id in local_ids(maildir), "mail after the kick", d)  # noqa: B023
        # ... and local changes still flow too.
        deliver(maildir, make_message("local after kick", message_id="<local.k@syncd.test>"))
        wait_for(
            lambda: "<local.k@syncd.test>" in server_ids(dovecot, account, "INBOX"),
            "local mail after the kick on the server",
            d,
        )
        assert d.alive()
        assert d.stop() == 0
    assert "Traceback" not in d.log


def test_sigterm_exits_0_and_a_following_sync_changes_nothing(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 5, "Archive": 3})
    config, maildir = setup(tmp_path, dovecot, account)
    with daemon(config, tmp_path) as d:
        wait_for(lambda: in_step(dovecot, account, maildir), "the start-up sync", d)
        deliver(maildir, make_message("just before stop", message_id="<last@syncd.test>"))
        wait_for(
            lambda: "<last@syncd.test>" in server_ids(dovecot, account, "INBOX"),
            "the upload",
            d,
        )
        # `syncd status` reads the state store while the daemon runs.
        status = run_syncd("status", "--json", config=config)
        assert status.returncode == 0, status.stderr
        test = json.loads(status.stdout)["accounts"]["test"]
        folders = {row["folder"]: row for row in test["folders"]}
        assert folders["INBOX"]["server"] == 6
        assert folders["INBOX"]["error"] is None
        d.signal(signal.SIGTERM)
        assert d.proc.wait(DEADLINE) == 0, d.log
    assert "stopped" in d.log
    proc = run_syncd("sync", config=config)
    assert proc.returncode == 0, proc.stderr
    assert "0 downloaded, 0 uploaded, 0 flag changes" in proc.stderr
    assert in_step(dovecot, account, maildir)


def test_sighup_reloads_the_config(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    populate(dovecot, account, folders={"INBOX": 2})
    other = dovecot.add_user()
    populate(dovecot, other, folders={"INBOX": 4})
    config, maildir = setup(tmp_path, dovecot, account)
    other_maildir = tmp_path / "Other"
    with daemon(config, tmp_path) as d:
        wait_for(lambda: len(local_ids(maildir)) == 2, "the start-up sync", d)

        # A broken config is refused and the daemon goes on with the old one.
        config.write_text("[accounts.test]\nhost = 1\n", encoding="utf-8")
        d.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in d.log, "the refused reload", d)

        write_config(
            tmp_path,
            {
                "test": account_config(dovecot, account, maildir, interval="1h"),
                "other": account_config(dovecot, other, other_maildir, interval="1h"),
            },
        )
        d.signal(signal.SIGHUP)
        wait_for(lambda: len(local_ids(other_maildir)) == 4, "the new account's mail", d)
        new_id = "<after-reload@syncd.test>"
        append(dovecot, account, "INBOX", make_message("after reload", message_id=new_id))
        wait_for(lambda: new_id in local_ids(maildir), "the old account still in step", d)
        assert d.stop() == 0
    assert "other: added" in d.log


def test_one_shot_sync_while_the_daemon_syncs_never_writes_alongside(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 600, "Archive": 300})
    config, maildir = setup(tmp_path, dovecot, account)
    lock = tmp_path / "state" / "test.lock"
    with daemon(config, tmp_path) as d:
        pid = str(d.proc.pid)
        wait_for(
            lambda: lock.exists() and lock.read_text().strip() == pid,
            "the daemon holding the account lock",
            d,
        )
        proc = run_syncd("sync", config=config)
        # Either it found the daemon mid-sync and refused, or the daemon had just
        # finished and it ran alone; never both at once.
        assert proc.returncode in (0, 75), proc.stderr
        if proc.returncode == 75:
            assert f"being synced by another syncd process (pid {pid})" in proc.stderr
        wait_for(lambda: in_step(dovecot, account, maildir), "both sides in step", d)
        assert d.stop() == 0
    snapshot = local_snapshot(maildir, "maildir++")
    assert {k: len(v) for k, v in snapshot.items()} == {"INBOX": 600, "Archive": 300}


@pytest.mark.parametrize("command", ["sync", "daemon"])
def test_password_from_the_keyring(
    tmp_path: Path, dovecot: DevServer, account: User, command: str
) -> None:
    populate(dovecot, account, folders={"INBOX": 2})
    maildir = tmp_path / "Mail"
    config = write_config(
        tmp_path,
        {"test": account_config(dovecot, account, maildir, password_command=None, interval="1h")},
    )
    env = {
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    stored = subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(config), "password", "set", "test"],
        input=account.password + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert stored.returncode == 0, stored.stderr
    assert account.password not in config.read_text(encoding="utf-8")
    if command == "sync":
        proc = run_syncd("sync", config=config, env=env)
        assert proc.returncode == 0, proc.stderr
        assert len(local_ids(maildir)) == 2
    else:
        with daemon(config, tmp_path, env) as d:
            wait_for(lambda: len(local_ids(maildir)) == 2, "the start-up sync", d)
            new_id = "<keyring@syncd.test>"
            append(dovecot, account, "INBOX", make_message("idle", message_id=new_id))
            wait_for(lambda: new_id in local_ids(maildir), "mail through IDLE", d)
            assert d.stop() == 0
        assert account.password not in d.log


def test_rules_file_pushed_mail_and_it_arrives_in_its_final_folder(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 1})
    rule = {
        "name": "alerts",
        "folder": "INBOX",
        "search": 'FROM "alerts@example.org"',
        "action": "move",
        "target": "Alerts",
    }
    config, maildir = setup(tmp_path, dovecot, account, rules=[rule])
    with daemon(config, tmp_path) as d:
        wait_for(lambda: len(local_ids(maildir)) == 1, "the start-up sync", d)
        alert_id = "<alert.1@syncd.test>"
        append(
            dovecot,
            account,
            "INBOX",
            make_message("disk full", message_id=alert_id, sender="alerts@example.org"),
        )
        wait_for(lambda: alert_id in local_ids(maildir, "Alerts"), "the alert in Alerts", d)
        assert alert_id not in local_ids(maildir)
        assert d.stop() == 0
    assert in_step(dovecot, account, maildir)


def _bulk_message(i: int) -> bytes:
    return make_message(f"bulk {i}", message_id=f"<bulk{i}@syncd.test>").replace(b"\r\n", b"\n")


def test_sigterm_inside_a_long_initial_download_stops_at_a_batch_boundary(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """SIGTERM while the daemon is half-way through downloading a 4000-message folder
    (sent as the second body batch is requested): it stops at the next batch boundary
    and exits 0 on its own (not the "still busy; exiting anyway" escape), with part
    of the folder stored; a following sync fetches exactly the rest."""
    fill_inbox(dovecot, account, _bulk_message, 4000)
    fetches: list[str] = []
    holder: list[Daemon] = []

    def on_command(text: str) -> None:
        if "BODY.PEEK[]" in text.upper():
            fetches.append(text)
            if len(fetches) == 2:
                holder[0].signal(signal.SIGTERM)

    with front(dovecot, on_command=on_command) as proxy:
        config, maildir = setup(tmp_path, dovecot, account, port=proxy.port)
        with daemon(config, tmp_path) as d:
            holder.append(d)
            assert d.proc.wait(DEADLINE) == 0, d.log
        assert "still busy" not in d.log, d.log
        assert "stopping: the rest of this folder is left for the next run" in d.log, d.log
        stored = len(local_ids(maildir))
        assert 0 < stored < 4000, stored
        proc = run_syncd("sync", config=config)
        assert proc.returncode == 0, proc.stderr
    assert f"{4000 - stored} downloaded, 0 uploaded" in proc.stderr, proc.stderr
    assert in_step(dovecot, account, maildir)
    assert len(local_ids(maildir)) == 4000


def test_syncd_sync_rides_the_running_daemon(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """Issue 14: with a daemon running, `syncd sync` asks it over its control socket
    instead of exiting 75 or logging in itself: the daemon's worker syncs at once on
    its open connection, the command prints the same summary line and exits with the
    same code.  No IMAP session of the command's own is opened (Dovecot's logout
    counters see none end while it runs)."""
    create_folder(dovecot, account, "Archive")
    append(dovecot, account, "INBOX", make_message(subject="first"))
    config, maildir = setup(tmp_path, dovecot, account)
    with daemon(config, tmp_path) as d:
        wait_for(lambda: in_step(dovecot, account, maildir), "the first sync", d)
        # Not in IDLE's folders: only a full sync brings it.
        start = dovecot.log_offset()
        append(dovecot, account, "Archive", make_message(subject="filed elsewhere"))
        # Dovecot logs a logout a moment after it: let the test's own sessions (the
        # append, the in_step snapshots) be counted before the command starts.
        assert dovecot.traffic(account, start).sessions >= 1
        before = dovecot.log_offset()

        proc = run_syncd("sync", "-v", config=config)

        assert proc.returncode == 0, proc.stderr
        assert "test: 2 folders ok; 1 downloaded" in proc.stderr, proc.stderr
        assert len(local_ids(maildir, "Archive")) == 1  # already there when it returns
        assert dovecot.traffic(account, before, settle=1.0).sessions == 0
        assert "being synced by another syncd process" not in proc.stderr

        dry = run_syncd("sync", "--dry-run", config=config)  # always runs by itself
        assert dry.returncode in (0, 75), dry.stderr
        assert d.stop() == 0


def test_the_control_socket_is_private(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    from syncd.daemon.control import socket_path

    config, _ = setup(tmp_path, dovecot, account)
    with daemon(config, tmp_path) as d:
        path = wait_for(
            lambda: (p := socket_path(tmp_path / "state")).exists() and p, "the socket", d
        )
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        if os.geteuid() == 0:  # another user cannot even reach it
            assert _connects_as_nobody(path) == "PermissionError"
        assert d.stop() == 0
    assert not path.exists()


def _connects_as_nobody(path: Path) -> str:
    """Try to connect to ``path`` from a forked child running as uid 65534."""
    import socket

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        outcome = "connected"
        try:
            os.setgid(65534)
            os.setuid(65534)
            socket.socket(socket.AF_UNIX).connect(str(path))
        except OSError as exc:
            outcome = type(exc).__name__
        os.write(write, outcome.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as f:
        return f.read().decode()


def test_the_fast_path_rides_only_the_config_file_the_daemon_loaded(
    tmp_path: Path, dovecot: DevServer, account: User, capsys: pytest.CaptureFixture[str]
) -> None:
    """`syncd sync` finds the daemon from the config file's path alone, before click or
    the config reader load; the daemon answers only while the file is the one it read
    (else the ordinary path reads the config and decides, as before)."""
    from syncd.cli.ride import fast_ride
    from syncd.daemon.control import runtime_dir
    from syncd.daemon.rendezvous import config_link_name

    append(dovecot, account, "INBOX", make_message(subject="first"))
    config, maildir = setup(tmp_path, dovecot, account)
    argv = ["--config", str(config), "-q", "sync"]
    link = runtime_dir() / config_link_name(str(config))
    with daemon(config, tmp_path) as d:
        wait_for(lambda: in_step(dovecot, account, maildir) and link.exists(), "the link", d)
        capsys.readouterr()

        assert fast_ride(["--config", str(config), "sync", "test"]) == 0
        assert "test: 1 folders ok" in capsys.readouterr().err
        assert fast_ride([*argv, "nobody"]) is None  # not an account it runs
        assert fast_ride([*argv, "--dry-run"]) is None  # always runs by itself

        stat = config.stat()
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert fast_ride(argv) is None  # changed since the daemon read it
        assert capsys.readouterr().err == ""
        assert run_syncd("sync", config=config).returncode == 0  # the ordinary path rides

        d.signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in d.log, "the reload", d)
        assert fast_ride(argv) == 0
        assert d.stop() == 0
    assert not link.exists()
    assert fast_ride(argv) is None
