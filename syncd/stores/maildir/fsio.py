"""File-system steps for a Maildir, each safe on its own: no symlink followed, no
file replaced, fsync where durability needs it, the partial file removed on every
error.  Paths are plain ``str`` on the hot paths (100k entries per scan); syncd is
POSIX-only."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from syncd.errors import MessageError
from syncd.logsetup import printable
from syncd.stores.maildir.names import KEYWORDS_FILE

# The name it had before the package split: users' log filters use it.
log = logging.getLogger("syncd.maildir")

DIR_MODE = 0o700
FILE_MODE = 0o600
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# link() is refused by filesystems without hard links (vfat, some FUSE mounts).
_NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


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


def join(*parts: str) -> str:
    # Plain strings on the hot path (100k entries per scan); syncd is POSIX-only.
    return "/".join(parts)


def unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # noqa: PTH108 -- str paths on the hot path


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def read_fd(fd: int, path: str) -> bytes:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise MessageError(f"cannot read {printable(path)}: not a regular file")
    chunks: list[bytes] = []
    while chunk := os.read(fd, max(st.st_size, 1 << 16)):
        chunks.append(chunk)
    return b"".join(chunks)


def write_new_file(
    chunks: Iterable[bytes],
    tmp_dir: str,
    tmp_path: str,
    target: str,
    *,
    mtime: float | None,
    fsync: bool,
) -> tuple[int, float]:
    """Write ``chunks`` to ``tmp_path`` (O_EXCL, mode 0600; ``tmp_dir`` created when
    missing), set its mtime, fsync it, then move it to ``target`` without replacing
    anything.  Returns (size, mtime as stored).  On any error the partial file is
    removed and MessageError raised; an exception from ``chunks`` propagates unchanged."""
    if not os.path.isdir(tmp_dir):  # noqa: PTH112 -- str path
        try:
            os.mkdir(tmp_dir, DIR_MODE)  # noqa: PTH102 -- str path
        except FileExistsError:
            pass
        except OSError as exc:
            raise MessageError(f"cannot create {printable(tmp_dir)}: {cause(exc)}") from exc
    try:
        fd = os.open(tmp_path, CREATE_FLAGS, FILE_MODE)
    except OSError as exc:
        raise MessageError(f"cannot create {printable(tmp_path)}: {cause(exc)}") from exc
    done = False
    try:
        try:
            size = 0
            for chunk in chunks:  # the source's own errors propagate unchanged
                try:
                    size += write_all(fd, chunk)
                except OSError as exc:
                    raise _write_error(target, exc) from exc
            try:
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))
                if fsync:
                    os.fsync(fd)
                st = os.fstat(fd)
            except OSError as exc:
                raise _write_error(target, exc) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        try:
            os.close(fd)  # NFS and quotas report errors here
            move_no_replace(tmp_path, target)
        except OSError as exc:
            raise _write_error(target, exc) from exc
        done = True
    finally:
        if not done:
            unlink_quietly(tmp_path)
    return size, st.st_mtime


def replace_file(directory: str, name: str, data: bytes, *, fsync: bool) -> None:
    """Replace the small control file ``directory/name`` (a folder's keyword table,
    the root's subscriptions) atomically: a fresh temporary file, fsync'd, renamed
    over it.  OSError when it cannot; the temporary file is gone then."""
    path = join(directory, name)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, CREATE_FLAGS, FILE_MODE)
        try:
            write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)  # noqa: PTH104 -- str paths
        if fsync:
            fsync_dir(directory)
    except OSError:
        unlink_quietly(tmp)
        raise


def _write_error(target: str, exc: OSError) -> MessageError:
    return MessageError(f"cannot deliver {printable(target)}: {cause(exc)}")


def move_no_replace(src: str, dst: str) -> None:
    """Move ``src`` to ``dst`` unless ``dst`` exists (MessageError then)."""
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


def remove_stale(tmp_dir: str, max_age: float) -> list[Path]:
    """Remove the regular files in ``tmp_dir`` untouched (atime and mtime) for
    ``max_age`` seconds; returns their paths.  Errors are logged, not raised."""
    removed: list[Path] = []
    now = time.time()
    try:
        with os.scandir(tmp_dir) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and now - max(st.st_atime, st.st_mtime) > max_age:
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


def cause(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symlink; refusing to follow it"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{exc.strerror} (disk full or over quota?)"
    return exc.strerror or str(exc)
