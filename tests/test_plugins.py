"""The plugin manager and its typed facade: loading, enabling and disabling, isolation
of plugins that raise or return garbage, and each hook called through a real sync."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from support.imap import append, create_folder, server_snapshot
from support.mail import make_message
from support.maildir import local_snapshot
from support.run import account_config, offline_config, run_syncd, write_config

from devserver.dovecot import DevServer, User
from syncd.account.syncer import AccountSyncer
from syncd.config import Config, load_config
from syncd.engine.options import RunOptions
from syncd.errors import ConfigError
from syncd.ext.hooks import RuleHooks
from syncd.ext.hookspecs import hookimpl
from syncd.ext.loader import check_plugins, load_plugins
from syncd.ext.rules import Action, Rule
from syncd.ext.types import AccountInfo, SyncSummary


def info(config: Config) -> AccountInfo:
    return AccountInfo.of(config.accounts["a"], {})


class Rules:
    def __init__(self, *rules: Rule) -> None:
        self.rules = list(rules)

    @hookimpl
    def syncd_rules(self, folder: str) -> list[Rule]:
        return [r for r in self.rules if r.folder == folder]


ARCHIVE = Rule("old", "INBOX", "SEEN BEFORE 1-Jan-2020", Action.move("Archive"))


def test_hook_syncd_rules(tmp_path: Path) -> None:
    """Built-in TOML rules come first; a plugin's rules are named after the plugin."""
    config = offline_config(
        tmp_path,
        rules=[{"name": "bills", "search": "FROM x", "action": "flag", "flags": ["\\Flagged"]}],
    )
    plugins = load_plugins(config, extra=[("mine", Rules(ARCHIVE))], use_entry_points=False)

    got = plugins.rules(info(config), "INBOX")

    assert [r.name for r in got] == ["bills", "mine:old"]
    assert plugins.rules(info(config), "Sent") == []
    assert plugins.failures == []


class Raises:
    @hookimpl
    def syncd_rules(self) -> list[Rule]:
        raise RuntimeError("boom")

    @hookimpl
    def syncd_before_sync(self) -> None:
        raise RuntimeError("boom too")


class Garbage:
    def __init__(self, value: object) -> None:
        self.value = value

    @hookimpl
    def syncd_rules(self) -> object:
        return self.value

    @hookimpl
    def syncd_classify(self) -> object:
        return self.value


def test_a_plugin_that_raises_is_named_and_skipped_others_still_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = offline_config(tmp_path)
    plugins = load_plugins(
        config, extra=[("good", Rules(ARCHIVE)), ("bad", Raises())], use_entry_points=False
    )
    with caplog.at_level(logging.ERROR):
        got = plugins.rules(info(config), "INBOX")
        plugins.before_sync(info(config), dry_run=False)

    assert [r.name for r in got] == ["good:old"]
    assert plugins.failures == [
        "plugin bad raised in syncd_rules: RuntimeError: boom; "
        "the plugin is skipped for the rest of this run"
    ]
    assert "plugin bad raised in syncd_rules: RuntimeError: boom" in caplog.text
    plugins.start_run()  # the next run gives it another chance
    assert plugins.failures == []
    plugins.rules(info(config), "INBOX")
    assert len(plugins.failures) == 1


@pytest.mark.parametrize(
    "value",
    [
        {"name": "x"},
        "SEEN",
        [ARCHIVE, "not a rule"],
        [dataclasses.replace(ARCHIVE, folder="Sent")],
    ],
)
def test_garbage_from_syncd_rules_is_reported_and_ignored(tmp_path: Path, value: object) -> None:
    config = offline_config(tmp_path)
    plugins = load_plugins(config, extra=[("junk", Garbage(value))], use_entry_points=False)

    assert plugins.rules(info(config), "INBOX") == []
    assert len(plugins.failures) == 1
    assert plugins.failures[0].startswith("plugin junk returned garbage from syncd_rules")


