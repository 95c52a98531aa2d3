"""The many-accounts benchmark (benchmarks/accounts.py) in its quick mode: the run is
correct and every figure it reports is there.  The figures themselves are measured,
never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import accounts


def test_the_quick_run_syncs_every_account_and_reports_every_figure(tmp_path: Path) -> None:
    code = accounts.main(["--quick", "--accounts", "3", "--idle", "2", "--events", "4",
                          "--out", str(tmp_path)])  # fmt: skip
    result = json.loads((tmp_path / "accounts-quick.json").read_text(encoding="utf-8"))
    assert code == 0, result
    assert result["correct"] is True
    assert result["problems"] == {}
    assert result["wrong_counts"] == []
    assert result["accounts"] == 3
    assert result["messages_per_account"] == 200
    assert result["sigterm_exit"] == 0
    for key in ("after_initial_sync", "idle_max", "end", "peak"):
        assert result["rss_kib"][key] > 0
    assert result["idle"]["seconds"] >= 2
    assert result["idle"]["cpu_seconds"] >= 0
    connections = result["connections"]
    assert connections["over_cap"] == {}
    # Each account holds at least its IDLE connection, never more than its cap.
    assert 3 <= connections["held_idle"] <= connections["cap_total"]
    assert 1 <= connections["per_account_max"] <= connections["cap_per_account"]
    assert result["push_latency_s"]["n"] == 4
    assert result["push_latency_s"]["max"] >= result["push_latency_s"]["p50"] > 0
