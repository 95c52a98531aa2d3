"""When a message the server refused for good is offered again (syncd.engine.refusals)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.engine.refusals import RETRY_AFTER, Refusal, held_back

R = Refusal("1700000000.M1P2.host", 1_500_000, "LIMIT", None, "[LIMIT] too large", 1000.0)


def test_held_back_while_nothing_changed() -> None:
    assert held_back(R, size=R.size, limit=None, now=R.at)
    assert held_back(R, size=R.size, limit=None, now=R.at + RETRY_AFTER - 1)


def test_offered_again_when_the_file_the_limit_or_a_day_changes() -> None:
    assert not held_back(R, size=R.size - 1, limit=None, now=R.at)  # the user trimmed it
    assert not held_back(R, size=R.size, limit=50_000_000, now=R.at)  # APPENDLIMIT appeared
    assert not held_back(R, size=R.size, limit=None, now=R.at + RETRY_AFTER)  # a day went by
    assert not held_back(R, size=R.size, limit=None, now=R.at - 5)  # the clock went back


@given(
    size=st.integers(0, 10**9),
    limit=st.none() | st.integers(0, 10**9),
    elapsed=st.floats(-1e7, 1e7, allow_nan=False),
)
def test_held_back_only_when_size_limit_and_time_all_allow(
    size: int, limit: int | None, elapsed: float
) -> None:
    expected = size == R.size and limit == R.limit and 0 <= elapsed < RETRY_AFTER
    assert held_back(R, size=size, limit=limit, now=R.at + elapsed) is expected
