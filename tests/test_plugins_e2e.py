"""A third-party plugin, built in a temp dir and installed with pip, is found through
the ``syncd`` entry-point group but loaded only when `[plugins] enable` names it
(RELIABILITY PLG-07): installed alone, its code is never imported; enabled, its rules
run in `syncd sync`; a sibling plugin that raises is named and skipped, `[plugins]
disable` blocks it, `syncd plugins` lists every state.

The distribution carries its own tiny PEP 517 backend (``backend-path``), so pip
builds it offline with ``--no-build-isolation`` whatever setuptools/wheel the venv
has; it is installed with ``--target`` into a throwaway directory put on PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import summary
from support.imap import append, create_folder, server_snapshot
from support.mail import make_message
from support.maildir import local_snapshot
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User
from syncd import __version__

SPY = '''
"""Leaves a file in $ACME_SPY when it is imported and when it is called."""

import os
from pathlib import Path

from syncd.ext.hookspecs import hookimpl

Path(os.environ["ACME_SPY"], "imported").write_text("")


@hookimpl
def syncd_before_sync(account):
    Path(os.environ["ACME_SPY"], f"called in {account.name}").write_text("")
'''

PLUGIN = '''
"""A third-party syncd plugin: files invoices, and a sibling that is broken."""

from syncd.ext.hookspecs import hookimpl
from syncd.ext.rules import Action, Rule


@hookimpl
def syncd_rules(account, folder):
    if folder != "INBOX":
        return None
    target = account.settings_for("acme").get("target", "Acme")
    return [Rule("invoices", "INBOX", 'SUBJECT "invoice"', Action.move(target))]


class Broken:
    @hookimpl
    def syncd_rules(self, folder):
        raise RuntimeError("acme is broken")


broken = Broken()
'''

BACKEND = '''
"""Just enough of PEP 517 to build this one pure-Python wheel without dependencies."""

import base64
import hashlib
import zipfile
from pathlib import Path

NAME, VERSION = "syncd_acme", "1.2.3"
INFO = f"{NAME}-{VERSION}.dist-info"
FILES = {
    f"{INFO}/METADATA": f"Metadata-Version: 2.1\\nName: syncd-acme\\nVersion: {VERSION}\\n",
    f"{INFO}/WHEEL": "Wheel-Version: 1.0\\nGenerator: acme\\nRoot-Is-Purelib: true\\n"
    "Tag: py3-none-any\\n",
    f"{INFO}/entry_points.txt": "[syncd]\\nacme = syncd_acme\\nacme-broken = syncd_acme:broken\\n"
    "acme-spy = syncd_acme_spy\\n",
}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = dict(FILES)
    for module in ("syncd_acme.py", "syncd_acme_spy.py"):
        files[module] = Path(module).read_text()
    record = []
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / name, "w") as whl:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
            whl.writestr(path, data)
        record.append(f"{INFO}/RECORD,,")
        whl.writestr(f"{INFO}/RECORD", "\\n".join(record) + "\\n")
    return name
'''

PYPROJECT = """
[build-system]
requires = []
build-backend = "acme_backend"
backend-path = ["."]

[project]
name = "syncd-acme"
version = "1.2.3"
"""


@pytest.fixture(scope="module")
def acme_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build syncd-acme in a temp dir and pip-install it into a target directory."""
    src = tmp_path_factory.mktemp("syncd-acme")
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "acme_backend.py").write_text(BACKEND)
    (src / "syncd_acme.py").write_text(PLUGIN)
    (src / "syncd_acme_spy.py").write_text(SPY)
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
            "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "syncd_acme-1.2.3.dist-info" / "entry_points.txt").is_file()
    return target


def env_with(path: Path, spy: Path) -> dict[str, str]:
    """The environment for ``python -m syncd`` with syncd-acme installed at ``path``;
    acme-spy, if ever imported or called, leaves a file in ``spy``."""
    spy.mkdir(exist_ok=True)
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(path) + (os.pathsep + old if old else ""), "ACME_SPY": str(spy)}


def spied(spy: Path) -> list[str]:
    return sorted(p.name for p in spy.iterdir())


def setup(tmp_path: Path, server: DevServer, user: User, plugins: str) -> tuple[Path, Path]:
    maildir = tmp_path / "Mail"
    config = write_config(tmp_path, {"test": account_config(server, user, maildir)})
    with config.open("a", encoding="utf-8") as f:
        f.write(plugins)
    return config, maildir


def mail(server: DevServer, user: User) -> None:
    create_folder(server, user, "Bills")
    append(server, user, "INBOX", make_message(subject="invoice 42"))
    append(server, user, "INBOX", make_message(subject="hello"))


def subjects(snapshot: dict[str, list[Any]]) -> dict[str, list[str]]:
    return {folder: sorted(v.subject or "" for v in views) for folder, views in snapshot.items()}


