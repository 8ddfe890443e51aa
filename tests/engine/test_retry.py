"""backoff_delay: exponential, capped, with equal jitter, and a provider's Retry-After as a floor."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from orchestrator.engine.retry import BASE_SECONDS, CAP_SECONDS, backoff_delay


class Extremes:
    """Stands in for the random source and always draws the lowest or the highest value."""

    def __init__(self, highest: bool) -> None:
        self.highest = highest

    def uniform(self, low: float, high: float) -> float:
        return high if self.highest else low


LOWEST, HIGHEST = Extremes(highest=False), Extremes(highest=True)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 2), (1, 2), (2, 4), (3, 8), (4, 16), (9, 512), (10, 600), (30, 600)],
)
def test_the_window_doubles_from_two_seconds_up_to_ten_minutes_and_keeps_its_upper_half(attempt, ceiling):
    assert backoff_delay(attempt, rng=HIGHEST) == timedelta(seconds=ceiling)
    # Equal jitter: never less than half the window, so a retry is never immediate.
    assert backoff_delay(attempt, rng=LOWEST) == timedelta(seconds=ceiling / 2)


def test_the_constants_are_what_the_windows_above_assume():
    assert (BASE_SECONDS, CAP_SECONDS) == (2.0, 600.0)


def test_delays_are_spread_within_the_window_so_retries_do_not_arrive_in_step():
    rng = random.Random(13)
    delays = [backoff_delay(5, rng=rng).total_seconds() for _ in range(200)]
    assert all(16 <= delay <= 32 for delay in delays)
    assert len(set(delays)) == 200
    assert min(delays) < 18 and max(delays) > 30  # the whole upper half is used, not one spot


def test_retry_after_is_a_floor_not_a_replacement():
    assert backoff_delay(1, retry_after=45, rng=HIGHEST) == timedelta(seconds=45)
    assert backoff_delay(6, retry_after=5, rng=LOWEST) == timedelta(seconds=32)  # our window is longer
    assert backoff_delay(1, retry_after=None, rng=LOWEST) == timedelta(seconds=1)
    assert backoff_delay(1, retry_after=0, rng=LOWEST) == timedelta(seconds=1)


def test_without_a_random_source_it_uses_the_module_random():
    assert timedelta(seconds=8) <= backoff_delay(4) <= timedelta(seconds=16)
