"""A thin, fast Maildir layer: list, deliver, rename for flags, delete.

Hand-written rather than stdlib ``mailbox.Maildir``: that one stats every file
on each ``keys()``, rescans unconditionally within 2 s and rewrites a whole
file to change a flag (LIBRARIES.md §7).  Here a listing is one ``os.scandir``
of ``new/`` and ``cur/`` and a flag change is one ``rename``.

Safety rules kept throughout (RELIABILITY.md E/F):

- symlinks are never followed, read or uploaded; non-regular and zero-byte
  files are reported, never treated as messages;
- an unreadable file is still *listed* (unreadable is not deleted);
- a missing or unreadable ``cur/``/``new/`` is a FolderError, never "empty";
- delivery goes through ``tmp/`` with ``O_EXCL``, is fsynced, and never
  replaces an existing file; every write error removes the partial file.

The file steps live in :mod:`.fsio`, what a name may be in :mod:`.names`, the
``dovecot-keywords`` table in :mod:`.keywords`.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from syncd.errors import FolderError, MessageError
from syncd.flags import INFO_SEPARATOR, parse_info, split_letters
from syncd.logsetup import printable
from syncd.model import Flags
from syncd.stores.maildir.fsio import (
    DIR_MODE,
    READ_FLAGS,
    cause,
    directory_signature,
    fsync_dir,
    join,
    read_fd,
    remove_stale,
    unlink_quietly,
    write_new_file,
)
from syncd.stores.maildir.keywords import KeywordTable
from syncd.stores.maildir.names import check_unique_name, escape_host, junk_reason

# The name it had before the package split: users\' log filters use it.

log = logging.getLogger("syncd.maildir")

TMP_MAX_AGE = 36 * 3600.0  # the Maildir spec's "not accessed for 36 hours"
_SCAN_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class LocalMessage:
    """One message file as a scan saw it."""

    name: str  # unique name = identity (base name without ":2,...")
    subdir: str  # "cur" or "new"
    filename: str  # the current file name in subdir
    flags: Flags  # IMAP names (keywords via dovecot-keywords)
    size: int  # st_size
    mtime: float
    extra: str = ""  # unknown info letters, kept across renames


@dataclass(frozen=True, slots=True)
class Problem:
    """An entry a scan skipped; ``str()`` is the one-line report."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {printable(self.path)}: {self.reason}"


def _preference(msg: LocalMessage) -> tuple[bool, str]:
    # Among duplicates of one unique name, keep the one in cur/ (a reader has
    # seen it), then the smallest file name: deterministic whatever readdir's order.
    return (msg.subdir != "cur", msg.filename)


