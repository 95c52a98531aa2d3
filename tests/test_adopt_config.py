"""``[accounts.NAME.adopt]``: where mbsync's or offlineimap's state is (issue 10).

What a user (or ``syncd import``) writes, what syncd understands, and the one line it
says when something is wrong -- naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.cli.check import check_config
from syncd.config import AdoptSettings, load_config

BASE = """\
[general]
state_dir = "state"

[accounts.work]
host = "imap.example.org"
user = "me@example.org"
maildir = "mail/work"
layout = "nested"

[accounts.work.adopt]
"""


def config_with(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(BASE + table, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_no_table_means_no_adoption(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE.removesuffix("[accounts.work.adopt]\n"), encoding="utf-8")
    assert load_config(path).accounts["work"].adopt is None


def test_mbsync_per_folder_state(tmp_path: Path) -> None:
    adopt = load_config(config_with(tmp_path, 'tool = "mbsync"\nsync_state = "*"\n'))
    assert adopt.accounts["work"].adopt == AdoptSettings("mbsync", sync_state="*")


def test_mbsync_global_state_keeps_its_trailing_slash_and_expands_home(tmp_path: Path) -> None:
    text = (
        'tool = "mbsync"\nsync_state = "~/.mbsync/"\nstate_stores = ["far", "near"]\n'
        'subfolders = "maildir++"\ninbox = "~/Mail/INBOX"\nflatten = "."\n'
    )
    adopt = load_config(config_with(tmp_path, text)).accounts["work"].adopt
    home = tmp_path / "home"
    assert adopt == AdoptSettings(
        "mbsync",
        sync_state=f"{home}/.mbsync/",
        state_stores=("far", "near"),
        inbox=home / "Mail" / "INBOX",
        subfolders="maildir++",
        flatten=".",
    )


def test_offlineimap_with_the_default_metadata(tmp_path: Path) -> None:
    text = 'tool = "offlineimap"\naccount = "mail"\nremote_repository = "rem"\n'
    adopt = load_config(config_with(tmp_path, text)).accounts["work"].adopt
    assert adopt == AdoptSettings(
        "offlineimap",
        metadata=tmp_path / "home" / ".offlineimap",
        account="mail",
        remote_repository="rem",
    )


def test_inline_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    inline = 'adopt = { tool = "mbsync", sync_state = "*" }\n'
    path.write_text(BASE.removesuffix("[accounts.work.adopt]\n") + inline, encoding="utf-8")
    assert load_config(path).accounts["work"].adopt == AdoptSettings("mbsync", sync_state="*")


KEY = "accounts.work.adopt"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("", f'{KEY}.tool: missing ("mbsync" or "offlineimap")'),
        ('tool = "isync"\n', f'{KEY}.tool: must be one of "mbsync", "offlineimap" (got "isync")'),
        ('tool = "mbsync"\n', f"{KEY}.sync_state: missing (mbsync's SyncState"),
        ('tool = "mbsync"\nsync_state = ""\n', f"{KEY}.sync_state: must be a non-empty string"),
        (
            'tool = "mbsync"\nsync_state = "*"\nstate_stores = ["far"]\n',
            f'{KEY}.state_stores: must be two store names, ["FAR-STORE", "NEAR-STORE"]',
        ),
        (
            'tool = "mbsync"\nsync_state = "*"\nstate_stores = ["far", "near"]\n',
            f'{KEY}.state_stores: only with a SyncState path, not with sync_state = "*"',
        ),
        (
            'tool = "mbsync"\nsync_state = "*"\nsubfolders = "Verbatim"\n',
            f'{KEY}.subfolders: must be one of "verbatim", "maildir++", "legacy"',
        ),
        (
            'tool = "mbsync"\nsync_state = "*"\naccount = "mail"\n',
            f'{KEY}.account: is an offlineimap setting; this table has tool = "mbsync"',
        ),
        (
            'tool = "offlineimap"\naccount = "a"\nremote_repository = "r"\nsync_state = "*"\n',
            f'{KEY}.sync_state: is an mbsync setting; this table has tool = "offlineimap"',
        ),
        ('tool = "offlineimap"\nremote_repository = "r"\n', f"{KEY}.account: missing"),
        ('tool = "offlineimap"\naccount = "a"\n', f"{KEY}.remote_repository: missing"),
        (
            'tool = "mbsync"\nsync_state = "*"\nstate = "x"\n',
            f'{KEY}.state: unknown key (known with tool = "mbsync": tool, sync_state',
        ),
        ('tool = "mbsync"\nsync_state = "$NOPE/x"\n', f"{KEY}.sync_state: uses $NOPE"),
    ],
)
def test_each_problem_is_one_line_naming_the_key(
    tmp_path: Path, table: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    path = config_with(tmp_path, table)
    problems = check_config(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {problem}"), problems[0]
    assert "\n" not in problems[0]


def test_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = BASE.removesuffix("[accounts.work.adopt]\n") + 'adopt = "mbsync:~/.mbsync"\n'
    path.write_text(text, encoding="utf-8")
    assert check_config(path) == [f"{path}: {KEY}: must be a table ([{KEY}])"]
