"""The shared in-memory byte budget for downloads of folders synced side by side."""

from __future__ import annotations

import threading

from syncd.engine.options import ByteBudget


def test_budget_limits_and_oversize_requests_take_everything() -> None:
    b = ByteBudget(10)
    assert b.try_acquire(6) == 6
    assert b.try_acquire(6) is None  # would exceed the limit
    assert b.try_acquire(4) == 4
    b.release(6)
    b.release(4)
    assert b.try_acquire(50) == 10  # larger than the budget: all of it, once all is free
    assert b.try_acquire(1) is None
    b.release(10)


def test_blocked_acquire_wakes_on_release() -> None:
    b = ByteBudget(10)
    first = b.acquire(8)
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(b.acquire(5)))
    t.start()
    t.join(0.2)
    assert t.is_alive() and got == []  # waits: only 2 bytes free
    b.release(first)
    t.join(5)
    assert got == [5]
