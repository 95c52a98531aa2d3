"""The fast path of ``syncd sync``: ride a running daemon without click or the config.

``syncd sync`` through a running daemon used to pay for importing click and the
config reader before it sent its one request (issue 14: 0.10 s against mbsync's
0.04 s no-op).  For a plain invocation --

    syncd [--config FILE] [-q|-v...] sync [--no-progress] [ACCOUNT...]
                                            (the global options may also follow sync)

that would show no live progress line (:func:`syncd.cli.live.wanted`: ``-q``,
``--no-progress``, or stderr not a terminal, as for a mail reader's key or a
script)

-- :func:`fast_ride` finds the config file as the command would
(:func:`syncd.config.config_path`), reaches the daemon through that file's link
in the private socket directory (:mod:`syncd.daemon.rendezvous`) and sends the
request with the file's stamp.  The daemon answers only while the file is the
one it loaded and unchanged since, so the command's outcome is the one the
ordinary path would have: the same lines on stderr, the same exit status.

None -- the caller then runs the ordinary command, which reads the config and
may still ride the daemon -- for anything else: another option, ``--``, a
config path given another way than these, a config file writable by every user
(the ordinary path warns about it), no daemon, a daemon that refuses (another
config, a changed file, an account it does not run), or a connection that fails
before the final answer.
"""

from __future__ import annotations

import _socket  # not socket: it builds its enums at import, milliseconds of start-up
import json
import os
import stat
import sys

from syncd.daemon.rendezvous import config_link_name, config_stamp, peer_uid, runtime_dir

_QUIET = frozenset({"-q", "--quiet"})
_ANSI_CSI = "\x1b["


def parse(argv: list[str]) -> tuple[str | None, int, list[str], bool] | None:
    """(``--config`` value or None, verbosity, accounts, ``--no-progress``) of a
    plain ``sync`` invocation; None for anything else."""
    config: str | None = None
    quiet, verbose = False, 0
    command_seen = no_progress = False
    accounts: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" or arg.startswith("--config="):
            if config is not None:
                return None
            if arg == "--config":
                if i + 1 >= len(argv):
                    return None
                i += 1
                config = argv[i]
            else:
                config = arg.partition("=")[2]
            if not config:
                return None
        elif arg in _QUIET:
            quiet = True
        elif arg == "--verbose":
            verbose += 1
        elif len(arg) > 1 and arg.startswith("-") and set(arg[1:]) == {"v"}:
            verbose += len(arg) - 1
        elif arg == "--no-progress" and command_seen:
            no_progress = True
        elif arg.startswith("-"):
            return None  # -h, --version, --dry-run, --, ...: the ordinary path
        elif not command_seen:
            if arg != "sync":
                return None
            command_seen = True
        else:
            accounts.append(arg)
        i += 1
    if not command_seen:
        return None
    return config, -1 if quiet else verbose, accounts, no_progress


def _live_wanted(verbosity: int, no_progress: bool) -> bool:
    """:func:`syncd.cli.live.wanted` for stderr, without importing it (it loads the
    engine's progress and logging set-up): the ordinary path shows the line."""
    if no_progress or verbosity < 0 or os.environ.get("TERM") == "dumb":
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _config_path(explicit: str | None) -> str | None:
    """As :func:`syncd.config.config_path` on Linux; None where that needs more."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get("SYNCD_CONFIG", "")
    if from_env:
        return from_env
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "syncd", "config.toml")
    if xdg.strip() or not sys.platform.startswith("linux"):
        return None  # platformdirs' own rules: leave them to it
    return os.path.join(os.path.expanduser("~"), ".config", "syncd", "config.toml")


def fast_ride(argv: list[str]) -> int | None:
    """Relay ``syncd sync`` through the daemon: its exit status, or None to run the
    ordinary command instead (having printed nothing, unless the connection broke
    after the daemon's first lines: then, as on the ordinary path, the command
    goes on by itself after them)."""
    parsed = parse(argv)
    if parsed is None:
        return None
    explicit, verbosity, accounts, no_progress = parsed
    if _live_wanted(verbosity, no_progress):
        return None
    config = _config_path(explicit)
    if config is None:
        return None
    try:
        if os.stat(config).st_mode & stat.S_IWOTH:
            return None
        link = os.path.join(runtime_dir(create=False), config_link_name(config))
    except OSError:
        return None
    stamp = config_stamp(config)
    if stamp is None:
        return None
    request: dict[str, object] = {
        "sync": accounts,
        "config": os.path.abspath(config),
        "stamp": stamp,
    }
    return _ask(link, request, verbosity)


def _ask(link: str, request: dict[str, object], verbosity: int) -> int | None:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(link)
        if peer_uid(sock) != os.getuid():  # not our daemon: never trust its answer
            return None
        sock.sendall(json.dumps(request).encode() + b"\n")
        buffer = b""
        while chunk := sock.recv(65536):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                answer = json.loads(line)
                if not isinstance(answer, dict) or "refused" in answer:
                    return None
                if "log" in answer:
                    _show(str(answer["log"]), verbosity)
                elif "exit" in answer:
                    for summary in answer.get("lines", []):
                        _show(str(summary), verbosity)
                    return int(answer["exit"])
        return None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def _show(line: str, verbosity: int) -> None:
    """As the ordinary path prints a relayed line (``click.echo(line, err=True)``)."""
    if verbosity < 0 and line.startswith(("INFO ", "DEBUG ")):
        return
    if _ANSI_CSI in line and not sys.stderr.isatty():
        import re

        line = re.sub(r"\x1b\[[;?0-9]*[a-zA-Z]", "", line)  # click strips them too
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
