"""Which period a report covers, and when it is due.

A period is a whole day, week or month in the schedule's time zone; its report is due at the
schedule's time on the day after it ends (a weekly period starts on the schedule's `day`, a
monthly one on its day of the month). Only the latest due period is sent: a service that was
down for a week sends last week's report once, not seven daily ones.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from orchestrator.reports.format import WEEKDAYS, Schedule


def _start_of(schedule: Schedule, day: date) -> date:
    """The first day of the period containing `day`."""
    if schedule.every == "day":
        return day
    if schedule.every == "week":
        return day - timedelta(days=(day.weekday() - WEEKDAYS.index(schedule.day)) % 7)
    first = day.replace(day=schedule.day)
    if first > day:
        first = (first.replace(day=1) - timedelta(days=1)).replace(day=schedule.day)
    return first


def _moment(day: date, at: str, zone: ZoneInfo) -> datetime:
    hours, minutes = map(int, at.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=zone).astimezone(timezone.utc)


def latest_due_period(schedule: Schedule, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the latest period whose report is due at or before `now`."""
    zone = ZoneInfo(schedule.timezone)
    current_start = _start_of(schedule, now.astimezone(zone).date())
    # The period that ended at current_start is due at current_start + `at`; if that moment
    # has not come yet, the one before it is the latest due.
    end = current_start
    if _moment(end, schedule.at, zone) > now:
        end = _start_of(schedule, end - timedelta(days=1))
    start = _start_of(schedule, end - timedelta(days=1))
    return _moment(start, "00:00", zone), _moment(end, "00:00", zone)
