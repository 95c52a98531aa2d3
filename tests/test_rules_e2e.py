"""Rules against a real Dovecot: TOML rules through `syncd sync` and `syncd rules`,
checked on the server and in the Maildir as a user would check them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import summary
from support.imap import append, create_folder, server_snapshot, session, set_flags
from support.mail import make_message
from support.maildir import local_snapshot
from support.run import account_config, run_syncd, write_config

from devserver.dovecot import DevServer, User, capabilities_without
from syncd.account.syncer import AccountSyncer
from syncd.config import load_config
from syncd.engine.options import RunOptions
from syncd.ext.hooks import load_hooks

TRASH_CONF = "namespace inbox {\n  mailbox Bin {\n    special_use = \\Trash\n  }\n}"


def setup(
    tmp_path: Path, server: DevServer, user: User, rules: list[dict[str, Any]], **overrides: Any
) -> tuple[Path, Path]:
    maildir = tmp_path / "Mail"
    config = write_config(
        tmp_path, {"test": account_config(server, user, maildir, rules=rules, **overrides)}
    )
    return config, maildir


def subjects(snapshot: dict[str, list[Any]]) -> dict[str, list[str]]:
    return {folder: sorted(v.subject or "" for v in views) for folder, views in snapshot.items()}


def flags_by_subject(server: DevServer, user: User, folder: str) -> dict[str, frozenset[str]]:
    return {v.subject or "": v.flags for v in server_snapshot(server, user)[folder]}


def deliver_inbox(server: DevServer, user: User, *specs: tuple[str, str]) -> list[int]:
    return [
        append(server, user, "INBOX", make_message(subject=subject, sender=sender))
        for subject, sender in specs
    ]


ALERTS_RULE = {
    "name": "alerts",
    "folder": "INBOX",
    "search": 'FROM "alerts@example.org" UNSEEN',
    "action": "move",
    "target": "Alerts",
}


def test_toml_move_rule_files_mail_and_same_sync_leaves_maildir_filed(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    create_folder(dovecot, account, "Alerts")
    deliver_inbox(
        dovecot,
        account,
        ("disk full", "Monitor <alerts@example.org>"),
        ("lunch?", "Bob <bob@example.com>"),
        ("cpu hot", "alerts@example.org"),
    )
    read = append(
        dovecot, account, "INBOX", make_message(subject="old alert", sender="alerts@example.org")
    )
    set_flags(dovecot, account, "INBOX", [read], ["\\Seen"])
    config, maildir = setup(tmp_path, dovecot, account, [ALERTS_RULE])

    proc = run_syncd("sync", config=config)

    assert proc.returncode == 0, proc.stderr
    remote = server_snapshot(dovecot, account)
    assert subjects(remote) == {
        "INBOX": ["lunch?", "old alert"],
        "Alerts": ["cpu hot", "disk full"],
    }
    assert summary(local_snapshot(maildir, "maildir++")) == summary(remote)
    assert "rule alerts: moved to Alerts 2 messages" in proc.stderr


def test_missing_target_folder_is_created(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    deliver_inbox(dovecot, account, ("disk full", "alerts@example.org"), ("hi", "bob@example.com"))
    rule = {**ALERTS_RULE, "target": "Robots/Alerts"}
    config, maildir = setup(tmp_path, dovecot, account, [rule])

    run_syncd("sync", config=config, check=True)
    assert subjects(server_snapshot(dovecot, account)) == {
        "INBOX": ["hi"],
        "Robots/Alerts": ["disk full"],
    }
    # the folder the rule created reaches the Maildir in the same run
    remote = server_snapshot(dovecot, account)
    assert summary(local_snapshot(maildir, "maildir++")) == summary(remote)


def test_flag_and_unflag_rules_touch_exactly_the_matched_messages(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    deliver_inbox(
        dovecot,
        account,
        ("invoice 1", "billing@example.org"),
        ("invoice 2", "billing@example.org"),
        ("news", "news@example.org"),
    )
    uids = [v.uid for v in server_snapshot(dovecot, account)["INBOX"]]
    set_flags(dovecot, account, "INBOX", uids, ["\\Seen"])
    rules = [
        {
            "name": "star-bills",
            "search": 'FROM "billing@example.org"',
            "action": "flag",
            "flags": ["\\Flagged", "billing"],
        },
        {
            "name": "unread-news",
            "search": 'SUBJECT "news"',
            "action": "unflag",
            "flags": ["\\Seen"],
        },
    ]
    config, _maildir = setup(tmp_path, dovecot, account, rules)

    proc = run_syncd("rules", config=config)

    assert proc.returncode == 0, proc.stderr
    assert flags_by_subject(dovecot, account, "INBOX") == {
        "invoice 1": frozenset({"\\Seen", "\\Flagged", "billing"}),
        "invoice 2": frozenset({"\\Seen", "\\Flagged", "billing"}),
        "news": frozenset(),
    }
    assert "rule star-bills: flagged \\Flagged billing 2 messages" in proc.stderr
    assert not (tmp_path / "Mail").exists()  # `syncd rules` never touches the Maildir


def test_delete_rule_expunges_exactly_the_matched_uids(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    deliver_inbox(
        dovecot,
        account,
        ("spam 1", "spammer@example.net"),
        ("keep", "bob@example.com"),
        ("spam 2", "spammer@example.net"),
        ("other client's", "carol@example.com"),
    )
    # Another client marked a message \Deleted without expunging it: a rule must
    # not expunge it (no bare EXPUNGE).
    theirs = [
        v.uid for v in server_snapshot(dovecot, account)["INBOX"] if v.subject == "other client's"
    ]
    set_flags(dovecot, account, "INBOX", theirs, ["\\Deleted"])
    rule = {"name": "drop", "search": 'FROM "spammer@example.net"', "action": "delete"}
    config, _maildir = setup(tmp_path, dovecot, account, [rule])

    run_syncd("rules", config=config, check=True)

    assert flags_by_subject(dovecot, account, "INBOX") == {
        "keep": frozenset(),
        "other client's": frozenset({"\\Deleted"}),
    }


def test_delete_rule_moves_to_the_configured_trash(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    deliver_inbox(dovecot, account, ("spam", "spammer@example.net"), ("keep", "bob@example.com"))
    rule = {"name": "drop", "search": 'FROM "spammer@example.net"', "action": "delete"}
    config, _maildir = setup(tmp_path, dovecot, account, [rule], trash="Trash")

    run_syncd("rules", config=config, check=True)

    assert subjects(server_snapshot(dovecot, account)) == {"INBOX": ["keep"], "Trash": ["spam"]}


def test_delete_rule_uses_the_special_use_trash(tmp_path: Path, dovecot_server: Any) -> None:
    server = dovecot_server(extra_conf=TRASH_CONF)
    user = server.add_user()
    create_folder(server, user, "Bin")
    deliver_inbox(server, user, ("spam", "spammer@example.net"), ("keep", "bob@example.com"))
    rule = {"name": "drop", "search": 'FROM "spammer@example.net"', "action": "delete"}
    config, _maildir = setup(tmp_path, server, user, [rule])

    run_syncd("rules", config=config, check=True)

    assert subjects(server_snapshot(server, user)) == {"INBOX": ["keep"], "Bin": ["spam"]}


def test_dry_run_changes_nothing_and_prints_uid_subject_from(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    create_folder(dovecot, account, "Alerts")
    deliver_inbox(
        dovecot,
        account,
        ("disk full", "alerts@example.org"),
        ("hi", "bob@example.com"),
        ("keep", "carol@example.com"),
    )
    config, maildir = setup(tmp_path, dovecot, account, [])
    run_syncd("sync", config=config, check=True)  # both sides in step, no rules yet
    (new_uid,) = deliver_inbox(dovecot, account, ("disk again", "alerts@example.org"))
    delete = {"name": "drop-hi", "search": 'SUBJECT "hi"', "action": "delete"}
    config, maildir = setup(tmp_path, dovecot, account, [ALERTS_RULE, delete])
    before_remote = summary(server_snapshot(dovecot, account))
    before_local = summary(local_snapshot(maildir, "maildir++"))
    files_before = sorted(p for p in maildir.rglob("*") if p.is_file())
    state_before = sorted(p.name for p in (tmp_path / "state").iterdir())

    for command in ("sync", "rules"):
        proc = run_syncd(command, "--dry-run", config=config)
        assert proc.returncode == 0, proc.stderr
        assert "rule drop-hi: would delete (expunge) UID 2: " in proc.stdout
        assert (
            f'rule alerts: would move to Alerts UID {new_uid}: From "alerts@example.org", '
            'Subject "disk again"' in proc.stdout
        ), proc.stdout

    assert summary(server_snapshot(dovecot, account)) == before_remote
    assert summary(local_snapshot(maildir, "maildir++")) == before_local
    assert sorted(p for p in maildir.rglob("*") if p.is_file()) == files_before
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == state_before


def test_dry_run_shows_delete_and_create(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    (uid,) = deliver_inbox(dovecot, account, ("Promo", "Shop <shop@example.net>"))
    rules = [
        {"name": "keep-copy", "search": "ALL", "action": "copy", "target": "Saved"},
        {"name": "drop", "search": 'FROM "shop@example.net"', "action": "delete"},
    ]
    config, _maildir = setup(tmp_path, dovecot, account, rules, trash="Trash")
    before = summary(server_snapshot(dovecot, account))

    proc = run_syncd("rules", "--dry-run", config=config, check=True)

    assert proc.stdout.splitlines() == [
        "test/INBOX: rule keep-copy: would create folder Saved",
        f"test/INBOX: rule keep-copy: would copy to Saved UID {uid}: "
        'From "Shop <shop@example.net>", Subject "Promo"',
        "test/INBOX: rule drop: would create folder Trash",
        f'test/INBOX: rule drop: would delete (move to Trash) UID {uid}: From "Shop '
        '<shop@example.net>", Subject "Promo"',
    ]
    assert summary(server_snapshot(dovecot, account)) == before


def test_rules_apply_in_order_and_a_moved_message_is_left_alone(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    create_folder(dovecot, account, "Alerts")
    deliver_inbox(dovecot, account, ("disk full", "alerts@example.org"), ("hi", "bob@example.com"))
    rules = [
        ALERTS_RULE,
        {"name": "star-all", "search": "ALL", "action": "flag", "flags": ["\\Flagged"]},
    ]
    config, _maildir = setup(tmp_path, dovecot, account, rules)

    run_syncd("rules", config=config, check=True)

    assert flags_by_subject(dovecot, account, "INBOX") == {"hi": frozenset({"\\Flagged"})}
    assert flags_by_subject(dovecot, account, "Alerts") == {"disk full": frozenset()}


def test_mass_delete_brake_applies_to_rules(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    deliver_inbox(dovecot, account, *[(f"m{i}", "x@example.org") for i in range(8)])
    rule = {"name": "wipe", "search": "ALL", "action": "delete"}
    config, _maildir = setup(tmp_path, dovecot, account, [rule])

    proc = run_syncd("rules", config=config)

    assert proc.returncode == 1
    assert "rule wipe: refused to delete 8 of the 8 messages in INBOX" in proc.stderr
    assert len(server_snapshot(dovecot, account)["INBOX"]) == 8

    proc = run_syncd("rules", "--allow-mass-delete", config=config, check=True)
    assert server_snapshot(dovecot, account)["INBOX"] == []


def test_server_without_move_gets_copy_and_expunge(tmp_path: Path, dovecot_server: Any) -> None:
    server = dovecot_server(capability=capabilities_without("MOVE"))
    user = server.add_user()
    with session(server, user) as client:
        assert b"MOVE" not in client.capabilities()
    create_folder(server, user, "Alerts")
    deliver_inbox(server, user, ("disk full", "alerts@example.org"), ("hi", "bob@example.com"))
    config, maildir = setup(tmp_path, server, user, [ALERTS_RULE])

    run_syncd("sync", config=config, check=True)

    remote = server_snapshot(server, user)
    assert subjects(remote) == {"INBOX": ["hi"], "Alerts": ["disk full"]}
    assert all("\\Deleted" not in v.flags for views in remote.values() for v in views)
    assert summary(local_snapshot(maildir, "maildir++")) == summary(remote)


def test_non_ascii_search_uses_charset_utf8(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    deliver_inbox(
        dovecot,
        account,
        ("Réunion d'été", "Zoë <zoe@example.org>"),
        ("Reunion", "bob@example.com"),
        ("Café", "carol@example.com"),
    )
    rules = [
        {"name": "été", "search": 'SUBJECT "été"', "action": "move", "target": "Été"},
        {
            "name": "nested",
            "search": 'OR (SUBJECT "café") (FROM "nobody@example.org")',
            "action": "flag",
            "flags": ["\\Flagged"],
        },
    ]
    config, _maildir = setup(tmp_path, dovecot, account, rules)

    run_syncd("rules", config=config, check=True)

    assert subjects(server_snapshot(dovecot, account)) == {
        "INBOX": ["Café", "Reunion"],
        "Été": ["Réunion d'été"],
    }
    assert flags_by_subject(dovecot, account, "INBOX")["Café"] == {"\\Flagged"}


def test_bad_search_fails_that_rule_only(tmp_path: Path, dovecot: DevServer, account: User) -> None:
    create_folder(dovecot, account, "Alerts")
    deliver_inbox(dovecot, account, ("disk full", "alerts@example.org"))
    rules = [
        # Valid by RFC 9051 and `syncd check` (a Gmail extension), unknown to Dovecot.
        {"name": "gmail", "search": 'X-GM-RAW "in:unread"', "action": "delete"},
        ALERTS_RULE,
    ]
    config, maildir = setup(tmp_path, dovecot, account, rules)

    proc = run_syncd("sync", config=config)

    assert proc.returncode == 1
    (line,) = [x for x in proc.stderr.splitlines() if "rule gmail" in x]
    # Issue 15: the server's words as text on one line, not b'...'\x0a\x0a... cut off
    assert "rule gmail: SEARCH X-GM-RAW \"in:unread\" failed: " in line
    assert "Unknown argument X-GM-RAW" in line, line
    assert "b'" not in line and "\\x0a" not in line and "imapclient" not in line, line
    assert subjects(server_snapshot(dovecot, account)) == {"INBOX": [], "Alerts": ["disk full"]}
    assert subjects(local_snapshot(maildir, "maildir++")) == {"INBOX": [], "Alerts": ["disk full"]}


def test_in_process_sync_with_hooks_reports_rule_actions(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    create_folder(dovecot, account, "Alerts")
    deliver_inbox(dovecot, account, ("disk full", "alerts@example.org"), ("hi", "bob@example.com"))
    path, maildir = setup(tmp_path, dovecot, account, [ALERTS_RULE])
    config = load_config(path)
    hooks = load_hooks(config)
    syncer = AccountSyncer(config, config.accounts["test"], hooks=hooks)
    try:
        report = syncer.sync(RunOptions())
    finally:
        syncer.close()
        hooks.close()
    assert report.ok, report
    assert {f.name: f.downloaded for f in report.folders} == {"INBOX": 1, "Alerts": 1}
    assert subjects(local_snapshot(maildir, "maildir++")) == {
        "INBOX": ["hi"],
        "Alerts": ["disk full"],
    }


def test_hooks_report_the_folders_rules_created(
    tmp_path: Path, dovecot: DevServer, account: User
) -> None:
    deliver_inbox(dovecot, account, ("disk full", "alerts@example.org"))
    path, _maildir = setup(tmp_path, dovecot, account, [{**ALERTS_RULE, "target": "New/Alerts"}])
    config = load_config(path)
    hooks = load_hooks(config)
    syncer = AccountSyncer(config, config.accounts["test"], hooks=hooks)
    try:
        syncer.sync(RunOptions())
        assert hooks.created_folders == ["New/Alerts"]
        syncer.sync(RunOptions())
        assert hooks.created_folders == []
    finally:
        syncer.close()
        hooks.close()
