"""Run syncd the way a user does: a TOML config file and ``python -m syncd``.

The config format is the user-facing contract (see the README)::

    [general]
    state_dir = "..."
    [accounts.NAME]
    host, port, tls, ca_file, user, password_command, maildir, layout, folders,
    exclude, sync, expunge
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devserver.dovecot import DevServer, User
from syncd.config import Config, load_config


def account_config(
    server: DevServer, user: User, maildir: Path, **overrides: Any
) -> dict[str, Any]:
    """The ``[accounts.X]`` table for ``user`` on ``server`` with its Maildir at ``maildir``.

    ``tls`` and ``ca_file`` follow the server; the password comes from
    ``password_command = ["printf", "%s", password]`` (an argv list: no shell, nothing
    to quote). ``layout`` defaults to ``maildir++``. ``overrides`` replace or add keys;
    an override of ``None`` removes the key (to test a missing setting).
    """
    config: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": server.tls,
        "user": user.name,
        "password_command": ["printf", "%s", user.password],
        "maildir": str(maildir),
        "layout": "maildir++",
    }
    if server.ca_file is not None:
        config["ca_file"] = str(server.ca_file)
    for key, value in overrides.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def _toml_value(value: Any) -> str:
    # Hand-written because the project has no TOML writer dependency (tomllib only
    # reads); JSON string escapes are valid TOML basic-string escapes.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML: {value!r}")


def _toml_key(key: str) -> str:
    return (
        key
        if key.replace("_", "").replace("-", "").isalnum() and key.isascii()
        else json.dumps(key)
    )


def toml_text(data: Mapping[str, Mapping[str, Any]]) -> str:
    """Render ``{"general": {...}, "accounts": {"a": {...}}}`` as TOML text."""
    lines: list[str] = []
    for table, body in data.items():
        scalars = {k: v for k, v in body.items() if not _is_table(v)}
        subtables = {k: v for k, v in body.items() if _is_table(v)}
        if scalars or not subtables:
            lines.append(f"[{_toml_key(table)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
            lines.append("")
        for name, sub in subtables.items():
            lines.append(f"[{_toml_key(table)}.{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in sub.items()]
            lines.append("")
    return "\n".join(lines)


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def write_config(
    tmp_path: Path,
    accounts: Mapping[str, Mapping[str, Any]],
    general: Mapping[str, Any] | None = None,
    name: str = "config.toml",
) -> Path:
    """Write ``<tmp_path>/<name>`` with ``[general]`` and one ``[accounts.X]`` per entry.

    ``general`` defaults to ``{"state_dir": "<tmp_path>/state"}`` (merged under what
    is given). Returns the path.
    """
    gen: dict[str, Any] = {"state_dir": str(tmp_path / "state")}
    gen.update(general or {})
    path = tmp_path / name
    path.write_text(toml_text({"general": gen, "accounts": dict(accounts)}), encoding="utf-8")
    return path


def run_syncd(
    *args: str,
    config: Path,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m syncd --config <config> *args`` and return the finished process
    (``stdout``/``stderr`` captured as text).

    ``env`` is added to (not substituted for) the current environment. With ``check``, a
    non-zero exit raises AssertionError showing both outputs.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"syncd {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


# The wrapper is the parent of syncd, so RUSAGE_CHILDREN is exactly syncd's peak.
_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], check=False).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.write(f'\\npeak-rss-kib={peak}\\n')\n"
    "sys.exit(code)\n"
)
_PEAK = re.compile(r"\npeak-rss-kib=(\d+)\n\Z")


def run_syncd_measured(config: Path, *args: str, timeout: float = 120) -> tuple[int, str, int]:
    """Run ``syncd --config <config> *args`` under a wrapper that reports its peak RSS
    (``getrusage(RUSAGE_CHILDREN)``).  Returns ``(exit code, stderr, peak RSS in KiB)``."""
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, sys.executable, "-m", "syncd", "--config",
         str(config), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    found = _PEAK.search(proc.stderr)
    if found is None:
        raise AssertionError(f"no peak RSS reported:\n{proc.stderr[-3000:]}")
    return proc.returncode, proc.stderr[: found.start()], int(found.group(1))


def offline_config(tmp_path: Path, plugins: str = "", **account: Any) -> Config:
    """A loaded config of one account ``a`` whose server is never contacted, with
    ``plugins`` (TOML text, e.g. a ``[plugins]`` table) appended: for tests of what
    syncd reads and loads before it connects."""
    table = {
        "host": "127.0.0.1",
        "tls": "none",
        "user": "u",
        "password_command": ["printf", "%s", "secret-pw"],
        "maildir": str(tmp_path / "Mail"),
        **account,
    }
    path = write_config(tmp_path, {"a": table})
    with path.open("a", encoding="utf-8") as f:
        f.write(plugins)
    return load_config(path)
