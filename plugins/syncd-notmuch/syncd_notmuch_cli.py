"""The notmuch command line, one process per operation over all messages.

``notmuch count --lastmod`` for the database's revision, ``notmuch show
--format=json --body=false`` for the ids, tags and file names of the messages
a query finds, ``notmuch tag --batch`` for every tag change of a run in one
process (its input format: notmuch-tag(1), "TAG FILE FORMAT").  Every call
shares one deadline, so a run of several calls stays inside the time syncd
gives the plugin.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Characters a tag may keep in a batch line; every other byte is %-encoded.
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@=")


class NotmuchError(Exception):
    """A notmuch command failed; ``str()`` is one line: the command and its last words."""


@dataclass(frozen=True)
class NotmuchMessage:
    """One message of the database: its id (the Message-ID without ``<>``), tags
    and the files it has (a message copied to two folders has two)."""

    id: str
    tags: frozenset[str]
    files: tuple[Path, ...]


def encode_tag(tag: str) -> str:
    """``tag`` as a batch line writes it: bytes outside ``[A-Za-z0-9_.@=]`` as ``%NN``."""
    return "".join(
        ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in tag
    )


def id_query(message_id: str) -> str:
    """The query for one message id, quoted as Xapian boolean terms are."""
    return 'id:"' + message_id.replace('"', '""') + '"'


def batch_line(message_id: str, add: Iterable[str], remove: Iterable[str]) -> str:
    """One line of ``notmuch tag --batch`` input (without the newline)."""
    ops = [f"+{encode_tag(t)}" for t in sorted(add)]
    ops += [f"-{encode_tag(t)}" for t in sorted(remove)]
    return " ".join(ops) + " -- " + id_query(message_id)


def walk_show(node: Any) -> Iterator[dict[str, Any]]:
    """The messages in ``notmuch show --format=json`` output: a list of threads,
    each a list of ``[message, replies]`` pairs; a message that did not match
    is ``null`` (with ``--entire-thread=false``) and is skipped."""
    if isinstance(node, dict):
        if "id" in node and "tags" in node:
            yield node
        return
    if isinstance(node, list):
        for item in node:
            yield from walk_show(item)


class Notmuch:
    """Runs ``program`` (``notmuch``) with one deadline shared by all calls."""

    def __init__(self, program: str = "notmuch", *, timeout: float = 600.0) -> None:
        self.program = program
        self.deadline = time.monotonic() + timeout

    def time_left(self) -> float:
        """Seconds until the deadline (at least 0)."""
        return max(0.0, self.deadline - time.monotonic())

    def run(self, args: Sequence[str], *, stdin: str | None = None) -> str:
        """Run ``args`` (``args[0]`` is the program); its stdout.  NotmuchError
        when it cannot start, exits non-zero or runs past the deadline."""
        left = self.time_left()
        if left <= 0:
            raise NotmuchError(f"{' '.join(args[:2])}: no time left for this run")
        try:
            proc = subprocess.run(
                list(args),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=left,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NotmuchError(f"{' '.join(args[:2])} failed: {exc}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise NotmuchError(f"{' '.join(args[:2])} exited {proc.returncode}: {' / '.join(tail)}")
        return proc.stdout

    def new(self, *, hooks: bool = True) -> None:
        """``notmuch new --quiet``: index what changed in the mail directory."""
        self.run([self.program, "new", "--quiet", *(() if hooks else ("--no-hooks",))])

    def revision(self) -> tuple[str, int]:
        """``(uuid, lastmod)`` of the database now."""
        out = self.run([self.program, "count", "--lastmod", "*"]).split()
        if len(out) != 3 or not out[2].isdigit():
            raise NotmuchError(f"notmuch count --lastmod: unexpected output {' '.join(out)!r}")
        return out[1], int(out[2])

    def messages(self, query: str) -> list[NotmuchMessage]:
        """The messages ``query`` finds, excluded ones (``search.exclude_tags``) too."""
        out = self.run(
            [
                self.program,
                "show",
                "--format=json",
                "--body=false",
                "--entire-thread=false",
                "--exclude=false",
                query,
            ]
        )
        try:
            data = json.loads(out) if out.strip() else []
        except ValueError as exc:
            raise NotmuchError(f"notmuch show: cannot read its output: {exc}") from None
        found: dict[str, NotmuchMessage] = {}
        for msg in walk_show(data):
            files = msg.get("filename", [])
            if isinstance(files, str):  # notmuch before 0.29 gave one name
                files = [files]
            found[str(msg["id"])] = NotmuchMessage(
                str(msg["id"]),
                frozenset(str(t) for t in msg["tags"]),
                tuple(Path(f) for f in files),
            )
        return list(found.values())

    def tag(self, lines: Sequence[str]) -> None:
        """Apply batch lines (:func:`batch_line`) in one ``notmuch tag --batch``."""
        if lines:
            self.run([self.program, "tag", "--batch"], stdin="".join(f"{x}\n" for x in lines))
