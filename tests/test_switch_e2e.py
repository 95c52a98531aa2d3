"""Switching to syncd from mbsync or offlineimap (issue 10), end to end with the real
tools on the private Dovecot.

Each scenario fills a fresh account (INBOX, Archive, ``Lists/python``, ``Projets/Été``;
mixed flags and a keyword), lets the real tool sync it into a Maildir, changes both
sides afterwards (a local flag by renaming the file's info part, a local deletion, a
server flag, one new message on each side), imports the tool's config with ``syncd
import ... --output``, checks it with ``syncd check`` and runs a plain ``syncd sync``
over the same Maildir, with ``HOME`` pointing where the tool kept its state.

What a switching user must get:

- the same directories (no ``Projets/Été`` beside ``Projets/&AMk-t&AOk-``), no new
  server folder, no pre-existing file rewritten or moved (same inode) -- works today
  (``layout``/``local_names`` from the importers), as does the agreement between the
  ``syncd.adopt`` readers and syncd's own folder mapping that the seeding joins on;
- no duplicate on either side, both sides converged on the expected messages and flags,
  the post-switch changes propagated, and no message body fetched or appended but the
  two new messages' (Dovecot's logout counters).

The second group needs the first sync to *seed* syncd's state from the other tool's
(``[accounts.NAME.adopt]``, written by ``syncd import``; :mod:`syncd.engine.seed`:
pairs by UID, its last-synced flags as the baseline).

Also: an mbsync state whose UIDVALIDITY is not the server's falls back to content
pairing, and a first run killed (SIGKILL) half-way ends like an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from imapclient import imap_utf7
from support.imap import MessageView, append, server_snapshot, session, set_flags
from support.mail import make_message
from support.maildir import LocalView, deliver, folder_messages, set_local_flags
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, Traffic, User
from syncd.adopt.common import AdoptedFolder
from syncd.adopt.mbsync import MbsyncStore, read_mbsync_store
from syncd.adopt.offlineimap import OfflineimapAccount, read_offlineimap_account
from syncd.config import AccountConfig, load_config
from syncd.folders import local_path

ETE = "\u00c9t\u00e9"
FOLDERS = {"INBOX": 6, "Archive": 4, "Lists/python": 5, f"Projets/{ETE}": 4}
PAD = 20_000  # every pre-existing message is bigger than any command traffic of one sync
COMMAND_SLACK = 12_000  # what a sync may send besides the new message (commands, flags)

# The changes made after the tool's last run (folder, message index).
LOCAL_FLAG = ("INBOX", 2)  # gets \Flagged by a rename of its file
LOCAL_DELETE = ("Archive", 1)
SERVER_FLAG = ("Lists/python", 0)  # gets \Flagged on the server
NEW_FAR = ("INBOX", "<new-far@switch.test>")
NEW_NEAR = (f"Projets/{ETE}", "<new-near@switch.test>")


@dataclasses.dataclass(frozen=True)
class Variant:
    tool: str  # "mbsync" | "offlineimap"
    layout: str  # how the tool lays folders out, in syncd's words
    style: str  # mbsync SubFolders / offlineimap sep

    @property
    def id(self) -> str:
        return f"{self.tool}-{self.style}"


VARIANTS = {
    v.id: v
    for v in (
        Variant("mbsync", "nested", "Verbatim"),
        Variant("mbsync", "maildir++", "Maildir++"),
        Variant("offlineimap", "nested", "/"),
        Variant("offlineimap", "flat", "."),
    )
}


def mid(folder: str, index: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9]", "-", folder.encode("ascii", "backslashreplace").decode())
    return f"<{slug}-{index}@switch.test>"


def initial_flags(folder: str, index: int) -> list[str]:
    flags = []
    if index % 3 != 1:
        flags.append("\\Seen")
    if index % 4 == 1:
        flags.append("\\Flagged")
    if index % 5 == 2:
        flags.append("\\Answered")
    if folder == "INBOX" and index == 0:
        flags += ["\\Draft", "$label1"]  # a keyword the tools do not carry
    return flags


# --------------------------------------------------------------------------- the tools


def _require(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (Debian {package}): run bash contrib/setup.sh")


def tool_env(home: Path) -> dict[str, str]:
    """The environment of every tool and syncd run: all per-user paths under ``home``."""
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }


def mbsyncrc(server: DevServer, user: User, home: Path, style: str) -> str:
    mail = home / "Mail"
    store = (
        [f"Inbox {mail}/INBOX", "SubFolders Maildir++"]
        if style == "Maildir++"
        else [f"Path {mail}/", f"Inbox {mail}/INBOX", f"SubFolders {style}"]
    )
    # Verbatim keeps its state in each folder (SyncState *), Maildir++ in mbsync's
    # default ~/.mbsync/: adoption must find both.
    state = ["SyncState *"] if style == "Verbatim" else []
    return "\n".join(
        [
            "IMAPAccount acc",
            f"Host {server.host}",
            f"Port {server.port}",
            f"User {user.name}",
            f'PassCmd "cat {home}/password"',
            "SSLType None",
            "AuthMechs LOGIN",
            "",
            "IMAPStore far",
            "Account acc",
            "",
            "MaildirStore near",
            *store,
            "",
            "Channel mail",
            "Far :far:",
            "Near :near:",
            "Patterns *",
            "Create Both",
            "Expunge Both",
            *state,
            "",
        ]
    )


def offlineimaprc(server: DevServer, user: User, home: Path, sep: str) -> str:
    # metadata left at its default, ~/.offlineimap: adoption must find it there.
    return "\n".join(
        [
            "[general]",
            "accounts = mail",
            "[Account mail]",
            "localrepository = loc",
            "remoterepository = rem",
            "[Repository loc]",
            "type = Maildir",
            f"localfolders = {home}/Mail",
            f"sep = {sep}",
            "[Repository rem]",
            "type = IMAP",
            f"remotehost = {server.host}",
            f"remoteport = {server.port}",
            f"remoteuser = {user.name}",
            f"remotepassfile = {home}/password",
            "ssl = no",
            "starttls = no",
            "",
        ]
    )


def run_tool(variant: Variant, server: DevServer, user: User, home: Path) -> Path:
    """Write the tool's config under ``home``, sync with it, return the config's path."""
    (home / "Mail").mkdir(parents=True, exist_ok=True)
    (home / "password").write_text(user.password, encoding="utf-8")
    env = {**tool_env(home), "PATH": "/usr/bin:/bin"}
    if variant.tool == "mbsync":
        _require("mbsync", "isync")
        rc = home / ".mbsyncrc"
        rc.write_text(mbsyncrc(server, user, home, variant.style), encoding="utf-8")
        argv = ["mbsync", "-q", "-c", str(rc), "-a"]
    else:
        _require("offlineimap", "offlineimap3")
        rc = home / ".offlineimaprc"
        rc.write_text(offlineimaprc(server, user, home, variant.style), encoding="utf-8")
        argv = ["offlineimap", "-c", str(rc), "-o", "-u", "quiet"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return rc


# --------------------------------------------------------------------------- the near side
# Read independently of syncd (an oracle must not share its bugs): the tool's own layout,
# names decoded from modified UTF-7 with IMAPClient's codec.


def _decode(name: str) -> str:
    return str(imap_utf7.decode(name.encode("ascii"))) if "&" in name else name


def local_folders(root: Path, layout: str) -> dict[str, Path]:
    """Folder name (``/``-separated, decoded) -> directory, as the tool laid them out."""
    found: dict[str, Path] = {}
    if layout == "maildir++":
        if (root / "cur").is_dir():
            found["INBOX"] = root
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") and (entry / "cur").is_dir():
                found["/".join(_decode(p) for p in entry.name[1:].split("."))] = entry
        return found
    if layout == "flat":
        for entry in sorted(root.iterdir()):
            if not entry.name.startswith(".") and (entry / "cur").is_dir():
                found["/".join(_decode(p) for p in entry.name.split("."))] = entry
        return found
    for dirpath, dirnames, _files in os.walk(root):
        here = Path(dirpath)
        if here != root and "cur" in dirnames:
            found["/".join(_decode(p) for p in here.relative_to(root).parts)] = here
        dirnames[:] = sorted(
            d for d in dirnames if d not in ("cur", "new", "tmp") and not d.startswith(".")
        )
    return found


def local_snapshot(root: Path, layout: str) -> dict[str, list[LocalView]]:
    return {name: folder_messages(path) for name, path in local_folders(root, layout).items()}


def maildir_root(variant: Variant, home: Path) -> Path:
    # mbsync's Maildir++ store is rooted at its Inbox.
    return home / "Mail" / "INBOX" if variant.layout == "maildir++" else home / "Mail"


def files(root: Path) -> dict[str, tuple[int, int, int]]:
    """Maildir unique name (file name without the info part) -> (inode, size, mtime_ns)
    of every message file under ``root``."""
    out: dict[str, tuple[int, int, int]] = {}
    for path in root.rglob("*"):
        if path.parent.name in ("cur", "new") and path.is_file():
            st = path.stat()
            out[path.name.split(":2,", 1)[0]] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def by_id(views: list[Any]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for view in views:
        assert view.message_id is not None
        out[view.message_id] = view.flags
    return out


def local_file(root: Path, layout: str, folder: str, message_id: str) -> Path:
    [view] = [
        v
        for v in folder_messages(local_folders(root, layout)[folder])
        if v.message_id == message_id
    ]
    return view.path


# --------------------------------------------------------------------------- one switch


@dataclasses.dataclass
class Switched:
    """Everything observed around one switch; the tests below each assert a part."""

    variant: Variant
    home: Path
    root: Path
    import_run: subprocess.CompletedProcess[str]
    imported: str
    check_run: subprocess.CompletedProcess[str]
    sync_run: subprocess.CompletedProcess[str]
    dirs_before: set[str]
    dirs_after: set[str]
    server_folders_before: set[str]
    server_folders_after: set[str]
    files_before: dict[str, tuple[int, int, int]]
    files_after: dict[str, tuple[int, int, int]]
    expected: dict[str, dict[str, frozenset[str]]]
    server_after: dict[str, list[MessageView]]
    local_after: dict[str, list[LocalView]]
    traffic: Traffic
    new_far_size: int
    new_near_size: int
    adopted: list[AdoptedFolder]  # what the readers make of the tool's state, before syncd
    account: AccountConfig  # the imported config's account, loaded


def fill(server: DevServer, user: User) -> None:
    for folder, count in FOLDERS.items():
        for i in range(count):
            raw = make_message(subject=f"{folder} {i}", message_id=mid(folder, i), size_pad=PAD)
            append(server, user, folder, raw, flags=initial_flags(folder, i))


def change_both_sides(variant: Variant, server: DevServer, user: User, root: Path) -> int:
    """The changes made after the tool's last run; returns the new local message's size."""
    layout = variant.layout
    path = local_file(root, layout, LOCAL_FLAG[0], mid(*LOCAL_FLAG))
    letters = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
    set_local_flags(path, letters + "F")
    local_file(root, layout, LOCAL_DELETE[0], mid(*LOCAL_DELETE)).unlink()
    with session(server, user) as client:
        client.select_folder(SERVER_FLAG[0], readonly=True)
        [uid] = client.search(["HEADER", "Message-ID", mid(*SERVER_FLAG)])
    set_flags(server, user, SERVER_FLAG[0], [uid], ["\\Flagged"], mode="add")
    append(server, user, NEW_FAR[0], make_message(subject="new far", message_id=NEW_FAR[1]),
           flags=["\\Seen"])  # fmt: skip
    raw = make_message(subject="new near", message_id=NEW_NEAR[1])
    deliver(local_folders(root, layout)[NEW_NEAR[0]], raw, "S")
    return len(raw)


def expected_end(server: DevServer, user: User) -> dict[str, dict[str, frozenset[str]]]:
    """What both sides must hold after the switch: the server as it is now, with the
    local changes applied."""
    expected = {f: by_id(views) for f, views in server_snapshot(server, user).items()}
    expected[LOCAL_FLAG[0]][mid(*LOCAL_FLAG)] |= {"\\Flagged"}
    del expected[LOCAL_DELETE[0]][mid(*LOCAL_DELETE)]
    expected[NEW_NEAR[0]][NEW_NEAR[1]] = frozenset({"\\Seen"})
    return expected


def read_adopted(variant: Variant, home: Path) -> list[AdoptedFolder]:
    """The readers of syncd.adopt on what the tool left, told what its config says."""
    mail = home / "Mail"
    if variant.tool == "offlineimap":
        return read_offlineimap_account(
            OfflineimapAccount(mail, home / ".offlineimap", "mail", "rem", variant.style)
        )
    if variant.style == "Maildir++":
        store = MbsyncStore(
            inbox=mail / "INBOX",
            subfolders="maildir++",
            sync_state=f"{home}/.mbsync/",
            global_state_stores=("far", "near"),
        )
    else:
        store = MbsyncStore(inbox=mail / "INBOX", path=mail, subfolders="verbatim")
    return read_mbsync_store(store)


def imported_account(config: Path) -> AccountConfig:
    [account] = load_config(config).accounts.values()  # the tool's paths are absolute here
    return account


def import_config(
    variant: Variant, home: Path, rc: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    config = home / "syncd.toml"
    proc = run_syncd(
        "import", variant.tool, str(rc), "--output", str(config), config=config,
        env=tool_env(home),
    )  # fmt: skip
    return config, proc


@dataclasses.dataclass
class Prepared:
    """A switch up to (not including) ``syncd sync``."""

    config: Path
    root: Path
    imported: subprocess.CompletedProcess[str]
    expected: dict[str, dict[str, frozenset[str]]]
    new_near_size: int


def prepare(variant: Variant, server: DevServer, user: User, home: Path) -> Prepared:
    fill(server, user)
    rc = run_tool(variant, server, user, home)
    root = maildir_root(variant, home)
    near_size = change_both_sides(variant, server, user, root)
    config, imported = import_config(variant, home, rc)
    assert imported.returncode == 0, imported.stderr
    return Prepared(config, root, imported, expected_end(server, user), near_size)


def switch(variant: Variant, server: DevServer, home: Path) -> Switched:
    user = server.add_user()
    prepared = prepare(variant, server, user, home)
    config, root = prepared.config, prepared.root
    checked = run_syncd("check", config=config, env=tool_env(home))
    adopted = read_adopted(variant, home)
    dirs_before = set(local_folders(root, variant.layout))
    server_before = set(server_snapshot(server, user))
    files_before = files(home / "Mail")
    offset = quiet_offset(server, user)
    synced = run_syncd("sync", config=config, env=tool_env(home), timeout=300)
    traffic = server.traffic(user, offset)
    return Switched(
        variant=variant,
        home=home,
        root=root,
        import_run=prepared.imported,
        imported=config.read_text(encoding="utf-8") if config.exists() else "",
        check_run=checked,
        sync_run=synced,
        dirs_before=dirs_before,
        dirs_after=set(local_folders(root, variant.layout)),
        server_folders_before=server_before,
        server_folders_after=set(server_snapshot(server, user)),
        files_before=files_before,
        files_after=files(home / "Mail"),
        expected=prepared.expected,
        server_after=server_snapshot(server, user),
        local_after=local_snapshot(root, variant.layout),
        traffic=traffic,
        new_far_size=len(make_message(subject="new far", message_id=NEW_FAR[1])),
        new_near_size=prepared.new_near_size,
        adopted=adopted,
        account=imported_account(config),
    )


def quiet_offset(server: DevServer, user: User, *, timeout: float = 10.0) -> int:
    """The log offset to count a run's traffic from, once every session of ``user`` the
    test opened so far has its logout line written.  Dovecot writes that line a moment
    after the client has gone: a snapshot's line (every body fetched) landing after the
    offset would be counted as the run's."""
    logins = re.compile(rf"Login: user=<{re.escape(user.name)}>,.* session=<([^>]*)>")
    logouts = re.compile(rf"imap\({re.escape(user.name)}\)<[^>]*><([^>]*)>: Info: Disconnected")
    deadline = time.monotonic() + timeout
    while True:
        offset = server.log_offset()
        text = server.log_file.read_bytes()[:offset].decode("utf-8", "replace")
        if set(logins.findall(text)) <= set(logouts.findall(text)):
            return offset
        if time.monotonic() > deadline:
            return offset
        time.sleep(0.05)


