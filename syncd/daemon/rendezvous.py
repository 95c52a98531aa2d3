"""Where a running daemon is found: the private socket directory, the socket's
names, the config file's stamp and the peer check.

Shared by the daemon (:mod:`syncd.daemon.control`) and by the ``syncd sync``
fast path (:mod:`syncd.cli.ride`), which runs before click or the config loader
is imported: on that path this module imports only what a bare Python start has
loaded anyway (``os``, ``stat``) plus ``zlib`` and ``_socket`` (``socket`` and
``hashlib`` cost milliseconds to import: ``socket`` builds its enums, ``hashlib``
loads OpenSSL), and works on ``str`` paths.

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
import os
import stat
import sys
import zlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (milliseconds)
if TYPE_CHECKING:
    import _socket


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


def socket_name(state_dir: str) -> str:
    """The file name of the socket of the daemon keeping its state in ``state_dir``
    (an absolute path, as the daemon's config has it)."""
    import hashlib

    return hashlib.sha256(state_dir.encode()).hexdigest()[:16] + ".sock"


def config_link_name(config_path: str) -> str:
    """The file name of the link to the socket of the daemon that loaded
    ``config_path`` (any spelling: it is made absolute and normalised).  Two paths
    that share a name only cost the fast path: the daemon checks the path."""
    path = os.path.abspath(config_path).encode(errors="surrogateescape")
    return f"{zlib.crc32(path):08x}{zlib.adler32(path):08x}.config"


def config_stamp(config_path: str) -> list[int] | None:
    """What tells one version of the config file from another without reading it:
    device, inode, size, modification and change times (ns).  None: cannot stat."""
    try:
        st = os.stat(config_path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def peer_uid(conn: _socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED:
    three C ints, pid, uid, gid)."""
    import _socket

    creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], sys.byteorder, signed=True)
