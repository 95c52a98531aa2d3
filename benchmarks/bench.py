"""syncd next to mbsync and offlineimap: same Dovecot, same corpus, interleaved runs.

Run it through ``bash benchmarks/run.sh [options]`` (which installs what is missing), or
directly as ``.venv/bin/python -m benchmarks.bench [options]`` from the project root.

For each size N: one private Dovecot on 127.0.0.1 (:mod:`devserver.dovecot`) gets a
template account filled with the seeded corpus (MULTIAPPEND, fixed INTERNALDATEs); every
tool gets its own copy of it (the server-side Maildir copied while nobody is logged in to
the copy). Then, scenario by scenario, each tool in turn (the order rotates between
repeats) gets the same change applied to its account, runs once as a child process
(wall clock; user+sys CPU and peak RSS from ``wait4``), and is checked: the server must
hold exactly what the scenario's model says, and the tool's local Maildir exactly what
the server holds (:mod:`benchmarks.check`). A run that exits non-zero or ends wrong is a
failure: it shows in the table, the tool sits out the rest of that size, and the command
exits 1.

Exit codes: 0 every run correct; 1 at least one run failed or was wrong; 2 the harness
itself could not run (no Dovecot, a tool missing, bad options).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import devserver.dovecot as devserver
from benchmarks import check, corpus, scenarios, tools
from benchmarks.measure import GNU_TIME, Children, machine_facts, run_timed, startup_times
from benchmarks.report import (
    PROBLEMS_KEPT,
    Row,
    Run,
    markdown,
    row_json,
    table_rows,
    text_table,
)

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "benchmarks" / "results"
QUICK_SIZE = 300
_LOG_TAIL = 6


class HarnessError(RuntimeError):
    """The benchmark itself cannot go on (not a tool's failure)."""


# ---------------------------------------------------------------------------------------
# one tool's account


@dataclasses.dataclass
class Subject:
    """A tool with its account, readers and last verified snapshots (mutable state)."""

    tool: tools.Tool
    account: tools.Account
    server: check.ServerReader
    local: check.LocalReader
    last_server: check.Snapshot = dataclasses.field(default_factory=dict)
    last_local: check.Snapshot = dataclasses.field(default_factory=dict)
    failed: str | None = None

    def connect(self) -> Any:
        return self.server.connect()

    def verify(self, model: scenarios.Model) -> list[str]:
        """Compare server with the model and the local Maildir with the server."""
        server = self.server.snapshot()
        problems = [
            f"server: {p}"
            for p in check.compare(scenarios.expected(model), server, ("expected", "server"))
        ]
        local, layout = self.local.snapshot(sorted(set(server) | set(model)))
        problems += [f"local: {p}" for p in layout]
        problems += [f"local: {p}" for p in check.compare(server, local)]
        self.last_server, self.last_local = server, local
        return problems

    def reset(self) -> None:
        """Forget everything local: the next run is a first sync again."""
        for path in self.tool.state:
            shutil.rmtree(path, ignore_errors=True)
        self.tool.root.mkdir(parents=True, exist_ok=True)


def run_once(subject: Subject, model: scenarios.Model, args: Options, kids: Children) -> Run:
    tool = subject.tool
    offset = tool.log.stat().st_size if tool.log.exists() else 0
    usage = run_timed(
        tool.argv, env=dict(tool.env), log=tool.log, timeout=args.timeout, children=kids
    )
    start = time.perf_counter()
    problems = subject.verify(model)
    if usage.returncode != 0:
        problems.insert(0, f"exit status {usage.returncode}; log tail: {_tail(tool.log)}")
    return Run(usage, tuple(problems), time.perf_counter() - start, _output(tool.log, offset))


def _output(path: Path, offset: int) -> tuple[str, ...]:
    with path.open("rb") as f:
        f.seek(offset)
        text = f.read(20_000).decode("utf-8", "replace")
    lines = [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not line.startswith("=== ")  # run_timed's header
    ]
    return tuple(lines[:PROBLEMS_KEPT])


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(line.strip() for line in lines[-_LOG_TAIL:] if line.strip())


# ---------------------------------------------------------------------------------------
# scenarios


@dataclasses.dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    scenarios: tuple[str, ...]
    tools: tuple[str, ...]
    repeat: int
    seed: int
    timeout: float
    keep: bool
    workdir: Path
    out: Path
    quick: bool


def _rotate(items: list[Subject], by: int) -> list[Subject]:
    k = by % len(items)
    return items[k:] + items[:k]


def run_scenario(
    name: str,
    n: int,
    subjects: list[Subject],
    model: scenarios.Model,
    args: Options,
    kids: Children,
    progress: bool = True,
) -> list[Row]:
    """Run scenario ``name`` ``args.repeat`` times on every subject, interleaved."""
    runs: dict[str, list[Run]] = {s.tool.name: [] for s in subjects}
    skipped: dict[str, str] = {}
    for r in range(args.repeat):
        tag = f"{args.seed}/{n}/{name}/{r}"
        changes: list[scenarios.Change] = []
        fresh: list[corpus.Message] = []
        if name == "server-flags":
            changes = scenarios.choose_flag_changes(model, scenarios.count_for(n, 1), tag)
            scenarios.apply_to_model(model, changes)
        elif name == "server-new":
            fresh = corpus.new_messages(scenarios.count_for(n, 1), args.seed, f"n{n}r{r}")
            scenarios.add_to_model(model, fresh)
        elif name == "local-changes":
            changes = scenarios.choose_local_changes(
                model, scenarios.count_for(n, 1), scenarios.count_for(n, 0.5), tag
            )
            scenarios.apply_to_model(model, changes)
        for subject in _rotate(subjects, r):
            tool = subject.tool.name
            if subject.failed:
                skipped.setdefault(tool, f"skipped: {subject.failed}")
                continue
            _apply(name, r, subject, changes, fresh)
            run = run_once(subject, model, args, kids)
            runs[tool].append(run)
            if progress:
                _say(
                    f"  {name:<13} N={n:<6} {tool:<11} {run.usage.wall:8.2f} s wall "
                    f"{run.usage.cpu:7.2f} s cpu {run.usage.maxrss_kb / 1024:6.1f} MB  "
                    + ("ok" if run.ok else f"WRONG: {run.problems[0]}")
                    + f"  (check {run.check_seconds:.1f} s)"
                )
            if not run.ok:
                subject.failed = f"{name} failed at N={n}"
    return [
        Row(name, n, s.tool.name, tuple(runs[s.tool.name]), skipped.get(s.tool.name))
        for s in subjects
    ]


def _apply(
    name: str,
    repeat: int,
    subject: Subject,
    changes: Sequence[scenarios.Change],
    fresh: Sequence[corpus.Message],
) -> None:
    """Apply a scenario's change to one subject's account (untimed)."""
    if name == "initial" and repeat > 0:
        subject.reset()
    elif name == "local-changes":
        scenarios.apply_local(subject.last_local, changes)
    elif name in ("server-flags", "server-new"):
        client = subject.connect()
        try:
            if name == "server-flags":
                scenarios.apply_server_flags(client, subject.last_server, changes)
            else:
                scenarios.append(client, fresh)
        finally:
            scenarios.logout(client)


# ---------------------------------------------------------------------------------------
# one size


def _tracking(
    messages: Iterator[corpus.Message], model: scenarios.Model, sizes: list[int]
) -> Iterator[corpus.Message]:
    for msg in messages:
        scenarios.add_to_model(model, [msg])
        sizes.append(len(msg.raw))
        yield msg


def prepare(
    server: devserver.DevServer, n: int, args: Options, workdir: Path
) -> tuple[list[Subject], scenarios.Model, dict[str, Any]]:
    """Fill a template account, copy it once per tool, configure the tools."""
    facts: dict[str, Any] = {}
    template = server.add_user(f"template{n}")
    reader = check.ServerReader(server.host, server.port, template.name, template.password)
    model = scenarios.new_model()
    sizes: list[int] = []
    start = time.perf_counter()
    client = reader.connect()
    try:
        for folder in corpus.folder_names():
            if folder != "INBOX":
                client.create_folder(folder)
        nbytes = scenarios.append(client, _tracking(corpus.generate(n, args.seed), model, sizes))
    finally:
        scenarios.logout(client)
    facts["fill_multiappend_s"] = round(time.perf_counter() - start, 2)
    facts["corpus_mb"] = round(nbytes / 1e6, 1)
    start = time.perf_counter()
    problems = check.compare(scenarios.expected(model), reader.snapshot(), ("corpus", "server"))
    if problems:
        raise HarnessError(f"the template account does not hold the corpus: {problems[:3]}")
    facts["check_full_s"] = round(time.perf_counter() - start, 2)

    subjects = []
    copy_times = []
    for name in args.tools:
        user = server.add_user(f"{name}{n}")
        start = time.perf_counter()
        # cp -a keeps ownership (the mail processes' uid when run as root); nobody has
        # logged in to the new account yet, so Dovecot holds nothing of it in memory.
        subprocess.run(
            ["cp", "-a", str(server.maildir(template)), str(server.maildir(user))], check=True
        )
        copy_times.append(time.perf_counter() - start)
        account = tools.Account(server.host, server.port, user.name, user.password)
        tool = tools.make(name, workdir / f"n{n}" / name, account, project=PROJECT)
        subject = Subject(
            tool,
            account,
            check.ServerReader(
                server.host, server.port, user.name, user.password, dict(reader.cache)
            ),
            check.LocalReader(tool.root, tool.folder_path, tool.added_header),
        )
        copy_problems = check.compare(
            scenarios.expected(model), subject.server.snapshot(), ("corpus", "server")
        )
        if copy_problems:
            raise HarnessError(f"the copy for {name} differs: {copy_problems[:3]}")
        subjects.append(subject)
    facts["copy_account_s"] = round(statistics.median(copy_times), 2) if copy_times else None
    sizes.sort()
    facts["corpus"] = {
        "folders": dict(corpus.layout(n, args.seed).counts),
        "median_kb": round(sizes[len(sizes) // 2] / 1e3, 1),
        "over_50kb_pct": round(100 * sum(s >= 50_000 for s in sizes) / len(sizes), 1),
        "over_2mb": sum(s >= 2_000_000 for s in sizes),
        "largest_mb": round(sizes[-1] / 1e6, 1),
    }
    return subjects, model, facts


def run_size(
    server: devserver.DevServer, n: int, args: Options, workdir: Path, kids: Children
) -> tuple[list[Row], dict[str, Any]]:
    _say(f"N={n}: filling the template account and copying it for {', '.join(args.tools)}")
    subjects, model, facts = prepare(server, n, args, workdir)
    _say(
        f"N={n}: corpus {facts['corpus_mb']} MB; MULTIAPPEND fill {facts['fill_multiappend_s']} s, "
        f"copy per account {facts['copy_account_s']} s"
    )
    rows: list[Row] = []
    for name in scenarios.SCENARIOS:
        if name in args.scenarios:
            rows += run_scenario(name, n, subjects, model, args, kids)
        elif name == "initial":
            # Every other scenario starts from a synced account: sync untimed, but checked.
            once = dataclasses.replace(args, repeat=1)
            for row in run_scenario(name, n, subjects, model, once, kids, progress=False):
                if not row.ok:
                    rows.append(dataclasses.replace(row, scenario="initial (setup)"))
    for subject in subjects:
        shutil.rmtree(server.maildir(subject.account.user), ignore_errors=True)
        if not args.keep:
            shutil.rmtree(subject.tool.root.parent, ignore_errors=True)
    return rows, facts


# ---------------------------------------------------------------------------------------
# facts and start-up

# ---------------------------------------------------------------------------------------
# main


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.sh",
        description="Time syncd, mbsync and offlineimap side by side on one private Dovecot.",
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated message counts (default 1000,10000)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(scenarios.SCENARIOS),
        help=f"comma-separated subset of {','.join(scenarios.SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--tools", default=",".join(tools.TOOLS), help="comma-separated (default: all three)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool and scenario")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: N={QUICK_SIZE}, results in quick.*"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds before a run is killed"
    )
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where to work")
    parser.add_argument("--out", default=str(RESULTS), help="where latest.json/md go")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    ns = parser.parse_args(argv)

    def split(text: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in text.split(",") if x.strip())

    try:
        sizes = tuple(int(x) for x in split(ns.sizes)) if ns.sizes else None
    except ValueError:
        parser.error(f"--sizes: not a list of numbers: {ns.sizes!r}")
    if sizes is None:
        sizes = (QUICK_SIZE,) if ns.quick else (1000, 10_000)
    if any(s < 100 for s in sizes):
        parser.error("--sizes: each size must be at least 100")
    chosen = split(ns.scenarios)
    unknown = [s for s in chosen if s not in scenarios.SCENARIOS]
    if unknown or not chosen:
        parser.error(f"--scenarios: unknown {unknown}; choose from {scenarios.SCENARIOS}")
    names = split(ns.tools)
    bad = [t for t in names if t not in tools.TOOLS]
    if bad or not names:
        parser.error(f"--tools: unknown {bad}; choose from {tools.TOOLS}")
    if ns.repeat < 1:
        parser.error("--repeat must be at least 1")
    timeout = ns.timeout if ns.timeout else 600 + 0.1 * max(sizes)
    return Options(
        sizes=sizes,
        scenarios=chosen,
        tools=tuple(t for t in tools.TOOLS if t in names),
        repeat=ns.repeat,
        seed=ns.seed,
        timeout=timeout,
        keep=ns.keep,
        workdir=Path(ns.workdir),
        out=Path(ns.out),
        quick=ns.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(GNU_TIME).is_file():
        _say(f"bench: {GNU_TIME} is missing: install the Debian package time")
        return 2
    for name in args.tools:
        program = "syncd" if name == "syncd" else name
        if name != "syncd" and shutil.which(program) is None:
            _say(f"bench: {program} is not installed (benchmarks/run.sh installs it)")
            return 2
    kids = Children()

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-", dir=args.workdir))
    workdir.chmod(0o755)  # Dovecot's mail processes (uid 65534 under root) must get in
    report: dict[str, Any] = {
        "command": "bash benchmarks/run.sh " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(workdir),
        "versions": tools.versions(PROJECT),
        "options": {
            "sizes": args.sizes,
            "scenarios": args.scenarios,
            "tools": args.tools,
            "repeat": args.repeat,
            "seed": args.seed,
        },
    }
    rows: list[Row] = []
    server: devserver.DevServer | None = None
    try:
        _say("start-up times (best of 5) ...")
        report["startup"] = startup_times(PROJECT, kids)
        for label, s in report["startup"].items():
            _say(f"  {label:<30} {s['wall_s']:.3f} s wall, {s['cpu_s']:.3f} s cpu")
        server = devserver.start(workdir / "dovecot")
        _say(f"Dovecot on {server.host}:{server.port} (pid {server.pid}), work dir {workdir}")
        report["setup"] = {}
        for n in args.sizes:
            size_rows, facts = run_size(server, n, args, workdir, kids)
            rows += size_rows
            report["setup"][str(n)] = facts
    except (HarnessError, devserver.DevServerError, OSError) as exc:
        _say(f"bench: error: {exc}")
        return 2
    except KeyboardInterrupt:
        _say("bench: interrupted")
        return 130
    finally:
        kids.kill()
        if server is not None:
            server.stop()
        if args.keep:
            _say(f"bench: work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["results"] = [row_json(r) for r in rows]
    ok = all(r.ok for r in rows)
    report["ok"] = ok
    cells = table_rows(rows)
    sys.stdout.write(text_table(cells) + "\n")
    for row in rows:
        for problem in row.problems():
            sys.stdout.write(f"  {row.scenario} N={row.n} {row.tool}: {problem}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "quick" if args.quick else "latest"
    (args.out / f"{stem}.json").write_text(
        json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (args.out / f"{stem}.md").write_text(markdown(report, cells), encoding="utf-8")
    _say(f"results: {args.out / f'{stem}.json'}, {args.out / f'{stem}.md'}")
    if not ok:
        _say("bench: FAILED: at least one run failed or ended wrong (see the table)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