_switched: dict[str, Switched | Exception] = {}


@pytest.fixture
def switched(
    dovecot: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Switched]:
    """``switched(variant id)``: the scenario run once per variant per session (each test
    below asserts one part of it); a failed run fails every test that asks for it."""

    def get(variant_id: str) -> Switched:
        if variant_id not in _switched:
            home = tmp_path_factory.mktemp(f"switch-{variant_id}")
            try:
                _switched[variant_id] = switch(VARIANTS[variant_id], dovecot, home)
            except Exception as exc:  # kept, and re-raised by every test asking for it
                _switched[variant_id] = exc
        found = _switched[variant_id]
        if isinstance(found, Exception):
            raise RuntimeError(f"the {variant_id} switch scenario failed") from found
        return found

    return get


def variants() -> list[Any]:
    """Every variant as a parameter."""
    return [pytest.param(v, id=v) for v in VARIANTS]


def duplicates(snapshot: Mapping[str, list[Any]], key: str) -> dict[str, int]:
    out = {}
    for folder, views in snapshot.items():
        extra = sum(n - 1 for n in Counter(getattr(v, key) for v in views).values() if n > 1)
        if extra:
            out[folder] = extra
    return out


# --------------------------------------------------------------------------- works today


@pytest.mark.parametrize("variant_id", variants())
def test_imported_config_passes_check_and_syncs(
    switched: Callable[[str], Switched], variant_id: str
) -> None:
    s = switched(variant_id)
    assert s.import_run.returncode == 0, s.import_run.stderr
    notes = [
        line.removeprefix("syncd import: ")
        for line in s.import_run.stderr.splitlines()
        if line.startswith("syncd import: ")
    ]
    # Everything carried over; mbsync's SyncState is named as the state adoption reads.
    assert [n for n in notes if not n.startswith("SyncState ")] == [], notes
    assert f'layout = "{s.variant.layout}"' in s.imported
    assert 'local_names = "imap-utf-7"' in s.imported
    assert s.check_run.returncode == 0, s.check_run.stdout + s.check_run.stderr
    assert s.sync_run.returncode == 0, s.sync_run.stderr


