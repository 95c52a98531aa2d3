"""When the *main* connection dies of a protocol error while folders are synced side
by side, a live spare takes its place: the account never holds more than
``max_connections`` (servers cap connections per user and IP -- Dovecot's
``mail_max_userip_connections`` -- and the IDLE listeners count against the same
budget)."""

from __future__ import annotations

from pathlib import Path

from faults.proxy import Conn, Direction, front
from support.run import account_config, write_config

from devserver.dovecot import DevServer, User, populate
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions


def _client_connections(port: int) -> int:
    """ESTABLISHED TCP connections of this host whose remote end is ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_the_account_never_holds_more_than_max_connections(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    populate(dovecot, account, folders={"INBOX": 250, "Archive": 250, "Notes": 1})
    garbled: list[int] = []

    def rewrite(direction: Direction, line: bytes, conn: Conn) -> bytes:
        # The first connection is the main one (LIST, LIST-STATUS); garble the first
        # answer to its first SELECT: a ProtocolError inside that folder.
        if conn.index != 0 or garbled == [2]:
            return line
        if direction == "up" and b" SELECT " in line.upper():
            garbled.append(1)
        elif direction == "down" and garbled == [1]:
            garbled.append(1)
            return b"this is not IMAP\r\n"
        return line

    with front(dovecot, rewrite=rewrite) as p:
        path = write_config(
            tmp_path,
            {"t": account_config(dovecot, account, tmp_path / "Mail", port=p.port,
                                 max_connections=2, idle=[])},
        )  # fmt: skip
        config = load_config(path)
        syncer = AccountSyncer(config, config.accounts["t"])
        try:
            first = syncer.sync(RunOptions())
            assert garbled == [1, 1], "the main connection's SELECT was not garbled"
            assert any(f.error for f in first.folders), first
            second = syncer.sync(RunOptions())  # what the daemon does next cycle
            assert second.error is None, second
            held = _client_connections(p.port)
        finally:
            syncer.close()
    assert held <= 2, f"{held} connections open with max_connections = 2"
