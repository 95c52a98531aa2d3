"""Test helpers shared by the whole suite.

Import them as ``from support.imap import connect`` (pytest puts ``tests/`` on
``sys.path`` because ``tests/`` is not a package):

- :mod:`support.imap`    -- the far side as a user sees it: log in, snapshot, append, flag.
- :mod:`support.maildir` -- the near side read *independently* of syncd's own Maildir code.
- :mod:`support.mail`    -- build RFC 5322 messages (CRLF line endings).
- :mod:`support.run`     -- write a TOML config and run ``python -m syncd`` as a user would.

Fixtures (in ``tests/conftest.py``): ``dovecot`` (one plain server per session / xdist
worker), ``account`` (a fresh empty user on it per test), ``dovecot_server`` (a shared
server with other options, e.g. ``tls="starttls"``) and ``fresh_dovecot`` (a private
server for tests that stop or break it).

Both snapshots expose ``sha256`` of the whole message with CRLF normalised to LF and the
Message-ID, so :func:`contents` and :func:`summary` compare them directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from devserver.dovecot import DevServer

#: The type of the ``dovecot_server`` and ``fresh_dovecot`` fixtures:
#: ``(**kwargs of devserver.dovecot.start) -> DevServer``.
StartServer = Callable[..., DevServer]


class _View(Protocol):
    @property
    def sha256(self) -> str: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def flags(self) -> frozenset[str]: ...


def contents(snapshot: Mapping[str, Sequence[_View]]) -> dict[str, Counter[str]]:
    """Folder -> multiset of message hashes. Equal on both sides = nothing lost, nothing
    twice (empty folders are kept as empty Counters)."""
    return {folder: Counter(v.sha256 for v in views) for folder, views in snapshot.items()}


def summary(
    snapshot: Mapping[str, Sequence[_View]],
) -> dict[str, list[tuple[str | None, str, frozenset[str]]]]:
    """Folder -> sorted ``(message_id, sha256, flags)``: the same on both sides when the
    two stores hold the same messages with the same flags."""
    return {
        folder: sorted(
            ((v.message_id, v.sha256, v.flags) for v in views),
            key=lambda t: (t[0] or "", t[1], sorted(t[2])),
        )
        for folder, views in snapshot.items()
    }