@pytest.mark.parametrize("variant_id", variants())
def test_syncd_uses_the_tools_directories_and_creates_no_folder(
    switched: Callable[[str], Switched], variant_id: str
) -> None:
    """The folder names map both ways: ``Projets/&AMk-t&AOk-`` (or ``Projets.&AMk-t&AOk-``)
    is ``Projets/Été`` on the server; no second directory, no second server folder."""
    s = switched(variant_id)
    assert s.dirs_before == set(FOLDERS)
    assert s.dirs_after == s.dirs_before
    assert s.server_folders_after == s.server_folders_before == set(FOLDERS)
    on_disk = {p.relative_to(s.root).as_posix() for p in s.root.rglob("cur")}
    assert not any(ETE in p for p in on_disk), on_disk
    assert any("&AMk-t&AOk-" in p for p in on_disk), on_disk
    # syncd's own words: nothing about an unusable folder name.
    assert "not valid modified UTF-7" not in s.sync_run.stderr
    assert "does not map back" not in s.sync_run.stderr


@pytest.mark.parametrize("variant_id", variants())
def test_existing_files_are_left_where_they_are(
    switched: Callable[[str], Switched], variant_id: str
) -> None:
    """No rename storm, no rewrite: every file the tool left (and the one delivered since)
    keeps its inode, size and mtime; a flag change renames within the folder only.
    (That nothing *else* is added is test_no_duplicate_on_either_side's.)"""
    s = switched(variant_id)
    before, after = s.files_before, s.files_after
    assert set(before) <= set(after), "a pre-existing file is gone"
    changed = {name for name in before if after[name] != before[name]}
    assert changed == set(), "pre-existing files rewritten (inode, size or mtime changed)"


