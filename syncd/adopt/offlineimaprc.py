"""``~/.offlineimaprc`` -> syncd accounts, read with configparser.

Each ``[Account X]`` listed in ``[general] accounts`` becomes ``[accounts.X]`` from
its remote ``[Repository]`` (IMAP or Gmail) and local one (Maildir).  Python
snippets (``remotepasseval``, ``folderfilter``, ``nametrans``) are never evaluated:
they are parsed with ``ast`` and only the usual simple shapes are translated --
``subprocess.check_output([...])``/``getoutput("...")`` for passwords,
``lambda f: f in [...]``, ``f not in [...]``, ``f.startswith("x")`` and ``and``/``or``
of those for folder filters.  Anything else is one warning line naming the setting.
"""

from __future__ import annotations

import ast
import configparser
import os
from pathlib import Path

from syncd.adopt.toml_out import ImportResult, Value, shell_command

_HANDLED_ACCOUNT = frozenset(
    {"localrepository", "remoterepository", "autorefresh", "utf8foldernames"}
)
_HANDLED_REMOTE = frozenset(
    {
        "type",
        "remotehost",
        "remoteport",
        "ssl",
        "starttls",
        "sslcacertfile",
        "remoteuser",
        "remotepass",
        "remotepassfile",
        "remotepasseval",
        "folderfilter",
        "nametrans",
        "expunge",
        "readonly",
        "maxconnections",
        "idlefolders",
        "createfolders",
        "auth_mechanisms",
        "holdconnectionopen",
        "keepalive",
        "ssl_version",
        "tls_level",
    }
)
_HANDLED_LOCAL = frozenset(
    {"type", "localfolders", "sep", "readonly", "folderfilter", "nametrans", "createfolders"}
)
_TRUE = frozenset({"yes", "true", "on", "1"})


def import_offlineimaprc(text: str, source: str = "~/.offlineimaprc") -> ImportResult:
    result = ImportResult(source, "offlineimap")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source)
    except configparser.Error as exc:
        result.warn(f"{source}: cannot parse: {' '.join(str(exc).split())}")
        return result
    general = parser["general"] if parser.has_section("general") else {}
    names = [n.strip() for n in general.get("accounts", "").split(",") if n.strip()]
    if not names:
        result.warn("[general] accounts: empty; nothing to import")
    if "pythonfile" in general:
        result.warn("pythonfile: its functions are not run; settings calling them are listed below")
    for name in names:
        if not parser.has_section(f"Account {name}"):
            result.warn(f"[general] accounts: no [Account {name}] section; skipped")
            continue
        _account(result, parser, name)
    return result


def _flag(section: configparser.SectionProxy, key: str, default: bool) -> bool:
    return section.get(key, "yes" if default else "no").strip().lower() in _TRUE


def _account(result: ImportResult, parser: configparser.ConfigParser, name: str) -> None:
    account = parser[f"Account {name}"]
    where = f"[Account {name}]"
    remote_name = account.get("remoterepository", "")
    local_name = account.get("localrepository", "")
    if not parser.has_section(f"Repository {remote_name}") or not parser.has_section(
        f"Repository {local_name}"
    ):
        result.warn(f"{where}: its repositories are missing; skipped")
        return
    remote = parser[f"Repository {remote_name}"]
    local = parser[f"Repository {local_name}"]
    keys: dict[str, Value] = {}
    _remote(result, keys, remote, f"[Repository {remote_name}]")
    _local(
        result,
        keys,
        local,
        f"[Repository {local_name}]",
        utf8=_flag(account, "utf8foldernames", default=False),
    )
    if "autorefresh" in account:
        try:
            keys["interval"] = f"{max(1, round(float(account['autorefresh']) * 60))}s"
        except ValueError:
            result.warn(f"autorefresh ({where}): not a number of minutes, not carried over")
    if _flag(account, "synclabels", default=False):
        result.warn(f"synclabels ({where}): Gmail labels as X-Keywords are not carried over")
    for key in sorted(set(account) - _HANDLED_ACCOUNT - {"synclabels"} - set(parser.defaults())):
        result.warn(f"{key} ({where}): no syncd equivalent, not carried over")
    key = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)
    result.accounts[key] = keys
    general = parser["general"] if parser.has_section("general") else {}
    result.adopt[key] = {
        "tool": "offlineimap",
        "metadata": general.get("metadata", "~/.offlineimap").strip(),
        "account": name,
        "remote_repository": remote_name,
    }


