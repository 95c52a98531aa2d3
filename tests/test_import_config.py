"""``syncd import mbsync|offlineimap``: realistic configs in, syncd TOML out, one
stderr line per setting left behind, and the result accepted by ``syncd check``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from syncd.adopt.mbsyncrc import import_mbsyncrc, parse_mbsyncrc
from syncd.adopt.offlineimaprc import import_offlineimaprc
from syncd.cli.importer import default_offlineimaprc

MBSYNCRC = """\
# ~/.mbsyncrc of someone with a work account and a Gmail account
SyncState *
Create Both
Expunge Both

IMAPAccount work
Host imap.example.org
Port 993
User "me@example.org"
PassCmd "pass show mail/work | head -n1"
SSLType IMAPS
CertificateFile {ca}
PipelineDepth 50

IMAPStore work-remote
Account work
Trash Trash

MaildirStore work-local
Path {mail}/work/
Inbox {mail}/work/INBOX
SubFolders Verbatim
MaxSize 10M

Channel work
Far :work-remote:
Near :work-local:
Patterns * !Spam "!Lists/%"
Sync Pull Push
MaxMessages 1000

IMAPAccount gmail
Host imap.gmail.com
User me@gmail.com
Pass hunter2
TLSType IMAPS
AuthMechs XOAUTH2

IMAPStore gmail-remote
Account gmail

MaildirStore gmail-local
Inbox {mail}/gmail
SubFolders Maildir++

Channel gmail-inbox
Far :gmail-remote:
Near :gmail-local:
Sync Pull
Expunge None
Create Near

Channel gmail-sent
Far :gmail-remote:"[Gmail]/Sent Mail"
Near :gmail-local:sent
Sync Pull
Create Near

Group everything
Channel work
Channel gmail-inbox
"""

OFFLINEIMAPRC = """\
[general]
accounts = Personal, Lab
pythonfile = ~/.offlineimap.py
maxsyncaccounts = 2

[Account Personal]
localrepository = PersonalLocal
remoterepository = PersonalRemote
autorefresh = 5
quick = 10
maxage = 30

[Repository PersonalLocal]
type = Maildir
localfolders = {mail}/personal
sep = /

[Repository PersonalRemote]
type = IMAP
remotehost = mail.example.net
remoteuser = me
remotepasseval = subprocess.check_output(["pass", "show", "mail/personal"]).strip().decode()
sslcacertfile = {ca}
folderfilter = lambda folder: folder not in ['Trash', 'Spam'] and not folder.startswith('Archive/')
maxconnections = 3
idlefolders = ['INBOX']
expunge = no

[Account Lab]
localrepository = LabLocal
remoterepository = LabRemote

[Repository LabLocal]
type = Maildir
localfolders = {mail}/lab

