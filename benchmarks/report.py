"""The results: one row per tool, scenario and size; the table, markdown and JSON."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.measure import Usage

PROBLEMS_KEPT = 8


@dataclasses.dataclass(frozen=True)
class Run:
    """One timed run of a tool and what the check found."""

    usage: Usage
    problems: tuple[str, ...]
    check_seconds: float
    #: The first lines the tool printed (warnings, errors), for the JSON.
    output: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.usage.returncode == 0 and not self.problems


@dataclasses.dataclass(frozen=True)
class Row:
    """All runs of one tool in one scenario at one size."""

    scenario: str
    n: int
    tool: str
    runs: tuple[Run, ...]
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is None and bool(self.runs) and all(r.ok for r in self.runs)

    @property
    def wall(self) -> float | None:
        return statistics.median(r.usage.wall for r in self.runs) if self.runs else None

    @property
    def cpu(self) -> float | None:
        return statistics.median(r.usage.cpu for r in self.runs) if self.runs else None

    @property
    def rss_mb(self) -> float | None:
        return max(r.usage.maxrss_kb for r in self.runs) / 1024 if self.runs else None

    def problems(self) -> list[str]:
        return [p for r in self.runs for p in r.problems][:PROBLEMS_KEPT]


HEADER = (
    "scenario", "N", "tool", "wall s", "CPU s", "peak RSS MB", "correct",
    "syncd/mbsync", "syncd/offlineimap",
)  # fmt: skip


def table_rows(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    by_key = {(r.scenario, r.n, r.tool): r for r in rows}
    out = []
    for row in rows:
        ratios = []
        for other in ("mbsync", "offlineimap"):
            peer = by_key.get((row.scenario, row.n, other))
            if row.tool == "syncd" and peer and row.ok and peer.ok and row.wall and peer.wall:
                ratios.append(f"{row.wall / peer.wall:.2f}")
            else:
                ratios.append("")
        if row.skipped:
            correct = row.skipped
        elif row.ok:
            correct = "yes"
        else:
            correct = "NO"
        out.append(
            (
                row.scenario,
                str(row.n),
                row.tool,
                _fmt(row.wall, 2),
                _fmt(row.cpu, 2),
                _fmt(row.rss_mb, 1),
                correct,
                *ratios,
            )
        )
    return out


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def text_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    numeric = {1, 3, 4, 5, 7, 8}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(HEADER), line(["-" * w for w in widths]), *map(line, rows)])


def markdown(report: dict[str, Any], rows: Sequence[tuple[str, ...]]) -> str:
    m = report["machine"]
    v = report["versions"]
    lines = [
        f"Measured {report['finished']} with `{report['command']}`",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, Linux "
        f"{m['kernel']}, {m['filesystem']}; load average {m['loadavg_start']} at the start, "
        f"{m['loadavg_end']} at the end. Tools: {v['syncd']}; {v['mbsync']}; "
        f"offlineimap {v['offlineimap']} ({v['offlineimap_package']}); "
        f"Dovecot {v['dovecot']}. All fsync on; plaintext IMAP on 127.0.0.1.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|"
        + "|".join("---:" if i in {1, 3, 4, 5, 7, 8} else "---" for i in range(len(HEADER)))
        + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    wrong = [
        f"- {r['scenario']} N={r['n']} {r['tool']}: {p}"
        for r in report["results"]
        for run in r["runs"]
        for p in run["problems"][:3]
    ]
    if wrong:
        lines += ["", "Failed or wrong runs:", "", *wrong]
    lines += ["", "Start-up alone (best of 5, no server involved):", ""]
    lines += ["| command | wall s | CPU s | peak RSS MB |", "|---|---:|---:|---:|"]
    for label, s in report["startup"].items():
        lines.append(f"| `{label}` | {s['wall_s']:.3f} | {s['cpu_s']:.3f} | {s['rss_mb']:.1f} |")
    return "\n".join(lines) + "\n"


def row_json(row: Row) -> dict[str, Any]:
    return {
        "scenario": row.scenario,
        "n": row.n,
        "tool": row.tool,
        "ok": row.ok,
        "skipped": row.skipped,
        "wall_s": _round(row.wall, 4),
        "cpu_s": _round(row.cpu, 4),
        "peak_rss_mb": _round(row.rss_mb, 1),
        "runs": [
            {
                "wall_s": round(r.usage.wall, 4),
                "user_s": round(r.usage.user, 4),
                "sys_s": round(r.usage.sys, 4),
                "maxrss_kb": r.usage.maxrss_kb,
                "returncode": r.usage.returncode,
                "correct": r.ok,
                "problems": list(r.problems[:PROBLEMS_KEPT]),
                "check_s": round(r.check_seconds, 2),
                "output": list(r.output),
            }
            for r in row.runs
        ],
    }
