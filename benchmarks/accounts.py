"""One daemon, many accounts: memory, idle CPU, connections and push latency (issue 14).

Against a private Dovecot (started here, stopped at the end), ``--accounts`` users each
get the same mailbox (``--messages`` corpus messages over ``--folders`` folders): one
template account is filled by MULTIAPPEND, then its server-side Maildir is copied per
user with ``cp -a`` (as ``bench.py`` does).  One syncd config holds every account with
the defaults a user would keep (``max_connections = 4``, IDLE on INBOX, a full sync every
5 minutes, fsync on, Maildir++).  Then ``syncd daemon`` runs and this measures:

- the initial sync of every account (time until all mail is local), checked: each
  account's local folders hold the expected number of messages, and the first account
  (every account with ``--quick``) is compared message by message with the server;
- connections to Dovecot held by the daemon (ESTABLISHED TCP sockets of the daemon's
  process to the server's port, from ``/proc``), sampled through the whole run, and
  per account (Dovecot's ``doveadm who``) against ``max_connections``;
- an idle window (``--idle`` seconds, nothing happens but the daemon's own timers):
  CPU time (utime + stime from ``/proc/<pid>/stat``) as a share of one core, and RSS;
- push latency: ``--events`` APPENDs, each to a random account's INBOX, one at a time;
  the time until the file appears in that account's local INBOX (p50, p95, max);
- peak RSS of the daemon over the whole run (``VmHWM``) and its RSS at the end.

    .venv/bin/python -m benchmarks.accounts --accounts 50 --messages 3000 --folders 20 \
        --idle 600
    .venv/bin/python -m benchmarks.accounts --quick    # 5 x 200 messages, 20 s idle

Prints a table and writes ``benchmarks/results/accounts.json`` (``accounts-quick.json``
with ``--quick``).  Exit status 0 when every account ended correct, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import check, corpus, scenarios
from benchmarks.latency import entries, message, proc_cpu, proc_rss_kib, summary, wait_for
from benchmarks.measure import byte_compile, machine_facts
from devserver.dovecot import DevServer, start

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
MAX_CONNECTIONS = 4  # syncd's default, written out so the check below knows the cap
#: Room for 50 users' connections, and Dovecot's own default IDLE keep-alive ("OK Still
#: here" every 2 minutes; the devserver's 5 s would wake every listener 24x as often).
DOVECOT_CONF = """default_process_limit = 1000
default_client_limit = 4000
imap_idle_notify_interval = 2 mins"""

#: The corpus's nine folders, then more of the kinds a real account has.
EXTRA_FOLDERS = (
    "Drafts",
    "Trash",
    "Junk",
    "Archive/2022",
    "Work",
    "Work/Clients",
    "Family",
    "Travel",
    "Receipts",
    "Newsletters",
    "Notes",
    "Lists/rust",
    "Archive/2021",
    "Projets/Zoé",
    "Work/Hiring",
    "Lists/lwn",
)


def folder_names(count: int) -> list[str]:
    names = [*corpus.folder_names(), *EXTRA_FOLDERS]
    if not 1 <= count <= len(names):
        raise SystemExit(f"accounts.py: --folders must be 1..{len(names)}")
    return names[:count]


def layout(messages: int, folders: int) -> dict[str, int]:
    """INBOX holds 30%, the other folders share the rest evenly."""
    names = folder_names(folders)
    if len(names) == 1:
        return {"INBOX": messages}
    inbox = messages * 3 // 10
    each, extra = divmod(messages - inbox, len(names) - 1)
    counts = {"INBOX": inbox}
    for i, name in enumerate(names[1:]):
        counts[name] = each + (1 if i < extra else 0)
    return counts


def generate(counts: dict[str, int], seed: int) -> Iterator[corpus.Message]:
    """The corpus's messages (its sizes, flags, encodings), a few huge ones from 1000 on."""
    total = sum(counts.values())
    rng = random.Random(f"{seed}/accounts/{total}")
    slots = [("INBOX", i) for i in range(counts["INBOX"])]
    huge = set(rng.sample(slots, min(len(slots), total // 1500))) if total >= 1000 else set()
    for folder, count in counts.items():
        for i in range(count):
            yield corpus.make_message(seed, "a", folder, i, huge=(folder, i) in huge)


# ---------------------------------------------------------------------------------------
# the daemon's process, from /proc


def daemon_connections(pid: int, port: int) -> int:
    """ESTABLISHED TCP connections of process ``pid`` to ``port`` (any local address)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    # Distinct inodes: /proc/net/tcp is read page by page while sockets come and go,
    # so a row can show up twice in one read.
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and remote_port == port and fields[9] in inodes:
                    found.add(fields[9])
    return len(found)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def per_user_connections(server: DevServer) -> Counter[str]:
    """IMAP connections per user, as Dovecot counts them (``doveadm who -1``)."""
    proc = server.doveadm("who", "-1", check=False)
    counts: Counter[str] = Counter()
    for line in proc.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[1] == "imap":
            counts[fields[0]] += 1
    return counts


class Sampler:
    """Samples the daemon's connections every second in a thread (and Dovecot's
    per-user count every few seconds), keeping the largest values seen."""

    def __init__(self, server: DevServer, pid: int) -> None:
        self.server, self.pid = server, pid
        self.max_total = 0
        self.max_per_user: Counter[str] = Counter()
        self.last_total = 0
        #: The harness's own connections per user (not the daemon's), and whether
        #: Dovecot's per-user count is to be skipped (the harness is reading mail).
        self.own: Counter[str] = Counter()
        self.paused = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(1.0):
            self.last_total = daemon_connections(self.pid, self.server.port)
            self.max_total = max(self.max_total, self.last_total)
            if tick % 5 == 0 and not self.paused:
                for user, n in per_user_connections(self.server).items():
                    daemons = n - self.own[user]
                    self.max_per_user[user] = max(self.max_per_user[user], daemons)
            tick += 1


# ---------------------------------------------------------------------------------------
# set-up


def say(text: str) -> None:
    print(f"accounts.py: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def fill(server: DevServer, args: argparse.Namespace) -> tuple[Any, scenarios.Model, float]:
    """Fill a template account; the model of what each copy must hold; seconds taken."""
    template = server.add_user("template")
    reader = check.ServerReader(server.host, server.port, template.name, template.password)
    model = scenarios.new_model()
    counts = layout(args.messages, args.folders)
    began = time.perf_counter()
    client = reader.connect()
    try:
        for folder in counts:
            if folder != "INBOX":
                client.create_folder(folder)
        messages = list(generate(counts, args.seed))
        scenarios.add_to_model(model, messages)
        scenarios.append(client, messages)
    finally:
        scenarios.logout(client)
    return template, model, time.perf_counter() - began


def write_config(tmp: Path, server: DevServer, users: list[Any], interval: str) -> Path:
    config = tmp / "syncd.toml"
    parts = [f'[general]\nstate_dir = "{tmp / "state"}"\n']
    for user in users:
        secret = tmp / "secrets" / user.name
        secret.parent.mkdir(exist_ok=True)
        secret.write_text(user.password, encoding="utf-8")
        secret.chmod(0o600)
        parts.append(
            f"[accounts.{user.name}]\n"
            f'host = "{server.host}"\nport = {server.port}\ntls = "none"\n'
            f'user = "{user.name}"\npassword_command = ["cat", "{secret}"]\n'
            f'maildir = "{tmp / "Mail" / user.name}"\nlayout = "maildir++"\nfsync = true\n'
            f'max_connections = {MAX_CONNECTIONS}\nidle = ["INBOX"]\ninterval = "{interval}"\n'
        )
    config.write_text("\n".join(parts), encoding="utf-8")
    return config


def local_path(root: Path, folder: str) -> Path:
    return root if folder == "INBOX" else root / ("." + folder.replace("/", "."))


def local_counts(root: Path, folders: list[str]) -> dict[str, int]:
    counts = {}
    for folder in folders:
        path = local_path(root, folder)
        counts[folder] = sum(
            len(os.listdir(path / sub)) if (path / sub).is_dir() else 0 for sub in ("cur", "new")
        )
    return counts


def all_idle(state_dir: Path, pid: int, names: list[str]) -> bool:
    try:
        data = json.loads((state_dir / f"daemon-{pid}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    accounts = data.get("accounts", {})
    return all(accounts.get(n, {}).get("state") == "idle" for n in names)


# ---------------------------------------------------------------------------------------
# the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="syncd-accounts-", dir=args.workdir))
    tmp.chmod(0o755)  # Dovecot's mail processes must reach the mail directory
    server = start(tmp / "dovecot", extra_conf=DOVECOT_CONF)
    daemon: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {"options": {k: v for k, v in vars(args).items() if k != "out"}}
    try:
        say(f"filling a template account: {args.messages} messages, {args.folders} folders")
        template, model, fill_s = fill(server, args)
        say(f"copying it for {args.accounts} users")
        began = time.perf_counter()
        users = [server.add_user(f"a{i:03d}") for i in range(args.accounts)]
        for user in users:
            subprocess.run(
                ["cp", "-a", str(server.maildir(template)), str(server.maildir(user))],
                check=True,
            )
        result["setup"] = {
            "fill_s": round(fill_s, 1),
            "copy_s": round(time.perf_counter() - began, 1),
        }
        config = write_config(tmp, server, users, args.interval)
        names = [u.name for u in users]
        folders = list(layout(args.messages, args.folders))
        expected = layout(args.messages, args.folders)

        log = tmp / "daemon.log"
        env = dict(os.environ, HOME=str(tmp), XDG_RUNTIME_DIR=str(tmp))
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "syncd", "--config", str(config), "daemon"],
                stdout=out,
                stderr=out,
                env=env,
            )
        pid = daemon.pid
        say(f"daemon running (pid {pid}); waiting for the initial syncs")
        with Sampler(server, pid) as sampler:
            began = time.monotonic()

            def synced() -> bool:
                if daemon is None or daemon.poll() is not None:
                    raise SystemExit(f"accounts.py: the daemon exited; see {log}")
                return all_idle(tmp / "state", pid, names) and all(
                    local_counts(tmp / "Mail" / n, folders) == expected for n in names
                )

            wait_for(synced, args.timeout, "the initial syncs", 1.0)
            initial_s = time.monotonic() - began
            say(f"initial syncs done in {initial_s:.0f} s; checking")
            rss_synced, hwm_synced = proc_rss_kib(pid), peak_rss_kib(pid)

            sampler.paused = True
            checked = names if args.quick else names[:1]
            problems = verify(server, [u for u in users if u.name in checked], tmp / "Mail",
                              folders, model)  # fmt: skip

            # Idle: only the daemon's own timers (IDLE slices, the scheduler's full syncs).
            time.sleep(2.0)  # the check's logouts end on the server too
            sampler.paused = False
            say(f"idle window: {args.idle:.0f} s")
            cpu0, t0 = proc_cpu(pid), time.monotonic()
            rss_max = proc_rss_kib(pid)
            while time.monotonic() - t0 < args.idle:
                time.sleep(min(5.0, max(0.0, args.idle - (time.monotonic() - t0))))
                rss_max = max(rss_max, proc_rss_kib(pid))
            cpu1, t1 = proc_cpu(pid), time.monotonic()
            held_idle = daemon_connections(pid, server.port)
            per_user_idle = per_user_connections(server)

            say(f"push latency: {args.events} APPENDs")
            latencies = push_latency(server, users, tmp / "Mail", args, sampler.own)
            rss_end, hwm_end = proc_rss_kib(pid), peak_rss_kib(pid)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(120)
        daemon = None
        counts = {n: local_counts(tmp / "Mail" / n, folders) for n in names}
        wrong_counts = [n for n in names if any(counts[n][f] < expected[f] for f in folders)]
        over_cap = {u: c for u, c in sampler.max_per_user.items() if c > MAX_CONNECTIONS}
        result.update(
            accounts=args.accounts,
            messages_per_account=args.messages,
            folders_per_account=args.folders,
            initial_sync_s=round(initial_s, 1),
            rss_kib={
                "after_initial_sync": rss_synced,
                "peak_after_initial_sync": hwm_synced,
                "idle_max": rss_max,
                "end": rss_end,
                "peak": hwm_end,
            },
            idle={
                "seconds": round(t1 - t0, 1),
                "cpu_seconds": round(cpu1 - cpu0, 3),
                "cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
            },
            connections={
                "cap_per_account": MAX_CONNECTIONS,
                "cap_total": MAX_CONNECTIONS * args.accounts,
                "held_idle": held_idle,
                "max_seen": sampler.max_total,
                "per_account_idle": dict(Counter(per_user_idle.values())),
                "per_account_max": max(sampler.max_per_user.values(), default=0),
                "over_cap": over_cap,
            },
            push_latency_s=summary(latencies) if latencies else None,
            sigterm_exit=code,
            correct=not problems and not wrong_counts and not over_cap and code == 0,
            problems=problems,
            wrong_counts=wrong_counts,
            machine=machine_facts(tmp),
        )
        return result
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        server.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def verify(
    server: DevServer, users: list[Any], mail: Path, folders: list[str], model: scenarios.Model
) -> dict[str, list[str]]:
    """Compare each account message by message: server with the corpus, local with server."""
    problems = {}
    for user in users:
        server_side = check.ServerReader(server.host, server.port, user.name, user.password)
        local = check.LocalReader(mail / user.name, functools.partial(local_path, mail / user.name))
        snap, found = local.snapshot(folders)
        found += check.compare(
            scenarios.expected(model), server_side.snapshot(), ("corpus", "server")
        )
        found += check.compare(server_side.snapshot(), snap)
        if found:
            problems[user.name] = found[:5]
    return problems


def push_latency(
    server: DevServer, users: list[Any], mail: Path, args: Any, own: Counter[str]
) -> list[float]:
    """APPEND to random accounts' INBOX, one at a time; seconds until the file is local."""
    rng = random.Random(f"{args.seed}/push")
    clients: dict[str, Any] = {}
    samples: list[float] = []
    try:
        for i in range(args.events):
            user = rng.choice(users)
            if user.name not in clients:
                own[user.name] += 1
                clients[user.name] = server.connect(user)
            inbox = mail / user.name
            before = entries(inbox)
            began = time.monotonic()
            clients[user.name].append("INBOX", message(i))
            wait_for(lambda b=before, p=inbox: entries(p) - b, 60, f"push {i}", 0.005)
            samples.append(time.monotonic() - began)
            time.sleep(args.pause)
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                client.logout()
    return samples


# ---------------------------------------------------------------------------------------
# command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--messages", type=int, default=3000, help="per account")
    parser.add_argument("--folders", type=int, default=20, help="per account")
    parser.add_argument("--idle", type=float, default=600.0, help="idle window, seconds")
    parser.add_argument("--events", type=int, default=60, help="push-latency APPENDs")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between APPENDs")
    parser.add_argument("--interval", default="5m", help="the accounts' full-sync interval")
    parser.add_argument("--timeout", type=float, default=3600.0, help="for the initial syncs")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--workdir", default="/tmp")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="5 accounts x 200 messages, 20 s idle, 10 events (other options still apply)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(accounts=5, messages=200, idle=20.0, events=10)
        args = parser.parse_args(argv)
    return args


def table(result: dict[str, Any]) -> str:
    r, idle, conn, lat = (
        result["rss_kib"],
        result["idle"],
        result["connections"],
        result["push_latency_s"] or {},
    )
    rows = [
        (
            "accounts x messages x folders",
            f"{result['accounts']} x "
            f"{result['messages_per_account']} x {result['folders_per_account']}",
            "",
        ),
        ("initial sync (all accounts)", f"{result['initial_sync_s']} s", ""),
        ("peak RSS (VmHWM)", f"{r['peak'] / 1024:.0f} MB", "<= 300 MB"),
        (
            "RSS after initial sync / end",
            f"{r['after_initial_sync'] / 1024:.0f} / {r['end'] / 1024:.0f} MB",
            "",
        ),
        (
            f"idle CPU over {idle['seconds']:.0f} s",
            f"{idle['cpu_percent']:.3f} % ({idle['cpu_seconds']:.1f} s)",
            "< 0.1 %",
        ),
        (
            "connections held idle / max seen",
            f"{conn['held_idle']} / {conn['max_seen']}",
            f"cap {conn['cap_total']}",
        ),
        ("per account: max seen", str(conn["per_account_max"]), f"cap {conn['cap_per_account']}"),
        (
            "push latency p50 / p95 / max",
            f"{lat.get('p50')} / {lat.get('p95')} / {lat.get('max')} s (n={lat.get('n')})",
            "p95 <= 1 s",
        ),
        ("correct", "yes" if result["correct"] else "NO", ""),
    ]
    lines = ["| measure | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    byte_compile(PROJECT)
    args = parse_args(argv)
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "accounts-quick.json" if args.quick else "accounts.json"
    (args.out / name).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(table(result))
        for account, found in result["problems"].items():
            print(f"{account}: " + "; ".join(found))
        if result["wrong_counts"]:
            print("accounts missing mail: " + ", ".join(result["wrong_counts"]))
    return 0 if result["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
