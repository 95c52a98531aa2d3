"""``~/.mbsyncrc`` -> syncd accounts (one per far/near store pair of its Channels).

The file is parsed here (isync 1.4 syntax; 1.5's ``TLSType`` accepted too):
sections open with ``IMAPAccount``, ``IMAPStore``, ``MaildirStore``, ``Channel`` or
``Group`` and end at the next one or at an empty line; lines outside a section set
global defaults (``SyncState``, ``Create``, ``Expunge``...).  Keywords are
case-insensitive, values may be double-quoted.  Every setting without a syncd
equivalent becomes one warning line naming it.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from syncd.adopt.toml_out import ImportResult, Value, join, shell_command
from syncd.config import is_loopback_host

SECTIONS: Final = ("imapaccount", "imapstore", "maildirstore", "channel", "group")
_ACCOUNT_KEYS: Final = frozenset(
    {
        "host",
        "port",
        "user",
        "usercmd",
        "pass",
        "passcmd",
        "ssltype",
        "tlstype",
        "certificatefile",
        "systemcertificates",
        "authmechs",
        "sslversions",
        "tlsversions",
        "tunnel",
        "pipelinedepth",
        "timeout",
        "clientcertificate",
        "clientkey",
        "cipherstring",
        "passkeychain",
        "disableextension",
        "disableextensions",
    }
)
_TLS: Final = {"imaps": "tls", "starttls": "starttls", "none": "none"}
_ALL_OPS: Final = frozenset({"new", "delete", "flags"})


@dataclass
class Section:
    kind: str  # one of SECTIONS, or "global"
    name: str
    line: int
    options: dict[str, str] = field(default_factory=dict)  # lower-case key -> raw value
    spelled: dict[str, str] = field(default_factory=dict)  # lower-case key -> as written


def parse_mbsyncrc(text: str) -> list[Section]:
    """The sections of an mbsyncrc, in order; the first is the global one."""
    sections = [Section("global", "", 0)]
    current = sections[0]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            current = sections[0]
            continue
        if line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        in_group = current.kind == "group" and key.lower() in ("channel", "channels")
        if key.lower() in SECTIONS and not in_group:
            current = Section(key.lower(), unquote(value), number)
            sections.append(current)
            continue
        current.options[key.lower()] = value
        current.spelled[key.lower()] = key
    return sections


def unquote(value: str) -> str:
    """One value: a double-quoted string (backslash escapes), else the text as is."""
    if value.startswith('"'):
        try:
            return " ".join(shlex.split(value))
        except ValueError:
            return value.strip('"')
    return value


def words(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def _store_ref(value: str) -> tuple[str, str]:
    """``:store:box`` (the box may be quoted) -> (store, box)."""
    parts = value.strip().split(":", 2)
    if len(parts) < 3 or parts[0]:
        return unquote(value), ""
    return parts[1], unquote(parts[2])


def import_mbsyncrc(text: str, source: str = "~/.mbsyncrc") -> ImportResult:
    """Translate the text of an mbsyncrc; see the module docstring."""
    result = ImportResult(source, "mbsync")
    sections = parse_mbsyncrc(text)
    glob = sections[0]
    by_kind: dict[str, dict[str, Section]] = {k: {} for k in SECTIONS}
    for section in sections[1:]:
        by_kind[section.kind][section.name] = section
    for group in by_kind["group"]:
        result.warn(f"Group {group}: groups are not carried over (syncd syncs every account)")
    seen: dict[tuple[str, str], str] = {}
    for channel in by_kind["channel"].values():
        _channel(result, channel, glob, by_kind, seen)
    if glob.options.get("fsync", "yes").lower() == "no":
        for keys in result.accounts.values():
            keys["fsync"] = False
    for key in glob.options.keys() - {"fsync", "syncstate", "create", "expunge", "sync",
                                      "remove", "patterns", "pattern"}:  # fmt: skip
        result.warn(f"{glob.spelled[key]} (global): no syncd equivalent, not carried over")
    if not by_kind["channel"]:
        result.warn("no Channel found: nothing to import")
    return result


def _opt(channel: Section, glob: Section, key: str) -> str | None:
    return channel.options.get(key, glob.options.get(key))


def _channel(
    result: ImportResult,
    channel: Section,
    glob: Section,
    by_kind: dict[str, dict[str, Section]],
    seen: dict[tuple[str, str], str],
) -> None:
    where = f"Channel {channel.name}"
    far_name, far_box = _store_ref(channel.options.get("far", channel.options.get("master", "")))
    near_name, near_box = _store_ref(channel.options.get("near", channel.options.get("slave", "")))
    far = by_kind["imapstore"].get(far_name)
    near = by_kind["maildirstore"].get(near_name)
    if far is None or near is None:
        result.warn(f"{where}: needs an IMAPStore as Far and a MaildirStore as Near; skipped")
        return
    patterns = words(channel.options.get("patterns", channel.options.get("pattern", "")))
    if (far_name, near_name) in seen:
        account = result.accounts[seen[(far_name, near_name)]]
        _add_boxes(result, where, account, far_box=far_box, near_box=near_box, patterns=patterns)
        return
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in channel.name) or "mbsync"
    seen[(far_name, near_name)] = name
    keys: dict[str, Value] = {}
    imap = by_kind["imapaccount"].get(unquote(far.options.get("account", "")), far)
    _server(
        result,
        keys,
        imap,
        f"IMAPAccount {imap.name}" if imap is not far else f"IMAPStore {far.name}",
    )
    _maildir(result, keys, near)
    keys["folders"], keys["exclude"] = ["*"], []
    _add_boxes(
        result, where, keys, far_box=far_box, near_box=near_box, patterns=patterns, first=True
    )
    _policies(result, keys, channel, glob, where)
    result.adopt[name] = _adopt_table(channel, glob, near, far_name, near_name)
    for key in far.options.keys() - _ACCOUNT_KEYS - {"account", "trash"}:
        result.warn(f"{far.spelled[key]} (IMAPStore {far.name}): not carried over")
    if "trash" in far.options:
        keys["trash"] = unquote(far.options["trash"])
    if not keys["exclude"]:
        del keys["exclude"]
    result.accounts[name] = keys


def _server(result: ImportResult, keys: dict[str, Value], imap: Section, where: str) -> None:
    opts = imap.options
    host = unquote(opts.get("host", ""))
    keys["host"] = host or "localhost"
    if not host:
        result.warn(f"{where}: no Host (Tunnel?); written as localhost, fix it by hand")
    tls_word = unquote(opts.get("tlstype", opts.get("ssltype", "STARTTLS"))).lower()
    tls = _TLS.get(tls_word, "starttls")
    if "port" in opts and opts["port"].isdigit():
        keys["port"] = int(opts["port"])
    keys["tls"] = tls
    if tls == "none" and host and not is_loopback_host(host):
        keys["allow_plaintext"] = True
        result.warn(f"{where}: TLSType None to {host}: kept, with allow_plaintext = true")
    if "certificatefile" in opts:
        keys["ca_file"] = unquote(opts["certificatefile"])
    keys["user"] = unquote(opts.get("user", "")) or os.environ.get("USER", "me")
    if "passcmd" in opts:
        command = unquote(opts["passcmd"])
        if command.startswith("+"):
            command = command[1:]
            result.warn(f"PassCmd ({where}): the '+' (interactive) prefix is dropped")
        keys["password_command"] = shell_command(command)
    elif "pass" in opts:
        result.warn(
            f"Pass ({where}): a password written in the config; syncd does not keep it there "
            "-- store it with `syncd password set ACCOUNT` (keyring)"
        )
    if "timeout" in opts and opts["timeout"].isdigit() and int(opts["timeout"]) > 0:
        keys["timeout"] = int(opts["timeout"])
    handled = {"host", "port", "user", "pass", "passcmd", "ssltype", "tlstype", "certificatefile",
               "timeout", "account", "path", "trash"}  # fmt: skip
    auth = words(opts.get("authmechs", "*").upper())
    if set(auth) - {"*", "LOGIN", "PLAIN"}:
        result.warn(f"AuthMechs {join(auth)} ({where}): syncd logs in with LOGIN/PLAIN only")
    handled.add("authmechs")
    for key in sorted(imap.options.keys() & _ACCOUNT_KEYS - handled):
        result.warn(f"{imap.spelled[key]} ({where}): no syncd equivalent, not carried over")


def _maildir(result: ImportResult, keys: dict[str, Value], near: Section) -> None:
    """``Path``/``Inbox``/``SubFolders``/``Flatten`` -> ``maildir``/``layout``/``local_names``.

    isync 1.4 writes boxes ``top/sub`` and ``INBOX/sub`` as (``Inbox`` = ``Path/INBOX``):
    Verbatim ``Path/top/sub``, ``Inbox/sub`` = syncd's ``nested``; Maildir++
    ``Inbox/.top.sub``, ``Inbox/..sub`` = ``maildir++`` (but for INBOX's children);
    ``Flatten .`` (any style but Maildir++) ``Path/top.sub``, ``Path/INBOX.sub`` =
    ``flat``.  Names are modified UTF-7 (isync 1.4 has no other spelling; a later
    ``Utf8 yes`` on the store is honoured).
    """
    where = f"MaildirStore {near.name}"
    opts = near.options
    path = unquote(opts["path"]).rstrip("/") if "path" in opts else None
    inbox = unquote(opts.get("inbox", "~/Maildir")).rstrip("/")
    style = unquote(opts.get("subfolders", "")).lower()
    flatten = unquote(opts["flatten"]) if "flatten" in opts else None
    utf8 = unquote(opts.get("utf8", "no")).lower() in ("yes", "true", "on", "1")
    if style == "maildir++":
        keys["maildir"], keys["layout"] = inbox, "maildir++"
        if flatten not in (None, "."):
            result.warn(
                f"Flatten {flatten} ({where}): flattened names (Lists{flatten}python) have no "
                'syncd layout; written as layout = "maildir++" (.Lists.python)'
            )
        _inbox_children_note(result, where, inbox)
    else:
        layout = "flat" if flatten == "." else "nested"
        keys["maildir"], keys["layout"] = path or inbox, layout
        if flatten not in (None, "."):
            result.warn(
                f"Flatten {flatten} ({where}): only Flatten . has a syncd layout (flat); "
                'written as layout = "nested" (Lists/python)'
            )
        if path is None:
            result.warn(f"{where}: no Path; the Maildir root is the Inbox {inbox}")
        elif Path(inbox) != Path(path) / "INBOX":
            result.warn(
                f"Inbox {inbox} ({where}): syncd's {layout} layout keeps INBOX in "
                f"{path}/INBOX; move it there before the first sync, or INBOX is "
                "downloaded again"
            )
        if style == "legacy" and layout != "flat":
            result.warn(
                f"SubFolders Legacy ({where}): syncd has no such layout; written as "
                'layout = "nested" (Path/top/sub instead of Path/top/.sub)'
            )
    keys["local_names"] = "utf-8" if utf8 else "imap-utf-7"
    for key in sorted(opts.keys() - {"path", "inbox", "subfolders", "flatten", "utf8"}):
        result.warn(f"{near.spelled[key]} ({where}): not carried over")


def _adopt_table(
    channel: Section, glob: Section, near: Section, far_name: str, near_name: str
) -> dict[str, Value]:
    """``[accounts.NAME.adopt]``: where this channel's ``SyncState`` is (isync 1.4's
    ``prepare_state``): ``*`` in each folder; a Channel's own path prefix; else the
    global one (default ``~/.mbsync/``), whose files are named after the two stores."""
    table: dict[str, Value] = {"tool": "mbsync"}
    own = channel.options.get("syncstate")
    if own is not None:
        table["sync_state"] = unquote(own)
    else:
        table["sync_state"] = unquote(glob.options.get("syncstate", "~/.mbsync/"))
        if table["sync_state"] != "*":
            table["state_stores"] = [far_name, near_name]
    opts = near.options
    style = unquote(opts.get("subfolders", "")).lower()
    if style in ("verbatim", "maildir++", "legacy"):
        table["subfolders"] = style
    path = unquote(opts["path"]).rstrip("/") if "path" in opts else None
    inbox = unquote(opts.get("inbox", "~/Maildir")).rstrip("/")
    if style != "maildir++" and (path is None or Path(inbox) != Path(path) / "INBOX"):
        table["inbox"] = inbox
    if "flatten" in opts:
        table["flatten"] = unquote(opts["flatten"])
    return table


def _inbox_children_note(result: ImportResult, where: str, inbox: str) -> None:
    """mbsync's Maildir++ keeps ``INBOX/sub`` in ``Inbox/..sub``; syncd's maildir++
    layout (Dovecot's) in ``Inbox/.INBOX.sub``.  Say so when such a folder exists."""
    try:
        with os.scandir(Path(inbox).expanduser()) as entries:
            children = sorted(e.name for e in entries if e.name.startswith("..") and e.is_dir())
    except OSError:
        return
    if children:
        result.warn(
            f"SubFolders Maildir++ ({where}): {join(children)} (INBOX's subfolders as mbsync "
            "writes them) are .INBOX.NAME in syncd's maildir++ layout; rename them before "
            "the first sync, or they are downloaded again"
        )


def _add_boxes(
    result: ImportResult,
    where: str,
    keys: dict[str, Value],
    *,
    far_box: str,
    near_box: str,
    patterns: list[str],
    first: bool = False,
) -> None:
    include: list[str] = [] if first else list(keys["folders"])  # type: ignore[arg-type]
    exclude: list[str] = list(keys.get("exclude", []))  # type: ignore[arg-type]
    if patterns:
        if far_box or near_box:
            result.warn(f"{where}: the mailbox prefix {far_box or near_box!r} is not carried over")
        for pattern in patterns:
            target = exclude if pattern.startswith("!") else include
            text = pattern.lstrip("!")
            if "%" in text:
                result.warn(f"{where}: pattern {pattern!r}: '%' (one level) became '*' (any depth)")
                text = text.replace("%", "*")
            target.append(text)
    else:
        include.append(far_box or "INBOX")
        if (near_box or "INBOX") != (far_box or "INBOX"):
            result.warn(
                f"{where}: server folder {far_box!r} is stored locally as {near_box!r}; "
                "syncd keeps the server's name"
            )
    if first and "*" in include and len(include) > 1:
        include = ["*"]
    keys["folders"] = list(dict.fromkeys(include))
    keys["exclude"] = list(dict.fromkeys(exclude))


def _policies(
    result: ImportResult, keys: dict[str, Value], channel: Section, glob: Section, where: str
) -> None:
    ops = {w.lower() for w in words(_opt(channel, glob, "sync") or "All")}
    pull = push = False
    steps: set[str] = set()
    for op in ops:
        if op in ("all", "full"):
            pull = push = True
            steps |= _ALL_OPS
        elif op.startswith("pull") or op.startswith("push"):
            pull, push = pull or op.startswith("pull"), push or op.startswith("push")
            steps |= {op[4:]} if op[4:] else _ALL_OPS
        elif op in ("new", "renew", "delete", "flags", "gone"):
            steps.add("new" if op == "renew" else op)
        elif op == "none":
            result.warn(f'Sync None ({where}): syncd always syncs; written as sync = "both"')
    if not pull and not push:
        pull = push = True
    keys["sync"] = "both" if pull and push else "pull" if pull else "push"
    missing = _ALL_OPS - steps - {""}
    if steps and missing and "none" not in ops:
        result.warn(
            f"Sync {' '.join(sorted(ops))} ({where}): syncd always propagates "
            f"{join(sorted(missing))}; only the direction is carried over"
        )
    expunge = (_opt(channel, glob, "expunge") or "None").lower()
    keys["expunge"] = expunge in ("far", "both", "master")
    if expunge in ("near", "slave"):
        result.warn(f"Expunge Near ({where}): syncd deletes local files at once; expunge = false")
    create = (_opt(channel, glob, "create") or "None").lower()
    if create != "both":
        result.warn(
            f"Create {create.capitalize()} ({where}): syncd creates missing folders on both sides"
        )
    remove = (_opt(channel, glob, "remove") or "None").lower()
    if remove != "none":
        result.warn(f"Remove {remove.capitalize()} ({where}): not carried over")
    for key in sorted(channel.options.keys() - {"far", "near", "master", "slave", "patterns",
                                                "pattern", "sync", "expunge", "create", "remove",
                                                "syncstate"}):  # fmt: skip
        result.warn(f"{channel.spelled[key]} ({where}): not carried over")