def _remote(
    result: ImportResult, keys: dict[str, Value], remote: configparser.SectionProxy, where: str
) -> None:
    kind = remote.get("type", "IMAP").strip()
    gmail = kind.lower() == "gmail"
    if kind.lower() not in ("imap", "gmail"):
        result.warn(f"type = {kind} ({where}): only IMAP remotes are imported")
    host = remote.get("remotehost", "imap.gmail.com" if gmail else "").strip()
    if not host:
        result.warn(f"remotehost ({where}): missing (remotehosteval?); write host by hand")
    keys["host"] = host or "localhost"
    ssl = _flag(remote, "ssl", default=True)
    tls = "tls" if ssl else "starttls" if _flag(remote, "starttls", default=True) else "none"
    if "remoteport" in remote and remote["remoteport"].strip().isdigit():
        keys["port"] = int(remote["remoteport"])
    keys["tls"] = tls
    if tls == "none" and host not in ("localhost", "127.0.0.1", "::1"):
        keys["allow_plaintext"] = True
        result.warn(f"ssl = no, starttls = no ({where}): kept, with allow_plaintext = true")
    cafile = remote.get("sslcacertfile", "").strip()
    if cafile and cafile != "OS-DEFAULT":
        keys["ca_file"] = cafile
    keys["user"] = remote.get("remoteuser", "").strip() or os.environ.get("USER", "me")
    if "remoteuser" not in remote:
        result.warn(f"remoteuser ({where}): missing (remoteusereval?); check user")
    _password(result, keys, remote, where)
    filters = remote.get("folderfilter")
    if filters:
        _folderfilter(result, keys, filters, where)
    if remote.get("nametrans"):
        result.warn(f"nametrans ({where}): not evaluated; syncd keeps the server's names")
    keys["sync"] = "pull" if _flag(remote, "readonly", default=False) else "both"
    keys["expunge"] = _flag(remote, "expunge", default=True)
    if "maxconnections" in remote and remote["maxconnections"].strip().isdigit():
        keys["max_connections"] = max(1, min(16, int(remote["maxconnections"])))
    if "idlefolders" in remote:
        try:
            idle = ast.literal_eval(remote["idlefolders"])
            keys["idle"] = [str(f) for f in idle]
        except (ValueError, SyntaxError, TypeError):
            result.warn(f"idlefolders ({where}): not a list literal, not carried over")
    if not _flag(remote, "createfolders", default=True):
        result.warn(f"createfolders = no ({where}): syncd creates missing folders on the server")
    for key in sorted(set(remote) - _HANDLED_REMOTE - set(remote.parser.defaults())):
        result.warn(f"{key} ({where}): no syncd equivalent, not carried over")


def _password(
    result: ImportResult, keys: dict[str, Value], remote: configparser.SectionProxy, where: str
) -> None:
    if "remotepasseval" in remote:
        argv = _command_of(remote["remotepasseval"])
        if argv is None:
            result.warn(
                f"remotepasseval ({where}): Python code is not evaluated; set "
                "password_command by hand or use `syncd password set`"
            )
        else:
            keys["password_command"] = argv
    elif "remotepassfile" in remote:
        keys["password_command"] = ["cat", str(Path(remote["remotepassfile"].strip()).expanduser())]
    elif "remotepass" in remote:
        result.warn(
            f"remotepass ({where}): a password written in the config; syncd does not "
            "keep it there -- store it with `syncd password set ACCOUNT` (keyring)"
        )


def _command_of(code: str) -> list[str] | None:
    """The command a ``remotepasseval`` runs, when it is a plain subprocess call."""
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called not in ("check_output", "run", "getoutput", "getstatusoutput"):
            continue
        try:
            first = ast.literal_eval(node.args[0])
        except ValueError:
            return None
        shell = called.startswith("get") or any(
            k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        )
        if isinstance(first, str):
            return shell_command(first) if shell else first.split()
        if isinstance(first, list | tuple) and all(isinstance(a, str) for a in first):
            return [str(a) for a in first]
    return None