@pytest.mark.parametrize("value", ["move", {"kind": "move"}, ARCHIVE])
def test_garbage_from_syncd_classify_is_reported_and_ignored(tmp_path: Path, value: object) -> None:
    config = offline_config(tmp_path)
    plugins = load_plugins(config, extra=[("junk", Garbage(value))], use_entry_points=False)

    assert plugins.classify(info(config), "INBOX", 1, Message()) == []
    assert plugins.failures[0].startswith("plugin junk returned garbage from syncd_classify")


class Misspelt:
    @hookimpl
    def syncd_rule(self) -> None:  # not a hook: "syncd_rules"
        return None


class WrongArgument:
    @hookimpl
    def syncd_rules(self, acount: object) -> None:
        return None


class Wrapper:
    @hookimpl(wrapper=True)
    def syncd_rules(self) -> Any:
        return (yield)


@pytest.mark.parametrize(
    ("plugin", "problem"),
    [
        (Misspelt(), "unknown hook 'syncd_rule'"),
        (WrongArgument(), "acount"),
        (Wrapper(), "syncd_rules is a wrapper"),
    ],
)
def test_invalid_plugins_are_left_out_at_start_up(
    tmp_path: Path, plugin: object, problem: str
) -> None:
    config = offline_config(tmp_path)
    plugins = load_plugins(
        config, extra=[("odd", plugin), ("good", Rules(ARCHIVE))], use_entry_points=False
    )

    (odd,) = [i for i in plugins.infos if i.name == "odd"]
    assert odd.status == "failed"
    assert odd.problem is not None
    assert problem in odd.problem
    assert plugins.pm.get_plugin("odd") is None
    assert [r.name for r in plugins.rules(info(config), "INBOX")] == ["good:old"]
    assert plugins.failures == [odd.problem]


def test_disable_blocks_a_plugin_including_the_builtin(tmp_path: Path) -> None:
    config = offline_config(
        tmp_path,
        '[plugins]\ndisable = ["rules", "mine"]\n',
        rules=[{"search": "ALL", "action": "flag", "flags": ["\\Seen"]}],
    )
    plugins = load_plugins(config, extra=[("mine", Rules(ARCHIVE))], use_entry_points=False)

    assert plugins.rules(info(config), "INBOX") == []
    assert {i.name: i.status for i in plugins.infos} == {"rules": "disabled", "mine": "disabled"}


MALFORMED = [
    ('[plugins]\ndisable = "notmuch"\n', "plugins.disable: must be an array of plugin names"),
    ('[plugins]\nenable = "notmuch"\n', "plugins.enable: must be an array of plugin names"),
    ('[plugins]\nenable = ["lists", 3]\n', r"plugins.enable: .*\(got the item 3\)"),
    ('[plugins]\nenable = [""]\n', r"plugins.enable: .*\(got the item ''\)"),
    ("[plugins.enable]\nlists = true\n", r"plugins.enable: .*\(got a table\)"),
    (
        '[plugins]\nenable = ["lists", "spam"]\ndisable = ["spam"]\n',
        "plugins.enable: spam is in plugins.disable too",
    ),
    ("[plugins]\nlists = 3\n", "plugins.lists: must be a table of settings"),
]


@pytest.mark.parametrize(("plugins_table", "message"), MALFORMED)
def test_malformed_plugins_table_is_a_config_error(
    tmp_path: Path, plugins_table: str, message: str
) -> None:
    config = offline_config(tmp_path, plugins_table)
    with pytest.raises(ConfigError, match=message):
        load_plugins(config, use_entry_points=False)


@pytest.mark.parametrize(("plugins_table", "message"), MALFORMED[1:6])
def test_syncd_check_names_a_bad_enable_and_exits_2(
    tmp_path: Path, plugins_table: str, message: str
) -> None:
    path = offline_config(tmp_path, plugins_table).path

    proc = run_syncd("check", config=path)

    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"{path}: plugins.enable: ")


# --------------------------------------------------------------------------- entry points

SPY = """
from pathlib import Path

from syncd.ext.hookspecs import hookimpl

MARKS = Path({marks!r})
(MARKS / "{name} imported").write_text("")


@hookimpl
def syncd_before_sync(account):
    (MARKS / f"{name} called in {{account.name}}").write_text("")
"""

