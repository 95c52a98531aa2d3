"""pytest imports test modules by basename (rootdir-relative "prepend" mode): two
test files with one name anywhere under tests/ and plugins/ stop the whole run at
collection ("import file mismatch").  Caught here with a clear message instead."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_two_test_modules_share_a_basename() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for top in ("tests", "plugins"):
        for path in (ROOT / top).rglob("test_*.py"):
            seen[path.name].append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert clashes == {}, f"rename one of each: {clashes}"
