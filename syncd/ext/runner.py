"""The rules' executor: runs SEARCHes and actions on the server, folder by folder.

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
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from syncd.engine.reconcile import Limits
from syncd.errors import FolderError, UnsafeNameError
from syncd.ext.search import search_args
from syncd.ext.types import Action, Rule
from syncd.folders import join_name, split_name
from syncd.model import DELETED
from syncd.stores.imap.parse import clean_text, format_uid_set

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.stores.imap.session import ImapSession

# The name the rules module had before the package split: users' log filters use it.
logger = logging.getLogger("syncd.rules")

_SHOW_FIELDS: Final = ("From", "Subject")
_HEADER_POLICY: Final = email.policy.default


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