@pytest.mark.parametrize("variant_id", variants())
def test_readers_and_syncd_agree_on_every_folders_directory(
    switched: Callable[[str], Switched], variant_id: str
) -> None:
    """What the seeding joins on: each AdoptedFolder's directory is the one syncd's
    own mapping (the imported layout and local_names) gives its server name, and the
    readers found the tool's pairs (the post-switch changes aside)."""
    s = switched(variant_id)
    account = s.account
    assert {f.server_name for f in s.adopted} == set(FOLDERS)
    for folder in s.adopted:
        path = local_path(account.maildir, folder.parts, account.layout, names=account.local_names)
        assert path == folder.maildir_path, folder.parts
        assert folder.uidvalidity is not None and folder.pairs, folder.notes
    pairs = sum(len(f.pairs) for f in s.adopted)
    # every message the tool synced, less the one deleted locally since (mbsync's state
    # still lists it: skipped, its file is gone)
    assert pairs == sum(FOLDERS.values()) - 1, [f.notes for f in s.adopted]


# --------------------------------------------------------------------------- the seeding


# The first sync starts from the tool's pairs and flags ([accounts.NAME.adopt], written
# by the import); without them mbsync's X-TUID would defeat content pairing.
@pytest.mark.parametrize("variant_id", variants())
def test_no_duplicate_on_either_side(switched: Callable[[str], Switched], variant_id: str) -> None:
    s = switched(variant_id)
    assert duplicates(s.server_after, "sha256") == {}, "the same bytes twice on the server"
    assert duplicates(s.server_after, "message_id") == {}, "a message twice on the server"
    assert duplicates(s.local_after, "message_id") == {}, "a message twice in the Maildir"


