"""Folder life-cycle, planned: renames and deletions of whole folders on either side.

A pure function of the two listings and the state (:func:`plan_folders`); the
account's :mod:`syncd.account.folderlife` gathers its inputs and carries the
steps out.  Nothing here touches a store.

- A folder synced before (*known*: it has a UIDVALIDITY in the state) that the
  far side no longer lists, while a far folder never synced has its UIDVALIDITY,
  was renamed on the far side: the near folder is renamed to match
  (:class:`RenameNear`).  Only a unique match counts.
- A known folder gone from the near side, while a near folder never synced holds
  the same messages (at least half of its pairs' unique names, more than any
  other), was renamed on the near side: the far folder is renamed to match
  (:class:`RenameFar`).
- Otherwise a known folder gone from one side is deleted on the other when it is
  empty there, or when the user allowed it (``--allow-mass-delete``)
  (:class:`DeleteNear`, :class:`DeleteFar`); gone from both, it is forgotten
  (:class:`Forget`).  Not allowed: a far folder gone is kept near and skipped
  with one line (:class:`KeepNear`); a near folder gone is fetched again by the
  folder's sync, as before (nothing planned here).
- ``protected`` folders (INBOX, the trash) are never renamed nor deleted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

Parts = tuple[str, ...]


@dataclass(frozen=True)
class Known:
    """A folder synced before: its far name in the state and its name components."""

    name: str
    parts: Parts
    uidvalidity: int


def _shown(parts: Parts) -> str:
    return "/".join(parts)


@dataclass(frozen=True)
class RenameNear:
    """The far side renamed ``old`` to ``new`` (``new_name`` on the server)."""

    old: Known
    new: Parts
    new_name: str

    def __str__(self) -> str:
        return f"rename near folder {_shown(self.old.parts)} -> {_shown(self.new)}"


@dataclass(frozen=True)
class RenameFar:
    """The near side renamed ``old`` to ``new``."""

    old: Known
    new: Parts

    def __str__(self) -> str:
        return f"rename far folder {_shown(self.old.parts)} -> {_shown(self.new)}"


@dataclass(frozen=True)
class DeleteNear:
    """The far side deleted ``old``; the near copy holds ``count`` messages."""

    old: Known
    count: int

    def __str__(self) -> str:
        return f"delete near folder {_shown(self.old.parts)} ({self.count} messages)"


@dataclass(frozen=True)
class DeleteFar:
    """The near side deleted ``old``; the far folder holds ``count`` messages."""

    old: Known
    count: int

    def __str__(self) -> str:
        return f"delete far folder {self.old.name} ({self.count} messages)"


@dataclass(frozen=True)
class KeepNear:
    """The far side deleted ``old``, but the near copy holds ``count`` messages and
    deleting them was not allowed: kept, skipped, one line."""

    old: Known
    count: int
    deletable: bool = True  # False: the near side is never written (sync = push)

    def __str__(self) -> str:
        return f"keep near folder {_shown(self.old.parts)} ({self.count} messages)"


@dataclass(frozen=True)
class Forget:
    """Gone from both sides: only the state remembers ``old``."""

    old: Known

    def __str__(self) -> str:
        return f"forget folder {_shown(self.old.parts)} (gone on both sides)"


Step = RenameNear | RenameFar | DeleteNear | DeleteFar | KeepNear | Forget


@dataclass(frozen=True)
class Listings:
    """What :func:`plan_folders` looks at.

    ``known``: the folders synced before (selected by the config).  ``far``: the far
    folders listed (components -> far name).  ``near``: the near folders present.
    ``far_uidvalidity``: of far folders never synced (only needed when a known one is
    gone from the far side).  ``near_names``: the unique names held by near folders
    never synced, and ``pair_names`` the near names of each known folder's pairs
    (by far name; only needed when a known one is gone from the near side).
    ``far_counts`` / ``near_counts``: messages in a folder gone from the other side.
    """

    known: Collection[Known]
    far: Mapping[Parts, str]
    near: Collection[Parts]
    far_uidvalidity: Mapping[Parts, int]
    near_names: Mapping[Parts, frozenset[str]]
    pair_names: Mapping[str, frozenset[str]]
    far_counts: Mapping[str, int]
    near_counts: Mapping[Parts, int]


def far_gone(known: Collection[Known], far: Mapping[Parts, str]) -> list[Known]:
    return [k for k in known if k.parts not in far]


def near_gone(
    known: Collection[Known], far: Mapping[Parts, str], near: Collection[Parts]
) -> list[Known]:
    return [k for k in known if k.parts in far and k.parts not in near]


def plan_folders(
    at: Listings,
    *,
    protected: Collection[Parts] = (),
    allow_delete: bool = False,
    push: bool = True,
    pull: bool = True,
) -> list[Step]:
    """The folder steps, renames first (parents before children), then deletions.
    ``push``/``pull``: whether the far / near side may be changed at all."""
    known_parts = {k.parts for k in at.known}
    steps: list[Step] = []
    renamed: set[Parts] = set()
    taken: set[Parts] = set()
    # --- renamed on the far side: the same UIDVALIDITY under a new name
    gone_far = [k for k in far_gone(at.known, at.far) if k.parts not in protected]
    if pull:
        fresh = {
            parts: uv
            for parts, uv in at.far_uidvalidity.items()
            if parts in at.far and parts not in known_parts and parts not in protected
        }
        for old in gone_far:
            hits = [p for p, uv in fresh.items() if uv == old.uidvalidity]
            same = [k for k in gone_far if k.uidvalidity == old.uidvalidity]
            if len(hits) == 1 and len(same) == 1 and hits[0] not in at.near:
                steps.append(RenameNear(old, hits[0], at.far[hits[0]]))
                renamed.add(old.parts)
                taken.add(hits[0])
    # --- renamed on the near side: the same messages under a new name
    gone_near = [k for k in near_gone(at.known, at.far, at.near) if k.parts not in protected]
    if push:
        candidates = {
            parts: names
            for parts, names in at.near_names.items()
            if parts in at.near
            and parts not in at.far
            and parts not in known_parts
            and parts not in protected
            and parts not in taken
        }
        for old in gone_near:
            best = _best_match(at.pair_names.get(old.name, frozenset()), candidates)
            if best is not None:
                steps.append(RenameFar(old, best))
                renamed.add(old.parts)
                del candidates[best]
    # --- deleted on one side
    for old in gone_far:
        if old.parts in renamed:
            continue
        if old.parts not in at.near:
            steps.append(Forget(old))
            continue
        count = at.near_counts.get(old.parts, 0)
        if pull and (count == 0 or allow_delete):
            steps.append(DeleteNear(old, count))
        else:
            steps.append(KeepNear(old, count, deletable=pull))
    if push:
        for old in gone_near:
            if old.parts in renamed:
                continue
            far_count = at.far_counts.get(old.name)
            if far_count is not None and (far_count == 0 or allow_delete):
                steps.append(DeleteFar(old, far_count))
    return _ordered(steps)


def _best_match(pairs: frozenset[str], candidates: Mapping[Parts, frozenset[str]]) -> Parts | None:
    """The near folder holding most of ``pairs`` (at least half, and strictly more
    than any other), or None."""
    if not pairs:
        return None
    scored = sorted(
        ((len(pairs & names), parts) for parts, names in candidates.items()), reverse=True
    )
    if not scored:
        return None
    top, parts = scored[0]
    if 2 * top < len(pairs) or (len(scored) > 1 and scored[1][0] == top):
        return None
    return parts


def _ordered(steps: list[Step]) -> list[Step]:
    """Renames first, parents before children (a parent's rename moves its children
    on the server and in a nested Maildir); then the rest, children first (a parent's
    deletion must not take a child's mail with it)."""
    renames = sorted(
        (s for s in steps if isinstance(s, RenameNear | RenameFar)),
        key=lambda s: (len(s.old.parts), s.old.parts),
    )
    rest = sorted(
        (s for s in steps if not isinstance(s, RenameNear | RenameFar)),
        key=lambda s: (-len(s.old.parts), s.old.parts),
    )
    return [*renames, *rest]
