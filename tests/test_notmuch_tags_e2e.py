"""syncd-notmuch's tag sync end to end: the real Dovecot, a real notmuch database
over the synced Maildir, and syncd's real sync with the plugin in it (issue 15).

Each test changes keywords on the server (as another IMAP client would) or tags
in notmuch (as a notmuch user would), runs one sync, and checks both sides.
notmuch must be installed (contrib/setup.sh installs it): without it these tests
fail, they are not skipped.  Every notmuch call goes through a wrapper on PATH
that logs it, to show a run costs a fixed number of processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.imap import append, server_snapshot, set_flags
from support.mail import make_message
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions
from syncd.ext.hooks import RuleHooks
from syncd.ext.loader import load_plugins

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "plugins" / "syncd-notmuch"
NOTMUCH = shutil.which("notmuch")


class Setup:
    """One account synced by syncd with the notmuch plugin's tag sync on."""

    def __init__(
        self,
        tmp_path: Path,
        server: DevServer,
        user: User,
        monkeypatch: pytest.MonkeyPatch,
        *,
        synchronize_flags: bool = False,
        plugin_settings: dict[str, object] | None = None,
    ) -> None:
        assert NOTMUCH is not None, "notmuch is not installed: run contrib/setup.sh"
        self.server, self.user = server, user
        self.maildir = tmp_path / "Mail"
        self.maildir.mkdir()
        nm_config = tmp_path / "notmuch-config"
        nm_config.write_text(
            # exclude_tags as `notmuch setup` writes it: excluded mail is synced too
            f"[database]\npath={self.maildir}\n[new]\ntags=unread;inbox;\n"
            "[search]\nexclude_tags=deleted;spam;\n"
            f"[maildir]\nsynchronize_flags={str(synchronize_flags).lower()}\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("NOTMUCH_CONFIG", str(nm_config))
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        self.calls = tmp_path / "notmuch-calls"
        wrapper = bin_dir / "notmuch"
        wrapper.write_text(f'#!/bin/sh\necho "$1" >> {self.calls}\nexec {NOTMUCH} "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.syspath_prepend(str(PLUGIN_DIR))
        import syncd_notmuch  # from the source tree, now on sys.path (not installed)

        path = write_config(tmp_path, {"test": account_config(server, user, self.maildir)})
        settings = {"sync_tags": True, **(plugin_settings or {})}
        with path.open("a", encoding="utf-8") as f:
            f.write("[plugins.notmuch]\n")
            for key, value in settings.items():
                f.write(f"{key} = {_toml(value)}\n")
        self.config = load_config(path)
        self.plugins = load_plugins(self.config, extra=[("notmuch", syncd_notmuch.NotmuchRunner())])

    def sync(self) -> list[str]:
        """One ``syncd sync`` of the account; the notmuch subcommands it ran."""
        self.calls.unlink(missing_ok=True)
        hooks = RuleHooks(self.config, self.plugins)
        syncer = AccountSyncer(self.config, self.config.accounts["test"], hooks=hooks)
        try:
            report = syncer.sync(RunOptions())
        finally:
            syncer.close()
            hooks.close()
        assert report.ok, report
        assert not self.plugins.failures
        return self.calls.read_text().split() if self.calls.exists() else []

    def notmuch(self, *args: str, stdin: str | None = None) -> str:
        assert NOTMUCH is not None
        return subprocess.run(
            [NOTMUCH, *args], input=stdin, capture_output=True, text=True, check=True
        ).stdout

    def tags(self, mid: str) -> set[str]:
        """The tags of the message with Message-ID ``mid``, without notmuch's own."""
        out = self.notmuch("search", "--output=tags", "--exclude=false", f"id:{mid.strip('<>')}")
        return set(out.split()) - {"inbox", "attachment"}

    def tag(self, mid: str, *changes: str) -> None:
        self.notmuch("tag", *changes, "--", f"id:{mid.strip('<>')}")

    def server_flags(self, folder: str = "INBOX") -> dict[str, set[str]]:
        """Message-ID -> flags on the server."""
        return {
            v.message_id or "": set(v.flags)
            for v in server_snapshot(self.server, self.user).get(folder, [])
        }


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\") + '"'


def mail(server: DevServer, user: User, *flags: tuple[str, ...]) -> list[tuple[str, int]]:
    """Append one message per flag tuple to INBOX: ``[(Message-ID, UID)]``."""
    out = []
    for n, f in enumerate(flags):
        mid = f"<tags-{n}.{os.urandom(4).hex()}@syncd.test>"
        out.append((mid, append(server, user, "INBOX", make_message(f"m{n}", message_id=mid), f)))
    return out


@pytest.mark.parametrize("synchronize_flags", [False, True], ids=["nm-flags-off", "nm-flags-on"])
def test_keywords_become_tags_and_tags_become_keywords(
    tmp_path: Path,
    dovecot: DevServer,
    account: User,
    monkeypatch: pytest.MonkeyPatch,
    synchronize_flags: bool,
) -> None:
    (read, _), (junk, _), (plain, _) = mail(dovecot, account, ("\\Seen",), ("$Junk", "work"), ())
    s = Setup(tmp_path, dovecot, account, monkeypatch, synchronize_flags=synchronize_flags)
    s.sync()
    # The server's flags and keywords arrived as tags: \Seen is the absence of unread.
    assert s.tags(read) == set()
    assert s.tags(junk) == {"spam", "work", "unread"}
    assert s.tags(plain) == {"unread"}

    # A notmuch user reads one, stars one, files one under a tag of their own.
    s.tag(plain, "-unread", "+todo")
    s.tag(read, "+flagged")
    s.sync()
    # ...and one sync later the server has it, as flags and keywords.
    assert s.server_flags() == {
        read: {"\\Seen", "\\Flagged"},
        junk: {"$Junk", "work"},
        plain: {"\\Seen", "todo"},
    }
    assert s.tags(plain) == {"todo"}
    assert s.tags(read) == {"flagged"}
    # notmuch's database inside the Maildir root is not taken for a folder.
    assert set(server_snapshot(dovecot, account)) == {"INBOX"}


def test_removals_travel_both_ways(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    (one, uid_one), (two, _), (three, _) = mail(
        dovecot, account, ("$Junk", "work", "\\Seen"), ("work", "\\Flagged"), ("$Junk",)
    )
    s = Setup(tmp_path, dovecot, account, monkeypatch)
    s.sync()
    assert s.tags(one) == {"spam", "work"}
    assert s.tags(two) == {"work", "flagged", "unread"}
    assert s.tags(three) == {"spam", "unread"}

    # Removed on the server: keyword `work` and \Seen of one (still spam: a message
    # notmuch's search.exclude_tags hides is synced all the same)...
    set_flags(dovecot, account, "INBOX", [uid_one], ["work", "\\Seen"], mode="remove")
    # ...and in notmuch: `flagged` and `work` of two, `spam` of three.
    s.tag(two, "-flagged", "-work")
    s.tag(three, "-spam")
    s.sync()
    assert s.tags(one) == {"spam", "unread"}
    assert s.tags(two) == {"unread"}
    assert s.tags(three) == {"unread"}
    assert s.server_flags() == {one: {"$Junk"}, two: set(), three: set()}


@pytest.mark.parametrize("synchronize_flags", [False, True], ids=["nm-flags-off", "nm-flags-on"])
def test_a_conflict_merges_like_flags(
    tmp_path: Path,
    dovecot: DevServer,
    account: User,
    monkeypatch: pytest.MonkeyPatch,
    synchronize_flags: bool,
) -> None:
    """Both sides changed the same message since they last agreed (on {a, b}):
    each side's additions and removals apply, as syncd merges flags."""
    ((mid, uid),) = mail(dovecot, account, ("\\Seen", "a", "b"))
    s = Setup(tmp_path, dovecot, account, monkeypatch, synchronize_flags=synchronize_flags)
    s.sync()
    assert s.tags(mid) == {"a", "b"}

    set_flags(dovecot, account, "INBOX", [uid], ["a"], mode="remove")  # server: -a +c
    set_flags(dovecot, account, "INBOX", [uid], ["c"], mode="add")
    s.tag(mid, "-b", "+d", "+unread")  # notmuch: -b +d, and unread again
    s.sync()
    assert s.tags(mid) == {"c", "d", "unread"}
    assert s.server_flags() == {mid: {"c", "d"}}


def test_the_map_is_configurable(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tag_map`` renames or drops a default pair; ``ignore_tags`` keeps tags home."""
    ((mid, _),) = mail(dovecot, account, ("\\Flagged", "$Junk"))
    s = Setup(
        tmp_path,
        dovecot,
        account,
        monkeypatch,
        plugin_settings={
            "tag_map": {"\\Flagged": "star", "$Junk": "", "$label1": "important"},
            "ignore_tags": ["inbox", "private"],
        },
    )
    s.sync()
    # $Junk is no longer mapped: a keyword like any other, its tag of the same name.
    assert s.tags(mid) == {"star", "$Junk", "unread"}
    s.tag(mid, "+important", "+private", "-star")
    s.sync()
    assert s.server_flags() == {mid: {"$Junk", "$label1"}}


def test_a_run_costs_the_same_notmuch_processes_for_2_or_20_messages(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch mode: notmuch is started a fixed number of times per sync (new, count,
    show, tag, new -- before the sync and after it), not once per message."""
    messages = mail(dovecot, account, *[()] * 22)
    s = Setup(tmp_path, dovecot, account, monkeypatch)
    first = s.sync()
    assert len(first) <= 10, first

    def both_ways(batch: list[tuple[str, int]], keyword: str) -> list[str]:
        ids = " or ".join(f"id:{mid.strip('<>')}" for mid, _ in batch)
        s.notmuch("tag", f"+{keyword}", "--", ids)
        set_flags(
            dovecot, account, "INBOX", [uid for _, uid in batch], [f"{keyword}-imap"], mode="add"
        )
        return s.sync()

    small = both_ways(messages[:2], "few")
    large = both_ways(messages[2:], "many")
    assert sorted(small) == sorted(large)
    assert len(large) <= 10, large
    flags = s.server_flags()
    assert all(flags[mid] == {"many", "many-imap"} for mid, _ in messages[2:])
    assert all(s.tags(mid) == {"unread", "many", "many-imap"} for mid, _ in messages[2:])


def test_syncd_sync_runs_it_when_enabled_by_name(
    tmp_path: Path, dovecot: DevServer, account: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As users run it: `syncd sync`, the plugin installed (a .dist-info with its
    entry point) and named in `[plugins] enable`."""
    ((mid, _),) = mail(dovecot, account, ("$Junk",))
    s = Setup(tmp_path, dovecot, account, monkeypatch)
    site = tmp_path / "site"
    info = site / "syncd_notmuch-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: syncd-notmuch\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[syncd]\nnotmuch = syncd_notmuch:plugin\n")
    config = tmp_path / "config.toml"
    with config.open("a", encoding="utf-8") as f:
        f.write('[plugins]\nenable = ["notmuch"]\n')
    path = os.pathsep.join([str(site), str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])
    run_syncd("sync", config=config, env={"PYTHONPATH": path}, check=True)
    assert s.tags(mid) == {"spam", "unread"}
    s.tag(mid, "-unread", "+later")
    run_syncd("sync", config=config, env={"PYTHONPATH": path}, check=True)
    assert s.server_flags() == {mid: {"$Junk", "\\Seen", "later"}}
