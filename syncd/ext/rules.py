"""Server-side rules: the model, TOML parsing, and the executor (SEARCH -> actions).

A rule is an IMAP SEARCH in one folder plus what to do with what it finds
(move, copy, flag, unflag, delete).  Rules come from the TOML config
(``[[accounts.NAME.rules]]``) and from plugins; per-message decisions come
from plugins' ``syncd_classify``.  Plugins only *describe* actions: this
module runs every SEARCH and every action, so dry-run, the mass-delete brake
and the log cover all of them.

How one folder is processed (``RuleRunner.run``):

1. SELECT the folder (EXAMINE in a dry run) and ``UID SEARCH ALL``: the
   folder's UIDs.  Every later SEARCH result is intersected with them (a
   server cannot make syncd act on UIDs it never listed).
2. *Plan*: each rule's SEARCH runs against the folder as it was at step 1, in
   rule order.  A message that an earlier rule moves or deletes is dropped
   from later rules; flag/copy leave it in play.  Then new messages (UIDs above
   the last classified one) are offered to the classify plugins.
3. The mass-delete brake (``syncd.engine.reconcile.Limits``, the thresholds of the
   sync itself): a step that would move or delete, together with the steps
   before it, more than half of a folder holding more than 5 messages, or all
   of it, is refused unless ``allow_mass_delete``.
4. Dry run: one line per message (UID, From, Subject) and nothing changes.
   Otherwise the steps run in order, each logged with rule name, count and UIDs.

Because every SEARCH sees the folder as it was before any action, a dry run
shows exactly what a real run would do.
"""

from __future__ import annotations

import email.errors
import email.parser
import email.policy
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast, get_args

from syncd.engine.reconcile import Limits
from syncd.errors import ConfigError, FolderError, UnsafeNameError
from syncd.folders import join_name, split_name
from syncd.model import DELETED
from syncd.stores.imap.parse import clean_text, format_uid_set, is_flag_atom

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.stores.imap.session import ImapSession

# The name it had before the package split: users\' log filters use it.

logger = logging.getLogger("syncd.rules")

ActionKind = Literal["move", "copy", "flag", "unflag", "delete"]
ACTIONS: Final = cast(tuple[str, ...], get_args(ActionKind))
_NEEDS_TARGET: Final = ("move", "copy")
_NEEDS_FLAGS: Final = ("flag", "unflag")
_FORBIDDEN_FLAGS: Final = ("\\RECENT", "\\DELETED")  # \Deleted: use action "delete"
_SYSTEM_FLAGS: Final = {
    f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted")
}
_RULE_KEYS: Final = ("name", "folder", "search", "action", "target", "flags")
_SHOW_FIELDS: Final = ("From", "Subject")
_HEADER_POLICY: Final = email.policy.default


# --------------------------------------------------------------------------- model