[Repository LabRemote]
type = IMAP
remotehost = imap.lab.example
remoteport = 143
ssl = no
remoteuser = me
remotepass = secret
nametrans = lambda f: f.replace('INBOX.', '')
folderfilter = lambda f: re.search('^INBOX', f)
readonly = True
"""


def _paths(tmp_path: Path) -> dict[str, str]:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    return {"ca": str(ca), "mail": str(tmp_path / "Mail")}


def _check(tmp_path: Path, toml_text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "syncd.toml"
    state = tmp_path / "state"
    config.write_text(f'[general]\nstate_dir = "{state}"\n\n{toml_text}', encoding="utf-8")
    return _syncd(tmp_path, "--config", str(config), "check")


def _syncd(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_mbsyncrc_accounts(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    result = import_mbsyncrc(MBSYNCRC.format(**paths), "mbsyncrc")
    data = tomllib.loads(result.to_toml())
    work = data["accounts"]["work"]
    assert work == {
        "host": "imap.example.org",
        "port": 993,
        "tls": "tls",
        "ca_file": paths["ca"],
        "user": "me@example.org",
        "password_command": ["sh", "-c", "pass show mail/work | head -n1"],
        "maildir": f"{paths['mail']}/work",
        "layout": "nested",
        "local_names": "imap-utf-7",
        "folders": ["*"],
        "exclude": ["Spam", "Lists/*"],
        "sync": "both",
        "expunge": True,
        "trash": "Trash",
        # mbsync's state, for the first sync (SyncState * is global here)
        "adopt": {"tool": "mbsync", "sync_state": "*", "subfolders": "verbatim"},
    }
    gmail = data["accounts"]["gmail-inbox"]
    assert gmail["maildir"] == f"{paths['mail']}/gmail"
    assert (gmail["layout"], gmail["local_names"]) == ("maildir++", "imap-utf-7")
    assert gmail["folders"] == ["INBOX", "[Gmail]/Sent Mail"]
    assert (gmail["sync"], gmail["expunge"], gmail["tls"]) == ("pull", False, "tls")
    assert "password_command" not in gmail  # Pass is never copied into syncd's file
    assert gmail["adopt"] == {"tool": "mbsync", "sync_state": "*", "subfolders": "maildir++"}
    assert "hunter2" not in result.to_toml()


def test_mbsyncrc_warnings_name_each_setting(tmp_path: Path) -> None:
    result = import_mbsyncrc(MBSYNCRC.format(**_paths(tmp_path)), "mbsyncrc")
    text = "\n".join(result.warnings)
    for setting in (
        "PipelineDepth",
        "MaxSize",
        "MaxMessages",
        "Group everything",
        "'%'",
        "Pass (IMAPAccount gmail)",
        "AuthMechs XOAUTH2",
        "Create Near",
        "'[Gmail]/Sent Mail' is stored locally as 'sent'",
    ):
        assert setting in text, setting
    assert "hunter2" not in text
    assert len(result.warnings) == len(set(result.warnings))
    assert "SyncState" not in text  # carried over: [accounts.NAME.adopt]


def test_mbsyncrc_parser_sections() -> None:
    sections = parse_mbsyncrc('Expunge Both\n\nIMAPStore x\nPath "a b/"\n\nCreate Near\n')
    assert [(s.kind, s.name) for s in sections] == [("global", ""), ("imapstore", "x")]
    assert sections[0].options == {"expunge": "Both", "create": "Near"}
    assert sections[1].options == {"path": '"a b/"'}


def test_mbsync_legacy_and_plaintext(tmp_path: Path) -> None:
    rc = (
        "IMAPStore s\nHost 10.1.2.3\nUser u\nSSLType None\nPassCmd +secret-tool lookup a b\n\n"
        "MaildirStore m\nPath ~/Mail/\nInbox ~/Mail/INBOX\nSubFolders Legacy\n\n"
        "Channel c\nFar :s:\nNear :m:\nPatterns %\nSync New Flags\nRemove Both\n"
    )
    result = import_mbsyncrc(rc)
    data = tomllib.loads(result.to_toml())["accounts"]["c"]
    assert (data["tls"], data["allow_plaintext"]) == ("none", True)
    assert data["password_command"] == ["sh", "-c", "secret-tool lookup a b"]
    assert data["layout"] == "nested"
    text = "\n".join(result.warnings)
    for setting in ("SubFolders Legacy", "TLSType None", "'+'", "Sync flags new", "Remove Both"):
        assert setting in text, setting


def test_offlineimaprc_accounts(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    result = import_offlineimaprc(OFFLINEIMAPRC.format(**paths), "offlineimaprc")
    data = tomllib.loads(result.to_toml())["accounts"]
    assert data["Personal"] == {
        "host": "mail.example.net",
        "tls": "tls",
        "ca_file": paths["ca"],
        "user": "me",
        "password_command": ["pass", "show", "mail/personal"],
        "folders": ["*"],
        "exclude": ["Trash", "Spam", "Archive/*"],
        "sync": "both",
        "expunge": False,
        "max_connections": 3,
        "idle": ["INBOX"],
        "maildir": f"{paths['mail']}/personal",
        "layout": "nested",
        "local_names": "imap-utf-7",
        "interval": "300s",
        "adopt": {
            "tool": "offlineimap",
            "metadata": "~/.offlineimap",
            "account": "Personal",
            "remote_repository": "PersonalRemote",
        },
    }
    lab = data["Lab"]
    assert (lab["host"], lab["port"], lab["tls"], lab["sync"]) == (
        "imap.lab.example",
        143,
        "starttls",
        "pull",
    )
    assert "password_command" not in lab
    assert (lab["maildir"], lab["layout"], lab["local_names"]) == (
        f"{paths['mail']}/lab",
        "flat",  # offlineimap's default sep = .
        "imap-utf-7",
    )
    assert (lab["adopt"]["account"], lab["adopt"]["remote_repository"]) == ("Lab", "LabRemote")
    assert "secret" not in result.to_toml()


def test_offlineimaprc_warnings_name_each_setting(tmp_path: Path) -> None:
    result = import_offlineimaprc(OFFLINEIMAPRC.format(**_paths(tmp_path)), "offlineimaprc")
    text = "\n".join(result.warnings)
    for setting in (
        "pythonfile",
        "quick ([Account Personal])",
        "maxage ([Account Personal])",
        "remotepass ([Repository LabRemote])",
        "nametrans ([Repository LabRemote])",
        "folderfilter ([Repository LabRemote])",
    ):
        assert setting in text, setting
    assert "secret" not in text


def _mbsync_store(store: str) -> tuple[dict[str, object], list[str]]:
    rc = (
        "IMAPStore s\nHost 127.0.0.1\nUser u\nSSLType None\n\n"
        f"MaildirStore m\n{store}\n\nChannel c\nFar :s:\nNear :m:\nPatterns *\nCreate Both\n"
    )
    result = import_mbsyncrc(rc)
    return tomllib.loads(result.to_toml())["accounts"]["c"], result.warnings


@pytest.mark.parametrize(
    ("store", "maildir", "layout", "names"),
    [
        ("Path ~/M/\nInbox ~/M/INBOX\nSubFolders Verbatim", "~/M", "nested", "imap-utf-7"),
        ("Inbox ~/M/INBOX\nSubFolders Maildir++", "~/M/INBOX", "maildir++", "imap-utf-7"),
        ("Path ~/M/\nInbox ~/M/INBOX\nFlatten .", "~/M", "flat", "imap-utf-7"),
        ("Path ~/M/\nInbox ~/M/INBOX\nSubFolders Verbatim\nFlatten .", "~/M", "flat", "imap-utf-7"),
        ("Path ~/M/\nInbox ~/M/INBOX\nSubFolders Legacy\nFlatten .", "~/M", "flat", "imap-utf-7"),
        ("Path ~/M/\nInbox ~/M/INBOX\nSubFolders Verbatim\nUtf8 yes", "~/M", "nested", "utf-8"),
    ],
    ids=["verbatim", "maildir++", "flatten", "verbatim-flatten", "legacy-flatten", "utf8"],
)
def test_mbsync_store_layouts_become_syncd_keys(
    store: str, maildir: str, layout: str, names: str
) -> None:
    data, warnings = _mbsync_store(store)
    assert (data["maildir"], data["layout"], data["local_names"]) == (maildir, layout, names)
    assert warnings == []


def test_mbsync_store_layouts_syncd_cannot_follow_are_one_line_each(tmp_path: Path) -> None:
    data, warnings = _mbsync_store("Path ~/M/\nInbox ~/M/INBOX\nSubFolders Verbatim\nFlatten _")
    assert data["layout"] == "nested"
    assert [w for w in warnings if w.startswith("Flatten _ (MaildirStore m)")] == warnings
    data, warnings = _mbsync_store("Path ~/M/\nInbox ~/Mail/Inbox\nFlatten .")
    assert data["layout"] == "flat"
    [line] = warnings
    assert line.startswith("Inbox ~/Mail/Inbox (MaildirStore m): syncd's flat layout keeps INBOX")
    assert "~/M/INBOX" in line
    inbox = tmp_path / "INBOX"
    for sub in ("..sub", ".Archive", "cur"):
        (inbox / sub).mkdir(parents=True)
    data, warnings = _mbsync_store(f"Inbox {inbox}\nSubFolders Maildir++")
    [line] = warnings
    assert "..sub" in line and ".INBOX.NAME" in line and ".Archive" not in line


@pytest.mark.parametrize(
    ("local", "account", "layout", "names", "warned"),
    [
        ("sep = /", "", "nested", "imap-utf-7", False),
        ("sep = .", "", "flat", "imap-utf-7", False),
        ("", "", "flat", "imap-utf-7", False),  # offlineimap's default sep is '.'
        ("sep = /", "utf8foldernames = yes", "nested", "utf-8", False),
        ("sep = .", "utf8foldernames = no", "flat", "imap-utf-7", False),
        ("sep = :", "", "nested", "imap-utf-7", True),
    ],
)
def test_offlineimap_sep_and_utf8foldernames_become_syncd_keys(
    local: str, account: str, layout: str, names: str, warned: bool
) -> None:
    rc = (
        f"[general]\naccounts = a\n[Account a]\nlocalrepository = l\nremoterepository = r\n"
        f"{account}\n[Repository l]\ntype = Maildir\nlocalfolders = ~/m\n{local}\n"
        "[Repository r]\ntype = IMAP\nremotehost = h\nremoteuser = u\n"
    )
    result = import_offlineimaprc(rc)
    data = tomllib.loads(result.to_toml())["accounts"]["a"]
    assert (data["maildir"], data["layout"], data["local_names"]) == ("~/m", layout, names)
    assert any(w.startswith("sep = : ([Repository l])") for w in result.warnings) is warned
    assert not any("utf8foldernames" in w for w in result.warnings)


def test_remotepasseval_shapes() -> None:
    def command(code: str) -> object:
        rc = (
            "[general]\naccounts = a\n[Account a]\nlocalrepository = l\nremoterepository = r\n"
            "[Repository l]\ntype = Maildir\nlocalfolders = ~/m\nsep = /\n"
            "[Repository r]\ntype = IMAP\nremotehost = h\nremoteuser = u\n"
            f"remotepasseval = {code}\n"
        )
        return tomllib.loads(import_offlineimaprc(rc).to_toml())["accounts"]["a"].get(
            "password_command"
        )

    assert command('subprocess.getoutput("pass x | head -1")') == ["sh", "-c", "pass x | head -1"]
    assert command("subprocess.run(['gpg', '-d', 'f'], capture_output=True)") == ["gpg", "-d", "f"]
    assert command("get_pass('a')") is None
    assert command("__import__('os').system('rm -rf /')") is None


@pytest.mark.parametrize("tool", ["mbsync", "offlineimap"])
def test_import_output_passes_syncd_check(tmp_path: Path, tool: str) -> None:
    text = (MBSYNCRC if tool == "mbsync" else OFFLINEIMAPRC).format(**_paths(tmp_path))
    source = tmp_path / f"{tool}.conf"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "imported.toml"
    proc = _syncd(tmp_path, "import", tool, str(source), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert all(line.startswith(("syncd import: ", "wrote ")) for line in proc.stderr.splitlines())
    checked = _check(tmp_path, out.read_text(encoding="utf-8"))
    assert checked.returncode == 0, checked.stderr
    again = _syncd(tmp_path, "import", tool, str(source), "--output", str(out))
    assert again.returncode == 2 and "not overwritten" in again.stderr


def test_import_stdout_and_default_paths(tmp_path: Path) -> None:
    (tmp_path / ".mbsyncrc").write_text(
        "IMAPStore s\nHost 127.0.0.1\nUser u\nSSLType None\n\nMaildirStore m\n"
        f"Path {tmp_path}/M/\nInbox {tmp_path}/M/INBOX\nSubFolders Verbatim\n\n"
        "Channel c\nFar :s:\nNear :m:\nPatterns *\nCreate Both\n",
        encoding="utf-8",
    )
    proc = _syncd(tmp_path, "import", "mbsync")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # everything carried over
    assert tomllib.loads(proc.stdout)["accounts"]["c"]["tls"] == "none"
    assert _check(tmp_path, proc.stdout).returncode == 0
    missing = _syncd(tmp_path, "import", "offlineimap")
    assert missing.returncode == 2 and ".offlineimaprc: no such file" in missing.stderr
    xdg = tmp_path / "xdg" / "offlineimap" / "config"
    xdg.parent.mkdir(parents=True)
    xdg.write_text("[general]\n", encoding="utf-8")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert default_offlineimaprc(env) == xdg


@pytest.mark.parametrize(
    ("state_lines", "expected"),
    [
        # mbsync's default: the global ~/.mbsync/, files named after the two stores
        ("", {"sync_state": "~/.mbsync/", "state_stores": ["s", "m"]}),
        ("SyncState ~/st/\n\n", {"sync_state": "~/st/", "state_stores": ["s", "m"]}),
        ("SyncState *\n\n", {"sync_state": "*"}),
    ],
)
def test_mbsync_sync_state_becomes_the_adopt_table(
    state_lines: str, expected: dict[str, object]
) -> None:
    rc = (
        f"{state_lines}IMAPStore s\nHost 127.0.0.1\nUser u\nSSLType None\n\n"
        "MaildirStore m\nInbox ~/Mail/INBOX\nSubFolders Maildir++\n\n"
        "Channel c\nFar :s:\nNear :m:\nPatterns *\nCreate Both\n"
    )
    data = tomllib.loads(import_mbsyncrc(rc).to_toml())["accounts"]["c"]
    assert data["adopt"] == {"tool": "mbsync", **expected, "subfolders": "maildir++"}


def test_a_channels_own_sync_state_is_a_plain_prefix() -> None:
    rc = (
        "IMAPStore s\nHost 127.0.0.1\nUser u\nSSLType None\n\n"
        "MaildirStore m\nPath ~/Mail/\nInbox ~/Box\nSubFolders Verbatim\nFlatten .\n\n"
        "Channel c\nFar :s:\nNear :m:\nPatterns *\nCreate Both\nSyncState ~/st/c-\n"
    )
    data = tomllib.loads(import_mbsyncrc(rc).to_toml())["accounts"]["c"]
    assert data["adopt"] == {
        "tool": "mbsync",
        "sync_state": "~/st/c-",
        "subfolders": "verbatim",
        "inbox": "~/Box",  # not Path/INBOX: said, so the reader finds INBOX's subfolders
        "flatten": ".",
    }
