"""The adoption readers against what the real mbsync (isync 1.4) and offlineimap
(offlineimap3 8) leave behind, checked message by message against the server.

Each test fills a fresh account on the session's private Dovecot (plain IMAP on
127.0.0.1: the tools are configured with ``SSLType None`` / ``ssl = no``, which is
simpler than handing them the devserver's CA and changes nothing the readers see),
runs the real tool into a temporary Maildir, and checks that the readers return the
server's folder names, UIDVALIDITY, UIDs and flags -- and that each paired file is
the server's message once the tool's own headers are ignored.

Skipped only when the tools are not installed (``apt-get install isync
offlineimap3``); the pure-format tests at the end always run.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from support.imap import folder_messages, session

import devserver.dovecot as devserver
from devserver.dovecot import DevServer, User
from syncd.adopt.common import AdoptedFolder, letters_to_flags
from syncd.adopt.identity import adopted_body_hash, adopted_identity, strip_added_headers
from syncd.adopt.mbsync import MbsyncStore, read_mbsync_store
from syncd.adopt.mbsync_state import parse_state, read_state, replay_journal
from syncd.adopt.offlineimap import (
    MAGIC,
    OfflineimapAccount,
    parse_filename,
    read_offlineimap_account,
    read_status_text,
)
from syncd.message import body_hash, message_id, wire_size
from syncd.model import FORWARDED, SYSTEM_FLAGS

FOLDERS = {"INBOX": 5, "Archive": 3, "Lists/python": 4, "Projets/Été": 3}
# What both tools carry as flags: the Maildir letters D F R S T (mbsync also P).
CARRIED = SYSTEM_FLAGS - {FORWARDED}



def _require(tool: str, package: str) -> None:
    # contrib/setup.sh installs both tools; a missing one is a broken set-up, never a skip.
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (Debian {package}): run bash contrib/setup.sh")


@pytest.fixture
def mbsync_tool() -> None:
    _require("mbsync", "isync")


@pytest.fixture
def offlineimap_tool() -> None:
    _require("offlineimap", "offlineimap3")


needs_mbsync = pytest.mark.usefixtures("mbsync_tool")
needs_offlineimap = pytest.mark.usefixtures("offlineimap_tool")


def _fill(server: DevServer, user: User) -> None:
    devserver.populate(server, user, folders=FOLDERS, seed=7)
    with session(server, user) as client:
        client.select_folder("INBOX")
        client.add_flags([1], ["$label1", "work"])
        client.add_flags([2], ["\\Draft", "\\Flagged"])
        client.select_folder("Lists/python")
        client.add_flags([2], ["\\Answered", "$Junk"])


def _server(server: DevServer, user: User) -> dict[tuple[str, ...], tuple[int, dict[int, object]]]:
    """parts -> (UIDVALIDITY, {uid: MessageView})."""
    out: dict[tuple[str, ...], tuple[int, dict[int, object]]] = {}
    with session(server, user) as client:
        for name in FOLDERS:
            uidvalidity = client.select_folder(name, readonly=True)[b"UIDVALIDITY"]
            client.unselect_folder()
            views = {v.uid: v for v in folder_messages(client, name)}
            out[tuple(name.split("/"))] = (int(uidvalidity), views)
    return out


def _check(adopted: list[AdoptedFolder], server: DevServer, user: User, source: str) -> None:
    expected = _server(server, user)
    assert {f.parts for f in adopted} == set(expected)
    for folder in adopted:
        uidvalidity, views = expected[folder.parts]
        assert folder.source == source
        assert folder.uidvalidity == uidvalidity, folder.parts
        assert folder.skipped == 0, folder.notes
        assert {p.far: p.flags for p in folder.pairs} == {
            uid: v.flags & CARRIED  # type: ignore[attr-defined]
            for uid, v in views.items()
        }, folder.parts
        for pair in folder.pairs:
            [path] = [p for p in folder.maildir_path.glob("*/*") if p.name.startswith(pair.near)]
            assert ":2," not in pair.near
            view = views[pair.far]
            assert adopted_body_hash(path.read_bytes()) == view.sha256  # type: ignore[attr-defined]
            pair_row = pair.to_pair()
            assert (pair_row.far, pair_row.near, pair_row.flags) == (
                pair.far,
                pair.near,
                pair.flags,
            )


# --------------------------------------------------------------------------- mbsync


def _mbsyncrc(
    server: DevServer, user: User, root: Path, style: str, state: str, flatten: str | None = None
) -> str:
    store = [f"Inbox {root}/INBOX", f"SubFolders {style}"]
    if flatten:
        store.append(f"Flatten {flatten}")
    if style != "Maildir++":
        store.insert(0, f"Path {root}/")
    return "\n".join(
        [
            "IMAPAccount acc",
            f"Host {server.host}",
            f"Port {server.port}",
            f"User {user.name}",
            f'Pass "{user.password}"',
            "SSLType None",
            "AuthMechs LOGIN",
            "",
            "IMAPStore far",
            "Account acc",
            "",
            "MaildirStore near",
            *store,
            "",
            "Channel ch",
            "Far :far:",
            "Near :near:",
            "Patterns *",
            "Create Near",
            *([f"SyncState {state}"] if state != "default" else []),
            "",
        ]
    )


def _run_mbsync(tmp_path: Path, rc: str) -> None:
    conf = tmp_path / "mbsyncrc"
    conf.write_text(rc, encoding="utf-8")
    proc = subprocess.run(
        ["mbsync", "-q", "-c", str(conf), "-a"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@needs_mbsync
@pytest.mark.parametrize(
    ("style", "in_box_state", "flatten"),
    [
        ("Verbatim", True, None),
        ("Maildir++", True, None),
        ("Legacy", True, None),
        ("Verbatim", False, None),
        ("Verbatim", True, "."),
        ("Verbatim", None, None),
    ],
    ids=[
        "verbatim",
        "maildir++",
        "legacy",
        "verbatim-syncstate-dir",
        "flatten-dot",
        "verbatim-default-syncstate",
    ],
)
def test_mbsync_readers_match_server(
    dovecot: DevServer,
    account: User,
    tmp_path: Path,
    style: str,
    in_box_state: bool | None,
    flatten: str | None,
) -> None:
    _fill(dovecot, account)
    root = tmp_path / "mail"
    root.mkdir()
    # None: no SyncState line, so mbsync's global default ~/.mbsync/ (HOME is tmp_path).
    state = {True: "*", False: f"{tmp_path}/state/", None: "default"}[in_box_state]
    _run_mbsync(tmp_path, _mbsyncrc(dovecot, account, root, style, state, flatten))
    store = MbsyncStore(
        inbox=root / "INBOX",
        path=None if style == "Maildir++" else root,
        subfolders=style.lower(),  # type: ignore[arg-type]
        flatten=flatten,
        sync_state=state if state != "default" else f"{tmp_path}/.mbsync/",
        global_state_stores=("far", "near") if state == "default" else None,
    )
    adopted = read_mbsync_store(store)
    _check(adopted, dovecot, account, "mbsync")
    # The non-ASCII folder is modified UTF-7 on disk, Unicode in the result.
    [projets] = [f for f in adopted if f.parts == ("Projets", "Été")]
    assert "&AMk-t&AOk-" in str(projets.maildir_path)


@needs_mbsync
def test_mbsync_file_identity_ignores_x_tuid(
    dovecot: DevServer, account: User, tmp_path: Path
) -> None:
    """The issue: mbsync's X-TUID makes syncd's plain identity miss every message."""
    _fill(dovecot, account)
    root = tmp_path / "mail"
    root.mkdir()
    _run_mbsync(tmp_path, _mbsyncrc(dovecot, account, root, "Verbatim", "*"))
    with session(dovecot, account) as client:
        client.select_folder("INBOX", readonly=True)
        raw = client.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
    [local] = list((root / "INBOX").glob("*/*,U=1:2,*"))
    data = local.read_bytes()
    assert b"\nX-TUID: " in data
    assert (wire_size(data), body_hash(data)) != (wire_size(raw), body_hash(raw))
    assert adopted_identity(data) == adopted_identity(raw)
    assert adopted_identity(data)[0] == message_id(raw)


# --------------------------------------------------------------------------- offlineimap


def _run_offlineimap(server: DevServer, user: User, tmp_path: Path, sep: str) -> None:
    conf = tmp_path / "offlineimaprc"
    conf.write_text(
        "\n".join(
            [
                "[general]",
                "accounts = acc",
                f"metadata = {tmp_path}/meta",
                "[Account acc]",
                "localrepository = loc",
                "remoterepository = rem",
                "[Repository loc]",
                "type = Maildir",
                f"localfolders = {tmp_path}/mail",
                f"sep = {sep}",
                "[Repository rem]",
                "type = IMAP",
                f"remotehost = {server.host}",
                f"remoteport = {server.port}",
                f"remoteuser = {user.name}",
                f"remotepass = {user.password}",
                "ssl = no",
                "starttls = no",
                "",
            ]
        ),
        encoding="utf-8",
    )
    (tmp_path / "mail").mkdir()
    proc = subprocess.run(
        ["offlineimap", "-c", str(conf), "-o", "-u", "quiet"],
        capture_output=True,
        text=True,
        timeout=180,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _sqlite_to_text(meta: Path) -> None:
    """Rewrite the SQLite status as the plain-text backend (offlineimap <= 7) would:
    offlineimap3 8 refuses ``status_backend = plain``, so the format is made here."""
    sqlite_dir = meta / "LocalStatus-sqlite"
    text_dir = meta / "LocalStatus"
    text_dir.mkdir()
    for db in sqlite_dir.iterdir():
        connection = sqlite3.connect(db)
        rows = connection.execute("SELECT id, flags, mtime, labels FROM status").fetchall()
        connection.close()
        lines = [MAGIC + "2"] + [
            f"{uid}|{flags}|{mtime}|{labels}" for uid, flags, mtime, labels in rows
        ]
        (text_dir / db.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.rmtree(sqlite_dir)


@needs_offlineimap
@pytest.mark.parametrize(
    ("sep", "backend"),
    [(".", "sqlite"), ("/", "sqlite"), (".", "plain")],
    ids=["sep-dot-sqlite", "sep-slash-sqlite", "sep-dot-plain"],
)
def test_offlineimap_readers_match_server(
    dovecot: DevServer, account: User, tmp_path: Path, sep: str, backend: str
) -> None:
    _fill(dovecot, account)
    _run_offlineimap(dovecot, account, tmp_path, sep)
    if backend == "plain":
        _sqlite_to_text(tmp_path / "meta" / "Account-acc")
    adopted = read_offlineimap_account(
        OfflineimapAccount(tmp_path / "mail", tmp_path / "meta", "acc", "rem", sep)
    )
    _check(adopted, dovecot, account, "offlineimap")
    on_disk = {f.maildir_path.relative_to(tmp_path / "mail").as_posix() for f in adopted}
    assert ("Lists.python" if sep == "." else "Lists/python") in on_disk


# --------------------------------------------------------------------------- formats


def test_mbsync_state_and_journal_replay(tmp_path: Path) -> None:
    state = tmp_path / ".mbsyncstate"
    state.write_text(
        "FarUidValidity 77\nNearUidValidity 99\nMaxPulledUid 3\nMaxPushedUid 2\n\n"
        "1 1 S\n2 2 DFS\n3 0 \n5 4 <\n6 5 ~S\n",
        encoding="utf-8",
    )
    parsed = read_state(state)
    assert parsed is not None
    assert (parsed.far_uidvalidity, parsed.near_uidvalidity) == (77, 99)
    assert [(r.far, r.near, r.flags, r.complete) for r in parsed.records] == [
        (1, 1, "S", True),
        (2, 2, "DFS", True),
        (3, 0, "", False),
        (5, 4, "", False),
        (6, 5, "S", False),
    ]
    # A run that died after journaling: .new exists, so the journal is replayed.
    (tmp_path / ".mbsyncstate.journal").write_text(
        "4\n> 3 0 3\n* 3 3 16\n+ 7 0\n# 7 0 abcdefghijkl\n> 7 0 6\n* 1 1 18\n- 2 2\n| 77 100\n",
        encoding="utf-8",
    )
    (tmp_path / ".mbsyncstate.new").write_text("", encoding="utf-8")
    replayed = read_state(state)
    assert replayed is not None and replayed.replayed == 8
    assert replayed.near_uidvalidity == 100
    complete = {(r.far, r.near): r.flags for r in replayed.records if r.complete}
    assert complete == {(1, 1): "FS", (3, 3): "S", (7, 6): ""}


def test_mbsync_state_rejects_damage(tmp_path: Path) -> None:
    from syncd.adopt.common import AdoptError

    with pytest.raises(AdoptError, match="unterminated"):
        parse_state("FarUidValidity 1\n")
    with pytest.raises(AdoptError, match="unrecognized header"):
        parse_state("Bogus 1\n\n")
    with pytest.raises(AdoptError, match="journal version"):
        replay_journal(parse_state("FarUidValidity 1\n\n"), "3\n")


def test_offlineimap_status_text_formats(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    v1.write_text(MAGIC + "1\n4:S\n9:RS\n", encoding="utf-8")
    v2 = tmp_path / "v2"
    v2.write_text(MAGIC + "2\n4|S|0|\n9|FS|1700000000|work\n", encoding="utf-8")
    assert read_status_text(v1) == {4: "S", 9: "RS"}
    assert read_status_text(v2) == {4: "S", 9: "FS"}
    assert parse_filename("1700000000_0.123.host,U=42,FMD5=ABC:2,S") == (42, "abc")
    assert parse_filename("1700000000_0.123.host:2,S") == (None, None)
    assert letters_to_flags("DRS") == frozenset({"\\Draft", "\\Answered", "\\Seen"})


def test_strip_added_headers_keeps_everything_else() -> None:
    crlf = (
        b"Subject: hi\r\nX-OfflineIMAP: 123-456\r\nX-Keywords: a,\r\n b\r\n"
        b"Message-ID: <m@x>\r\n\r\nX-TUID: stays in the body\r\n"
    )
    assert strip_added_headers(crlf) == (
        b"Subject: hi\r\nMessage-ID: <m@x>\r\n\r\nX-TUID: stays in the body\r\n"
    )
    lf = b"From: a\nX-TUID: abcdefghijkl\n\nbody\n"
    assert strip_added_headers(lf) == b"From: a\n\nbody\n"
    assert strip_added_headers(b"From: a\n\nbody\n") == b"From: a\n\nbody\n"


@pytest.mark.parametrize(
    ("style", "flatten", "dirs"),
    [
        ("verbatim", None, ["INBOX", "INBOX/sub", "top", "top/sub", "Proj/&AMk-t&AOk-"]),
        (
            "maildir++",
            None,
            ["INBOX", "INBOX/..sub", "INBOX/.top", "INBOX/.top.sub", "INBOX/.Proj.&AMk-t&AOk-"],
        ),
        ("legacy", None, ["INBOX", "INBOX/.sub", "top", "top/.sub", "Proj/.&AMk-t&AOk-"]),
        ("verbatim", ".", ["INBOX", "top", "top.sub", "Proj.&AMk-t&AOk-"]),
    ],
)
def test_mbsync_box_names_per_layout(
    tmp_path: Path, style: str, flatten: str | None, dirs: list[str]
) -> None:
    """isync 1.4's maildir_join_path, read backwards: every layout gives the same names."""
    from syncd.adopt.mbsync import box_parts, list_boxes

    for d in dirs:
        (tmp_path / d / "cur").mkdir(parents=True)
    (tmp_path / ".notmuch" / "xapian").mkdir(parents=True)
    store = MbsyncStore(
        inbox=tmp_path / "INBOX",
        path=None if style == "maildir++" else tmp_path,
        subfolders=style,  # type: ignore[arg-type]
        flatten=flatten,
    )
    names = {
        box_parts(box, store): path.relative_to(tmp_path).as_posix()
        for box, path in list_boxes(store).items()
    }
    expected = {("INBOX",), ("top",), ("top", "sub"), ("Proj", "Été")}
    if flatten is None:
        expected.add(("INBOX", "sub"))
    assert set(names) == expected
    assert names[("INBOX",)] == "INBOX"


