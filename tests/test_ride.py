"""The `syncd sync` fast path's reading of the command line and of where the config
is: a plain `sync` is taken, anything else is left to the ordinary command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from syncd.cli.ride import _config_path, parse


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["sync"], (None, 0, [], False)),
        (["sync", "work", "home"], (None, 0, ["work", "home"], False)),
        (["--config", "c.toml", "-q", "sync"], ("c.toml", -1, [], False)),
        (["--config=c.toml", "sync", "-vv", "work"], ("c.toml", 2, ["work"], False)),
        (["-v", "sync", "--verbose", "-q"], (None, -1, [], False)),
        (["sync", "--no-progress", "work"], (None, 0, ["work"], True)),
        (["sync", "sync"], (None, 0, ["sync"], False)),  # an account named sync
        (["--config", "sync", "sync"], ("sync", 0, [], False)),
    ],
)
def test_a_plain_sync_is_taken(argv: list[str], parsed: object) -> None:
    assert parse(argv) == parsed


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["status"],
        ["daemon"],
        ["sync", "--dry-run"],
        ["sync", "-n"],
        ["sync", "--allow-mass-delete"],
        ["sync", "--retry-refused"],
        ["sync", "--", "work"],
        ["sync", "-h"],
        ["--version"],
        ["--config"],
        ["--no-progress", "sync"],  # sync's own option: click refuses it before
        ["--config=", "sync"],
        ["--config", "a", "--config", "b", "sync"],
        ["-vq", "sync"],
        ["work", "sync"],
    ],
)
def test_anything_else_goes_the_ordinary_way(argv: list[str]) -> None:
    assert parse(argv) is None


def test_the_config_is_looked_for_where_the_command_looks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert _config_path("x.toml") == "x.toml"
    assert _config_path(None) == "/home/u/.config/syncd/config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "/xdg")
    assert _config_path(None) == "/xdg/syncd/config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative")
    assert _config_path(None) is None  # platformdirs' rules: the ordinary path
    monkeypatch.setenv("SYNCD_CONFIG", "/etc/s.toml")
    assert _config_path(None) == "/etc/s.toml"


def test_the_console_script_module_loads_neither_click_nor_the_config_reader() -> None:
    code = (
        "import sys, syncd.cli.main, syncd.cli.ride\n"
        "print(sorted(m for m in ('click', 'syncd.config', 'syncd.cli.app', 'pathlib')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n{code}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out == ["[]"]


def test_a_terminal_that_would_show_the_live_progress_line_goes_the_ordinary_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    from syncd.cli import ride

    monkeypatch.setattr(ride.sys, "stderr", Terminal())
    monkeypatch.delenv("TERM", raising=False)
    assert ride._live_wanted(0, no_progress=False)
    assert not ride._live_wanted(-1, no_progress=False)
    assert not ride._live_wanted(0, no_progress=True)
    assert ride.fast_ride(["--config", "/nonexistent/c.toml", "sync"]) is None
