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
"""

from __future__ import annotations

import contextlib
import errno
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
from syncd.flags import (
    INFO_SEPARATOR,
    MAX_KEYWORDS,
    flags_to_letters,
    is_keyword,
    keyword_index,
    parse_info,
    split_letters,
    unmapped_flags,
)
from syncd.logsetup import printable
from syncd.model import Flags

# The name it had before the package split: users\' log filters use it.

log = logging.getLogger("syncd.maildir")

KEYWORDS_FILE = "dovecot-keywords"
DIR_MODE = 0o700
FILE_MODE = 0o600
TMP_MAX_AGE = 36 * 3600.0  # the Maildir spec's "not accessed for 36 hours"
_SCAN_ATTEMPTS = 5
_MAX_NAME_BYTES = 200
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# link() is refused by filesystems without hard links (vfat, some FUSE mounts).
_NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
# IMAP atom-specials (RFC 3501 §9) and space: a keyword is an atom.
_ATOM_SPECIALS = frozenset('(){ %*"\\]')


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


def directory_signature(folder_path: Path) -> tuple[int, ...]:
    """A cheap "did anything change locally?" value for a folder.

    ``(st_mtime_ns, st_ino)`` of ``cur/``, ``new/`` and ``dovecot-keywords``
    (``-1`` for a missing entry): a delivery, rename or removal changes the
    directory's mtime.  Caveat: directory mtimes have the kernel's coarse clock
    granularity (a few ms), so a signature whose mtime is within a second of
    the moment it was taken is not proof of "unchanged"; rescan then.
    """
    out: list[int] = []
    for name in ("cur", "new", KEYWORDS_FILE):
        try:
            st = os.lstat(folder_path / name)
        except OSError:
            out += (-1, -1)
        else:
            out += (st.st_mtime_ns, st.st_ino)
    return tuple(out)


def valid_keyword(keyword: str) -> bool:
    """Whether ``keyword`` can be stored in ``dovecot-keywords`` (an IMAP atom)."""
    return (
        bool(keyword)
        and len(keyword) <= 200
        and keyword.isascii()
        and keyword.isprintable()
        and not keyword.startswith("\\")
        and not any(ch in _ATOM_SPECIALS for ch in keyword)
    )


def _preference(msg: LocalMessage) -> tuple[bool, str]:
    # Among duplicates of one unique name, keep the one in cur/ (a reader has
    # seen it), then the smallest file name: deterministic whatever readdir's order.
    return (msg.subdir != "cur", msg.filename)


def _join(*parts: str) -> str:
    # Plain strings on the hot path (100k entries per scan); syncd is POSIX-only.
    return "/".join(parts)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # noqa: PTH108 -- str paths on the hot path


def _fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Dovecot's control files: not messages, even when copied into cur/ or new/.
_CONTROL_NAMES = (
    "dovecot-uidlist",
    "dovecot-keywords",
    "dovecot-uidvalidity",
    "dovecot.",
    "maildirfolder",
    "subscriptions",
    "courierimap",
)


def _junk_reason(name: str, st: os.stat_result) -> str | None:
    """Why a directory entry is not a message, or None when it is one."""
    if name.startswith(_CONTROL_NAMES):
        return "a mail server's control file, not a message"
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if st.st_size == 0:
        return "zero-byte file"
    if not name.isascii() and not _is_utf8(name):
        return "file name is not valid UTF-8"
    return None


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _read_fd(fd: int, path: str) -> bytes:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise MessageError(f"cannot read {printable(path)}: not a regular file")
    chunks: list[bytes] = []
    while chunk := os.read(fd, max(st.st_size, 1 << 16)):
        chunks.append(chunk)
    return b"".join(chunks)


class MaildirFolder:
    """One Maildir folder (``cur/``, ``new/``, ``tmp/``) and its ``dovecot-keywords``.

    The path is trusted: it comes from ``syncd.folders.local_path``, which
    validated it.  Not thread-safe; the engine serialises work per folder.
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._str = str(path)
        self._host = _escape_host(socket.gethostname() or "localhost")
        self._counter = itertools.count(1)
        self._kw_cache: tuple[tuple[int, int, int], list[str]] | None = None
        self._stat_cache: dict[str, dict[str, tuple[int, int, float]]] = {}

    def __repr__(self) -> str:
        return f"MaildirFolder({self.path!r})"

    # -- the folder ---------------------------------------------------------

    def exists(self) -> bool:
        """True when ``cur/`` and ``new/`` are real directories (``tmp/`` is
        created on the first delivery if missing)."""
        for sub in ("cur", "new"):
            try:
                if not stat.S_ISDIR(os.lstat(_join(self._str, sub)).st_mode):
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
                    _fsync_dir(p.parent)
            for sub in ("cur", "new", "tmp"):
                (self.path / sub).mkdir(mode=DIR_MODE, exist_ok=True)
            if self.fsync:
                _fsync_dir(self.path)
        except OSError as exc:
            raise FolderError(f"cannot create Maildir {printable(self.path)}: {exc}") from exc

    def sync_dirs(self) -> None:
        """fsync ``cur/`` and ``new/`` so the renames of a batch are durable.
        Call once per batch, before recording the batch in the state."""
        if not self.fsync:
            return
        for sub in ("cur", "new"):
            try:
                _fsync_dir(_join(self._str, sub))
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
            directory = _join(self._str, sub)
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
                                problems.append(Problem(Path(entry.path), _cause(exc)))
                                continue
                            reason = _junk_reason(name, st)
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
                with os.scandir(_join(self._str, sub)) as entries:
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
        path = _join(self._str, msg.subdir, msg.filename)
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            moved = self.locate(msg.name)
            if moved is None:
                raise MessageError(f"cannot read {printable(path)}: the file is gone") from None
            path = _join(self._str, moved.subdir, moved.filename)
            try:
                fd = os.open(path, _READ_FLAGS)
            except OSError as exc:
                raise MessageError(f"cannot read {printable(path)}: {_cause(exc)}") from exc
        except OSError as exc:
            raise MessageError(f"cannot read {printable(path)}: {_cause(exc)}") from exc
        try:
            return _read_fd(fd, path)
        except OSError as exc:
            raise MessageError(f"cannot read {printable(path)}: {_cause(exc)}") from exc
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
        _check_unique_name(name)
        letters, stored, extra = self._encode(flags, keep="")
        if to_new and not letters:
            subdir, filename = "new", name
        else:
            subdir, filename = "cur", name + INFO_SEPARATOR + letters
        tmp_dir = _join(self._str, "tmp")
        tmp_path = _join(tmp_dir, name)
        target = _join(self._str, subdir, filename)
        if not os.path.isdir(tmp_dir):  # noqa: PTH112 -- str path
            try:
                os.mkdir(tmp_dir, DIR_MODE)  # noqa: PTH102 -- str path
            except FileExistsError:
                pass
            except OSError as exc:
                raise MessageError(f"cannot create {printable(tmp_dir)}: {_cause(exc)}") from exc
        try:
            fd = os.open(tmp_path, _CREATE_FLAGS, FILE_MODE)
        except OSError as exc:
            raise MessageError(f"cannot create {printable(tmp_path)}: {_cause(exc)}") from exc
        done = False
        try:
            try:
                size = 0
                for chunk in chunks:  # the source's own errors propagate unchanged
                    try:
                        size += _write_all(fd, chunk)
                    except OSError as exc:
                        raise self._write_error(target, exc) from exc
                try:
                    if mtime is not None:
                        os.utime(fd, (mtime, mtime))
                    if self.fsync:
                        os.fsync(fd)
                    st = os.fstat(fd)
                except OSError as exc:
                    raise self._write_error(target, exc) from exc
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            try:
                os.close(fd)  # NFS and quotas report errors here
                self._move_no_replace(tmp_path, target)
            except OSError as exc:
                raise self._write_error(target, exc) from exc
            done = True
        finally:
            if not done:
                _unlink_quietly(tmp_path)
        return LocalMessage(name, subdir, filename, stored, size, st.st_mtime, extra)

    @staticmethod
    def _write_error(target: str, exc: OSError) -> MessageError:
        return MessageError(f"cannot deliver {printable(target)}: {_cause(exc)}")

    def _move_no_replace(self, src: str, dst: str) -> None:
        # link() fails with EEXIST atomically: the spec's way to never replace a file.
        try:
            os.link(src, dst)
        except FileExistsError:
            raise MessageError(f"{printable(dst)} already exists; not replaced") from None
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            if os.path.lexists(dst):
                raise MessageError(f"{printable(dst)} already exists; not replaced") from None
            os.rename(src, dst)  # noqa: PTH104 -- str paths
            return
        try:
            os.unlink(src)  # noqa: PTH108 -- str path
        except OSError as exc:  # delivered all the same; clean_tmp removes it later
            log.warning("cannot remove %s after delivery: %s", printable(src), exc)

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
            letters, stored, extra = self._encode(wanted, keep=current.extra)
            if current.subdir == "new" and stored == current.flags:
                return current
            filename = current.name + INFO_SEPARATOR + letters
            if current.subdir == "cur" and filename == current.filename:
                return current
            src = _join(self._str, current.subdir, current.filename)
            dst = _join(self._str, "cur", filename)
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
                raise MessageError(f"cannot rename {printable(src)}: {_cause(exc)}") from exc
            return LocalMessage(
                current.name, "cur", filename, stored, current.size, current.mtime, extra
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, msg: LocalMessage) -> None:
        """Remove ``msg`` (unlink never follows a symlink).  Already gone is fine.

        If a mail reader renamed the file since the scan, the current file is
        removed only when its flags are unchanged; a changed one is kept and
        MessageError raised (a change wins over a deletion)."""
        path = _join(self._str, msg.subdir, msg.filename)
        try:
            os.unlink(path)  # noqa: PTH108 -- str path
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MessageError(f"cannot delete {printable(path)}: {_cause(exc)}") from exc
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
            _unlink_quietly(_join(self._str, moved.subdir, moved.filename))
        except OSError as exc:
            raise MessageError(f"cannot delete {printable(path)}: {_cause(exc)}") from exc

    def clean_tmp(self, max_age: float = TMP_MAX_AGE) -> list[Path]:
        """Remove regular files in ``tmp/`` untouched (atime and mtime) for
        ``max_age`` seconds -- leftovers of interrupted deliveries (Maildir
        spec).  Returns the removed paths; errors are logged, not raised."""
        removed: list[Path] = []
        now = time.time()
        tmp_dir = _join(self._str, "tmp")
        try:
            with os.scandir(tmp_dir) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                        if stat.S_ISREG(st.st_mode) and now - max(st.st_atime, st.st_mtime) > (
                            max_age
                        ):
                            os.unlink(entry.path)  # noqa: PTH108 -- str path
                            removed.append(Path(entry.path))
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        log.warning("cannot remove %s: %s", printable(entry.path), exc)
        except FileNotFoundError:
            return removed
        except OSError as exc:
            log.warning("cannot clean %s: %s", printable(tmp_dir), exc)
        return removed

    # -- keywords -----------------------------------------------------------

    def keywords(self) -> list[str]:
        """The keyword list of ``dovecot-keywords``: ``result[i]`` is the
        keyword of letter ``chr(ord('a') + i)``, ``""`` for an unused slot.
        Lines that are malformed or hold an invalid keyword are ignored (their
        letters then count as unknown and are preserved).  Cached by the
        file's (mtime, inode, size).  Raises FolderError if it exists but
        cannot be read."""
        path = _join(self._str, KEYWORDS_FILE)
        try:
            st = os.stat(path)  # noqa: PTH116 -- str path
        except FileNotFoundError:
            self._kw_cache = None
            return []
        except OSError as exc:
            raise FolderError(f"cannot read {printable(path)}: {_cause(exc)}") from exc
        sig = (st.st_mtime_ns, st.st_ino, st.st_size)
        if self._kw_cache is not None and self._kw_cache[0] == sig:
            return list(self._kw_cache[1])
        try:
            fd = os.open(path, _READ_FLAGS)
            try:
                text = _read_fd(fd, path).decode("utf-8", "replace")
            finally:
                os.close(fd)
        except (OSError, MessageError) as exc:
            raise FolderError(f"cannot read {printable(path)}: {exc}") from exc
        result = _parse_keywords(text)
        self._kw_cache = (sig, result)
        return list(result)

    def ensure_keywords(self, wanted: Iterable[str]) -> list[str]:
        """Give every valid keyword of ``wanted`` a letter, appending to
        ``dovecot-keywords`` (write temp, fsync, rename: atomic).  Returns the
        new keyword list.  Keywords beyond the 26th or not valid IMAP atoms get
        no letter.  Does not take Dovecot's dotlock: do not run a local Dovecot
        on the same Maildir at the same time."""
        current = self.keywords()
        known = set(current)
        missing = [k for k in dict.fromkeys(wanted) if k not in known and valid_keyword(k)]
        room = MAX_KEYWORDS - len(current)
        if not missing or room <= 0:
            return current
        updated = current + missing[:room]
        text = "".join(f"{i} {k}\n" for i, k in enumerate(updated) if k)
        path = _join(self._str, KEYWORDS_FILE)
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, _CREATE_FLAGS, FILE_MODE)
            try:
                _write_all(fd, text.encode("ascii"))
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)  # noqa: PTH104 -- str paths
            if self.fsync:
                _fsync_dir(self._str)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise FolderError(f"cannot write {printable(path)}: {_cause(exc)}") from exc
        self._kw_cache = None
        log.debug("%s: new keywords %s", printable(self.path), missing[:room])
        return updated

    def _encode(self, flags: Flags, keep: str) -> tuple[str, Flags, str]:
        """``(letters, flags as stored, extra letters)`` for a file name."""
        keyword_flags = sorted(f for f in flags if is_keyword(f))  # stable letters
        if keyword_flags:
            keywords = self.ensure_keywords(keyword_flags)
        elif any("a" <= ch <= "z" for ch in keep):
            keywords = self.keywords()
        else:
            keywords = []
        index = keyword_index(keywords)
        lost = unmapped_flags(flags, index)
        if lost:
            log.warning(
                "%s: flags %s have no Maildir letter and are not stored locally",
                printable(self.path),
                ascii(sorted(lost)),
            )
        letters = flags_to_letters(flags, index, keep)
        stored, extra = split_letters(letters, keywords)
        return letters, stored, extra


