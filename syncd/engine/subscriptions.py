"""Folder subscriptions merged three-way, like flags: each side's subscriptions and
unsubscriptions since the last agreed set both apply (pure; the account's
:mod:`syncd.account.subscribe` reads the sides and writes the result)."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

Parts = tuple[str, ...]


@dataclass(frozen=True)
class SubscriptionPlan:
    """``agreed``: the folders subscribed on both sides after the run (the new
    baseline); ``subscribe``/``unsubscribe``: what to change on the far side;
    ``near_changed``: whether the near side's set differs from ``agreed``."""

    agreed: frozenset[Parts]
    subscribe: frozenset[Parts]
    unsubscribe: frozenset[Parts]
    near_changed: bool

    def lines(self) -> list[str]:
        """One line per change, as the log and ``--dry-run`` print them."""
        out = [f"subscribe far {'/'.join(p)}" for p in sorted(self.subscribe)]
        out += [f"unsubscribe far {'/'.join(p)}" for p in sorted(self.unsubscribe)]
        return out


def merge_subscriptions(
    base: Set[Parts],
    far: Set[Parts],
    near: Set[Parts] | None,
    *,
    push: bool = True,
    pull: bool = True,
) -> SubscriptionPlan:
    """``near`` None: the near side keeps none (no file yet): it changed nothing.
    ``push`` False: the far side is not changed (its set wins); ``pull`` False: the
    near side is not changed (its set wins)."""
    near_set = frozenset(base if near is None else near)
    far_set = frozenset(far)
    if not push:
        agreed = far_set
    elif not pull:
        agreed = near_set
    else:
        agreed = frozenset(
            (base | (far_set - base) | (near_set - base)) - (base - far_set) - (base - near_set)
        )
    return SubscriptionPlan(
        agreed=agreed,
        subscribe=agreed - far_set,
        unsubscribe=far_set - agreed,
        near_changed=bool(agreed) if near is None else near_set != agreed,
    )
