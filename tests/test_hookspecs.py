"""Guard tests (datasette-style): every hookspec is documented and has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from syncd.ext import hookspecs

ROOT = Path(__file__).resolve().parent.parent


def hookspec_names() -> list[str]:
    return sorted(
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, hookspecs.PROJECT + "_spec")
    )


def test_there_are_hookspecs() -> None:
    assert {"syncd_rules", "syncd_classify", "syncd_before_sync", "syncd_after_sync"} <= set(
        hookspec_names()
    )


@pytest.mark.parametrize("name", hookspec_names())
def test_every_hookspec_has_a_contract_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert doc, f"{name} has no docstring"
    assert "When" in doc, f"{name}: the docstring must say when the hook fires"
    assert "Return" in doc, f"{name}: the docstring must give the return protocol"
    for arg in inspect.signature(getattr(hookspecs, name)).parameters:
        assert f"``{arg}``" in doc, f"{name}: the docstring must describe argument {arg}"


@pytest.mark.parametrize("name", hookspec_names())
def test_every_hookspec_has_a_test(name: str) -> None:
    test_files = [*ROOT.glob("tests/test_*.py"), *ROOT.glob("plugins/*/tests/test_*.py")]
    pattern = re.compile(rf"^def test_hook_{name}\b", re.MULTILINE)
    assert any(pattern.search(p.read_text(encoding="utf-8")) for p in test_files), (
        f"no test function test_hook_{name} (tests/ or plugins/*/tests/)"
    )


def test_every_hookspec_argument_is_keyword_passable_and_secret_free() -> None:
    for name in hookspec_names():
        params = inspect.signature(getattr(hookspecs, name)).parameters
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params.values()), name
        assert not {"password", "session", "keyring", "credentials"} & set(params), name
