"""A malicious server (RELIABILITY.md group F, plus the [H] cases of group D): a proxy in
front of the real Dovecot rewrites chosen responses.  syncd must never write outside
the Maildir root and its state directory (O6), never allocate what a server announces,
never pair a message with a UID the server lied about, and say what it refused."""

from __future__ import annotations

import re
from pathlib import Path

from faults.common import (
    config_for,
    converged,
    duplicates,
    idempotent,
    message,
    seed,
    settles,
    tree,
)
from faults.proxy import Conn, Direction, front
from support.imap import append, server_snapshot
from support.maildir import deliver, local_snapshot, set_local_flags
from support.run import run_syncd

from devserver.dovecot import DevServer, User


def _tagged_ok(line: bytes, conn: Conn, command: bytes) -> bool:
    return bool(re.match(rb"[A-Z0-9]+ OK\b", line)) and conn.command_of(line) == command


def _inject_list(extra: bytes) -> object:
    """Rewriter: add ``extra`` (raw ``* LIST`` lines) to every ``LIST "" "*"`` answer."""

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and _tagged_ok(line, conn, b"LIST"):
            tag = line.split(b" ", 1)[0]
            if conn.command_lines.get(tag, b"").endswith(b'"*"'):
                return extra + line
        return line

    return rewrite


HOSTILE_NAMES = [
    b'"../../escaped"',
    b'"../x"',
    b'"/etc"',
    b'"/tmp/syncd-evil"',
    b'"."',
    b'".."',
    b'""',
    b'"a//b"',
    b'"a/./b"',
    b'"a/../../b"',
    b'"cur"',
    b'"new/x"',
    b'"~root"',
    b'"' + b"y" * 300 + b'"',
    b'"' + b"/".join([b"z" * 200] * 10) + b'"',  # 2000 bytes
    b"{7}\r\nnul\x00bad",  # NUL through a literal
    b"{6}\r\ncr\rlf\n",
    b'"esc\x1b[2Jape"',
    b'"Bad&AO"',  # unterminated modified UTF-7
    b'"amp&-ok&"',  # & not followed by base64 and -
    b'"raw\xc3\x28utf8"',  # invalid UTF-8
]


