"""Which period a report covers and when it is due, in the schedule's time zone."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from orchestrator.reports.format import Schedule
from orchestrator.reports.periods import latest_due_period

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.mark.parametrize(
    "schedule, now, period",
    [
        # Daily at 08:00 Paris: before 08:00 the day before yesterday is the latest due period.
        (
            {"every": "day", "timezone": "Europe/Paris"},
            paris(2026, 3, 11, 7, 59),
            (paris(2026, 3, 9), paris(2026, 3, 10)),
        ),
        (
            {"every": "day", "timezone": "Europe/Paris"},
            paris(2026, 3, 11, 8, 0),
            (paris(2026, 3, 10), paris(2026, 3, 11)),
        ),
        # Weekly on Monday: the Monday-to-Monday week that just ended (2026-03-09 is a Monday).
        (
            {"every": "week", "day": "monday", "timezone": "Europe/Paris"},
            paris(2026, 3, 9, 9, 0),
            (paris(2026, 3, 2), paris(2026, 3, 9)),
        ),
        (
            {"every": "week", "day": "monday", "timezone": "Europe/Paris"},
            paris(2026, 3, 12, 9, 0),
            (paris(2026, 3, 2), paris(2026, 3, 9)),
        ),
        (
            {"every": "week", "day": "monday", "timezone": "Europe/Paris"},
            paris(2026, 3, 9, 7, 0),
            (paris(2026, 2, 23), paris(2026, 3, 2)),
        ),
        # Monthly on the 1st: the calendar month before.
        (
            {"every": "month", "timezone": "Europe/Paris"},
            paris(2026, 3, 1, 8, 30),
            (paris(2026, 2, 1), paris(2026, 3, 1)),
        ),
        (
            {"every": "month", "day": 15, "at": "09:00", "timezone": "Europe/Paris"},
            paris(2026, 3, 14, 12, 0),
            (paris(2026, 1, 15), paris(2026, 2, 15)),
        ),
        # Across the switch to summer time (29 March 2026 in Paris): a day of 23 hours.
        (
            {"every": "day", "timezone": "Europe/Paris"},
            paris(2026, 3, 30, 9, 0),
            (paris(2026, 3, 29), paris(2026, 3, 30)),
        ),
    ],
)
def test_latest_due_period(schedule, now, period):
    start, end = latest_due_period(Schedule(**schedule), now.astimezone(timezone.utc))
    assert (start, end) == (period[0].astimezone(timezone.utc), period[1].astimezone(timezone.utc))
    assert start.tzinfo == timezone.utc


def test_the_summer_time_day_is_23_hours():
    start, end = latest_due_period(Schedule(every="day", timezone="Europe/Paris"), paris(2026, 3, 30, 9, 0))
    assert (end - start).total_seconds() == 23 * 3600
