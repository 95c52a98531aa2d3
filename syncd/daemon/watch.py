"""Local push: watch an account's Maildir and ask for a sync of what changed.

A watchdog ``Observer`` watches the Maildir root recursively for files and
directories created, moved or deleted (opened/modified/closed noise is
filtered out by watchdog).  Each event path is mapped to its folder
(:func:`folder_of`; ``tmp/`` and files outside ``cur/``/``new/`` are ignored),
and each folder is debounced: once it has been quiet for ``debounce`` seconds,
the watcher posts "sync folder X" — or "full sync" for a folder that appeared
or disappeared, since creating a folder needs the folder listing.

syncd's own writes (downloads, flag renames, deletions) fire the same events.
:class:`EchoFilter` suppresses them: the daemon records each folder's
:func:`~syncd.stores.maildir.fsio.directory_signature` right after syncing it; when a
folder's debounce expires and its signature is still that one, nothing
changed since syncd's sync and the events were its own.  While syncd is
syncing the folder the decision waits until it is done.  Residual window: a
change a mail reader makes to a folder *while* syncd is syncing that very
folder, after syncd read it, is only seen by the next periodic full sync.

Events are hints, never a record: inotify can overflow (watchdog then only
logs) and watches can run out (``ENOSPC``/``EMFILE``, logged here once); the
periodic full sync catches up with anything missed.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from syncd.errors import UnsafeNameError
from syncd.folders import INBOX, LocalNames, decode_component, local_path, matches
from syncd.logsetup import account_logger
from syncd.stores.maildir.fsio import directory_signature

if TYPE_CHECKING:
    from syncd.config import AccountConfig, Layout

# The name it had before the package split: users\' log filters use it.

logger = logging.getLogger("syncd.watch")

Parts = tuple[str, ...]
Signature = tuple[int, ...]
K = TypeVar("K", bound=Hashable)

_SUBDIRS = frozenset({"cur", "new", "tmp"})


# --------------------------------------------------------------------------- echoes


class EchoFilter:
    """What syncd itself last left in each local folder.  Thread-safe.

    The worker calls :meth:`begin` before syncing a folder and :meth:`end`
    with the folder's signature right after; the watcher asks :meth:`busy`
    and :meth:`is_echo`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signatures: dict[Parts, Signature | None] = {}
        self._busy: set[Parts] = set()

    def begin(self, folder: Parts) -> None:
        with self._lock:
            self._busy.add(folder)

    def end(self, folder: Parts, signature: Signature | None) -> None:
        """``signature`` None: unknown (the folder could not be examined)."""
        with self._lock:
            self._busy.discard(folder)
            self._signatures[folder] = signature

    def busy(self, folder: Parts) -> bool:
        with self._lock:
            return folder in self._busy

    def known(self, folder: Parts) -> bool:
        """Whether syncd has synced ``folder`` since the daemon started."""
        with self._lock:
            return folder in self._signatures

    def folders(self) -> list[Parts]:
        """The folders syncd has synced since the daemon started."""
        with self._lock:
            return list(self._signatures)

    def is_echo(self, folder: Parts, signature: Signature) -> bool:
        """True when ``signature`` is what syncd left after its last sync of ``folder``."""
        with self._lock:
            return self._signatures.get(folder) == signature


# --------------------------------------------------------------------------- paths


def folder_of(
    root: Path, layout: Layout, path: str, *, is_directory: bool, names: LocalNames = "utf-8"
) -> tuple[Parts, bool] | None:
    """The folder an event at ``path`` concerns, and whether it is *structural*
    (the folder directory itself, or its ``cur``/``new``, was created or
    removed) rather than a message change.  None for what no sync needs to
    see: ``tmp/``, files that are not in ``cur/`` or ``new/``, paths outside
    ``root`` or that do not map back to a valid folder name (``names``: the
    account's ``local_names``).  Pure.
    """
    try:
        comps = Path(path).relative_to(root).parts
    except ValueError:
        return None
    if not comps:
        return None
    parts: Parts
    if layout == "maildir++":
        if comps[0] in _SUBDIRS:
            depth, parts = 0, (INBOX,)
        elif comps[0].startswith(".") and comps[0] not in (".", ".."):
            depth, parts = 1, tuple(comps[0][1:].split("."))
        else:
            return None
    elif layout == "flat":
        if comps[0] in _SUBDIRS:
            return None
        depth, parts = 1, tuple(comps[0].split("."))
    else:
        depth = next((i for i, c in enumerate(comps) if c in _SUBDIRS), len(comps))
        parts = comps[:depth]
        if not parts:
            return None
    rest = comps[depth:]
    if not rest:  # the folder directory itself
        if not is_directory:
            return None
        structural = True
    elif rest[0] not in ("cur", "new"):
        return None  # tmp/, or (maildir++) something else inside .Folder
    elif len(rest) == 1:  # cur/ or new/ itself
        if not is_directory:
            return None
        structural = True
    elif len(rest) == 2 and not is_directory:
        structural = False
    else:
        return None
    try:
        parts = tuple(decode_component(p, names) for p in parts)
        folder_dir = local_path(root, parts, layout, names=names)
    except (UnsafeNameError, ValueError):
        return None
    if folder_dir != root.joinpath(*comps[:depth]):
        return None  # e.g. "inbox" in the nested layout: not a folder syncd would use
    return parts, structural


def _has_cur(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path / "cur").st_mode)
    except OSError:
        return False


# --------------------------------------------------------------------------- debounce