def test_mal01_02_08_hostile_folder_names_never_escape_the_root(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-01, MAL-02, MAL-08, MAL-09 (names): every hostile LIST entry is refused or
    mapped inside the root; INBOX and Archive still sync; nothing outside changes."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    extra = b"".join(b'* LIST (\\HasNoChildren) "/" ' + n + b"\r\n" for n in HOSTILE_NAMES)
    outside = tmp_path.parent
    before = {k: v for k, v in tree(outside).items() if not k.startswith(tmp_path.name)}
    etc_before = sorted(p.name for p in Path("/etc").iterdir())
    with front(dovecot, rewrite=_inject_list(extra)) as p:  # type: ignore[arg-type]
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        done = run_syncd("sync", config=config, timeout=90)
    assert done.returncode == 1, done.stderr  # some folders failed: said so
    assert "Traceback" not in done.stderr
    after = {k: v for k, v in tree(outside).items() if not k.startswith(tmp_path.name)}
    assert after == before
    assert sorted(p.name for p in Path("/etc").iterdir()) == etc_before
    assert not Path("/tmp/syncd-evil").exists()
    for entry in tree(tmp_path):
        assert "escaped" not in entry, entry
    # one line per refused name, none of them carrying raw control bytes
    for line in done.stderr.splitlines():
        assert "\x1b" not in line and "\x00" not in line and "\r" not in line
    assert done.stderr.count("ERROR") >= 5
    # the real folders synced in spite of it
    local = local_snapshot(maildir, "maildir++")
    remote = server_snapshot(dovecot, account)
    for folder in ("INBOX", "Archive", "Notes"):
        assert sorted(v.sha256 for v in local[folder]) == sorted(v.sha256 for v in remote[folder])


def test_mal03_a_literal_announcing_3_gib_is_refused_before_allocating(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-03: the first BODY[] literal is announced as 3 GiB (the real bytes follow)."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    done_once: list[bool] = []

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and not done_once and b"BODY[] {" in line:
            done_once.append(True)
            return re.sub(rb"BODY\[\] \{\d+\}", b"BODY[] {3221225472}", line)
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, timeout=5)
        first = run_syncd("sync", config=config, timeout=60)
        assert done_once
        assert first.returncode == 1, first.stderr
        assert "3221225472" in first.stderr, first.stderr
        assert "MemoryError" not in first.stderr and "Traceback" not in first.stderr
        second = run_syncd("sync", config=config, timeout=60)
        assert second.returncode == 0, second.stderr
        converged(dovecot, account, maildir)


def test_mal05_appenduid_on_other_commands_and_lying_appenduid(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-05: APPENDUID/COPYUID planted on SELECT, FETCH and NOOP answers, and the real
    APPEND answered with another UIDVALIDITY: no upload is paired with a wrong UID."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction != "down":
            return line
        if re.match(rb"[A-Z0-9]+ OK", line) and conn.command_of(line) != b"APPEND":
            return b"* OK [APPENDUID 1 1] planted\r\n* OK [COPYUID 1 1 2] planted\r\n" + line
        if b"[APPENDUID " in line:
            return re.sub(
                rb"\[APPENDUID (\d+) ", lambda m: b"[APPENDUID 7" + m.group(1) + b" ", line
            )
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        settles(dovecot, account, maildir, config, timeout=60)


def test_mal05_appenduid_naming_an_existing_message_is_not_trusted(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-05: the APPEND answer names UID 1 (an existing, already paired message)."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    deliver(maildir, message("later"), "S")

    lied: list[bytes] = []

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and b"[APPENDUID " in line:
            lied.append(line)
            return re.sub(rb"\[APPENDUID (\d+) \d+\]", rb"[APPENDUID \1 1]", line)
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        run_syncd("sync", config=config, timeout=60)
        assert lied
        again = run_syncd("sync", config=config, timeout=60)
        assert again.returncode == 0, again.stderr
        converged(dovecot, account, maildir)


def test_mal06_fetch_data_not_asked_for_changes_nothing(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-06: flag FETCHes carry extra responses for UIDs that do not exist, UID 0,
    and a FETCH without UID; no mis-pairing, no deletion inferred."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    expected = converged(dovecot, account, maildir)

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if (
            direction == "down"
            and re.match(rb"[A-Z0-9]+ OK", line)
            and conn.command_of(line) in (b"UID FETCH", b"SELECT")
        ):
            return (
                b"* 1 FETCH (UID 4242 FLAGS (\\Deleted \\Seen) MODSEQ (99999))\r\n"
                b"* 2 FETCH (UID 0 FLAGS ())\r\n"
                b"* 3 FETCH (FLAGS (\\Flagged))\r\n" + line
            )
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        done = run_syncd("sync", config=config, timeout=60)
        assert done.returncode == 0, done.stderr
    assert converged(dovecot, account, maildir) == expected


def test_mal07_overlong_line_is_a_clean_error(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-07: a 3 MB response line without CRLF; a clean, bounded error."""
    maildir = tmp_path / "Mail"
    deliver(maildir, message("local"), "S")

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and _tagged_ok(line, conn, b"LIST"):
            return b"* CAPABILITY " + b"X" * 3_000_000
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port, timeout=3)
        done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr) < 5000  # the line is not echoed
    assert server_snapshot(dovecot, account) == {"INBOX": []}


def test_mal09_alert_and_bye_text_is_logged_on_one_escaped_line(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-09 / SRV-15: [ALERT] with terminal escapes and a fake log line in it."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    alert = b"* OK [ALERT] \x1b[31mcall +1 555\x1b[0m\rERROR t: forged log line\r\n"

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and _tagged_ok(line, conn, b"SELECT"):
            return alert + line
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr
    assert not any(line.startswith("ERROR t: forged") for line in done.stderr.splitlines())
    assert "call +1 555" in done.stderr  # shown, as RFC 3501 asks
    converged(dovecot, account, maildir)


def test_mal11_message_without_headers_from_the_server(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-11 (and LOC-03 from the far side): a message that starts with an empty line,
    and one that is a single blank line."""
    append(dovecot, account, "INBOX", b"\r\nno headers at all\r\n")
    append(dovecot, account, "INBOX", b"\r\n")
    maildir = tmp_path / "Mail"
    config = config_for(tmp_path, dovecot, account, maildir)
    settles(dovecot, account, maildir, config, timeout=60)


def test_srv04_no_uidplus_and_no_appenduid_codes(tmp_path: Path, dovecot_server: object) -> None:
    """SRV-04 / CC-05 without a crash: UIDPLUS hidden *and* every APPENDUID/COPYUID code
    stripped (Dovecot sends them anyway); uploads are found by search, including a
    message without Message-ID and two with the same Message-ID."""
    from devserver.dovecot import capabilities_without

    server = dovecot_server(capability=capabilities_without("UIDPLUS"))  # type: ignore[operator]
    user = server.add_user()
    maildir = tmp_path / "Mail"
    seed(server, user, maildir)
    from support.mail import make_message

    deliver(maildir, make_message(subject="no id", message_id="", body="no id\n"), "S")
    deliver(maildir, make_message(subject="twin a", message_id="<twin@t>", body="a\n"))
    deliver(maildir, make_message(subject="twin b", message_id="<twin@t>", body="b\n"))

    def strip(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down":
            return re.sub(rb"\[(APPENDUID|COPYUID) [^\]]*\] ?", b"", line)
        return line

    with front(server, rewrite=strip) as p:
        config = config_for(tmp_path, server, user, maildir, port=p.port)
        done = run_syncd("sync", config=config, timeout=60)
        assert done.returncode == 0, done.stderr
        assert b"[APPENDUID" not in bytes(p.downstream_bytes)
        end = converged(server, user, maildir)
        assert len(end["INBOX"]) == 13
        idempotent(config)


def test_srv06_select_without_uidnext(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    """SRV-06: SELECT answers lack UIDNEXT (and STATUS lies with UIDNEXT 1): no message
    is skipped."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down":
            if line.startswith(b"* OK [UIDNEXT "):
                return b""
            return re.sub(rb"UIDNEXT \d+", b"UIDNEXT 1", line)
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        done = run_syncd("sync", config=config, timeout=60)
        assert done.returncode == 0, done.stderr
        append(dovecot, account, "INBOX", message("arrived-later"))
        done = run_syncd("sync", config=config, timeout=60)
        assert done.returncode == 0, done.stderr
    end = converged(dovecot, account, maildir)
    assert len(end["INBOX"]) == 11


def test_srv10_inbox_spelled_differently_is_still_inbox(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """SRV-10: the server lists ``Inbox``; no second local folder appears."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and line.startswith(b"* LIST "):
            return line.replace(b" INBOX\r\n", b" Inbox\r\n").replace(b'"INBOX"', b'"Inbox"')
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        done = run_syncd("sync", config=config, timeout=60)
        assert done.returncode == 0, done.stderr
    assert sorted(local_snapshot(maildir, "maildir++")) == ["Archive", "INBOX", "Notes"]
    converged(dovecot, account, maildir)


def test_srv16_wrong_rfc822_size_does_not_truncate_or_loop(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """SRV-16: every RFC822.SIZE is reported 10 bytes short."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down":
            return re.sub(
                rb"RFC822\.SIZE (\d+)", lambda m: b"RFC822.SIZE %d" % (int(m.group(1)) - 10), line
            )
        return line

    with front(dovecot, rewrite=rewrite) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        settles(dovecot, account, maildir, config, timeout=60)


def test_mal12_server_folder_suddenly_empty_keeps_local_mail(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """MAL-12 (as [D]): every message of a synced folder vanishes from the server (same
    UIDVALIDITY): the mass-delete brake keeps the local copies and says so."""
    for i in range(10):
        append(dovecot, account, "Archive", message(f"keep{i}"))
    maildir = tmp_path / "Mail"
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    from support.imap import session

    with session(dovecot, account) as c:
        c.select_folder("Archive")
        uids = c.search("ALL")
        c.add_flags(uids, [b"\\Deleted"], silent=True)
        c.uid_expunge(uids)
    done = run_syncd("sync", config=config, timeout=60)
    assert done.returncode == 1
    assert "--allow-mass-delete" in done.stderr and "Archive" in done.stderr
    assert len(local_snapshot(maildir, "maildir++")["Archive"]) == 10


def _uidnotsticky(direction: Direction, line: bytes, conn: Conn) -> bytes:
    """Rewriter: every SELECT/EXAMINE says ``NO [UIDNOTSTICKY]`` (RFC 4315 §3) and every
    APPENDUID/COPYUID code is dropped, while CAPABILITY still lists UIDPLUS."""
    if direction != "down":
        return line
    if _tagged_ok(line, conn, b"SELECT") or _tagged_ok(line, conn, b"EXAMINE"):
        return b"* NO [UIDNOTSTICKY] Non-persistent UIDs\r\n" + line
    return re.sub(rb"\[(APPENDUID|COPYUID) [^\]]*\] ?", b"", line)


def test_srv05_uidnotsticky_and_no_appenduid_uploads_paired_once(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """SRV-05: UIDPLUS is advertised, but APPEND answers carry no APPENDUID and every
    SELECT says UIDNOTSTICKY.  Uploads are found by content and paired once; nothing
    is deleted or duplicated; a second run is a no-op.  (syncd currently ignores the
    UIDNOTSTICKY code: see test_srv05_uidnotsticky_is_reported.)"""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    with front(dovecot, rewrite=_uidnotsticky) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        done = run_syncd("sync", config=config, timeout=60)
        assert done.returncode == 0, done.stderr
        assert b"[APPENDUID" not in bytes(p.downstream_bytes)
        assert b"UIDNOTSTICKY" in bytes(p.downstream_bytes)
        end = converged(dovecot, account, maildir)
        assert len(end["INBOX"]) == 10 and len(end["Notes"]) == 2
        idempotent(config)
        # a local change after that still goes up once, by the same route
        deliver(maildir, message("later"), "S")
        end = settles(dovecot, account, maildir, config, timeout=60)
        assert len(end["INBOX"]) == 11


def test_srv05_uidvalidity_different_on_every_select_deletes_nothing(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """SRV-05: after a normal first sync, the server reports a new UIDVALIDITY on every
    SELECT and STATUS (as a UIDNOTSTICKY server may).  syncd warns and re-pairs by
    Message-ID and size on every run: nothing is deleted on either side and nothing
    appears twice."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    config = config_for(tmp_path, dovecot, account, maildir)
    run_syncd("sync", config=config, check=True)
    before = converged(dovecot, account, maildir)
    counter = iter(range(7000, 8000))

    def new_uidvalidity(direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction != "down":
            return line
        line = re.sub(rb"\[(APPENDUID|COPYUID) [^\]]*\] ?", b"", line)
        return re.sub(rb"UIDVALIDITY \d+", lambda _m: b"UIDVALIDITY %d" % next(counter), line)

    with front(dovecot, rewrite=new_uidvalidity) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        for _ in range(2):
            done = run_syncd("sync", config=config, timeout=60)
            assert done.returncode == 0, done.stderr
            assert "UIDVALIDITY changed" in done.stderr  # said so (re-pairs each run)
            assert "0 deleted here, 0 deleted on the server" in done.stderr, done.stderr
    remote = server_snapshot(dovecot, account)
    local = local_snapshot(maildir, "maildir++")
    assert duplicates(remote) == {} and duplicates(local) == {}
    for folder, rows in before.items():
        ids_before = {m for m, _h, _f in rows}
        assert {v.message_id for v in remote[folder]} == ids_before, folder
        assert {v.message_id for v in local[folder]} == ids_before, folder


def test_srv05_uidnotsticky_is_reported(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    """SRV-05 (expectation of the catalogue): a folder whose SELECT says UIDNOTSTICKY is
    named in a warning, so the user knows its UIDs cannot be trusted across sessions."""
    maildir = tmp_path / "Mail"
    seed(dovecot, account, maildir)
    with front(dovecot, rewrite=_uidnotsticky) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        done = run_syncd("sync", config=config, timeout=60)
    assert "UIDNOTSTICKY" in done.stderr or "not sticky" in done.stderr.lower(), done.stderr


_SYSTEM_FLAG = re.compile(rb"\\[A-Za-z]+")


def _no_keywords(direction: Direction, line: bytes, conn: Conn) -> bytes:
    """Rewriter for a server that keeps no keywords: PERMANENTFLAGS lacks ``\\*`` and
    lists no keyword, FLAGS lists none, and keywords in STORE and APPEND flag lists are
    silently not kept (RFC 3501 §7.1: such flags need not survive the session)."""
    if direction == "down":
        if b"[PERMANENTFLAGS (" in line or line.startswith(b"* FLAGS ("):
            return re.sub(
                rb"\(([^)]*)\)",
                lambda m: b"(" + b" ".join(_SYSTEM_FLAG.findall(m.group(1))) + b")",
                line,
                count=1,
            )
        return line
    name = conn.commands.get(line.split(b" ", 1)[0], b"")
    if name in (b"APPEND", b"STORE", b"UID STORE"):
        return re.sub(
            rb"\(([^)]*)\)",
            lambda m: b"(" + b" ".join(_SYSTEM_FLAG.findall(m.group(1))) + b")",
            line,
            count=1,
        )
    return line


def _srv11_scenario(
    tmp_path: Path, dovecot: DevServer, account: User
) -> tuple[list[str], dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Synced far0/near0, then local keyword ``$Label1`` on both and on a new near1;
    three runs and a dry run against a server that keeps no keywords.  Returns (output
    of each run,
    local flags, server flags) by Message-ID; every run must exit 0 without traceback
    and nothing may be duplicated."""
    maildir = tmp_path / "Mail"
    append(dovecot, account, "INBOX", message("far0"))
    deliver(maildir, message("near0"))
    with front(dovecot, rewrite=_no_keywords) as p:
        config = config_for(tmp_path, dovecot, account, maildir, port=p.port)
        run_syncd("sync", config=config, check=True, timeout=60)
        (maildir / "dovecot-keywords").write_text("0 $Label1\n")
        for path in list((maildir / "cur").iterdir()):
            set_local_flags(path, "Sa")
        deliver(maildir, message("near1"), "a")
        runs = [run_syncd("sync", config=config, timeout=60) for _ in range(3)]
        # A dry run (EXAMINE: no PERMANENTFLAGS) must not plan the keyword either; new
        # server mail keeps it off the fast path, so it plans the whole folder.
        append(dovecot, account, "INBOX", message("far1"))
        runs.append(run_syncd("sync", "--dry-run", config=config, timeout=60))
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
    remote = server_snapshot(dovecot, account)
    assert duplicates(remote) == {}
    assert duplicates(local_snapshot(maildir, "maildir++")) == {}
    local = {v.message_id: v.flags for v in local_snapshot(maildir, "maildir++")["INBOX"]}
    return (
        [r.stderr + r.stdout for r in runs],
        local,  # type: ignore[return-value]
        {v.message_id: v.flags for v in remote["INBOX"]},  # type: ignore[misc]
    )


def test_srv11_a_server_without_keywords_does_not_break_the_sync(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """SRV-11: PERMANENTFLAGS without ``\\*`` and keywords silently not kept: every run
    succeeds, the new message is uploaded once, system flags are kept on both sides,
    and the server never gets the keyword."""
    _stderr, local, remote = _srv11_scenario(tmp_path, dovecot, account)
    assert remote.pop("<far1@faults.test>") == frozenset()  # came after; only a dry run since
    assert set(local) == set(remote) == {
        "<far0@faults.test>", "<near0@faults.test>", "<near1@faults.test>",
    }  # fmt: skip
    assert remote == {
        "<far0@faults.test>": frozenset({"\\Seen"}),
        "<near0@faults.test>": frozenset({"\\Seen"}),
        "<near1@faults.test>": frozenset(),
    }
    assert {m: f - {"$Label1"} for m, f in local.items()} == remote


def test_srv11_keywords_the_server_cannot_keep_stay_local(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    """SRV-11 (the catalogue's expectation): the local keyword survives every run, is
    reported once (the first run that sees it), and is never offered to the server."""
    stderr, local, _remote = _srv11_scenario(tmp_path, dovecot, account)
    said = [err.count("does not keep the keyword $Label1") for err in stderr]
    assert said == [1, 0, 0, 0], stderr
    assert "1 downloaded" in stderr[3] and "0 flag changes" in stderr[3], stderr[3]
    assert local == {
        "<far0@faults.test>": frozenset({"\\Seen", "$Label1"}),
        "<near0@faults.test>": frozenset({"\\Seen", "$Label1"}),
        "<near1@faults.test>": frozenset({"$Label1"}),
    }