def _parse_keywords(text: str) -> list[str]:
    slots: dict[int, str] = {}
    for line in text.splitlines():
        number, _, keyword = line.partition(" ")
        if number.isdigit() and int(number) < MAX_KEYWORDS and valid_keyword(keyword):
            slots[int(number)] = keyword
    if not slots:
        return []
    return [slots.get(i, "") for i in range(max(slots) + 1)]


def _escape_host(host: str) -> str:
    # The spec escapes "/" and ":"; anything else unusual (space, control,
    # non-ASCII, backslash) is escaped the same way so names stay plain ASCII.
    return "".join(
        ch
        if ch.isascii() and ch.isprintable() and ch not in "/: \\"
        else "".join(f"\\{b:03o}" for b in ch.encode("utf-8", "surrogateescape"))
        for ch in host
    )


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes from os.fsdecode: not UTF-8 on disk
        return False
    return True


def _check_unique_name(name: str) -> None:
    if (
        not name
        or name.startswith(".")
        or any(ch in name for ch in "/:\x00")
        or not name.isprintable()
        or not _is_utf8(name)
        or len(name.encode("utf-8")) > _MAX_NAME_BYTES
    ):
        raise MessageError(f"invalid Maildir unique name {name!a}")


def _cause(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symlink; refusing to follow it"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{exc.strerror} (disk full or over quota?)"
    return exc.strerror or str(exc)