class Debouncer(Generic[K]):
    """Calls ``fire(key)`` once a key has not been touched for ``delay`` seconds.

    One thread for all keys.  Hand-written: watchdog has no debounce of its
    own, and a ``threading.Timer`` per event would start a thread per rename.
    ``fire`` runs in the debouncer's thread and may :meth:`touch` again.
    """

    def __init__(self, delay: float, fire: Callable[[K], None], *, name: str = "debounce") -> None:
        self.delay = delay
        self._fire = fire
        self._cond = threading.Condition()
        self._due: dict[K, float] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def touch(self, key: K) -> None:
        with self._cond:
            if self._stopped:
                return
            self._due[key] = time.monotonic() + self.delay
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._due.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(2.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    ready = [k for k, due in self._due.items() if due <= now]
                    if ready:
                        for key in ready:
                            del self._due[key]
                        break
                    wait = min(self._due.values()) - now if self._due else None
                    self._cond.wait(wait)
            for key in ready:
                self._fire(key)


# --------------------------------------------------------------------------- the watcher


class MaildirWatcher:
    """Watches ``account.maildir`` and posts sync requests (see the module doc).

    :meth:`start` may be called again after a failure (e.g. the root did not
    exist yet); after ``ENOSPC``/``EMFILE`` it gives up for good (``failed``)
    and says so once.  :meth:`stop` is final.  Thread-safe.
    """

    def __init__(
        self,
        account: AccountConfig,
        *,
        post_folder: Callable[[str], object],
        post_full: Callable[[], object],
        echo: EchoFilter,
        debounce: float = 0.5,
    ) -> None:
        self.account = account
        self.root = account.maildir
        self.post_folder = post_folder
        self.post_full = post_full
        self.echo = echo
        self.debounce = debounce
        self.log = account_logger(account.name)
        self.failed = False
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None
        self._stopped = False
        self._structural: set[Parts] = set()
        self._debouncer: Debouncer[Parts] | None = None

    @property
    def started(self) -> bool:
        with self._lock:
            return self._observer is not None

    def start(self) -> bool:
        """Start watching; False (logged) when it cannot."""
        with self._lock:
            if self._observer is not None or self._stopped or self.failed:
                return self._observer is not None
            debouncer: Debouncer[Parts] = Debouncer(
                self.debounce, self._fire, name=f"syncd-watch-{self.account.name}"
            )
            observer = Observer()
            observer.schedule(
                _Handler(self),
                str(self.root),
                recursive=True,
                event_filter=[
                    FileCreatedEvent,
                    FileDeletedEvent,
                    FileMovedEvent,
                    DirCreatedEvent,
                    DirDeletedEvent,
                    DirMovedEvent,
                ],
            )
            observer.daemon = True
            try:
                observer.start()
            except OSError as exc:
                debouncer.stop()
                if exc.errno in (errno.ENOSPC, errno.EMFILE):
                    self.failed = True
                    self.log.warning(
                        "cannot watch %s for local changes (%s); they are picked up by the "
                        "full sync every %.0fs instead. Raise fs.inotify.max_user_watches / "
                        "max_user_instances (sysctl) to fix",
                        self.root,
                        exc.strerror or exc,
                        self.account.interval,
                    )
                else:
                    self.log.debug("cannot watch %s yet: %s", self.root, exc.strerror or exc)
                return False
            self._observer = observer
            self._debouncer = debouncer
        self.log.debug("watching %s", self.root)
        # A reader may have changed a folder between syncd's sync of it and now
        # (the first sync ends before the watch begins): no event tells of that,
        # so every folder synced so far is looked at once, as if it had fired.
        for folder in self.echo.folders():
            debouncer.touch(folder)
        return True

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            observer, self._observer = self._observer, None
            debouncer, self._debouncer = self._debouncer, None
        if observer is not None:
            observer.stop()
            observer.join(2.0)
        if debouncer is not None:
            debouncer.stop()

    # -- events --------------------------------------------------------------------------

    def event(self, path: str, *, is_directory: bool) -> None:
        """One file-system event (called in watchdog's thread, or by tests)."""
        found = folder_of(
            self.root,
            self.account.layout,
            path,
            is_directory=is_directory,
            names=self.account.local_names,
        )
        if found is None:
            return
        parts, structural = found
        if not matches(parts, self.account.folders, self.account.exclude):
            return
        with self._lock:
            if structural:
                self._structural.add(parts)
            debouncer = self._debouncer
        if debouncer is not None:
            debouncer.touch(parts)

    def _fire(self, parts: Parts) -> None:
        name = "/".join(parts)
        if self.echo.busy(parts):
            with self._lock:  # syncd is syncing it right now: decide once it is done
                debouncer = self._debouncer
            if debouncer is not None:
                debouncer.touch(parts)
            return
        with self._lock:
            structural = parts in self._structural
            self._structural.discard(parts)
        try:
            path = local_path(self.root, parts, self.account.layout, names=self.account.local_names)
        except UnsafeNameError:
            return
        if structural:
            exists, known = _has_cur(path), self.echo.known(parts)
            if exists != known:
                self.log.info("local folder %s %s; full sync", name, "added" if exists else "gone")
                self.post_full()
                return
            if not exists:
                return  # a directory that never was a folder
        if self.echo.is_echo(parts, directory_signature(path)):
            self.log.debug("%s: only syncd's own changes", name)
            return
        self.log.debug("%s: changed locally", name)
        self.post_folder(name)


class _Handler(FileSystemEventHandler):
    """Forwards both paths of each event to :meth:`MaildirWatcher.event`."""

    def __init__(self, watcher: MaildirWatcher) -> None:
        super().__init__()
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, event.dest_path):
            if path:
                self.watcher.event(os.fsdecode(path), is_directory=event.is_directory)
