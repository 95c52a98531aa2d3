"""The seam holds: the engine imports the store protocols, never a concrete store
(counting lazy and TYPE_CHECKING imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import syncd.engine

ALLOWED_STORES = {"syncd.stores.base"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_the_engine_sees_only_the_store_protocols() -> None:
    engine = Path(syncd.engine.__file__).parent
    offending = {
        f"{path.name}: {name}"
        for path in engine.glob("*.py")
        for name in _imports(path)
        if name.startswith("syncd.stores")
        and not any(name == a or name.startswith(a + ".") for a in ALLOWED_STORES)
    }
    assert not offending