def check_folder_name(value: object) -> str:
    """A folder name as users write it (``Lists/python``); ValueError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty folder name")
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError(f"must not contain control characters (got {json.dumps(value)})")
    parts = value.split("/")
    if any(not p.strip() or p in (".", "..") for p in parts):
        raise ValueError(f"has an empty, '.' or '..' level (got {json.dumps(value)})")
    return "/".join(split_name(value, "/"))


def check_flags(value: object) -> frozenset[str]:
    """Flag names for flag/unflag: system flags or keywords; ValueError otherwise."""
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError('must be an array of flag names, e.g. ["\\\\Flagged"]')
    out: set[str] = set()
    for flag in value:
        if not isinstance(flag, str) or not is_flag_atom(flag):
            raise ValueError(f"not a flag name: {json.dumps(flag, default=str)}")
        if flag.upper() in _FORBIDDEN_FLAGS:
            raise ValueError(f'{flag} cannot be set by a rule (use action = "delete")')
        if flag.startswith("\\") and flag.upper() not in _SYSTEM_FLAGS:
            raise ValueError(f"unknown system flag {flag}")
        out.add(_SYSTEM_FLAGS.get(flag.upper(), flag))
    if not out:
        raise ValueError("must name at least one flag")
    return frozenset(out)


@dataclass(frozen=True)
class Action:
    """What to do with the messages a rule matched.

    ``target`` (a folder, ``/`` between levels) is required for move and copy
    and refused otherwise; ``flags`` for flag and unflag.  Invalid values raise
    ValueError.  ``str(action)`` is what logs and dry runs show.
    """

    kind: ActionKind
    target: str | None = None
    flags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.kind not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)} (got {self.kind!r})")
        if self.kind in _NEEDS_TARGET:
            object.__setattr__(self, "target", check_folder_name(self.target))
        elif self.target is not None:
            raise ValueError(f"a {self.kind} action takes no target")
        if self.kind in _NEEDS_FLAGS:
            object.__setattr__(self, "flags", check_flags(self.flags))
        elif self.flags:
            raise ValueError(f"a {self.kind} action takes no flags")

    @classmethod
    def move(cls, target: str) -> Action:
        return cls("move", target=target)

    @classmethod
    def copy(cls, target: str) -> Action:
        return cls("copy", target=target)

    @classmethod
    def flag(cls, *flags: str) -> Action:
        return cls("flag", flags=frozenset(flags))

    @classmethod
    def unflag(cls, *flags: str) -> Action:
        return cls("unflag", flags=frozenset(flags))

    @classmethod
    def delete(cls) -> Action:
        return cls("delete")

    @property
    def removes(self) -> bool:
        """Whether the message leaves the folder (move, delete)."""
        return self.kind in ("move", "delete")

    def __str__(self) -> str:
        if self.kind in _NEEDS_TARGET:
            return f"{self.kind} to {self.target}"
        if self.kind in _NEEDS_FLAGS:
            sign = "+" if self.kind == "flag" else "-"
            return f"{self.kind} " + " ".join(sign + f for f in sorted(self.flags))
        return "delete"


@dataclass(frozen=True)
class Rule:
    """A SEARCH in ``folder`` and the ``action`` for every message it finds.

    ``search`` is IMAP SEARCH criteria as RFC 9051 §6.4.4 writes them
    (``'FROM "alerts@example.org" UNSEEN'``); it is checked for balanced
    quotes and parentheses here and by the server when it runs.  Invalid
    values raise ValueError.
    """

    name: str
    folder: str
    search: str
    action: Action

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a rule needs a non-empty name")
        object.__setattr__(self, "folder", check_folder_name(self.folder))
        parse_search(self.search)
        if not isinstance(self.action, Action):
            raise ValueError(f"action must be an Action (got {type(self.action).__name__})")
        if self.action.kind in _NEEDS_TARGET and self.action.target == self.folder:
            raise ValueError(f"target {self.folder} is the folder the rule searches")

    def __str__(self) -> str:
        return f"{self.name}: in {self.folder} SEARCH {self.search} -> {self.action}"


# --------------------------------------------------------------------------- SEARCH text


class Quoted(str):
    """A quoted string of SEARCH criteria (unescaped), as opposed to an atom."""

    __slots__ = ()


SearchItem = str | list["SearchItem"]

_TOKEN_RE: Final = re.compile(
    r"""\s*(?:(?P<open>\()|(?P<close>\))|"(?P<quoted>(?:[^"\\]|\\["\\])*)"|(?P<atom>[^\s()"{]+)|(?P<bad>\S))"""
)


def parse_search(text: object) -> list[SearchItem]:
    """Split SEARCH criteria into atoms, :class:`Quoted` strings (unescaped) and
    nested lists for parentheses.  ValueError for empty criteria, a line break
    or NUL, an unclosed quote or parenthesis, or a literal (``{n}``)."""
    if not isinstance(text, str):
        raise ValueError(f"search must be a string (got {type(text).__name__})")
    if re.search(r"[\r\n\0]", text):
        raise ValueError("search must not contain a line break or NUL")
    stack: list[list[SearchItem]] = [[]]
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any non-blank character
            break
        pos = m.end()
        if m.group("open"):
            stack.append([])
        elif m.group("close"):
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' in search {json.dumps(text)}")
            inner = stack.pop()
            if not inner:
                raise ValueError(f"empty parentheses in search {json.dumps(text)}")
            stack[-1].append(inner)
        elif m.group("quoted") is not None:
            stack[-1].append(Quoted(re.sub(r"\\(.)", r"\1", m.group("quoted"))))
        elif m.group("atom"):
            stack[-1].append(m.group("atom"))
        else:
            bad = m.group("bad")
            what = "an unclosed quote" if bad == '"' else f"unexpected {bad!r}"
            raise ValueError(f"{what} in search {json.dumps(text)}")
    if len(stack) != 1:
        raise ValueError(f"unclosed '(' in search {json.dumps(text)}")
    if not stack[0]:
        raise ValueError("search must not be empty (write ALL to match every message)")
    return stack[0]


def render_search(items: Sequence[SearchItem]) -> str:
    """Criteria as one line of IMAP text: atoms as they are, quoted strings re-quoted."""
    out = []
    for item in items:
        if isinstance(item, list):
            out.append("(" + render_search(item) + ")")
        elif isinstance(item, Quoted):
            out.append('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(item)
    return " ".join(out)


def search_args(text: str) -> tuple[str | list[Any], str | None]:
    """The ``(criteria, charset)`` to hand to ``ImapSession.search``.

    ASCII criteria go as one line of text, as the user wrote them (blanks
    normalised).  Criteria with non-ASCII text go as items with ``CHARSET
    UTF-8``: IMAPClient then sends the 8-bit strings as literals (RFC 9051
    §6.4.4).  Items are UTF-8 bytes because IMAPClient encodes the items of
    nested lists as ASCII.
    """
    items = parse_search(text)
    if text.isascii():
        return render_search(items), None
    return _to_bytes(items), "UTF-8"


def _to_bytes(items: Sequence[SearchItem], *, nested: bool = False) -> list[Any]:
    out: list[Any] = [
        _to_bytes(i, nested=True) if isinstance(i, list) else i.encode("utf-8") for i in items
    ]
    if nested:
        # IMAPClient glues "(" and ")" onto the first and last item of a nested list,
        # and an 8-bit item goes out as a literal: the parenthesis would end up inside
        # it.  ALL is neutral in an AND list, so it keeps 8-bit text off the edges.
        if isinstance(out[-1], bytes) and not out[-1].isascii():
            out.append(b"ALL")
        if isinstance(out[0], bytes) and not out[0].isascii():
            out.insert(0, b"ALL")
    return out


# --------------------------------------------------------------------------- TOML


def parse_rules(account: AccountConfig, *, file: Path | None = None) -> tuple[Rule, ...]:
    """The account's ``[[accounts.NAME.rules]]`` tables as Rules, in file order.

    Raises ConfigError with one line ``FILE: accounts.NAME.rules[i].KEY: problem``.
    Keys: ``name`` (default ``rules[i]``, unique per account), ``folder``
    (default INBOX), ``search`` (required), ``action`` (required), ``target``
    (move/copy), ``flags`` (flag/unflag).
    """
    account_key = (
        account.name if re.fullmatch(r"[A-Za-z0-9_-]+", account.name) else json.dumps(account.name)
    )
    seen: dict[str, int] = {}
    out: list[Rule] = []
    for index, table in enumerate(account.rules):
        prefix = f"accounts.{account_key}.rules[{index}]"

        def fail(key: str, message: str, prefix: str = prefix) -> ConfigError:
            where = f"{file}: " if file is not None else ""
            return ConfigError(f"{where}{prefix}.{key}: {message}")

        for key in table:
            if key not in _RULE_KEYS:
                raise fail(key, f"unknown key (known: {', '.join(_RULE_KEYS)})")
        name = table.get("name", f"rules[{index}]")
        if not isinstance(name, str) or not name.strip():
            raise fail("name", "must be a non-empty string")
        if name in seen:
            raise fail("name", f"{json.dumps(name)} is already the name of rules[{seen[name]}]")
        seen[name] = index
        try:
            folder = check_folder_name(table.get("folder", "INBOX"))
        except ValueError as exc:
            raise fail("folder", str(exc)) from None
        if "search" not in table:
            raise fail("search", "required key is missing (IMAP SEARCH criteria, e.g. 'UNSEEN')")
        try:
            parse_search(table["search"])
        except ValueError as exc:
            raise fail("search", str(exc)) from None
        kind = table.get("action")
        if kind not in ACTIONS:
            got = "missing" if kind is None else json.dumps(kind, default=str)
            raise fail("action", f"must be one of {', '.join(ACTIONS)} (got {got})")
        target = table.get("target")
        if kind in _NEEDS_TARGET:
            if target is None:
                raise fail("target", f"required for action {kind!r}")
            try:
                target = check_folder_name(target)
            except ValueError as exc:
                raise fail("target", str(exc)) from None
            if target == folder:
                raise fail("target", f"is the folder the rule searches ({folder})")
        elif target is not None:
            raise fail("target", f"only move and copy take a target, not {kind!r}")
        flags: frozenset[str] = frozenset()
        if kind in _NEEDS_FLAGS:
            if "flags" not in table:
                raise fail("flags", f"required for action {kind!r}")
            try:
                flags = check_flags(table["flags"])
            except ValueError as exc:
                raise fail("flags", str(exc)) from None
        elif "flags" in table:
            raise fail("flags", f"only flag and unflag take flags, not {kind!r}")
        action = Action(cast(ActionKind, kind), target=target, flags=flags)
        out.append(Rule(name=name, folder=folder, search=table["search"], action=action))
    return tuple(out)


# --------------------------------------------------------------------------- classify marks


class ClassifyMarks:
    """The highest UID classified per folder, with its UIDVALIDITY, in a small
    SQLite file (``<state_dir>/<account>.rules.db``, mode 0600).

    Kept apart from the sync state on purpose: it is only an optimisation (lose
    it and the next run classifies each folder once more), and rules must not
    depend on the sync engine's schema.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.path.touch(mode=0o600, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS classified ("
                " folder TEXT PRIMARY KEY, uidvalidity INTEGER NOT NULL, last_uid INTEGER NOT NULL)"
            )
        return self._db

    def get(self, folder: str, uidvalidity: int) -> int:
        """The highest UID classified in ``folder`` (0: none, or UIDVALIDITY changed)."""
        if self._db is None and not self.path.exists():  # a dry run creates no file
            return 0
        with closing(
            self._conn().execute(
                "SELECT uidvalidity, last_uid FROM classified WHERE folder = ?", (folder,)
            )
        ) as cur:
            row = cur.fetchone()
        return int(row[1]) if row is not None and row[0] == uidvalidity else 0

    def set(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        self._conn().execute(
            "INSERT INTO classified (folder, uidvalidity, last_uid) VALUES (?, ?, ?) "
            "ON CONFLICT(folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
            "last_uid = excluded.last_uid",
            (folder, uidvalidity, last_uid),
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


# --------------------------------------------------------------------------- executor


def _rank(decision: tuple[int, str, Action]) -> int:
    return decision[0]


#: ``(uid, headers) -> [(rank, source, action), ...]``: what the classify plugins
#: decided for one message; ``rank`` is the plugin's place in the call order.
Classify = Callable[[int, Message], Sequence[tuple[int, str, Action]]]


@dataclass(frozen=True)
class Step:
    """One action of one rule on some messages: what is logged and dry-run printed."""

    rule: str
    action: Action
    uids: tuple[int, ...]
    classified: bool = False

    def __str__(self) -> str:
        uids = format_uid_set(self.uids)
        return f"rule {self.rule}: {self.action} ({len(self.uids)}: UIDs {uids})"


@dataclass
class FolderRun:
    """What the rules did (or, in a dry run, would do) in one folder."""

    folder: str
    steps: list[Step] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def acted(self) -> int:
        """Messages acted on (a message counts once per step)."""
        return sum(len(s.uids) for s in self.steps)


class RuleRunner:
    """Runs rules on one connected session, folder by folder.

    One runner per account run: it caches the folder list (to create missing
    targets once and find the SPECIAL-USE ``\\Trash``).  Raises only
    AccountError (connection lost); every other problem is in the FolderRun.
    """

    def __init__(
        self,
        session: ImapSession,
        *,
        account: AccountConfig,
        dry_run: bool,
        allow_mass_delete: bool = False,
        marks: ClassifyMarks | None = None,
        limits: Limits | None = None,
        log: logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.session = session
        self.account = account
        self.dry_run = dry_run
        self.allow_mass_delete = allow_mass_delete
        self.marks = marks
        self.limits = limits or Limits()
        self._total = self._removed = 0  # the folder being run: its size, what leaves it
        self.log = log
        self._folders: dict[tuple[str, ...], str] | None = None
        self._trash_parts: tuple[str, ...] | None = None
        #: Folders (``/`` names) this runner created on the server, in order.
        self.created: list[str] = []

    # -- public ---------------------------------------------------------------------

    def run(
        self,
        folder: str,
        rules: Sequence[Rule],
        *,
        fields: Sequence[str] = (),
        classify: Classify | None = None,
    ) -> FolderRun:
        """Apply ``rules`` (all with ``rule.folder == folder``) and the classify
        decisions to ``folder`` (``/``-separated name).  Nothing happens, not even
        a SELECT, when there are no rules and no header fields to classify by."""
        run = FolderRun(folder)
        want_classify = classify is not None and bool(fields)
        if not rules and not want_classify:
            return run
        log = self.log or logging.LoggerAdapter(logger, {})
        try:
            far_name = self._far_name(folder)
            sel = self.session.select(far_name, readonly=self.dry_run)
            all_uids = set(self.session.search("ALL")) if sel.exists else set()
        except (FolderError, UnsafeNameError) as exc:
            self._error(run, log, f"rules not run in {folder}: {exc}")
            return run
        if not all_uids:
            return run
        self._total = len(all_uids)
        self._removed = 0
        consumed: set[int] = set()
        for rule in rules:
            try:
                criteria, charset = search_args(rule.search)
                found = self.session.search(cast(Any, criteria), charset=charset)
            except (FolderError, ValueError) as exc:
                self._error(run, log, f"rule {rule.name}: SEARCH {rule.search} failed: {exc}")
                continue
            uids = tuple(sorted((set(found) & all_uids) - consumed))
            if uids and self._admit(run, log, Step(rule.name, rule.action, uids)):
                consumed.update(uids if rule.action.removes else ())

        candidates: list[int] = []
        complete = True  # every classify decision planned (none refused by the brake)
        if want_classify:
            assert classify is not None
            last = self.marks.get(folder, sel.uidvalidity) if self.marks is not None else 0
            candidates = sorted(u for u in all_uids if u > last and u not in consumed)
            for step in self._classify(candidates, fields, classify, consumed):
                complete = self._admit(run, log, step) and complete

        if self.dry_run:
            self._describe(run, log)
            return run
        for step in run.steps:
            try:
                what = self._execute(folder, step, log)
            except (FolderError, UnsafeNameError) as exc:
                complete = complete and not step.classified
                self._error(run, log, f"rule {step.rule}: {step.action} failed: {exc}")
                continue
            log.info(
                "rule %s: %s %d message%s (UIDs %s)",
                step.rule,
                what,
                len(step.uids),
                "" if len(step.uids) == 1 else "s",
                format_uid_set(step.uids),
            )
        if candidates and complete and self.marks is not None:
            # A refused or failed decision is retried next cycle: the mark stays.
            self.marks.set(folder, sel.uidvalidity, max(candidates))
        return run

    def _classify(
        self, candidates: list[int], fields: Sequence[str], classify: Classify, consumed: set[int]
    ) -> list[Step]:
        """Group the plugins' per-message decisions into steps: by plugin call
        order, then first seen; a message moved away is offered to no later plugin."""
        groups: dict[tuple[int, str, Action], list[int]] = {}
        headers = self.session.fetch_headers(candidates, fields) if candidates else {}
        parser = email.parser.BytesHeaderParser(policy=_HEADER_POLICY)
        for uid in candidates:
            raw = headers.get(uid)
            if raw is None:  # expunged meanwhile
                continue
            for rank, source, action in sorted(classify(uid, parser.parsebytes(raw)), key=_rank):
                groups.setdefault((rank, source, action), []).append(uid)
                if action.removes:
                    consumed.add(uid)
                    break
        ordered = sorted(groups.items(), key=lambda item: item[0][0])  # stable: first seen
        return [
            Step(source, action, tuple(sorted(uids)), classified=True)
            for (_rank, source, action), uids in ordered
        ]

    def _admit(self, run: FolderRun, log: logging.LoggerAdapter[Any], step: Step) -> bool:
        """Add ``step`` to the plan unless the mass-delete brake refuses it."""
        if step.action.removes:
            problem = self._brake(self._removed + len(step.uids), self._total)
            if problem:
                self._error(
                    run,
                    log,
                    f"rule {step.rule}: refused to {step.action} {len(step.uids)} of the "
                    f"{self._total} messages in {run.folder}: {problem}; run with "
                    "--allow-mass-delete if that is intended",
                )
                return False
            self._removed += len(step.uids)
        run.steps.append(step)
        return True

    # -- helpers --------------------------------------------------------------------

    def _error(self, run: FolderRun, log: logging.LoggerAdapter[Any], message: str) -> None:
        log.error("%s", message)
        run.errors.append(message)
        if self.dry_run:
            run.lines.append(message)

    def _brake(self, removing: int, total: int) -> str | None:
        if self.allow_mass_delete or not removing or not total:
            return None
        if removing >= total >= self.limits.min_for_empty:
            return "the folder would be left empty"
        if total > self.limits.small and removing > total * self.limits.share:
            return f"more than {self.limits.share:.0%} of the folder would leave it"
        return None

    def _listing(self) -> dict[tuple[str, ...], str]:
        if self._folders is None:
            delimiter = self.session.delimiter()
            self._folders = {}
            for info in self.session.list_folders():
                parts = split_name(info.name, info.delimiter or delimiter)
                self._folders[parts] = info.name
                if self._trash_parts is None and "\\TRASH" in {f.upper() for f in info.flags}:
                    self._trash_parts = parts
        return self._folders

    def _far_name(self, folder: str) -> str:
        parts = split_name(folder, "/")
        return self._listing().get(parts) or join_name(parts, self.session.delimiter())

    def _ensure(self, folder: str, log: logging.LoggerAdapter[Any]) -> str:
        """The server name of ``folder``, created when missing (not in a dry run)."""
        parts = split_name(folder, "/")
        listing = self._listing()
        if parts in listing:
            return listing[parts]
        name = join_name(parts, self.session.delimiter())
        if not self.dry_run:
            log.info("creating folder %s on the server for the rules", folder)
            self.session.create_folder(name)
            listing[parts] = name
            self.created.append("/".join(parts))
        return name

    def _trash(self) -> str | None:
        """The trash folder (``/``-name): the account's ``trash``, else SPECIAL-USE \\Trash."""
        if self.account.trash:
            return "/".join(split_name(self.account.trash, "/"))
        self._listing()
        return "/".join(self._trash_parts) if self._trash_parts is not None else None

    def _execute(self, folder: str, step: Step, log: logging.LoggerAdapter[Any]) -> str:
        """Apply one step; returns the past-tense verb phrase for the log."""
        action = step.action
        uids = list(step.uids)
        s = self.session
        if action.kind == "move":
            assert action.target is not None
            s.move(uids, self._ensure(action.target, log))
            return f"moved to {action.target}"
        if action.kind == "copy":
            assert action.target is not None
            s.copy(uids, self._ensure(action.target, log))
            return f"copied to {action.target}"
        if action.kind == "flag":
            s.add_flags(uids, action.flags)
            return "flagged " + " ".join(sorted(action.flags))
        if action.kind == "unflag":
            s.remove_flags(uids, action.flags)
            return "unflagged " + " ".join(sorted(action.flags))
        trash = self._trash()
        if trash is not None and split_name(trash, "/") != split_name(folder, "/"):
            s.move(uids, self._ensure(trash, log))
            return f"deleted (moved to {trash})"
        if not s.has_uidplus:
            raise FolderError(
                "the server lacks UIDPLUS, so single messages cannot be expunged; "
                "configure a trash folder for the account"
            )
        s.add_flags(uids, frozenset({DELETED}))
        s.uid_expunge(uids)
        return "deleted (expunged)"

    def _describe(self, run: FolderRun, log: logging.LoggerAdapter[Any]) -> None:
        """Dry run: one line per message, with From and Subject."""
        uids = sorted({u for step in run.steps for u in step.uids})
        try:
            raw = self.session.fetch_headers(uids, _SHOW_FIELDS) if uids else {}
        except FolderError as exc:
            log.warning("cannot fetch headers to show: %s", exc)
            raw = {}
        creates: set[str] = set()
        for step in run.steps:
            target = step.action.target
            if step.action.kind == "delete":
                trash = self._trash()
                own = trash is not None and split_name(trash, "/") == split_name(run.folder, "/")
                target = None if own else trash
            missing = target is not None and split_name(target, "/") not in self._listing()
            if missing and target not in creates:
                creates.add(str(target))
                run.lines.append(f"rule {step.rule}: would create folder {target}")
            for uid in step.uids:
                sender, subject = _shown_headers(raw.get(uid))
                verb = step.action if step.action.kind != "delete" else _delete_text(target)
                run.lines.append(
                    f"rule {step.rule}: would {verb} UID {uid}: From {sender}, Subject {subject}"
                )


def _delete_text(trash: str | None) -> str:
    return f"delete (move to {trash})" if trash is not None else "delete (expunge)"


def _shown_headers(raw: bytes | None) -> tuple[str, str]:
    """``(from, subject)`` as JSON-quoted one-line text; hostile headers stay harmless."""
    if raw is None:
        return '"?"', '"?"'
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    out = []
    for name in _SHOW_FIELDS:
        value = msg.get(name)
        if value is None:
            out.append('""')
            continue
        try:
            text = str(make_header(decode_header(str(value))))
        except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
            text = str(value)
        out.append(json.dumps(clean_text(" ".join(text.split()), 120), ensure_ascii=False))
    return out[0], out[1]