@pytest.mark.parametrize("variant_id", variants())
def test_both_sides_converge_with_the_changes_propagated(
    switched: Callable[[str], Switched], variant_id: str
) -> None:
    s = switched(variant_id)
    server = {f: by_id(v) for f, v in s.server_after.items()}
    local = {f: by_id(v) for f, v in s.local_after.items()}
    # The post-switch changes, one by one (clearer failures than the whole picture):
    assert mid(*LOCAL_DELETE) not in server[LOCAL_DELETE[0]], "local deletion not propagated"
    assert "\\Flagged" in server[LOCAL_FLAG[0]][mid(*LOCAL_FLAG)], "local flag not pushed"
    assert "\\Flagged" in local[SERVER_FLAG[0]][mid(*SERVER_FLAG)], "server flag not pulled"
    new_far = [v for v in s.local_after[NEW_FAR[0]] if v.message_id == NEW_FAR[1]]
    new_near = [v for v in s.server_after[NEW_NEAR[0]] if v.message_id == NEW_NEAR[1]]
    assert (len(new_far), len(new_near)) == (1, 1), "each new message copied once"
    assert server == s.expected
    assert local == s.expected


@pytest.mark.parametrize("variant_id", variants())
def test_no_body_moves_but_the_new_messages(
    switched: Callable[[str], Switched], variant_id: str
) -> None:
    s = switched(variant_id)
    t = s.traffic
    assert t.sessions >= 1
    assert t.body_count <= 1 and t.body_bytes <= s.new_far_size, (t, s.sync_run.stderr)
    # Every adopted message is > PAD bytes: one re-upload would show.
    assert t.in_bytes < s.new_near_size + COMMAND_SLACK, t


