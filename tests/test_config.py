"""Config parsing: what a user writes, what syncd understands, and what it says when wrong."""

from __future__ import annotations

import dataclasses
import logging
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.cli.check import check_config
from syncd.config import (
    AccountConfig,
    Config,
    config_path,
    format_duration,
    is_loopback_host,
    load_config,
    parse_duration,
)
from syncd.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

BASE = """\
[general]
state_dir = "state"

[accounts.work]
host = "imap.example.org"
user = "me@example.org"
maildir = "mail/work"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def with_keys(tmp_path: Path, extra: str) -> Path:
    """BASE plus *extra* lines inside [accounts.work]."""
    return write(tmp_path, BASE + textwrap.dedent(extra))


def work(tmp_path: Path, extra: str = "") -> AccountConfig:
    return load_config(with_keys(tmp_path, extra)).accounts["work"]


def only_problem(path: Path) -> str:
    problems = check_config(path)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private $HOME and XDG dirs, so no test reads or names the real ones."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / ".local" / "state"))
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)


# --------------------------------------------------------------------------- happy paths


def test_example_config_loads_with_every_key(tmp_path: Path) -> None:
    config = load_config(REPO / "contrib" / "config.example.toml")
    home = tmp_path / "home"
    assert list(config.accounts) == ["work", "local"]
    assert config.state_dir == home / ".local" / "state" / "syncd"
    work = config.accounts["work"]
    assert work.password_command == ("pass", "show", "mail/work")
    assert work.maildir == home / "Mail" / "work"
    assert work.exclude == ("Spam",)
    assert work.interval == 300
    local = config.accounts["local"]
    assert (local.host, local.port, local.tls, local.password_command) == (
        "127.0.0.1",
        1143,
        "none",
        None,
    )
    # The example documents every account key the parser knows.
    text = (REPO / "contrib" / "config.example.toml").read_text()
    for field in dataclasses.fields(AccountConfig):
        if field.name != "name":
            assert f"{field.name} =" in text or f"{field.name}]]" in text, field.name


def test_minimal_account_gets_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(with_keys(tmp_path, ""))
    assert config.path == tmp_path / "config.toml"
    assert config.state_dir == tmp_path / "state"
    assert dict(config.plugins) == {}
    assert config.accounts["work"] == AccountConfig(
        name="work",
        host="imap.example.org",
        port=993,
        tls="tls",
        ca_file=None,
        user="me@example.org",
        password_command=None,
        allow_plaintext=False,
        maildir=tmp_path / "mail" / "work",
        layout="maildir++",
        folders=("*",),
        exclude=(),
        sync="both",
        expunge=True,
        timeout=60.0,
        max_connections=4,
        interval=300.0,
        idle=("INBOX",),
        fsync=True,
        new_to_new=False,
        trash=None,
        rules=(),
        local_names="utf-8",
    )


def test_every_key_is_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    account = work(
        tmp_path,
        """
        port = 10993
        tls = "starttls"
        ca_file = "ca.pem"
        password_command = "pass show 'mail/my work'"
        allow_plaintext = true
        layout = "nested"
        local_names = "imap-utf-7"
        folders = ["INBOX", "Lists/*"]
        exclude = ["Lists/spam*"]
        sync = "pull"
        expunge = false
        timeout = "90s"
        max_connections = 16
        interval = "1h30m"
        idle = []
        fsync = false
        new_to_new = true
        trash = "Trash"
        subscribed_only = true

        [[accounts.work.rules]]
        search = "FROM boss"
        action = "flag"
        """,
    )
    assert account.port == 10993
    assert account.tls == "starttls"
    assert account.ca_file == ca
    assert account.password_command == ("pass", "show", "mail/my work")
    assert account.allow_plaintext is True
    assert account.layout == "nested"
    assert account.local_names == "imap-utf-7"
    assert account.folders == ("INBOX", "Lists/*")
    assert account.exclude == ("Lists/spam*",)
    assert account.sync == "pull"
    assert account.expunge is False
    assert account.timeout == 90
    assert account.max_connections == 16
    assert account.interval == 5400
    assert account.idle == ()
    assert account.fsync is False
    assert account.new_to_new is True
    assert account.trash == "Trash"
    assert account.subscribed_only is True
    assert [dict(rule) for rule in account.rules] == [{"search": "FROM boss", "action": "flag"}]


def test_accounts_keep_file_order_and_plugins_stay_opaque(tmp_path: Path) -> None:
    names = ["zeta", "alpha", "my.acct", "b-2"]
    text = '[general]\nstate_dir = "state"\n[plugins]\ndisable = ["x"]\nfuture = {a = 1}\n'
    for name in names:
        text += f'[accounts."{name}"]\nhost = "h"\nuser = "u"\nmaildir = "mail/{name}"\n'
    config = load_config(write(tmp_path, text))
    assert list(config.accounts) == names
    assert dict(config.plugins) == {"disable": ["x"], "future": {"a": 1}}
    assert config.account("my.acct").maildir == tmp_path / "mail" / "my.acct"


def test_unknown_account_name_lists_the_known_ones(tmp_path: Path) -> None:
    config = load_config(with_keys(tmp_path, ""))
    with pytest.raises(ConfigError, match=r'no account named "wrok" \(configured: work\)'):
        config.account("wrok")


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(with_keys(tmp_path, ""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.accounts["work"].host = "evil.example"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.accounts["x"] = config.accounts["work"]  # type: ignore[index]
    assert isinstance(config, Config)


# --------------------------------------------------------------------------- TLS and ports


@pytest.mark.parametrize(("tls", "port"), [("tls", 993), ("starttls", 143), ("none", 143)])
def test_default_port_follows_tls(tmp_path: Path, tls: str, port: int) -> None:
    account = work(tmp_path, f'tls = "{tls}"\nallow_plaintext = true\n')
    assert (account.tls, account.port) == (tls, port)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_tls_none_is_allowed_to_loopback(tmp_path: Path, host: str) -> None:
    path = write(
        tmp_path,
        f'[general]\nstate_dir = "s"\n[accounts.w]\nhost = "{host}"\ntls = "none"\n'
        'user = "u"\nmaildir = "m"\n',
    )
    account = load_config(path).accounts["w"]
    assert (account.tls, account.port) == ("none", 143)
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "example.org", "128.0.0.1", "localhost.example.org", "::2", "127.1"]
)
def test_tls_none_to_another_host_is_refused_unless_allowed(tmp_path: Path, host: str) -> None:
    path = write(
        tmp_path,
        f'[general]\nstate_dir = "s"\n[accounts.w]\nhost = "{host}"\ntls = "none"\n'
        'user = "u"\nmaildir = "m"\n',
    )
    problem = only_problem(path)
    assert problem.startswith(f"{path}: accounts.w.tls: ")
    assert host in problem
    assert "clear text" in problem
    assert "allow_plaintext" in problem
    assert not is_loopback_host(host)
    path.write_text(path.read_text() + "allow_plaintext = true\n")
    assert load_config(path).accounts["w"].tls == "none"


@pytest.mark.parametrize(
    ("layout", "names"),
    [(lay, n) for lay in ("maildir++", "nested", "flat") for n in ("utf-8", "imap-utf-7")],
)
def test_every_layout_and_local_names_is_accepted(tmp_path: Path, layout: str, names: str) -> None:
    account = work(tmp_path, f'layout = "{layout}"\nlocal_names = "{names}"\n')
    assert (account.layout, account.local_names) == (layout, names)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ('tls = "ssl"', "tls", 'must be one of "tls", "starttls", "none" (got "ssl")'),
        ("port = 0", "port", "must be from 1 to 65535 (got 0)"),
        ('port = "993"', "port", 'must be a whole number (got "993")'),
        ("port = 993.0", "port", "must be a whole number (got 993.0)"),
        ("port = true", "port", "must be a whole number (got true)"),
        ('expunge = "yes"', "expunge", 'must be true or false, without quotes (got "yes")'),
        ("fsync = 1", "fsync", "must be true or false, without quotes (got 1)"),
        ('new_to_new = "false"', "new_to_new", "must be true or false"),
        ("subscribed_only = 1", "subscribed_only", "must be true or false"),
        ('allow_plaintext = "true"', "allow_plaintext", "must be true or false"),
        ('layout = "Flat"', "layout", 'must be one of "maildir++", "nested", "flat" (got "Flat")'),
        ("layout = 1", "layout", 'must be one of "maildir++", "nested", "flat" (got 1)'),
        (
            'local_names = "utf-7"',
            "local_names",
            'must be one of "utf-8", "imap-utf-7" (got "utf-7")',
        ),
        ("local_names = true", "local_names", 'must be one of "utf-8", "imap-utf-7" (got true)'),
        ('local_name = "utf-8"', "local_name", 'unknown key (did you mean "local_names"?)'),
        ('sync = "up"', "sync", 'must be one of "both", "pull", "push" (got "up")'),
        ('folders = "INBOX"', "folders", 'must be an array of strings (got "INBOX")'),
        ("exclude = [1]", "exclude", "must be an array of non-empty strings (found 1)"),
        ('idle = [""]', "idle", 'must be an array of non-empty strings (found "")'),
        ("max_connections = 0", "max_connections", "must be from 1 to 16 (got 0)"),
        ("max_connections = 17", "max_connections", "must be from 1 to 16 (got 17)"),
        ("timeout = 0", "timeout", "must be longer than zero"),
        ("timeout = -5", "timeout", "must be a finite, non-negative duration (got -5)"),
        ('interval = "5x"', "interval", 'not a duration: "5x"'),
        ("interval = true", "interval", "must be a number of seconds or a duration string"),
        ('max_connections = "4"', "max_connections", "must be a whole number"),
        ('trash = ""', "trash", "must not be empty"),
        ("trash = 5", "trash", "must be a string (got 5)"),
        ('ca_file = "missing.pem"', "ca_file", "missing.pem does not exist"),
        ('ca_file = "."', "ca_file", "is not a file"),
        ("ca_file = 1", "ca_file", "must be a path string (got 1)"),
        ('password_command = ""', "password_command", "must name a command"),
        ("password_command = []", "password_command", "must name a command"),
        ('password_command = "pass \'x"', "password_command", "cannot split into arguments"),
        ("password_command = 5", "password_command", "must be a string or an array of strings"),
        ("rules = 5", "rules", "must be an array of tables"),
        ('maildir = ""', "maildir", "must not be empty"),
        ('tsl = "tls"', "tsl", 'unknown key (did you mean "tls"?)'),
        ('mailidr = "x"', "mailidr", 'unknown key (did you mean "maildir"?)'),
        ("max_conections = 2", "max_conections", 'unknown key (did you mean "max_connections"?)'),
        ("xyzzy = 1", "xyzzy", "unknown key"),
        ("when = 2024-01-01", "when", "unknown key"),
        ('password = "hunter22"', "password", "password_command"),
    ],
)
def test_each_bad_value_is_one_line_naming_file_and_key(
    tmp_path: Path, line: str, key: str, expected: str
) -> None:
    # Replace the key if BASE sets it (maildir), else add it.
    text = BASE.replace('maildir = "mail/work"\n', "") if key == "maildir" else BASE
    path = write(tmp_path, text + line + "\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}: accounts.work.{key}: "), problem
    assert expected in problem
    assert "\n" not in problem
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == problem


def test_plaintext_password_is_refused_with_the_alternatives(tmp_path: Path) -> None:
    problem = only_problem(with_keys(tmp_path, 'password = "hunter22"\n'))
    assert "hunter22" not in problem
    assert "not supported" in problem
    assert "password_command" in problem
    assert "`syncd password set work`" in problem


def test_unknown_sections_are_named_with_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE + '[genral]\n[plugin]\n[accounts.other]\nhost="h"\nuser="u"\nmaildir="m"\nhots=1\n',
    )
    problems = check_config(path)
    assert problems == [
        f'{path}: genral: unknown key (did you mean "general"?)',
        f'{path}: plugin: unknown key (did you mean "plugins"?)',
        f'{path}: accounts.other.hots: unknown key (did you mean "host"?)',
    ]
    path = write(tmp_path, '[general]\nstatedir = "s"\n' + BASE.split("\n", 2)[2])
    assert only_problem(path) == (
        f'{path}: general.statedir: unknown key (did you mean "state_dir"?)'
    )


@pytest.mark.parametrize("missing", ["host", "user", "maildir"])
def test_required_keys(tmp_path: Path, missing: str) -> None:
    text = "\n".join(line for line in BASE.splitlines() if not line.startswith(missing + " "))
    path = write(tmp_path, text + "\n")
    assert only_problem(path) == f"{path}: accounts.work.{missing}: required key is missing"


@pytest.mark.parametrize(
    ("host", "ok"),
    [("imap.example.org:993", False), ("imap example.org", False), ("me@example.org", False),
     ("2001:db8::1", True), ("[2001:db8::1]", True), ("mail-1.example.org", True)],
)  # fmt: skip
def test_host_syntax(tmp_path: Path, host: str, ok: bool) -> None:
    path = write(tmp_path, BASE.replace('"imap.example.org"', f'"{host}"'))
    problems = check_config(path)
    if ok:
        assert problems == []
        assert load_config(path).accounts["work"].host == host.strip("[]")
    else:
        assert problems == [
            f'{path}: accounts.work.host: must be a host name or an IP address (got "{host}")'
        ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[general]\nstate_dir = "s"\n', "accounts: no account configured"),
        ("accounts = 5\n", "accounts: must be a table of [accounts.NAME] tables (got 5)"),
        ('[accounts]\nwork = "x"\n', 'accounts.work: must be a table (got "x")'),
        ('[accounts."a/b"]\nhost="h"\n', 'accounts."a/b": account names may use only'),
        ('[accounts."a b"]\nhost="h"\n', 'accounts."a b": account names may use only'),
        ('[accounts.".."]\nhost="h"\n', 'accounts."..": an account name cannot be only dots'),
        ("general = 1\n" + BASE.split("\n", 3)[3], "general: must be a table (got 1)"),
        (BASE + "plugins = 1\n", "accounts.work.plugins: unknown key"),
    ],
)
def test_structure_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    problems = check_config(path)
    assert problems, text
    assert problems[0].startswith(f"{path}: {expected}"), problems


def test_check_lists_every_problem_and_load_raises_the_first(tmp_path: Path) -> None:
    path = with_keys(tmp_path, 'tls = "ssl"\nexpunge = "no"\ninterval = "soon"\nbogus = 1\n')
    problems = check_config(path)
    assert [p.split(": ")[1] for p in problems] == [
        "accounts.work.bogus",
        "accounts.work.tls",
        "accounts.work.expunge",
        "accounts.work.interval",
    ]
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == problems[0]


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "port = = 2\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}: invalid TOML: ")
    assert "line 8, column" in problem


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[accounts.w]\nhost = "\xff"\n')
    assert only_problem(path).startswith(f"{path}: not valid UTF-8")


def test_missing_file_says_where_syncd_looked(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: config file not found")
    assert "--config" in message
    assert "$SYNCD_CONFIG" in message
    assert str(tmp_path / "home" / ".config" / "syncd" / "config.toml") in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert only_problem(tmp_path).startswith(f"{tmp_path}: cannot read the config file: ")


# --------------------------------------------------------------------------- paths


def test_paths_expand_home_and_variables_and_anchor_at_the_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILROOT", str(tmp_path / "root"))
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "config.toml"
    path.write_text(
        '[general]\nstate_dir = "~/state"\n'
        '[accounts.a]\nhost = "h"\nuser = "u"\nmaildir = "$MAILROOT/a"\n'
        '[accounts.b]\nhost = "h"\nuser = "u"\nmaildir = "${MAILROOT}/b/../bb"\n'
        '[accounts.c]\nhost = "h"\nuser = "u"\nmaildir = "../mail/c"\n'
        '[accounts.d]\nhost = "h"\nuser = "u"\nmaildir = "d"\n'
    )
    config = load_config(path)
    assert config.state_dir == tmp_path / "home" / "state"
    assert [a.maildir for a in config.accounts.values()] == [
        tmp_path / "root" / "a",
        tmp_path / "root" / "bb",
        tmp_path / "mail" / "c",
        tmp_path / "conf" / "d",
    ]


def test_unset_variable_is_an_error_not_a_literal_dollar(tmp_path: Path) -> None:
    path = with_keys(tmp_path, "").parent / "config.toml"
    path.write_text(BASE.replace('"mail/work"', '"$SYNCD_TEST_UNSET_VAR/work"'))
    assert only_problem(path) == (
        f"{path}: accounts.work.maildir: uses $SYNCD_TEST_UNSET_VAR, "
        "which is not set in the environment"
    )


def test_default_state_dir_honours_xdg_state_home(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace('state_dir = "state"\n', ""))
    assert load_config(path).state_dir == tmp_path / "home" / ".local" / "state" / "syncd"


@pytest.mark.parametrize(
    ("first", "second"),
    [("mail", "mail"), ("mail", "mail/sub"), ("mail/sub", "mail"), ("mail", "mail/./")],
)
def test_two_accounts_may_not_share_or_nest_a_maildir(
    tmp_path: Path, first: str, second: str
) -> None:
    path = write(
        tmp_path,
        '[general]\nstate_dir = "state"\n'
        f'[accounts.a]\nhost = "h"\nuser = "u"\nmaildir = "{first}"\n'
        f'[accounts.b]\nhost = "h"\nuser = "u"\nmaildir = "{second}"\n',
    )
    problem = only_problem(path)
    assert problem.startswith(f"{path}: accounts.b.maildir: ")
    assert "overlaps the Maildir of account a" in problem


def test_overlap_through_a_symlink_is_found(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    path = write(
        tmp_path,
        '[general]\nstate_dir = "state"\n'
        '[accounts.a]\nhost = "h"\nuser = "u"\nmaildir = "real/a"\n'
        '[accounts.b]\nhost = "h"\nuser = "u"\nmaildir = "link/a/sub"\n',
    )
    assert "overlaps the Maildir of account a" in only_problem(path)


def test_siblings_with_a_common_prefix_do_not_overlap(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[general]\nstate_dir = "state"\n'
        '[accounts.a]\nhost = "h"\nuser = "u"\nmaildir = "mail"\n'
        '[accounts.b]\nhost = "h"\nuser = "u"\nmaildir = "mail2"\n',
    )
    assert check_config(path) == []


@pytest.mark.parametrize(("state", "maildir"), [("s", "s"), ("s", "s/mail"), ("m/s", "m")])
def test_maildir_and_state_dir_must_not_overlap(tmp_path: Path, state: str, maildir: str) -> None:
    path = write(
        tmp_path,
        f'[general]\nstate_dir = "{state}"\n'
        f'[accounts.a]\nhost = "h"\nuser = "u"\nmaildir = "{maildir}"\n',
    )
    problem = only_problem(path)
    assert problem.startswith(f"{path}: accounts.a.maildir: ")
    assert "overlaps the state directory" in problem


# --------------------------------------------------------------------------- password_command


@pytest.mark.parametrize(
    ("value", "argv"),
    [
        ('"pass show mail/work"', ("pass", "show", "mail/work")),
        ("\"gpg -dq '~/my secrets.gpg'\"", ("gpg", "-dq", "~/my secrets.gpg")),
        ('"echo $(touch /tmp/x)"', ("echo", "$(touch", "/tmp/x)")),
        ('["sh", "-c", "pass show x | head -n1"]', ("sh", "-c", "pass show x | head -n1")),
    ],
)
def test_password_command_becomes_an_argv(
    tmp_path: Path, value: str, argv: tuple[str, ...]
) -> None:
    assert work(tmp_path, f"password_command = {value}\n").password_command == argv


# --------------------------------------------------------------------------- file mode


def test_world_writable_config_with_a_password_command_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = with_keys(tmp_path, 'password_command = "pass show x"\n')
    path.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="syncd.config"):
        load_config(path)
    assert "writable by every user" in caplog.text
    assert str(path) in caplog.text

    caplog.clear()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="syncd.config"):
        load_config(path)
    assert caplog.text == ""


# --------------------------------------------------------------------------- locating


def test_config_path_precedence(tmp_path: Path) -> None:
    env = {"SYNCD_CONFIG": "/etc/syncd.toml", "XDG_CONFIG_HOME": "/xdg"}
    assert config_path(Path("/given.toml"), env) == Path("/given.toml")
    assert config_path(None, env) == Path("/etc/syncd.toml")
    assert config_path(None, {"XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/syncd/config.toml")
    assert config_path(None, {"SYNCD_CONFIG": "", "XDG_CONFIG_HOME": "/xdg"}) == Path(
        "/xdg/syncd/config.toml"
    )


def test_config_path_falls_back_to_platformdirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    expected = tmp_path / "home" / ".config" / "syncd" / "config.toml"
    assert config_path(None, {}) == expected
    # A relative XDG_CONFIG_HOME is invalid by the XDG spec and ignored.
    assert config_path(None, {"XDG_CONFIG_HOME": "relative"}) == expected


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (300, 300.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("10 minutes", 600.0),
        (" 5M ", 300.0),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", " ", "5x", "m", "5m3", "-5m", "1e3", "five", "5 m x", True, None, [5], -1,
              float("inf"), float("nan")]
)  # fmt: skip
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(value)
    assert "\n" not in str(raised.value)


@given(
    st.integers(0, 30),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
def test_duration_units_add_up(days: int, hours: int, minutes: int, seconds: int) -> None:
    text = f"{days}d{hours}h{minutes}m{seconds}s"
    assert parse_duration(text) == days * 86400 + hours * 3600 + minutes * 60 + seconds


@given(st.integers(0, 10**9))
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(0, 1e9, allow_nan=False, allow_infinity=False))
def test_numbers_are_seconds(seconds: float) -> None:
    assert parse_duration(seconds) == seconds


@given(st.integers(0, 10**6), st.integers(0, 999))
def test_decimal_strings_are_seconds(whole: int, millis: int) -> None:
    assert parse_duration(f"{whole}.{millis:03d}") == pytest.approx(whole + millis / 1000)
    assert parse_duration(f"{whole}.{millis:03d}s") == pytest.approx(whole + millis / 1000)


def test_example_config_documents_working_rules(tmp_path: Path) -> None:
    """Issue 15: the example still called rules "coming later"; its example rule,
    uncommented, is one `syncd check` accepts."""
    from syncd.ext.rules import parse_rules

    text = (REPO / "contrib" / "config.example.toml").read_text()
    assert "coming later" not in text
    lines = text.splitlines()
    start = lines.index("# [[accounts.work.rules]]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# ") or line.startswith("# flags"):
            break
        block.append(line[2:])
    lines[start : start + len(block)] = block
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    (rule,) = parse_rules(load_config(path).accounts["work"])
    assert (rule.name, rule.folder, rule.action.kind, rule.action.target) == (
        "alerts",
        "INBOX",
        "move",
        "Alerts",
    )
