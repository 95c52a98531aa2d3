"""The rule model, SEARCH text handling and TOML rule parsing (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.run import write_config

from syncd.config import load_config
from syncd.errors import ConfigError
from syncd.ext.rules import Action, Rule, parse_rules
from syncd.ext.runner import ClassifyMarks
from syncd.ext.search import Quoted, parse_search, search_args


def account_with(tmp_path: Path, rules: list[dict[str, Any]]) -> Any:
    table = {
        "host": "127.0.0.1",
        "tls": "none",
        "user": "u",
        "password_command": "true",
        "maildir": str(tmp_path / "Mail"),
        "rules": rules,
    }
    path = write_config(tmp_path, {"work": table})
    return load_config(path), path


def test_toml_rules_parse_in_order_with_defaults(tmp_path: Path) -> None:
    config, path = account_with(
        tmp_path,
        [
            {
                "name": "alerts",
                "search": 'FROM "alerts@example.org" UNSEEN',
                "action": "move",
                "target": "Alerts",
            },
            {"search": "FLAGGED", "action": "unflag", "flags": ["\\flagged", "todo"]},
            {"folder": "inbox/Sub", "search": "ALL", "action": "delete"},
        ],
    )

    rules = parse_rules(config.accounts["work"], file=path)

    assert rules == (
        Rule("alerts", "INBOX", 'FROM "alerts@example.org" UNSEEN', Action.move("Alerts")),
        Rule("rules[1]", "INBOX", "FLAGGED", Action.unflag("\\Flagged", "todo")),
        Rule("rules[2]", "INBOX/Sub", "ALL", Action.delete()),
    )
    assert str(rules[0].action) == "move to Alerts"
    assert str(rules[1].action) == "unflag -\\Flagged -todo"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"action": "move", "target": "X"}, "rules[0].search: required key is missing"),
        ({"search": "ALL"}, "rules[0].action: must be one of move, copy, flag, unflag, delete"),
        ({"search": "ALL", "action": "archive"}, "rules[0].action: must be one of"),
        ({"search": "ALL", "action": "move"}, "rules[0].target: required for action 'move'"),
        ({"search": "ALL", "action": "move", "target": "INBOX"}, "rules[0].target: is the folder"),
        ({"search": "ALL", "action": "move", "target": "a//b"}, "rules[0].target: has an empty"),
        ({"search": "ALL", "action": "move", "target": "../x"}, "rules[0].target: has an empty"),
        (
            {"search": "ALL", "action": "delete", "target": "X"},
            "rules[0].target: only move and copy",
        ),
        ({"search": "ALL", "action": "flag"}, "rules[0].flags: required for action 'flag'"),
        (
            {"search": "ALL", "action": "flag", "flags": "\\Seen"},
            "rules[0].flags: must be an array",
        ),
        (
            {"search": "ALL", "action": "flag", "flags": ["a b"]},
            'rules[0].flags: not a flag name: "a b"',
        ),
        ({"search": "ALL", "action": "flag", "flags": ["\\Deleted"]}, 'use action = "delete"'),
        ({"search": "ALL", "action": "flag", "flags": ["\\Bogus"]}, "unknown system flag"),
        (
            {"search": "ALL", "action": "copy", "target": "X", "flags": ["x"]},
            "rules[0].flags: only",
        ),
        ({"search": 'FROM "x', "action": "delete"}, "rules[0].search: an unclosed quote"),
        ({"search": "(FROM x", "action": "delete"}, "rules[0].search: unclosed '('"),
        ({"search": "FROM x)", "action": "delete"}, "rules[0].search: unbalanced ')'"),
        ({"search": "  ", "action": "delete"}, "rules[0].search: search must not be empty"),
        ({"search": "TEXT {3}", "action": "delete"}, "rules[0].search: unexpected '{'"),
        ({"search": 7, "action": "delete"}, "rules[0].search: search must be a string"),
        ({"search": "ALL", "action": "delete", "serach": "x"}, "rules[0].serach: unknown key"),
        ({"name": "", "search": "ALL", "action": "delete"}, "rules[0].name: must be a non-empty"),
    ],
)
def test_bad_toml_rules_give_one_line_naming_the_key(
    tmp_path: Path, rule: dict[str, Any], message: str
) -> None:
    config, path = account_with(tmp_path, [rule])
    with pytest.raises(ConfigError) as info:
        parse_rules(config.accounts["work"], file=path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: accounts.work.rules[0].")
    assert message in text


def test_duplicate_rule_names_are_refused(tmp_path: Path) -> None:
    rule = {"name": "x", "search": "ALL", "action": "flag", "flags": ["\\Seen"]}
    config, path = account_with(tmp_path, [rule, rule])
    with pytest.raises(
        ConfigError, match=r"rules\[1\]\.name: \"x\" is already the name of rules\[0\]"
    ):
        parse_rules(config.accounts["work"], file=path)


def test_sync_with_bad_rules_exits_2_naming_the_key(tmp_path: Path) -> None:
    from support.run import run_syncd

    _config, path = account_with(tmp_path, [{"search": "ALL", "action": "fly"}])
    proc = run_syncd("sync", config=path)
    assert proc.returncode == 2
    assert "accounts.work.rules[0].action: must be one of" in proc.stderr


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("UNSEEN", ["UNSEEN"]),
        ('FROM "a b" SEEN', ["FROM", "a b", "SEEN"]),
        ('SUBJECT "say \\"hi\\" \\\\o/"', ["SUBJECT", 'say "hi" \\o/']),
        ("OR (FROM a) (NOT SEEN)", ["OR", ["FROM", "a"], ["NOT", "SEEN"]]),
        ("KEYWORD $Junk  NOT  KEYWORD \\Seen", ["KEYWORD", "$Junk", "NOT", "KEYWORD", "\\Seen"]),
        ("((ALL))", [[["ALL"]]]),
    ],
)
def test_parse_search(text: str, items: list[Any]) -> None:
    assert parse_search(text) == items


def test_quoted_strings_stay_quoted() -> None:
    (_, value) = parse_search('SUBJECT "ALL"')
    assert isinstance(value, Quoted)
    assert search_args('SUBJECT  "ALL"   (FROM "x y")') == ('SUBJECT "ALL" (FROM "x y")', None)


@pytest.mark.parametrize("text", ["FROM x\r\nA1 LOGOUT", "FROM \0", "SUBJECT \n"])
def test_search_refuses_line_breaks_and_nul(text: str) -> None:
    with pytest.raises(ValueError, match="line break or NUL"):
        parse_search(text)


def test_non_ascii_search_goes_as_utf8_items_with_charset() -> None:
    criteria, charset = search_args('OR (SUBJECT "été") FROM "zoë"')
    assert charset == "UTF-8"
    assert criteria == [
        b"OR",
        [b"SUBJECT", "été".encode(), b"ALL"],  # ALL keeps the literal off the ")"
        b"FROM",
        "zoë".encode(),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "move"}, "non-empty folder name"),
        ({"kind": "flag", "flags": frozenset()}, "at least one flag"),
        ({"kind": "flag", "flags": frozenset({"\\Recent"})}, "cannot be set by a rule"),
        ({"kind": "delete", "flags": frozenset({"x"})}, "takes no flags"),
        ({"kind": "unflag", "target": "X", "flags": frozenset({"x"})}, "takes no target"),
        ({"kind": "burn"}, "action must be one of"),
    ],
)
def test_invalid_actions_raise(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Action(**kwargs)


def test_rule_validates_its_parts() -> None:
    with pytest.raises(ValueError, match="unclosed"):
        Rule("x", "INBOX", "(ALL", Action.delete())
    with pytest.raises(ValueError, match="is the folder the rule searches"):
        Rule("x", "inbox", "ALL", Action.move("INBOX"))
    with pytest.raises(ValueError, match="must be an Action"):
        Rule("x", "INBOX", "ALL", "delete")  # type: ignore[arg-type]
    assert Rule("x", "inbox", "ALL", Action.copy("A")).folder == "INBOX"
    assert Action.move("inbox/x") == Action("move", target="INBOX/x")
    assert Action.flag("\\SEEN").flags == {"\\Seen"}


def test_classify_marks_follow_uidvalidity(tmp_path: Path) -> None:
    path = tmp_path / "state" / "a.rules.db"
    marks = ClassifyMarks(path)
    assert marks.get("INBOX", 7) == 0
    assert not path.exists()  # reading creates nothing (dry runs)
    marks.set("INBOX", 7, 42)
    assert marks.get("INBOX", 7) == 42
    assert marks.get("INBOX", 8) == 0  # a new UIDVALIDITY: classify again
    marks.close()
    assert ClassifyMarks(path).get("INBOX", 7) == 42
    assert path.stat().st_mode & 0o777 == 0o600
