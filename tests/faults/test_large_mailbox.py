"""SRV-12: a very large mailbox -- commands under the server's line limit, memory bounded.

The server folder is filled by writing message files straight into the Dovecot user's
Maildir (seconds for 100 000, where APPEND takes minutes).  Then: an initial sync (every
message arrives, a sample is byte-exact); a scattered third-ish of the messages is
flagged on the server by another client and a scattered fifth deleted locally, so the
next sync has to send UID sets that do not compress into ranges; both sides must then
agree message by message.  A proxy records every command line syncd sends and every
tagged ``BAD`` (what Dovecot answers to a line over ``imap_max_line_length``); each
``syncd sync`` runs as a subprocess whose peak RSS is measured.

- ``test_srv12_scattered_changes_under_a_small_line_limit`` (default run): 5 000
  messages on a server whose ``imap_max_line_length`` is lowered to 8000 octets (the
  least RFC 2683 §3.2.1.5 asks servers to accept), with local changes on every third UID
  (sets of ~8 KB that must be split).
- ``test_srv12_100k_messages`` (``slow``: ``bash tests/sweep.sh``): 100 000 messages on
  Dovecot's default 64 KiB limit, 30 000 flagged on the server, 20 000 deleted locally.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from faults.common import config_for
from faults.proxy import Conn, Direction, front
from support import StartServer
from support.imap import fill_inbox, session
from support.run import run_syncd_measured

from devserver.dovecot import DevServer, User

_TAGGED_BAD = re.compile(rb"\S+ BAD\b", re.IGNORECASE)
_MID = re.compile(rb"<big(\d+)@syncd\.test>")


def raw(i: int) -> bytes:
    """Message ``i`` as stored in a Maildir (LF line ends); sizes vary a little."""
    return (
        f"Message-ID: <big{i}@syncd.test>\nFrom: Load Test <load@example.org>\n"
        f"To: Bob <bob@example.com>\nSubject: message {i}\n"
        f"Date: Mon, 01 Jan 2024 12:00:00 +0000\n\nbody of {i}\n{'x' * (i % 200)}\n"
    ).encode()


def server_index(server: DevServer, user: User) -> dict[int, tuple[int, frozenset[str]]]:
    """UID -> (message number, flags without \\Recent) of the server's INBOX."""
    out: dict[int, tuple[int, frozenset[str]]] = {}
    with session(server, user) as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        for part in chunks(uids, 500):  # lines of ~3.5 KB: under a small line limit too
            data = client.fetch(part, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            for uid, item in data.items():
                header = next(v for key, v in item.items() if key.startswith(b"BODY"))
                m = _MID.search(header)
                assert m is not None, header
                flags = frozenset(f.decode() if isinstance(f, bytes) else f for f in item[b"FLAGS"])
                out[uid] = (int(m.group(1)), flags - {"\\Recent"})
    return out


_LETTERS = {"F": "\\Flagged", "S": "\\Seen", "R": "\\Answered", "D": "\\Draft", "T": "\\Deleted"}


def local_index(maildir: Path) -> dict[int, tuple[Path, frozenset[str]]]:
    """Message number -> (file, flags) of the local INBOX; a number twice fails."""
    out: dict[int, tuple[Path, frozenset[str]]] = {}
    for sub in ("new", "cur"):
        for entry in os.scandir(maildir / sub):
            with open(entry.path, "rb") as f:
                m = _MID.search(f.readline())
            assert m is not None, entry.path
            number = int(m.group(1))
            assert number not in out, f"message {number} twice: {entry.path}"
            letters = entry.name.partition(":2,")[2]
            flags = frozenset(_LETTERS[c] for c in letters if c in _LETTERS)
            out[number] = (Path(entry.path), flags)
    return out


def chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for k in range(0, len(items), size):
        yield items[k : k + size]


def flag_on_server(server: DevServer, user: User, uids: Iterable[int]) -> None:
    """Another client adds \\Flagged, 500 UIDs per command (lines of ~3.5 KB)."""
    with session(server, user) as client:
        client.select_folder("INBOX")
        for part in chunks(sorted(uids), 500):
            client.add_flags(part, [b"\\Flagged"], silent=True)


@dataclass
class Wire:
    """What the proxy saw: the longest command line (bytes) and every tagged BAD."""

    longest: int = 0
    commands: int = 0
    bad: list[bytes] = field(default_factory=list)

    def on_command(self, text: str) -> None:
        self.commands += 1
        self.longest = max(self.longest, len(text.encode("utf-8")) + 2)  # with CRLF

    def rewrite(self, direction: Direction, line: bytes, conn: Conn) -> bytes:
        if direction == "down" and _TAGGED_BAD.match(line):
            self.bad.append(line)
        return line


@dataclass(frozen=True)
class Scenario:
    n: int
    flag_far: list[int]  # message numbers flagged on the server
    flag_near: list[int]  # message numbers flagged locally
    delete_near: list[int]  # message numbers deleted locally
    line_limit: int  # the server's imap_max_line_length
    timeout: float  # for each syncd run


def run_scenario(tmp_path: Path, server: DevServer, sc: Scenario) -> tuple[list[int], Wire]:
    """Fill, sync, change both sides, sync; checks both sides after each sync and
    returns the peak RSS of each run and what the wire carried."""
    user = server.add_user()
    fill_inbox(server, user, raw, sc.n)
    maildir = tmp_path / "Mail"
    wire = Wire()
    peaks = []
    with front(server, rewrite=wire.rewrite, on_command=wire.on_command) as p:
        config = config_for(tmp_path, server, user, maildir, port=p.port)
        code, err, peak = run_syncd_measured(config, "sync", timeout=sc.timeout)
        peaks.append(peak)
        assert code == 0 and wire.bad == [], (wire.bad, err[-3000:])
        local = local_index(maildir)
        assert len(local) == sc.n
        for i in random.Random(1).sample(range(sc.n), min(sc.n, 500)):
            assert local[i][0].read_bytes() == raw(i), f"message {i} differs"
            assert local[i][1] == ({"\\Seen"} if i % 3 == 0 else set())

        uid_of = {number: uid for uid, (number, _f) in server_index(server, user).items()}
        flag_on_server(server, user, (uid_of[i] for i in sc.flag_far))
        for i in sc.delete_near:
            local[i][0].unlink()
        for i in sc.flag_near:
            path, flags = local[i]
            letters = "".join(sorted({"F", *("S" if "\\Seen" in flags else "")}))
            path.rename(maildir / "cur" / f"{path.name.partition(':2,')[0]}:2,{letters}")

        code, err, peak = run_syncd_measured(config, "sync", timeout=sc.timeout)
        peaks.append(peak)
        assert code == 0 and wire.bad == [], (wire.bad, err[-3000:])
        assert "ERROR" not in err and "WARNING" not in err, err[-3000:]

    deleted = set(sc.delete_near)
    flagged = set(sc.flag_far) | set(sc.flag_near)
    expected = {
        i: frozenset({"\\Seen"} if i % 3 == 0 else set())
        | ({"\\Flagged"} if i in flagged else set())
        for i in range(sc.n)
        if i not in deleted
    }
    far = server_index(server, user)
    assert sorted(number for number, _f in far.values()) == sorted(expected)
    assert dict(far.values()) == expected
    assert {i: flags for i, (_p, flags) in local_index(maildir).items()} == expected
    assert wire.longest <= sc.line_limit, f"a command line of {wire.longest} bytes"
    return peaks, wire


def test_srv12_scattered_changes_under_a_small_line_limit(
    tmp_path: Path, dovecot_server: StartServer
) -> None:
    """5 000 messages, ``imap_max_line_length = 8000``: locally, every third message is
    deleted and every third flagged (UID sets of ~8 KB each, no ranges), 1 500 random
    ones flagged on the server.  No BAD, no line over 8000 octets, both sides agree."""
    n = 5000
    server = dovecot_server(extra_conf="imap_max_line_length = 8000")
    rng = random.Random(12)
    far = rng.sample([i for i in range(n) if i % 3 == 2], 1500)
    sc = Scenario(
        n=n,
        flag_far=far,
        flag_near=[i for i in range(n) if i % 3 == 1],
        delete_near=[i for i in range(n) if i % 3 == 0],
        line_limit=8000,
        timeout=240,
    )
    peaks, wire = run_scenario(tmp_path, server, sc)
    assert wire.longest > 4000  # the sets were long: split, not trivially short
    assert max(peaks) < 120 * 1024, f"peak RSS {peaks} KiB"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_srv12_100k_messages(tmp_path: Path, fresh_dovecot: StartServer, full_sweep: bool) -> None:
    """100 000 messages (a 10 000 sample unless full_sweep: 100 000 take ~6.5 min);
    30 % scattered flagged on the server, 20 % scattered deleted locally.  No BAD, no
    line over Dovecot's 64 KiB, both sides agree, peak RSS bounded."""
    n = 100_000 if full_sweep else 10_000
    rng = random.Random(100)
    numbers = list(range(n))
    rng.shuffle(numbers)
    sc = Scenario(
        n=n,
        flag_far=numbers[: n * 3 // 10],
        flag_near=[],
        delete_near=numbers[n * 3 // 10 : n // 2],
        line_limit=65536,
        timeout=1200,
    )
    peaks, _wire = run_scenario(tmp_path, fresh_dovecot(), sc)
    assert max(peaks) < 400 * 1024, f"peak RSS {peaks} KiB"