# --------------------------------------------------------------------------- other cases


def _uidvalidity_of_another_server(home: Path) -> int:
    """Rewrite every mbsync state as if it were for another server (FarUidValidity+1000)."""
    count = 0
    for state in home.rglob(".mbsyncstate"):
        text = state.read_text(encoding="utf-8")
        new, n = re.subn(
            r"^FarUidValidity (\d+)$",
            lambda m: f"FarUidValidity {int(m.group(1)) + 1000}",
            text,
            flags=re.M,
        )
        assert n == 1, state
        state.write_text(new, encoding="utf-8")
        count += 1
    return count


def test_mbsync_state_for_another_uidvalidity_falls_back_to_content(
    dovecot: DevServer, account: User, tmp_path: Path
) -> None:
    variant = VARIANTS["mbsync-Verbatim"]
    fill(dovecot, account)
    rc = run_tool(variant, dovecot, account, tmp_path)
    assert _uidvalidity_of_another_server(tmp_path) == len(FOLDERS)
    config, imported = import_config(variant, tmp_path, rc)
    assert imported.returncode == 0, imported.stderr
    expected = {f: by_id(v) for f, v in server_snapshot(dovecot, account).items()}
    synced = run_syncd("sync", config=config, env=tool_env(tmp_path), timeout=300)
    assert synced.returncode == 0, synced.stderr
    server = server_snapshot(dovecot, account)
    local = local_snapshot(tmp_path / "Mail", variant.layout)
    assert duplicates(server, "message_id") == {}, "a message twice on the server"
    assert duplicates(local, "message_id") == {}, "a message twice in the Maildir"
    assert {f: set(by_id(v)) for f, v in server.items()} == {
        f: set(ids) for f, ids in expected.items()
    }
    assert {f: set(by_id(v)) for f, v in local.items()} == {
        f: set(ids) for f, ids in expected.items()
    }