@needs_mbsync
def test_mbsync_pushed_message_pairs_and_matches(
    dovecot: DevServer, account: User, tmp_path: Path
) -> None:
    """A message mbsync *uploaded* carries X-TUID on the server too; it still pairs, and
    the stripped identities agree whichever side has the header."""
    _fill(dovecot, account)
    root = tmp_path / "mail"
    root.mkdir()
    rc = _mbsyncrc(dovecot, account, root, "Verbatim", "*")
    _run_mbsync(tmp_path, rc)
    raw = b"From: a@example.org\nSubject: local\nMessage-ID: <local-1@example.org>\n\nhello\n"
    (root / "Archive" / "new" / "1700000000.local1.host:2,F").write_bytes(raw)
    _run_mbsync(tmp_path, rc)
    [archive] = [
        f
        for f in read_mbsync_store(
            MbsyncStore(inbox=root / "INBOX", path=root, subfolders="verbatim")
        )
        if f.parts == ("Archive",)
    ]
    pushed = [p for p in archive.pairs if p.near.startswith("1700000000.local1.host")]
    assert len(pushed) == 1 and pushed[0].flags == frozenset({"\\Flagged"})
    with session(dovecot, account) as client:
        client.select_folder("Archive", readonly=True)
        on_server = client.fetch([pushed[0].far], ["BODY.PEEK[]"])[pushed[0].far][b"BODY[]"]
    assert b"X-TUID: " in on_server
    assert adopted_identity(on_server) == adopted_identity(raw)
