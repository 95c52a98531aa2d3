"""The three tools under test: their configs, command lines and local folder layouts.

Each tool gets its own IMAP account (identical content), its own local Maildir root and
its own state, all under one work directory; ``HOME`` and the XDG directories point
there too, so nothing of the user's own configuration is read or written.

Settings, chosen to be comparable and each tool's recommended safe defaults:

- all three fsync what they write (mbsync ``FSync yes``, offlineimap ``fsync = true``,
  syncd ``fsync = true``);
- plaintext IMAP on 127.0.0.1 (no TLS cost in the numbers), LOGIN authentication;
- all folders, folders created both ways, deletions propagated both ways (mbsync
  ``Expunge Both``; offlineimap and syncd expunge by default);
- connections: mbsync always uses one (pipelined) connection per store; syncd uses its
  default pool of 4; offlineimap ``maxconnections = 4`` to match syncd (its own default
  is 1, which makes it slower still: a folder at a time);
- local layout: Maildir++ for mbsync (``Inbox`` = the root, ``.Lists.python``) and syncd
  (its default); offlineimap has no Maildir++ mode and uses its own: ``INBOX/``,
  ``Lists.python/``. mbsync 1.4 and offlineimap keep non-ASCII names in modified UTF-7
  (``.Projets.&AMk-t&AOk-``); syncd writes UTF-8 (``.Projets.Été``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from imapclient import imap_utf7

from benchmarks.check import FolderMap

TOOLS = ("syncd", "mbsync", "offlineimap")


@dataclasses.dataclass(frozen=True)
class Tool:
    """One tool, configured for one account: how to run it and where its mail goes."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    #: The local Maildir root the tool syncs into.
    root: Path
    folder_path: FolderMap
    #: What to delete for a fresh initial sync (local mail and the tool's sync state).
    state: tuple[Path, ...]
    log: Path
    #: A header the tool adds to every message it writes locally (ignored by the check).
    added_header: bytes | None = None


@dataclasses.dataclass(frozen=True)
class Account:
    """Where a tool's IMAP account lives."""

    host: str
    port: int
    user: str
    password: str


def make(name: str, home: Path, account: Account, *, project: Path) -> Tool:
    """Write ``name``'s config under ``home`` (created) and return how to run it."""
    home.mkdir(parents=True, exist_ok=True)
    root = home / "Mail"
    root.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local/share"),
        LC_ALL="C.UTF-8",
    )
    log = home / f"{name}.log"
    if name == "syncd":
        return _syncd(home, root, account, env, log, project)
    if name == "mbsync":
        return _mbsync(home, root, account, env, log)
    if name == "offlineimap":
        return _offlineimap(home, root, account, env, log)
    raise ValueError(f"unknown tool {name!r} (known: {', '.join(TOOLS)})")


def _mutf7(name: str) -> str:
    encoded: bytes = imap_utf7.encode(name)
    return encoded.decode("ascii")


def _syncd(
    home: Path, root: Path, account: Account, env: dict[str, str], log: Path, project: Path
) -> Tool:
    secret = home / "password"
    secret.write_text(account.password, encoding="utf-8")
    secret.chmod(0o600)
    state = home / "state"
    config = home / "syncd.toml"
    config.write_text(
        "[general]\n"
        f"state_dir = {_toml(state)}\n\n"
        "[accounts.bench]\n"
        f"host = {_toml(account.host)}\n"
        f"port = {account.port}\n"
        'tls = "none"\n'
        f"user = {_toml(account.user)}\n"
        f'password_command = ["cat", {_toml(secret)}]\n'
        f"maildir = {_toml(root)}\n"
        'layout = "maildir++"\n'
        "fsync = true\n"
        "max_connections = 4\n",
        encoding="utf-8",
    )

    def folder_path(name: str) -> Path:
        return root if name == "INBOX" else root / ("." + name.replace("/", "."))

    syncd = project / ".venv" / "bin" / "syncd"
    return Tool(
        "syncd",
        (str(syncd), "--config", str(config), "-q", "sync"),
        env,
        root,
        folder_path,
        (root, state),
        log,
    )