def test_first_run_killed_halfway_ends_like_an_uninterrupted_one(
    dovecot: DevServer, tmp_path: Path
) -> None:
    """SIGKILL at the first and at the middle durable step of the first run over an
    adopted Maildir (crashpoints.step: with the seeding, the first is where a Maildir is
    half adopted), then one more run: the end state the scenario expects, nothing twice."""
    variant = VARIANTS["mbsync-Verbatim"]
    ref_home = tmp_path / "reference"
    reference = prepare(variant, dovecot, dovecot.add_user(), ref_home)
    log = tmp_path / "steps.log"
    env = {**tool_env(ref_home), "SYNCD_TEST_CRASH_LOG": str(log)}
    run_syncd("sync", config=reference.config, env=env, check=True, timeout=300)
    steps = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    assert len(steps) >= 2, steps
    for crash_at in sorted({1, len(steps) // 2}):
        user = dovecot.add_user()
        home = tmp_path / f"crash-at-{crash_at}"
        run = prepare(variant, dovecot, user, home)
        env = {**tool_env(home), "SYNCD_TEST_CRASH_AT": str(crash_at)}
        crashed = run_syncd("sync", config=run.config, env=env, timeout=300)
        where = (crash_at, steps[crash_at - 1])
        assert crashed.returncode == -signal.SIGKILL, (where, crashed.stderr)
        run_syncd("sync", config=run.config, env=tool_env(home), check=True, timeout=300)
        server = server_snapshot(dovecot, user)
        local = local_snapshot(run.root, variant.layout)
        assert duplicates(server, "message_id") == {}, (where, "a message twice on the server")
        assert duplicates(local, "message_id") == {}, (where, "a message twice in the Maildir")
        assert {f: by_id(v) for f, v in server.items()} == run.expected, where
        assert {f: by_id(v) for f, v in local.items()} == run.expected, where


@pytest.mark.parametrize("layout", ["nested", "flat", "maildir++"])
def test_imap_utf7_names_both_ways_in_every_layout(
    dovecot: DevServer, account: User, tmp_path: Path, layout: str
) -> None:
    """After the switch, folders created on either side are spelled as the tool would:
    a new server folder gets a modified UTF-7 directory, a directory made the tool's way
    becomes a server folder with the decoded name; the next run changes nothing."""
    append(dovecot, account, "Neu/\u00c4rger", make_message(message_id="<far@utf7.test>"))
    maildir = tmp_path / "Mail"
    spelled = {"nested": "Lokal/&AMk-", "flat": "Lokal.&AMk-", "maildir++": ".Lokal.&AMk-"}
    deliver(maildir / spelled[layout], make_message(message_id="<near@utf7.test>"), "S")
    config = write_config(
        tmp_path,
        {"t": account_config(dovecot, account, maildir, layout=layout, local_names="imap-utf-7")},
    )
    run_syncd("sync", config=config, check=True)
    written = {"nested": "Neu/&AMQ-rger", "flat": "Neu.&AMQ-rger", "maildir++": ".Neu.&AMQ-rger"}
    assert (maildir / written[layout] / "cur").is_dir()
    assert not any("\u00c4" in p.as_posix() for p in maildir.rglob("*"))
    server = server_snapshot(dovecot, account)
    assert [v.message_id for v in server["Lokal/\u00c9"]] == ["<near@utf7.test>"]
    assert "Lokal/&AMk-" not in server
    local = local_snapshot(maildir, layout)
    assert [v.message_id for v in local["Neu/\u00c4rger"]] == ["<far@utf7.test>"]
    assert set(local) == set(server)
    again = run_syncd("sync", config=config, check=True)
    assert "0 downloaded, 0 uploaded" in again.stderr
