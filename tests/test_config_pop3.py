"""POP3 accounts in the config: protocol, ports, the keep/delete keys, and one-line
errors for keys of the other protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_config import _home, with_keys, work  # noqa: F401 - _home is an autouse fixture

from syncd.config import read_config

POP3 = 'protocol = "pop3"\n'


def problems(tmp_path: Path, extra: str) -> list[str]:
    _, lines = read_config(with_keys(tmp_path, extra))
    return lines


def test_imap_is_the_default_and_pop3_has_its_own_ports(tmp_path: Path) -> None:
    imap = work(tmp_path)
    assert (imap.protocol, imap.port) == ("imap", 993)
    pop3 = work(tmp_path, POP3)
    assert (pop3.protocol, pop3.port, pop3.keep_on_server) == ("pop3", 995, True)
    assert pop3.delete_after_days is None and not pop3.allow_no_uidl
    assert pop3.idle == () and pop3.new_to_new
    assert work(tmp_path, POP3 + 'tls = "starttls"\n').port == 110
    assert work(tmp_path, POP3 + "port = 1995\n").port == 1995


def test_pop3_keep_and_delete_keys(tmp_path: Path) -> None:
    assert not work(tmp_path, POP3 + "keep_on_server = false\n").keep_on_server
    later = work(tmp_path, POP3 + "delete_after_days = 30\n")
    assert (later.keep_on_server, later.delete_after_days) == (True, 30)
    drain = work(tmp_path, POP3 + "keep_on_server = false\nallow_no_uidl = true\n")
    assert drain.allow_no_uidl and not drain.keep_on_server


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("folders = ['*']\n", "folders", "IMAP setting"),
        ("idle = ['INBOX']\n", "idle", "IMAP setting"),
        ('sync = "pull"\n', "sync", "IMAP setting"),
        ('trash = "Trash"\n', "trash", "IMAP setting"),
        ("max_connections = 2\n", "max_connections", "IMAP setting"),
        ("delete_after_days = 0\n", "delete_after_days", "from 1"),
        ("keep_on_server = false\ndelete_after_days = 3\n", "delete_after_days", "remove one"),
        ("allow_no_uidl = true\n", "allow_no_uidl", "keep_on_server = false"),
        ('keep_on_server = "no"\n', "keep_on_server", "true or false"),
        ('protocol = "jmap"\n', "protocol", '"imap", "pop3"'),
    ],
)
def test_pop3_problems_are_one_line_each(tmp_path: Path, extra: str, key: str, words: str) -> None:
    base = "" if extra.startswith("protocol") else POP3
    lines = problems(tmp_path, base + extra)
    assert len(lines) == 1, lines
    assert f"accounts.work.{key}: " in lines[0] and words in lines[0]
    assert "\n" not in lines[0]


@pytest.mark.parametrize(
    "key", ["keep_on_server", "delete_after_days", "allow_no_uidl", "collect_into"]
)
def test_pop3_keys_on_an_imap_account(tmp_path: Path, key: str) -> None:
    value = {"delete_after_days": "3", "collect_into": '"mail/INBOX"'}.get(key, "true")
    lines = problems(tmp_path, f"{key} = {value}\n")
    assert lines == [f'{tmp_path / "config.toml"}: accounts.work.{key}: needs protocol = "pop3"']


def test_collect_into_names_an_imap_account_of_the_file(tmp_path: Path) -> None:
    other = '\n[accounts.mail]\nhost = "imap.example.org"\nuser = "u"\nmaildir = "mail/m"\n'
    ok = with_keys(tmp_path, POP3 + 'collect_into = "mail/Collected/ISP"\n' + other)
    config, lines = read_config(ok)
    assert lines == [] and config is not None
    assert config.accounts["work"].collect_into == ("mail", "Collected/ISP")
    for value, words in [
        ('"mail"', '"ACCOUNT/FOLDER"'),
        ('"mail/"', '"ACCOUNT/FOLDER"'),
        ("3", "must be a string"),
        ('"nobody/INBOX"', "no account named 'nobody' (IMAP accounts: mail)"),
        ('"work/INBOX"', "work is not an IMAP account"),
    ]:
        lines = problems(tmp_path, POP3 + f"collect_into = {value}\n" + other)
        assert len(lines) == 1 and "accounts.work.collect_into: " in lines[0], lines
        assert words in lines[0], lines
