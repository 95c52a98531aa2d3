"""IMAP keywords and flags <-> notmuch tags, three-way, for one account.

A run, after ``notmuch new`` has indexed the Maildir as it is:

1. ask notmuch for the messages changed since the last run (``lastmod:``; all of
   them the first time or when the database was rebuilt -- then without the
   old baselines, which a fresh index would seem to contradict everywhere) plus
   the ones the last run could not finish -- one ``notmuch show``;
2. per message with files under the account's Maildir: its synced flags in IMAP
   terms on each side -- the tags through the :class:`TagMap`, the union of its
   files' flags and keywords -- merged against the last agreed set with syncd's
   :func:`merge_flags` (additions from both sides, removals from either);
3. write what changed: every tag change in one ``notmuch tag --batch``, then each
   file whose flags differ renamed with :class:`MaildirFiles` (syncd's next sync,
   or this one when the run is before it, takes the change to the server), then
   one ``notmuch new --no-hooks`` so notmuch knows the new file names;
4. record the merged sets as the new baseline, and the revision read in step 1.

So a run costs at most four notmuch processes (``count``, ``show``, ``tag``,
``new``) however many messages changed.  A message is keyed by its notmuch id
(its Message-ID): copies of one message in two folders share one tag set, and
every copy gets the merged flags.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from syncd_notmuch_cli import Notmuch, NotmuchMessage, batch_line, id_query
from syncd_notmuch_state import Agreed, Bookmark, TagState
from syncd_notmuch_tagmap import TagMap

from syncd.api import AccountInfo, MaildirFiles, SyncdError, merge_flags

# The plugin's module name: syncd sets the level of that logger (plugins/README.md).
logger = logging.getLogger("syncd_notmuch")

#: Beyond this many ids to retry, a run looks at every message instead.
MAX_RETRY_IDS = 500


@dataclass
class TagRun:
    """What one run did; ``str()`` is its log line."""

    account: str
    looked_at: int = 0
    tagged: int = 0
    renamed: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"notmuch tags of {self.account}: {self.looked_at} changed messages looked at, "
            f"{self.tagged} re-tagged, {self.renamed} files re-flagged"
            + (f", {len(self.errors)} not done (retried next run)" if self.errors else "")
        )


@dataclass
class _Plan:
    lines: list[str] = field(default_factory=list)
    renames: list[tuple[str, Path, frozenset[str]]] = field(default_factory=list)
    agreed: dict[str, Agreed] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    forget: list[str] = field(default_factory=list)


def sync_tags(
    account: AccountInfo, tagmap: TagMap, notmuch: Notmuch, state: TagState, *, fsync: bool = True
) -> TagRun:
    """One run for ``account`` (``notmuch new`` must have run just before).
    Raises NotmuchError when a notmuch command fails: nothing is recorded then,
    and the next run does the work again."""
    run = TagRun(account.name)
    uuid, revision = notmuch.revision()
    mark = state.bookmark()
    retry = state.pending()
    # notmuch's revision is the highest lastmod in the database: it falls back
    # when the database was emptied (every message deleted), and changes
    # numbered at or below the bookmark would be missed -- look at everything.
    full = mark is None or mark.uuid != uuid or revision < mark.floor or len(retry) > MAX_RETRY_IDS
    if mark is None or full:
        query = "*"
    else:
        query = " or ".join([f"lastmod:{mark.lastmod + 1}..", *map(id_query, retry)])
    messages = notmuch.messages(query)
    roots = _roots(account.maildir)
    files = MaildirFiles(fsync=fsync)
    baselines = state.agreed(m.id for m in messages)
    if mark is not None and mark.uuid != uuid:
        # A rebuilt database has new.tags on every message and none of the user's:
        # against the old baselines that would read as the user removing them all.
        # Join both sides afresh instead, as on the first run.
        logger.warning(
            "notmuch tags of %s: the notmuch database is a new one (uuid %s, was %s); "
            "joining its tags with the Maildir's flags and keywords afresh",
            account.name,
            uuid,
            mark.uuid,
        )
        baselines = {}
    plan = _plan(messages, roots, tagmap, files, baselines, run)
    if full and messages and not run.looked_at:
        logger.warning(
            "notmuch tags of %s: none of notmuch's %d messages has a file under %s; is the "
            "Maildir inside notmuch's database.path?",
            account.name,
            len(messages),
            account.maildir,
        )
    notmuch.tag(plan.lines)
    run.tagged = len(plan.lines)
    for key, path, flags in plan.renames:
        try:
            moved = files.set_flags(path, flags)
            stored = tagmap.managed(files.flags(moved))
        except SyncdError as exc:
            run.errors.append(f"{account.name}: {exc}")
            plan.pending.add(key)
            plan.agreed.pop(key, None)
            continue
        run.renamed += moved != path
        if key in plan.agreed:
            # What did not fit in the file name (a 27th keyword) is not agreed:
            # the tag stays, and the next change of the message tries again.
            plan.agreed[key] = Agreed(plan.agreed[key].flags & stored, plan.agreed[key].files)
    files.flush()
    if run.renamed:
        notmuch.new(hooks=False)
    # Each write (a tag, a re-index) raises the revision by at least one.
    floor = revision + (1 if plan.lines or run.renamed else 0)
    bookmark = Bookmark(uuid, revision, floor)
    state.save(plan.agreed, plan.pending, bookmark, plan.forget, complete=full)
    for error in run.errors:
        logger.warning("notmuch tags: %s", error)
    return run


def _plan(  # noqa: PLR0917 -- private, called once, every argument needed
    messages: Iterable[NotmuchMessage],
    roots: tuple[str, ...],
    tagmap: TagMap,
    files: MaildirFiles,
    baselines: dict[str, Agreed],
    run: TagRun,
) -> _Plan:
    plan = _Plan()
    for msg in messages:
        mine = [f for f in msg.files if f.parent.name in ("cur", "new") and _under(f, roots)]
        if not mine:
            if msg.id in baselines:
                plan.forget.append(msg.id)  # its files left this account
            continue
        run.looked_at += 1
        try:
            on_disk = {f: files.flags(f) for f in mine}
        except SyncdError as exc:
            run.errors.append(f"{run.account}: {exc}")
            plan.pending.add(msg.id)
            continue
        far: frozenset[str] = frozenset()
        for flags in on_disk.values():
            far |= tagmap.managed(flags)
        near = tagmap.flags_of_tags(msg.tags)
        names = frozenset(_unique_name(f) for f in mine)
        base = baselines.get(msg.id)
        if base is not None and base.files and not base.files & names:
            # None of the files it had: moved (a new copy, the old one deleted) or
            # deleted and indexed again -- then notmuch gave it new.tags and none
            # of the user's, which must not read as removals.  Join both sides.
            base = None
        result = merge_flags(base.flags if base is not None else frozenset(), far, near)
        add, remove = tagmap.tag_changes(msg.tags, result)
        if add or remove:
            plan.lines.append(batch_line(msg.id, add, remove))
        for path, flags in on_disk.items():
            wanted = (flags - tagmap.managed(flags)) | result
            if wanted != flags:
                plan.renames.append((msg.id, path, wanted))
        plan.agreed[msg.id] = Agreed(result, names)
    return plan


def _unique_name(path: Path) -> str:
    """A Maildir file's unique name: its name without the ``:2,`` info."""
    head, sep, _ = path.name.rpartition(":2,")
    return head if sep else path.name


def _roots(maildir: Path) -> tuple[str, ...]:
    """The Maildir as notmuch may spell it, as configured and with links resolved,
    each ending in ``/`` so ``~/Mail`` does not take in ``~/Mail2``."""
    spelled = maildir.expanduser().absolute()
    return tuple(dict.fromkeys(f"{p}{os.sep}" for p in (spelled, spelled.resolve())))


def _under(path: Path, roots: tuple[str, ...]) -> bool:
    text = str(path)
    return any(text.startswith(root) for root in roots)
