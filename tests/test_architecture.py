"""The shape of the package, kept so (issue 11).

- The floors in pyproject.toml's ``[tool.importlinter]``: every module imports only
  from floors below its own, and the engine sees stores only through their
  protocols (import-linter; lazy and TYPE_CHECKING imports count).
- No import circle between any two modules, inside a floor too.
- No dynamic import (``__import__``, ``importlib.import_module``): the graph above
  must be the whole truth.
- No module over 500 lines (the IMAP store's over 800).
- ``pip install .`` ships no development-only module.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "syncd"


def test_the_layers_and_the_engine_contract_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_between_modules() -> None:
    built = grimp.build_graph("syncd", exclude_type_checking_imports=False)
    graph = {m: set(built.find_modules_directly_imported_by(m)) for m in built.modules}
    # A child importing its own package's __init__ (which re-exports it) is no circle
    # of design; everything else is.
    for m, targets in graph.items():
        graph[m] = {t for t in targets if not m.startswith(t + ".")}
    assert _circles(graph) == []


def test_no_dynamic_imports() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in {
                "__import__", "importlib.import_module", "import_module",
            }:  # fmt: skip
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_modules_stay_small() -> None:
    too_big = []
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        limit = 800 if path.parent.name == "imap" else 500
        if lines > limit:
            too_big.append(f"{path.relative_to(ROOT)}: {lines} lines (limit {limit})")
    assert too_big == []


def test_the_wheel_ships_no_development_module(tmp_path: Path) -> None:
    # Built from a copy of the tracked files: setuptools leaves a build/ directory
    # behind, and a stale one in the checkout could hide or add modules.
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for name in filter(None, tracked):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("syncd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {n for n in names if n.endswith(".py")}
    assert "syncd/cli/main.py" in modules
    assert "syncd/py.typed" in names
    assert not [n for n in modules if not n.startswith("syncd/")], modules
    assert not [n for n in modules if "devserver" in n or n.startswith(("tests/", "benchmarks/"))]
