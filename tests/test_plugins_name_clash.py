"""``[plugins] enable = ["spam"]`` names an entry point, not a distribution.  When two
installed packages register ``spam``, which one would load depends on discovery
order and the other's module-level code would run unasked: neither is imported,
and ``syncd check`` says why."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.run import write_config

from syncd.config import load_config
from syncd.plugins import check_plugins, load_plugins

MODULE = """
from pathlib import Path

(Path({marks!r}) / "{module} imported").write_text("")
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "site"
    path.mkdir()
    (tmp_path / "marks").mkdir()
    monkeypatch.syspath_prepend(str(path))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(path) + (os.pathsep + old if old else ""))
    yield path
    for module in path.glob("*.py"):
        sys.modules.pop(module.stem, None)


def _install(site: Path, dist: str, name: str, module: str) -> None:
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[syncd]\n{name} = {module}\n")
    marks = str(site.parent / "marks")
    (site / f"{module}.py").write_text(MODULE.format(marks=marks, module=module))


def test_enabling_a_name_imports_only_one_package(tmp_path: Path, site: Path) -> None:
    _install(site, "syncd-spam", "spam", "syncd_spam_real")
    _install(site, "aaa-unrelated-tool", "spam", "unrelated_tool_spam")
    path = write_config(
        tmp_path,
        {
            "a": {
                "host": "127.0.0.1",
                "tls": "none",
                "user": "u",
                "password_command": ["printf", "%s", "pw"],
                "maildir": str(tmp_path / "Mail"),
            }
        },
    )
    with path.open("a", encoding="utf-8") as f:
        f.write('[plugins]\nenable = ["spam"]\n')
    config = load_config(path)
    plugins = load_plugins(config)
    imported = sorted(p.name for p in (site.parent / "marks").iterdir())
    # Which one would win depends on discovery order: neither is imported, and
    # `syncd check` says why.
    assert imported == [], f"code ran for an ambiguous plugin name: {imported}"
    assert plugins.failures == [], plugins.failures
    [info] = [i for i in plugins.infos if i.name == "spam" and i.distribution == "syncd-spam"]
    assert info.status == "ignored" and "aaa-unrelated-tool and syncd-spam" in (info.note or "")
    [problem] = check_plugins(config)
    assert "spam is provided by aaa-unrelated-tool and syncd-spam" in problem
