"""The one backoff schedule (full-jitter exponential) used by the listener, tracker and pool."""

from __future__ import annotations

import random
from typing import List, Tuple

import pytest

from comfysync._backoff import Backoff


class RecordingRandom(random.Random):
    """Returns the top of each range and records the ranges asked for."""

    def __init__(self) -> None:
        super().__init__(0)
        self.ranges: List[Tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


def test_ceilings_double_from_base_up_to_cap() -> None:
    rng = RecordingRandom()
    backoff = Backoff(0.5, 4.0, rng=rng)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(low == 0.0 for low, _ in rng.ranges)  # full jitter: from zero
    assert backoff.failures == 6


def test_reset_starts_again_from_base() -> None:
    backoff = Backoff(0.25, 2.0, rng=RecordingRandom())
    for _ in range(5):
        backoff.next_delay()
    assert backoff.ceiling() == 2.0
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.ceiling() == 0.25
    assert backoff.next_delay() == 0.25


def test_delays_are_jittered_within_the_ceiling() -> None:
    backoff = Backoff(1.0, 8.0, rng=random.Random(1234))
    seen = []
    for _ in range(200):
        backoff.reset()
        for _ in range(3):  # ceiling 4.0 for the third
            delay = backoff.next_delay()
        seen.append(delay)
        assert 0.0 <= delay <= 4.0
    assert len(set(seen)) > 150  # spread, not a fixed value
    assert min(seen) < 1.0 and max(seen) > 3.0


def test_shared_default_rng_still_jitters() -> None:
    delays = {Backoff(1.0, 1.0).next_delay() for _ in range(50)}
    assert len(delays) > 40
    assert all(0.0 <= d <= 1.0 for d in delays)


def test_huge_failure_counts_stay_at_the_cap() -> None:
    backoff = Backoff(0.5, 30.0, rng=RecordingRandom())
    backoff.failures = 10_000  # 2**10000 would overflow a float
    assert backoff.next_delay() == 30.0


def test_zero_base_never_waits() -> None:
    backoff = Backoff(0.0, 30.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.0] * 5


@pytest.mark.parametrize("base, cap", [(-1.0, 1.0), (1.0, -0.5), (float("nan"), 1.0)])
def test_negative_or_nan_values_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Backoff(base, cap)


def test_repr_shows_the_schedule() -> None:
    backoff = Backoff(0.5, 30.0)
    backoff.next_delay()
    assert repr(backoff) == "Backoff(base=0.5, cap=30, failures=1)"


def test_tracker_retries_use_the_backoff() -> None:
    from comfysync._tracking.state import RETRY_MAX, RETRY_MIN, JobState

    state = JobState("p1", 1, now=100.0)
    state.retries = Backoff(RETRY_MIN, RETRY_MAX, rng=RecordingRandom())
    waits = []
    for _ in range(5):
        state.retry_later(100.0)
        assert state.needs_check
        waits.append(state.next_check - 100.0)
    assert waits == pytest.approx([0.25, 0.5, 1.0, 2.0, 2.0])
    state.still_queued("pending", 100.0, 0.1, 1.0)  # an answer: the schedule starts over
    state.retry_later(100.0)
    assert state.next_check - 100.0 == pytest.approx(0.25)
