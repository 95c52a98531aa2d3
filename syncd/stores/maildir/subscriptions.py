"""The Maildir's folder subscriptions: Dovecot's ``subscriptions`` file at the root.

A Maildir has no subscriptions of its own; Dovecot keeps them in a file named
``subscriptions`` at the Maildir root, and syncd reads and writes that file the
way Dovecot 2.3 does, so a local Dovecot (or any reader that follows it) serving
the same Maildir sees them.  Its version 2 format::

    V<TAB>2
    <empty line>
    INBOX
    Lists<TAB>python

one folder per line, its name components separated by a TAB, each spelled as on
disk (``local_names``: modified UTF-7 like Dovecot's own Maildir, or UTF-8).  A file
without the ``V`` header is Dovecot's version 1: one name per line, components
separated by the layout's separator (``.``, or ``/`` in the nested layout).  The
file is replaced atomically (write a temporary file, fsync, rename).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from syncd.errors import FolderError
from syncd.folders import Layout, LocalNames, decode_component, encode_component, normalise_inbox
from syncd.logsetup import printable
from syncd.stores.maildir.fsio import cause, replace_file

SUBSCRIPTIONS_FILE = "subscriptions"
_HEADER = "V\t2\n\n"


def read_subscriptions(
    root: Path, *, layout: Layout, names: LocalNames = "utf-8"
) -> set[tuple[str, ...]] | None:
    """The folders subscribed in the Maildir at ``root``; None when it has no
    ``subscriptions`` file.  Lines that do not decode are skipped.  FolderError
    when the file cannot be read."""
    path = root / SUBSCRIPTIONS_FILE
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FolderError(f"cannot read {printable(path)}: {cause(exc)}") from exc
    lines = text.split("\n")
    if lines[0].startswith("V\t"):
        body, separator = lines[1:], "\t"
    else:
        body, separator = lines, "/" if layout == "nested" else "."
    found: set[tuple[str, ...]] = set()
    for line in body:
        if not line:
            continue
        try:
            parts = tuple(decode_component(p, names) for p in line.split(separator))
        except ValueError:
            continue
        found.add(normalise_inbox(parts))
    return found


def format_subscriptions(subscribed: Iterable[tuple[str, ...]], names: LocalNames) -> str:
    """The file's text (version 2), names sorted."""
    return _HEADER + "".join(
        "\t".join(encode_component(p, names) for p in parts) + "\n" for parts in sorted(subscribed)
    )


def write_subscriptions(
    root: Path,
    subscribed: Iterable[tuple[str, ...]],
    *,
    names: LocalNames = "utf-8",
    fsync: bool = True,
) -> None:
    """Replace the ``subscriptions`` file atomically.  FolderError when it cannot."""
    path = str(root / SUBSCRIPTIONS_FILE)
    data = format_subscriptions(subscribed, names).encode("utf-8")
    try:
        replace_file(str(root), SUBSCRIPTIONS_FILE, data, fsync=fsync)
    except OSError as exc:
        raise FolderError(f"cannot write {printable(Path(path))}: {cause(exc)}") from exc
