"""Quiet hours in the recipient's time zone."""

from __future__ import annotations

from datetime import datetime, time, timezone

import pytest

from orchestrator.journeys.quiet_hours import QuietHours

UTC = timezone.utc


@pytest.mark.parametrize(
    ("moment", "zone", "resume"),
    [
        (datetime(2026, 3, 2, 12, 0, tzinfo=UTC), "Europe/Paris", None),  # 13:00 in Paris
        (datetime(2026, 3, 2, 21, 30, tzinfo=UTC), "Europe/Paris", datetime(2026, 3, 3, 7, 0, tzinfo=UTC)),  # 22:30
        (datetime(2026, 3, 2, 5, 0, tzinfo=UTC), "Europe/Paris", datetime(2026, 3, 2, 7, 0, tzinfo=UTC)),  # 06:00
        (datetime(2026, 3, 2, 13, 30, tzinfo=UTC), "Asia/Taipei", datetime(2026, 3, 3, 0, 0, tzinfo=UTC)),  # 21:30
        (
            datetime(2026, 3, 2, 13, 30, tzinfo=UTC),
            "America/Los_Angeles",
            datetime(2026, 3, 2, 16, 0, tzinfo=UTC),
        ),  # 05:30 PST
    ],
)
def test_resume_time(moment, zone, resume):
    assert QuietHours().resume_at(moment, zone) == resume


def test_daylight_saving_day_resumes_at_local_morning():
    # 2026-03-08: clocks in New York jump from 02:00 to 03:00; 08:00 EDT is 12:00 UTC.
    assert QuietHours().resume_at(datetime(2026, 3, 8, 6, 0, tzinfo=UTC), "America/New_York") == datetime(
        2026, 3, 8, 12, 0, tzinfo=UTC
    )


def test_daytime_window_and_disabled():
    lunch = QuietHours(start=time(12, 0), end=time(14, 0))
    assert lunch.resume_at(datetime(2026, 3, 2, 12, 30, tzinfo=UTC), "UTC") == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    assert lunch.resume_at(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), "UTC") is None
    assert QuietHours(enabled=False).resume_at(datetime(2026, 3, 2, 23, 0, tzinfo=UTC), "UTC") is None


def test_unknown_zone_falls_back_to_utc():
    assert QuietHours().resume_at(datetime(2026, 3, 2, 23, 0, tzinfo=UTC), "Mars/Olympus") == datetime(
        2026, 3, 3, 8, 0, tzinfo=UTC
    )