def _mbsync(home: Path, root: Path, account: Account, env: dict[str, str], log: Path) -> Tool:
    config = home / "mbsyncrc"
    tls_key = "SSLType" if mbsync_version() < (1, 5) else "TLSType"
    config.write_text(
        "FSync yes\n\n"
        "IMAPAccount bench\n"
        f"Host {account.host}\n"
        f"Port {account.port}\n"
        f"User {account.user}\n"
        f'Pass "{account.password}"\n'
        f"{tls_key} None\n"
        "AuthMechs LOGIN\n\n"
        "IMAPStore remote\n"
        "Account bench\n\n"
        "MaildirStore local\n"
        f"Inbox {root}/\n"
        "SubFolders Maildir++\n\n"
        "Channel bench\n"
        "Far :remote:\n"
        "Near :local:\n"
        "Patterns *\n"
        "Create Both\n"
        "Expunge Both\n"
        "SyncState *\n"
        "CopyArrivalDate yes\n",
        encoding="utf-8",
    )
    config.chmod(0o600)

    def folder_path(name: str) -> Path:
        return root if name == "INBOX" else root / ("." + _mutf7(name).replace("/", "."))

    # SyncState * keeps mbsync's state inside each Maildir: wiping the root resets it.
    # mbsync inserts an "X-TUID:" header into every message it copies (it finds its
    # uploads by it); the check ignores that header in mbsync's local files.
    return Tool(
        "mbsync",
        ("mbsync", "-c", str(config), "-q", "-a"),
        env,
        root,
        folder_path,
        (root,),
        log,
        b"x-tuid",
    )


def _offlineimap(home: Path, root: Path, account: Account, env: dict[str, str], log: Path) -> Tool:
    config = home / "offlineimaprc"
    metadata = home / "offlineimap-metadata"
    config.write_text(
        "[general]\n"
        "accounts = bench\n"
        f"metadata = {metadata}\n"
        "fsync = true\n"
        "maxsyncaccounts = 1\n\n"
        "[Account bench]\n"
        "localrepository = local\n"
        "remoterepository = remote\n\n"
        "[Repository local]\n"
        "type = Maildir\n"
        f"localfolders = {root}\n\n"
        "[Repository remote]\n"
        "type = IMAP\n"
        f"remotehost = {account.host}\n"
        f"remoteport = {account.port}\n"
        f"remoteuser = {account.user}\n"
        f"remotepass = {account.password}\n"
        "ssl = no\n"
        "starttls = no\n"
        "maxconnections = 4\n",
        encoding="utf-8",
    )
    config.chmod(0o600)

    def folder_path(name: str) -> Path:
        return root / _mutf7(name).replace("/", ".")

    return Tool(
        "offlineimap",
        ("offlineimap", "-c", str(config), "-o", "-u", "quiet"),
        env,
        root,
        folder_path,
        (root, metadata),
        log,
    )


def _toml(value: object) -> str:
    """A TOML basic string (JSON's escaping is a subset TOML accepts)."""
    text: str = json.dumps(str(value), ensure_ascii=False)
    return text


# ---------------------------------------------------------------------------------------
# versions


def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    out = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return out[0] if out else f"unknown (exit {proc.returncode})"


def mbsync_version() -> tuple[int, ...]:
    """mbsync's version as a tuple, (0,) when unknown."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", _first_line(["mbsync", "--version"]))
    return tuple(int(g) for g in match.groups() if g) if match else (0,)


def versions(project: Path) -> dict[str, str]:
    """Version strings of the tools and the server, for the report."""
    return {
        "syncd": _first_line([str(project / ".venv/bin/syncd"), "--version"]),
        "mbsync": _first_line(["mbsync", "--version"]),
        "offlineimap": _first_line(["offlineimap", "--version"]),
        "offlineimap_package": _first_line(
            ["dpkg-query", "-W", "-f=${Package} ${Version}", "offlineimap3"]
        ),
        "dovecot": _first_line(["dovecot", "--version"]),
    }