def _folderfilter(result: ImportResult, keys: dict[str, Value], code: str, where: str) -> None:
    include: list[str] = []
    exclude: list[str] = []
    try:
        tree = ast.parse(code.strip(), mode="eval").body
        if not isinstance(tree, ast.Lambda) or len(tree.args.args) != 1:
            raise ValueError
        var = tree.args.args[0].arg
        _filter_expr(tree.body, var, include, exclude)
    except (SyntaxError, ValueError):
        result.warn(f"folderfilter ({where}): not a simple lambda; not carried over")
        return
    keys["folders"] = include or ["*"]
    if exclude:
        keys["exclude"] = exclude


def _filter_expr(node: ast.expr, var: str, include: list[str], exclude: list[str]) -> None:
    """Raise ValueError for anything but the shapes in the module docstring."""
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _filter_expr(value, var, include, exclude)
        return
    negated = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    if negated:
        assert isinstance(node, ast.UnaryOp)
        node = node.operand
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and _is_var(node.left, var):
        op, right = node.ops[0], ast.literal_eval(node.comparators[0])
        names = [right] if isinstance(right, str) else list(right)
        if not all(isinstance(n, str) for n in names):
            raise ValueError
        positive = isinstance(op, ast.In | ast.Eq)
        if not isinstance(op, ast.In | ast.Eq | ast.NotIn | ast.NotEq):
            raise ValueError
        (include if positive != negated else exclude).extend(str(n) for n in names)
        return
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "startswith"
        and _is_var(node.func.value, var)
        and len(node.args) == 1
    ):
        prefix = ast.literal_eval(node.args[0])
        prefixes = [prefix] if isinstance(prefix, str) else list(prefix)
        (exclude if negated else include).extend(f"{p}*" for p in prefixes)
        return
    raise ValueError


def _is_var(node: ast.expr, var: str) -> bool:
    return isinstance(node, ast.Name) and node.id == var


def _local(
    result: ImportResult,
    keys: dict[str, Value],
    local: configparser.SectionProxy,
    where: str,
    *,
    utf8: bool,
) -> None:
    """``localfolders``/``sep`` (+ the account's ``utf8foldernames``) -> ``maildir``/
    ``layout``/``local_names``: offlineimap keeps INBOX in ``localfolders/INBOX`` and
    ``Lists/python`` in ``localfolders/Lists/python`` (``sep = /``, syncd's ``nested``)
    or ``localfolders/Lists.python`` (``sep = .``, the default: ``flat``), names in
    modified UTF-7 unless ``utf8foldernames = yes``."""
    if local.get("type", "Maildir").strip().lower() not in ("maildir", "gmailmaildir"):
        result.warn(f"type = {local.get('type')} ({where}): only Maildir is imported")
    keys["maildir"] = local.get("localfolders", "~/Mail").strip()
    sep = local.get("sep", ".").strip() or "."
    keys["layout"] = {"/": "nested", ".": "flat"}.get(sep, "nested")
    if sep not in ("/", "."):
        result.warn(
            f"sep = {sep} ({where}): offlineimap's folders as Lists{sep}python have no "
            'syncd layout; written as layout = "nested" (Lists/python)'
        )
    keys["local_names"] = "utf-8" if utf8 else "imap-utf-7"
    if _flag(local, "readonly", default=False):
        keys["sync"] = "pull" if keys.get("sync") == "pull" else "push"
        if keys["sync"] == "pull":
            result.warn(f"readonly ({where}): both repositories read-only; written as pull")
    for key in ("folderfilter", "nametrans"):
        if local.get(key):
            result.warn(f"{key} ({where}): local-side Python not evaluated, not carried over")
    for key in sorted(set(local) - _HANDLED_LOCAL - set(local.parser.defaults())):
        result.warn(f"{key} ({where}): no syncd equivalent, not carried over")