BOOM = """
from pathlib import Path

(Path({marks!r}) / "boom imported").write_text("")
raise RuntimeError("boom at import")
"""

Install = Callable[[str, Mapping[str, str]], None]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on ``sys.path`` (and PYTHONPATH, for ``python -m syncd``) where
    :func:`install` puts entry-point plugins; their modules are forgotten after."""
    path = tmp_path / "site"
    path.mkdir()
    (tmp_path / "marks").mkdir()
    monkeypatch.syspath_prepend(str(path))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(path) + (os.pathsep + old if old else ""))
    yield path
    for module in path.glob("*.py"):
        sys.modules.pop(module.stem, None)


def install(site: Path, dist: str, entry_points: Mapping[str, str]) -> None:
    """Install distribution ``dist`` 1.0 into ``site``: its ``.dist-info`` (all that
    importlib.metadata reads) with ``entry_points`` (name -> module), and a module
    per entry point: ``syncd_boom`` raises on import, the others are spies; every
    import and call leaves a file in ``<site>/../marks``."""
    marks = str(site.parent / "marks")
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
    (info / "entry_points.txt").write_text("[syncd]\n" + lines)
    for name, module in entry_points.items():
        source = BOOM if module == "syncd_boom" else SPY
        (site / f"{module}.py").write_text(source.format(marks=marks, name=name))


def marks(site: Path) -> list[str]:
    return sorted(p.name for p in (site.parent / "marks").iterdir())


def statuses(plugins: Any) -> dict[str, str]:
    return {i.name: i.status for i in plugins.infos}


def test_installed_plugins_are_not_imported_unless_enabled(tmp_path: Path, site: Path) -> None:
    install(site, "syncd-spy", {"spy": "syncd_spy"})
    install(site, "syncd-boom", {"boom": "syncd_boom"})
    config = offline_config(tmp_path)

    plugins = load_plugins(config)
    plugins.before_sync(info(config), dry_run=False)

    assert marks(site) == []  # neither module was imported
    assert statuses(plugins) == {"rules": "loaded", "boom": "not enabled", "spy": "not enabled"}
    (spy,) = [i for i in plugins.infos if i.name == "spy"]
    assert (spy.distribution, spy.version) == ("syncd-spy", "1.0")
    assert spy.note == 'to load it: [plugins] enable = ["spy"]'
    assert plugins.failures == []
    assert check_plugins(config) == []


def test_an_enabled_plugin_is_imported_and_called(tmp_path: Path, site: Path) -> None:
    install(site, "syncd-spy", {"spy": "syncd_spy"})
    install(site, "syncd-boom", {"boom": "syncd_boom"})
    config = offline_config(tmp_path, '[plugins]\nenable = ["spy"]\n')

    plugins = load_plugins(config)
    plugins.before_sync(info(config), dry_run=False)

    assert marks(site) == ["spy called in a", "spy imported"]
    assert statuses(plugins) == {"rules": "loaded", "boom": "not enabled", "spy": "loaded"}
    (spy,) = [i for i in plugins.infos if i.name == "spy"]
    assert spy.hooks == ("syncd_before_sync",)
    assert plugins.failures == []


def test_an_enabled_plugin_that_cannot_be_imported_is_a_failure(
    tmp_path: Path, site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install(site, "syncd-boom", {"boom": "syncd_boom"})
    config = offline_config(tmp_path, '[plugins]\nenable = ["boom"]\n')

    with caplog.at_level(logging.ERROR):
        plugins = load_plugins(config)

    assert statuses(plugins) == {"rules": "loaded", "boom": "failed"}
    assert plugins.failures == [
        "plugin boom (syncd-boom) cannot be loaded: RuntimeError: boom at import"
    ]
    assert "to leave it out, remove it from [plugins] enable" in caplog.text


def test_enabling_a_plugin_that_is_not_installed_warns_and_fails_check(
    tmp_path: Path, site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install(site, "syncd-spy", {"spy": "syncd_spy", "spy2": "syncd_spy2"})
    config = offline_config(tmp_path, '[plugins]\nenable = ["spy", "spyy"]\n')

    proc = run_syncd("check", config=config.path)

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"{config.path}: plugins.enable: spyy is not installed (installed syncd plugins: spy, spy2)"
    ]
    assert marks(site) == []  # check imports no plugin, enabled or not

    with caplog.at_level(logging.WARNING):
        plugins = load_plugins(config)

    assert "[plugins] enable names spyy, which is not installed" in caplog.text
    assert statuses(plugins) == {
        "rules": "loaded",
        "spy": "loaded",
        "spy2": "not enabled",
        "spyy": "not installed",
    }
    assert plugins.failures == []  # a sync goes on without it


def test_an_entry_point_cannot_take_a_reserved_name(tmp_path: Path, site: Path) -> None:
    install(site, "syncd-sly", {"rules": "syncd_sly", "timeout": "syncd_sly2"})
    config = offline_config(
        tmp_path,
        '[plugins]\nenable = ["rules", "timeout"]\n',
        rules=[{"name": "mine", "search": "ALL", "action": "flag", "flags": ["\\Seen"]}],
    )

    plugins = load_plugins(config)

    assert marks(site) == []
    assert [(i.name, i.distribution, i.status) for i in plugins.infos] == [
        ("rules", "syncd", "loaded"),  # the built-in, with the TOML rules
        ("rules", "syncd-sly", "ignored"),
        ("timeout", "syncd-sly", "ignored"),
    ]
    assert [r.name for r in plugins.rules(info(config), "INBOX")] == ["mine"]


def test_plugins_see_no_credentials(tmp_path: Path) -> None:
    config = offline_config(tmp_path, "[plugins.mine]\nkey = 1\n")
    seen = AccountInfo.of(config.accounts["a"], {"mine": {"key": 1}})

    fields = {f.name for f in dataclasses.fields(seen)}
    assert "password_command" not in fields
    assert "secret-pw" not in repr(seen)
    assert seen.settings_for("mine") == {"key": 1}
    assert seen.settings_for("other") == {}


# --------------------------------------------------------------------------- hooks in a sync


class Recorder:
    """Implements every hook and records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def syncd_before_sync(self, account: AccountInfo, dry_run: bool) -> None:
        self.calls.append(("before", (account.name, dry_run)))

    @hookimpl
    def syncd_after_sync(self, account: AccountInfo, summary: SyncSummary) -> None:
        self.calls.append(("after", summary))

    @hookimpl
    def syncd_classify_headers(self, folder: str) -> list[str] | None:
        return ["X-Tag", "Subject"] if folder == "INBOX" else None

    @hookimpl
    def syncd_classify(self, folder: str, uid: int, headers: Message) -> Action | None:
        self.calls.append(("classify", (folder, uid, headers["Subject"])))
        if headers["X-Tag"] == "receipt":
            return Action.move("Receipts")
        if headers["X-Tag"] == "star":
            return Action.flag("\\Flagged")
        return None