class MaildirFolder:
    """One Maildir folder (``cur/``, ``new/``, ``tmp/``) and its ``dovecot-keywords``.

    The path is trusted: it comes from ``syncd.folders.local_path``, which
    validated it.  Not thread-safe; the engine serialises work per folder.
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._str = str(path)
        self._host = escape_host(socket.gethostname() or "localhost")
        self._counter = itertools.count(1)
        self._keywords = KeywordTable(path)
        self._stat_cache: dict[str, dict[str, tuple[int, int, float]]] = {}

    def __repr__(self) -> str:
        return f"MaildirFolder({self.path!r})"

    # -- the folder ---------------------------------------------------------

    def exists(self) -> bool:
        """True when ``cur/`` and ``new/`` are real directories (``tmp/`` is
        created on the first delivery if missing)."""
        for sub in ("cur", "new"):
            try:
                if not stat.S_ISDIR(os.lstat(join(self._str, sub)).st_mode):
                    return False
            except (FileNotFoundError, NotADirectoryError):
                return False
            except OSError as exc:
                # Unreadable is not gone: a folder we cannot look into must never
                # count as deleted (its mail would be copied again, or deleted).
                raise FolderError(
                    f"cannot read {printable(self.path)}: {exc.strerror}; skipped, not "
                    "treated as deleted"
                ) from exc
        return True

    def create(self) -> None:
        """Create the folder and ``cur/ new/ tmp/`` (mode 0700, parents too);
        fsync each directory that gained an entry.  Idempotent."""
        missing: list[Path] = []
        for p in (self.path, *self.path.parents):
            if p.exists():
                break
            missing.append(p)
        try:
            for p in reversed(missing):
                p.mkdir(mode=DIR_MODE, exist_ok=True)
                if self.fsync:
                    fsync_dir(p.parent)
            for sub in ("cur", "new", "tmp"):
                (self.path / sub).mkdir(mode=DIR_MODE, exist_ok=True)
            if self.fsync:
                fsync_dir(self.path)
        except OSError as exc:
            raise FolderError(f"cannot create Maildir {printable(self.path)}: {exc}") from exc

    def sync_dirs(self) -> None:
        """fsync ``cur/`` and ``new/`` so the renames of a batch are durable.
        Call once per batch, before recording the batch in the state."""
        if not self.fsync:
            return
        for sub in ("cur", "new"):
            try:
                fsync_dir(join(self._str, sub))
            except OSError as exc:
                raise FolderError(f"cannot fsync {printable(self.path / sub)}: {exc}") from exc

    # -- listing ------------------------------------------------------------

    def scan(self) -> tuple[dict[str, LocalMessage], list[Problem]]:
        """List the messages: ``{unique name: LocalMessage}`` and what was skipped.

        One ``os.scandir`` of ``new/`` then ``cur/`` (in that order, so a reader
        moving a file from new/ to cur/ meanwhile is seen at least once) and one
        ``lstat`` per file not seen (same name, same inode) by the previous
        scan.  Skipped and reported: symlinks, non-regular files, zero-byte
        files, names that are not UTF-8, duplicate unique names (the copy in
        cur/ with the smallest name is kept).  Dot-files are ignored
        silently.  Unreadable files are listed.  If the directories change
        while being listed, the scan is repeated.

        Raises FolderError when ``cur/`` or ``new/`` is missing, not a
        directory, or unreadable -- never returns "empty" for those.
        """
        for _ in range(_SCAN_ATTEMPTS):
            before = directory_signature(self.path)
            result = self._scan_once()
            if directory_signature(self.path) == before:
                return result
            log.debug("%s changed during the scan; scanning again", printable(self.path))
        raise FolderError(
            f"{printable(self.path)} kept changing during {_SCAN_ATTEMPTS} scans; "
            "skipped this cycle"
        )

    def _scan_once(self) -> tuple[dict[str, LocalMessage], list[Problem]]:
        keywords = self.keywords()
        decoded: dict[str, tuple[Flags, str]] = {}
        found: dict[str, LocalMessage] = {}
        problems: list[Problem] = []
        # (inode, size, mtime) by path from the previous scan: a Maildir file is
        # never rewritten in place, so a file with the same name and inode (both
        # free from readdir) needs no lstat again.  Rebuilt on every scan.
        stat_cache: dict[str, dict[str, tuple[int, int, float]]] = {}
        for sub in ("new", "cur"):
            known = self._stat_cache.get(sub, {})
            seen = stat_cache[sub] = {}
            directory = join(self._str, sub)
            self._check_subdir(sub, directory)
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        name = entry.name
                        if name.startswith("."):
                            continue
                        inode = entry.inode()
                        cached = known.get(name)
                        if (
                            cached is not None
                            and cached[0] == inode
                            and entry.is_file(follow_symlinks=False)
                        ):
                            size, mtime = cached[1], cached[2]
                        else:
                            try:
                                st = entry.stat(follow_symlinks=False)
                            except FileNotFoundError:
                                continue  # moved meanwhile: the signature check rescans
                            except OSError as exc:
                                problems.append(Problem(Path(entry.path), cause(exc)))
                                continue
                            reason = junk_reason(name, st)
                            if reason is not None:
                                problems.append(Problem(Path(entry.path), reason))
                                continue
                            size, mtime = st.st_size, st.st_mtime
                        # parse_info(), inlined: this loop runs 100k times per scan
                        cut = name.rfind(INFO_SEPARATOR)
                        if cut < 0:
                            uniq, letters = name, ""
                        else:
                            uniq, letters = name[:cut], name[cut + 3 :]
                        if not uniq:
                            problems.append(Problem(Path(entry.path), "empty unique name"))
                            continue
                        seen[name] = (inode, size, mtime)
                        dec = decoded.get(letters)
                        if dec is None:
                            dec = decoded[letters] = split_letters(letters, keywords)
                        msg = LocalMessage(uniq, sub, name, dec[0], size, mtime, dec[1])
                        prev = found.get(uniq)
                        if prev is not None:
                            msg, drop = sorted((prev, msg), key=_preference)
                            problems.append(
                                Problem(
                                    self.path / drop.subdir / drop.filename,
                                    f"duplicate of {msg.subdir}/{msg.filename}",
                                )
                            )
                        found[uniq] = msg
            except OSError as exc:
                raise FolderError(f"cannot list {printable(directory)}: {exc.strerror}") from exc
        self._stat_cache = stat_cache
        return found, problems

    def _check_subdir(self, sub: str, directory: str) -> None:
        try:
            mode = os.lstat(directory).st_mode
        except FileNotFoundError as exc:
            raise FolderError(
                f"{printable(self.path)} is not a Maildir: {sub}/ is missing"
            ) from exc
        except OSError as exc:
            raise FolderError(f"cannot list {printable(directory)}: {exc.strerror}") from exc
        if not stat.S_ISDIR(mode):
            raise FolderError(
                f"{printable(self.path)}: {sub}/ is not a directory (symlink?); refusing to read it"
            )

    def locate(self, name: str) -> LocalMessage | None:
        """The current file of unique name ``name``, or None if there is none.

        Lists ``new/`` and ``cur/`` (a few ms for 100k files): meant for crash
        recovery and for following a file a mail reader renamed.
        """
        keywords = self.keywords()
        candidates: list[LocalMessage] = []
        for sub in ("new", "cur"):
            try:
                with os.scandir(join(self._str, sub)) as entries:
                    for entry in entries:
                        if not entry.name.startswith(name):
                            continue
                        uniq, letters, _ = parse_info(entry.name)
                        if uniq != name:
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        if stat.S_ISREG(st.st_mode):
                            flags, extra = split_letters(letters, keywords)
                            candidates.append(
                                LocalMessage(
                                    name, sub, entry.name, flags, st.st_size, st.st_mtime, extra
                                )
                            )
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise FolderError(f"cannot list {printable(self.path / sub)}: {exc}") from exc
        return min(candidates, key=_preference) if candidates else None

    def path_of(self, msg: LocalMessage) -> Path:
        return self.path / msg.subdir / msg.filename

    # -- reading ------------------------------------------------------------

    def read(self, msg: LocalMessage) -> bytes:
        """The bytes of ``msg``; follows a rename by a mail reader (looked up
        again by unique name).  Never follows a symlink.  Raises MessageError
        naming the path and the cause (gone, permission denied, symlink...)."""
        path = join(self._str, msg.subdir, msg.filename)
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            moved = self.locate(msg.name)
            if moved is None:
                raise MessageError(f"cannot read {printable(path)}: the file is gone") from None
            path = join(self._str, moved.subdir, moved.filename)
            try:
                fd = os.open(path, READ_FLAGS)
            except OSError as exc:
                raise MessageError(f"cannot read {printable(path)}: {cause(exc)}") from exc
        except OSError as exc:
            raise MessageError(f"cannot read {printable(path)}: {cause(exc)}") from exc
        try:
            return read_fd(fd, path)
        except OSError as exc:
            raise MessageError(f"cannot read {printable(path)}: {cause(exc)}") from exc
        finally:
            os.close(fd)

    # -- writing ------------------------------------------------------------

    def new_name(self) -> str:
        """A fresh unique name, ``<sec>.M<usec>P<pid>Q<n>R<random>.<host>``.

        The random part makes two processes (or hosts sharing the Maildir over
        NFS) never collide; the host name has ``/`` and ``:`` escaped as the
        spec says.  Contains neither ``/`` nor ``:`` and never starts with ``.``.
        """
        sec, usec = divmod(time.time_ns() // 1000, 1_000_000)
        return (
            f"{sec}.M{usec}P{os.getpid()}Q{next(self._counter)}R{secrets.token_hex(8)}.{self._host}"
        )

    def deliver(
        self,
        data: bytes,
        *,
        name: str,
        flags: Flags,
        mtime: float | None,
        to_new: bool = False,
    ) -> LocalMessage:
        """Store one message; see :meth:`deliver_stream`."""
        return self.deliver_stream((data,), name=name, flags=flags, mtime=mtime, to_new=to_new)

    def deliver_stream(
        self,
        chunks: Iterable[bytes],
        *,
        name: str,
        flags: Flags,
        mtime: float | None,
        to_new: bool = False,
    ) -> LocalMessage:
        """Write a message into ``tmp/<name>`` (O_EXCL, mode 0600), fsync it,
        set its mtime, then move it to ``cur/<name>:2,<letters>`` -- or to
        ``new/<name>`` when ``to_new`` and there are no flags.

        Never replaces an existing file.  On any error (ENOSPC, EDQUOT on
        close, an exception from ``chunks``) the partial file is removed and
        MessageError (naming the path and cause) is raised; an exception from
        ``chunks`` itself propagates unchanged.  Does not fsync the
        directories: call :meth:`sync_dirs` once per batch.  Keywords get
        letters through ``dovecot-keywords``; flags with no letter are logged
        and left out of the returned ``flags`` (which is what a scan will see).
        """
        check_unique_name(name)
        letters, stored, extra = self._keywords.encode(flags, keep="", fsync=self.fsync)
        if to_new and not letters:
            subdir, filename = "new", name
        else:
            subdir, filename = "cur", name + INFO_SEPARATOR + letters
        tmp_dir = join(self._str, "tmp")
        tmp_path = join(tmp_dir, name)
        target = join(self._str, subdir, filename)
        size, stored_mtime = write_new_file(
            chunks, tmp_dir, tmp_path, target, mtime=mtime, fsync=self.fsync
        )
        return LocalMessage(name, subdir, filename, stored, size, stored_mtime, extra)

    def set_flags(self, msg: LocalMessage, flags: Flags) -> LocalMessage:
        """Rename ``msg`` so its info letters say ``flags``; returns the new state.

        Moves the file from ``new/`` to ``cur/`` when its flags change; keeps
        unknown letters; writes letters sorted.  If a mail reader renamed the
        file since the scan, the current file is found by unique name and the
        change is applied as a delta (``+(flags - msg.flags) -(msg.flags -
        flags)``), so the reader's own change survives: the returned ``flags``
        may then differ from ``flags`` and the next scan reports the difference.
        Raises MessageError if the file is gone or the target name exists.
        """
        current = msg
        for attempt in range(2):
            wanted = (
                flags
                if current is msg
                else (current.flags | (flags - msg.flags)) - (msg.flags - flags)
            )
            letters, stored, extra = self._keywords.encode(
                wanted, keep=current.extra, fsync=self.fsync
            )
            if current.subdir == "new" and stored == current.flags:
                return current
            filename = current.name + INFO_SEPARATOR + letters
            if current.subdir == "cur" and filename == current.filename:
                return current
            src = join(self._str, current.subdir, current.filename)
            dst = join(self._str, "cur", filename)
            if os.path.lexists(dst):
                raise MessageError(f"cannot rename {printable(src)}: {filename} already exists")
            try:
                os.rename(src, dst)  # noqa: PTH104 -- str paths
            except FileNotFoundError:
                moved = self.locate(msg.name) if attempt == 0 else None
                if moved is None:
                    raise MessageError(
                        f"cannot change flags of {printable(src)}: the file is gone"
                    ) from None
                current = moved
                continue
            except OSError as exc:
                raise MessageError(f"cannot rename {printable(src)}: {cause(exc)}") from exc
            return LocalMessage(
                current.name, "cur", filename, stored, current.size, current.mtime, extra
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, msg: LocalMessage) -> None:
        """Remove ``msg`` (unlink never follows a symlink).  Already gone is fine.

        If a mail reader renamed the file since the scan, the current file is
        removed only when its flags are unchanged; a changed one is kept and
        MessageError raised (a change wins over a deletion)."""
        path = join(self._str, msg.subdir, msg.filename)
        try:
            os.unlink(path)  # noqa: PTH108 -- str path
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MessageError(f"cannot delete {printable(path)}: {cause(exc)}") from exc
        else:
            return
        moved = self.locate(msg.name)
        if moved is None:
            return
        if moved.flags != msg.flags or moved.extra != msg.extra:
            raise MessageError(
                f"not deleting {printable(self.path_of(moved))}: changed locally since the scan"
            )
        try:
            unlink_quietly(join(self._str, moved.subdir, moved.filename))
        except OSError as exc:
            raise MessageError(f"cannot delete {printable(path)}: {cause(exc)}") from exc

    def clean_tmp(self, max_age: float = TMP_MAX_AGE) -> list[Path]:
        """Remove regular files in ``tmp/`` untouched (atime and mtime) for
        ``max_age`` seconds -- leftovers of interrupted deliveries (Maildir
        spec).  Returns the removed paths; errors are logged, not raised."""
        return remove_stale(join(self._str, "tmp"), max_age)

    # -- keywords -----------------------------------------------------------

    def keywords(self) -> list[str]:
        """The keyword list of ``dovecot-keywords``: ``result[i]`` is the
        keyword of letter ``chr(ord('a') + i)``, ``""`` for an unused slot.
        Lines that are malformed or hold an invalid keyword are ignored (their
        letters then count as unknown and are preserved).  Cached by the
        file's (mtime, inode, size).  Raises FolderError if it exists but
        cannot be read."""
        return self._keywords.read()

    def ensure_keywords(self, wanted: Iterable[str]) -> list[str]:
        """Give every valid keyword of ``wanted`` a letter, appending to
        ``dovecot-keywords`` (write temp, fsync, rename: atomic).  Returns the
        new keyword list.  Keywords beyond the 26th or not valid IMAP atoms get
        no letter.  Does not take Dovecot's dotlock: do not run a local Dovecot
        on the same Maildir at the same time."""
        return self._keywords.ensure(wanted, fsync=self.fsync)
