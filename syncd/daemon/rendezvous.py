"""Where a running daemon is found: the private socket directory, the socket's
names, the config file's stamp and the peer check.

Shared by the daemon (:mod:`syncd.daemon.control`) and by the ``syncd sync``
fast path (:mod:`syncd.cli.ride`), which runs before click or the config loader
is imported: this module imports only what a bare Python start has loaded
anyway (``os``, ``stat``) plus ``hashlib``, ``socket`` and ``struct``, and works
on ``str`` paths.

Two names lead to one daemon's socket, both in the private directory:

- ``<digest of the state directory>.sock``: the socket itself.  A command that
  has read the config finds it there;
- ``<digest of the config file's path>.config``: a symbolic link to it, made by
  the daemon, so that the fast path finds the daemon from the config file's
  path alone.  The daemon answers such a request only while the file is the
  one it loaded (:func:`config_stamp`); anything else falls back to the
  ordinary command, which reads the config.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import struct


class RendezvousError(OSError):
    """The socket directory is unusable (not ours, not private, not a directory)."""


def runtime_dir(*, create: bool = True) -> str:
    """The private directory of the user's control sockets (created 0700 when
    ``create``): ``$XDG_RUNTIME_DIR/syncd``, else ``/tmp/syncd-<uid>``."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    uid = os.getuid()
    path = os.path.join(base, "syncd") if base and os.path.isdir(base) else f"/tmp/syncd-{uid}"  # noqa: S108 -- checked below: ours, 0700, not a link
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise RendezvousError(f"{path} is not a private directory of this user (mode 0700)")
    return path


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def socket_name(state_dir: str) -> str:
    """The file name of the socket of the daemon keeping its state in ``state_dir``
    (an absolute path, as the daemon's config has it)."""
    return _digest(state_dir) + ".sock"


def config_link_name(config_path: str) -> str:
    """The file name of the link to the socket of the daemon that loaded
    ``config_path`` (any spelling: it is made absolute and normalised)."""
    return _digest(os.path.abspath(config_path)) + ".config"


def config_stamp(config_path: str) -> list[int] | None:
    """What tells one version of the config file from another without reading it:
    device, inode, size, modification and change times (ns).  None: cannot stat."""
    try:
        st = os.stat(config_path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)