def sync_once(config: Config, recorder: Recorder, *, dry_run: bool = False) -> Any:
    plugins = load_plugins(config, extra=[("rec", recorder)], use_entry_points=False)
    options = RunOptions(dry_run=dry_run)
    hooks = RuleHooks(config, plugins, options)
    syncer = AccountSyncer(config, config.accounts["test"], hooks=hooks)
    try:
        return syncer.sync(options)
    finally:
        syncer.close()
        hooks.close()


def tagged(subject: str, tag: str | None = None) -> bytes:
    return make_message(subject=subject, headers={"X-Tag": tag} if tag else None)


def test_hook_syncd_classify(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    create_folder(dovecot, account, "Receipts")
    for subject, tag in (("shop", "receipt"), ("hello", None), ("important", "star")):
        append(dovecot, account, "INBOX", tagged(subject, tag))
    config = load_config(
        write_config(tmp_path, {"test": account_config(dovecot, account, tmp_path / "Mail")})
    )
    recorder = Recorder()

    report = sync_once(config, recorder)

    assert report.ok, report
    classified = [c[1] for c in recorder.calls if c[0] == "classify"]
    assert classified == [("INBOX", 1, "shop"), ("INBOX", 2, "hello"), ("INBOX", 3, "important")]
    remote = server_snapshot(dovecot, account)
    assert {v.subject: v.flags for v in remote["INBOX"]} == {
        "hello": frozenset(),
        "important": frozenset({"\\Flagged"}),
    }
    assert [v.subject for v in remote["Receipts"]] == ["shop"]
    local = local_snapshot(tmp_path / "Mail", "maildir++")
    assert sorted(v.subject or "" for v in local["Receipts"]) == ["shop"]

    # Only messages never classified are offered again.
    append(dovecot, account, "INBOX", tagged("later", "receipt"))
    recorder = Recorder()
    sync_once(config, recorder)
    assert [c[1] for c in recorder.calls if c[0] == "classify"] == [("INBOX", 4, "later")]
    assert sorted(v.subject or "" for v in server_snapshot(dovecot, account)["Receipts"]) == [
        "later",
        "shop",
    ]


def test_hook_syncd_classify_headers(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    # Only folders some plugin asks headers for are classified.
    append(dovecot, account, "INBOX", tagged("in inbox"))
    append(dovecot, account, "Other", tagged("elsewhere", "receipt"))
    config = load_config(
        write_config(tmp_path, {"test": account_config(dovecot, account, tmp_path / "Mail")})
    )
    plugins = load_plugins(config, extra=[("rec", Recorder())], use_entry_points=False)
    assert plugins.classify_headers(info_of(config), "INBOX") == ["X-Tag", "Subject"]
    assert plugins.classify_headers(info_of(config), "Other") == []
    recorder = Recorder()

    sync_once(config, recorder)

    assert [c[1] for c in recorder.calls if c[0] == "classify"] == [("INBOX", 1, "in inbox")]


def info_of(config: Config) -> AccountInfo:
    return AccountInfo.of(config.accounts["test"], {})


def test_hook_syncd_before_sync(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    config = load_config(
        write_config(tmp_path, {"test": account_config(dovecot, account, tmp_path / "Mail")})
    )
    recorder = Recorder()

    sync_once(config, recorder, dry_run=True)
    sync_once(config, recorder)

    assert [c for c in recorder.calls if c[0] == "before"] == [
        ("before", ("test", True)),
        ("before", ("test", False)),
    ]
    assert recorder.calls[0][0] == "before"


def test_hook_syncd_after_sync(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    append(dovecot, account, "INBOX", tagged("one"))
    append(dovecot, account, "INBOX", tagged("two", "star"))
    config = load_config(
        write_config(tmp_path, {"test": account_config(dovecot, account, tmp_path / "Mail")})
    )
    recorder = Recorder()

    sync_once(config, recorder, dry_run=True)
    sync_once(config, recorder)
    sync_once(config, recorder)

    dry, first, second = [c[1] for c in recorder.calls if c[0] == "after"]
    assert isinstance(first, SyncSummary)
    assert dry.dry_run and not dry.changed_locally
    assert first.ok and first.changed_locally
    assert [(f.name, f.downloaded, f.rule_actions) for f in first.folders] == [("INBOX", 2, 1)]
    assert not second.changed_locally
    assert recorder.calls[-1][0] == "after"


def test_failures_make_the_account_report_fail_but_the_sync_goes_on(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    append(dovecot, account, "INBOX", tagged("one"))
    config = load_config(
        write_config(tmp_path, {"test": account_config(dovecot, account, tmp_path / "Mail")})
    )
    plugins = load_plugins(config, extra=[("bad", Raises())], use_entry_points=False)
    hooks = RuleHooks(config, plugins)
    syncer = AccountSyncer(config, config.accounts["test"], hooks=hooks)
    try:
        report = syncer.sync(RunOptions())
    finally:
        syncer.close()
        hooks.close()

    assert not report.ok
    assert [f.downloaded for f in report.folders if f.name == "INBOX"] == [1]
    errors = [f.error for f in report.folders if f.error]
    assert len(errors) == 1
    assert errors[0] is not None
    assert "plugin bad raised in syncd_before_sync" in errors[0]


def test_a_name_two_packages_provide_is_imported_from_neither(tmp_path: Path, site: Path) -> None:
    """``enable`` names an entry point, not a distribution: when two installed packages
    register ``spam``, which would load depends on discovery order and the other's
    module-level code would run unasked -- neither is imported, and check says why."""
    install(site, "syncd-spam", {"spam": "syncd_spam_real"})
    install(site, "aaa-unrelated-tool", {"spam": "unrelated_tool_spam"})
    config = offline_config(tmp_path, '[plugins]\nenable = ["spam"]\n')

    plugins = load_plugins(config)

    assert marks(site) == []  # neither module was imported
    assert plugins.failures == []
    [ours] = [i for i in plugins.infos if i.name == "spam" and i.distribution == "syncd-spam"]
    assert ours.status == "ignored"
    assert "aaa-unrelated-tool and syncd-spam" in (ours.note or "")
    [problem] = check_plugins(config)
    assert "spam is provided by aaa-unrelated-tool and syncd-spam" in problem


def test_hooks_built_for_a_real_run_refuse_to_ride_a_dry_run(tmp_path: Path) -> None:
    """dry_run travels once, in the options the hooks are built with; a sync given
    other options is a programming error caught before anything runs."""
    from syncd.ext.loader import load_plugins

    config = offline_config(tmp_path)
    hooks = RuleHooks(config, load_plugins(config), RunOptions(dry_run=False))
    syncer = AccountSyncer(config, config.accounts["a"], hooks=hooks)
    with pytest.raises(ValueError, match="disagree on dry_run"):
        syncer.sync(RunOptions(dry_run=True))


CHATTY = """
import logging

from syncd.ext.hookspecs import hookimpl

logger = logging.getLogger(__name__)


@hookimpl
def syncd_before_sync(account):
    logger.info("chatty info for %s", account.name)
    logger.debug("chatty debug for %s", account.name)
"""


@pytest.mark.parametrize(
    ("verbosity", "shown"), [(-1, set()), (0, {"info"}), (1, {"info", "debug"})]
)
def test_a_plugin_logs_at_the_level_the_user_chose_for_syncd(
    tmp_path: Path, site: Path, verbosity: int, shown: set[str]
) -> None:
    """Issue 15: plugin INFO lines only appeared at -vv (the libraries' level)."""
    import io

    from syncd.logsetup import setup_logging

    (site / "syncd_chatty.py").write_text(CHATTY)
    info_dir = site / "syncd_chatty-1.0.dist-info"
    info_dir.mkdir()
    (info_dir / "METADATA").write_text("Metadata-Version: 2.1\nName: syncd-chatty\nVersion: 1.0\n")
    (info_dir / "entry_points.txt").write_text("[syncd]\nchatty = syncd_chatty\n")
    config = offline_config(tmp_path, '[plugins]\nenable = ["chatty"]\n')
    stream = io.StringIO()
    root, syncd_logger = logging.getLogger(), logging.getLogger("syncd")
    saved = (root.level, syncd_logger.level, list(root.handlers))
    try:
        setup_logging(verbosity, stream=stream, environ={"SYNCD_LOG_TIMESTAMPS": "0"})
        plugins = load_plugins(config)
        plugins.before_sync(info(config), dry_run=False)
    finally:
        for handler in root.handlers[:]:
            if handler not in saved[2]:
                root.removeHandler(handler)
        root.setLevel(saved[0])
        syncd_logger.setLevel(saved[1])
        logging.getLogger("syncd_chatty").setLevel(logging.NOTSET)
    text = stream.getvalue()
    assert ("chatty info for a" in text) == ("info" in shown), text
    assert ("chatty debug for a" in text) == ("debug" in shown), text
    if shown:
        assert "INFO syncd_chatty: chatty info for a" in text