def test_installed_plugins_are_not_loaded_until_enabled(
    tmp_path: Path, dovecot: DevServer, account: User, acme_path: Path
) -> None:
    mail(dovecot, account)
    config, maildir = setup(tmp_path, dovecot, account, '[plugins.acme]\ntarget = "Bills"\n')
    spy = tmp_path / "spy"

    proc = run_syncd("-v", "sync", config=config, env=env_with(acme_path, spy))
    quiet = run_syncd("sync", config=config, env=env_with(acme_path, spy))

    assert proc.returncode == 0, proc.stderr
    assert spied(spy) == []  # acme-spy was neither imported nor called
    for name in ("acme", "acme-broken", "acme-spy"):
        assert f"plugin {name} (syncd-acme) is installed but not enabled" in proc.stderr
    assert "installed but not enabled" not in quiet.stderr  # not said on every run
    assert "acme is broken" not in proc.stderr
    remote = server_snapshot(dovecot, account)  # acme's rule did not run
    assert subjects(remote) == {"INBOX": ["hello", "invoice 42"], "Bills": []}
    assert summary(local_snapshot(maildir, "maildir++")) == summary(remote)

    with config.open("a", encoding="utf-8") as f:
        f.write('[plugins]\nenable = ["acme-spy"]\n')
    proc = run_syncd("sync", config=config, env=env_with(acme_path, spy))

    assert proc.returncode == 0, proc.stderr
    assert spied(spy) == ["called in test", "imported"]
    assert subjects(server_snapshot(dovecot, account))["INBOX"] == ["hello", "invoice 42"]


def test_pip_installed_plugin_is_discovered_and_its_rules_run(
    tmp_path: Path, dovecot: DevServer, account: User, acme_path: Path
) -> None:
    mail(dovecot, account)
    config, maildir = setup(
        tmp_path,
        dovecot,
        account,
        '[plugins]\nenable = ["acme"]\n[plugins.acme]\ntarget = "Bills"\n',
    )
    spy = tmp_path / "spy"

    proc = run_syncd("sync", config=config, env=env_with(acme_path, spy))

    assert proc.returncode == 0, proc.stderr
    assert "rule acme:invoices: moved to Bills 1 message" in proc.stderr
    remote = server_snapshot(dovecot, account)
    assert subjects(remote) == {"INBOX": ["hello"], "Bills": ["invoice 42"]}
    assert summary(local_snapshot(maildir, "maildir++")) == summary(remote)
    assert spied(spy) == []


def test_a_plugin_that_raises_does_not_stop_the_sync(
    tmp_path: Path, dovecot: DevServer, account: User, acme_path: Path
) -> None:
    mail(dovecot, account)
    config, maildir = setup(
        tmp_path,
        dovecot,
        account,
        '[plugins]\nenable = ["acme", "acme-broken"]\n[plugins.acme]\ntarget = "Bills"\n',
    )

    proc = run_syncd("sync", config=config, env=env_with(acme_path, tmp_path / "spy"))

    assert proc.returncode == 1  # the failure shows in the exit status...
    assert "plugin acme-broken raised in syncd_rules: RuntimeError: acme is broken" in proc.stderr
    remote = server_snapshot(dovecot, account)  # ...yet the rules and the sync ran
    assert subjects(remote) == {"INBOX": ["hello"], "Bills": ["invoice 42"]}
    assert summary(local_snapshot(maildir, "maildir++")) == summary(remote)


def rows(stdout: str) -> dict[str, str]:
    """``syncd plugins`` output: plugin name -> the rest of its line, spaces squeezed
    (the built-in's row is keyed ``rules``)."""
    return {line.split()[0]: " ".join(line.split()[1:]) for line in stdout.splitlines() if line}


def test_plugins_command_lists_every_state(
    tmp_path: Path, dovecot: DevServer, account: User, acme_path: Path
) -> None:
    config, _maildir = setup(
        tmp_path, dovecot, account, '[plugins]\nenable = ["acme"]\ndisable = ["acme-broken"]\n'
    )
    spy = tmp_path / "spy"

    proc = run_syncd("plugins", config=config, env=env_with(acme_path, spy))

    assert proc.returncode == 0, proc.stderr
    assert rows(proc.stdout) == {
        "rules": f"syncd {__version__} loaded syncd_rules",
        "acme": "syncd-acme 1.2.3 loaded syncd_rules",
        "acme-broken": "syncd-acme 1.2.3 disabled",
        "acme-spy": 'syncd-acme 1.2.3 not enabled to load it: [plugins] enable = ["acme-spy"]',
    }
    assert spied(spy) == []

    config, _maildir = setup(
        tmp_path, dovecot, account, '[plugins]\nenable = ["acme", "acme-spy"]\n'
    )
    proc = run_syncd("plugins", config=config, env=env_with(acme_path, spy))

    assert proc.returncode == 0, proc.stderr
    assert rows(proc.stdout)["acme-spy"] == "syncd-acme 1.2.3 loaded syncd_before_sync"
    assert rows(proc.stdout)["acme-broken"].startswith("syncd-acme 1.2.3 not enabled")
    assert spied(spy) == ["imported"]

    # Without the package: what `enable` asks for is not there, and the exit status says so.
    without = run_syncd("plugins", config=config)
    assert without.returncode == 1, without.stderr
    assert rows(without.stdout) == {
        "rules": f"syncd {__version__} loaded syncd_rules",
        "acme": "- not installed named in [plugins] enable, but no installed package provides it",
        "acme-spy": "- not installed named in [plugins] enable, but no installed package "
        "provides it",
    }
    assert "[plugins] enable names acme, which is not installed" in without.stderr
